"""The `mock` platform end to end, over the real server: each example strategy runs unchanged on
a backtest session and on a mock session with no error event; the unmodified SDK, async and
sync, makes every REST call against a mock session, and its stream carries quotes, candles, and
a market order's order, trade, position and account events; and given only a share URL (no key).

Mock sessions are created through the management API and run the real mock market on a fast
clock (tests/runtimes/providers/fast_mock.py: a 1m candle every second), registered in-process:
these tests need the embedded worker."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from tektii import (
    AccountEvent,
    AsyncTradingGateway,
    CandleEvent,
    OrderEvent,
    OrderStatus,
    PositionEvent,
    QuoteEvent,
    TradeEvent,
    TradingGateway,
)

from runtimes.models import TradingSession
from runtimes.providers import registry
from tests.runtimes.conftest import wait_for_state
from tests.runtimes.providers import fast_mock
from tests.runtimes.shell.examples import (
    Example,
    journaled,
    run_on_backtest,
    start_example,
)

in_thread = partial(sync_to_async, thread_sensitive=False)
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(90),
    pytest.mark.skipif(not settings.CELERY_EMBEDDED_WORKER,
                       reason="needs the embedded worker (the fast mock is registered in-process)"),
]

MOCK_CANDLES = 5  # a mock run ends after an order, or after this many candles of one symbol
AAPL = "AAPL"


@pytest.fixture
def fast_mock_registry(monkeypatch):
    monkeypatch.setitem(registry.FACTORIES, "mock", fast_mock.FACTORY)


def create_mock(daphne_url: str, key: str, workspace, symbols: list[str]) -> str:
    """A mock session through the management API (sync); returns its id."""
    created = httpx.post(
        f"{daphne_url}/api/v1/workspaces/{workspace.id}/sessions",
        headers={"Authorization": f"Bearer {key}"},
        json={"platform": "mock", "symbols": symbols, "timeframe": "1m",
              "initial_cash": "100000", "options": {"seed": 5, "quote_interval_ms": 1000}})
    assert created.status_code == 201, created.json()
    assert created.json()["platform"] == "mock"
    return str(created.json()["id"])


def cancel(daphne_url: str, key: str, workspace, session_id: str) -> TradingSession:
    """Cancel through the management API and wait for the host to store the end (sync)."""
    answer = httpx.post(f"{daphne_url}/api/v1/workspaces/{workspace.id}/sessions/"
                        f"{session_id}/cancel", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code in {200, 202}, answer.json()
    return wait_for_state(TradingSession.objects.get(pk=session_id), {"cancelled", "failed"})


# -- the same strategy file on backtest and mock --------------------------------------------------


STOCKS = ("AAPL", "MSFT", "NVDA", "JPM", "XOM")
RUNS = {
    "sma_crossover.py": Example(
        {"BTCUSDT": "crypto-1m/BTCUSDT.csv"}, 300, {"fast": 10, "slow": 30, "quantity": "0.5"},
        ["BTCUSDT"], {"fast": 2, "slow": 3, "quantity": "0.01"}),
    "rsi_mean_reversion.py": Example(
        {"BTCUSDT": "crypto-1m/BTCUSDT.csv"}, 600,
        {"quantity": "0.5", "stop_loss_pct": "0.3", "take_profit_pct": "0.3"},
        ["BTCUSDT"], {"period": 2, "oversold": 45, "quantity": "0.01"}),
    "momentum_rotation.py": Example(
        {s: f"stocks-daily/{s}.csv" for s in STOCKS}, 120,
        {"lookback": 20, "rebalance_every": 5, "top_k": 2},
        ["AAPL", "MSFT"], {"lookback": 2, "rebalance_every": 1, "top_k": 1}),
}


def run_on_mock(script, example, *, daphne_url, key, workspace):
    session_id = create_mock(daphne_url, key, workspace, example.mock_symbols)
    process = start_example(script, base_url=f"{daphne_url}/sessions/{session_id}", key=key,
                            params=example.mock_params)
    try:
        deadline = time.monotonic() + 30
        while not (journaled(session_id, "order")
                   or journaled(session_id, "candle") >= MOCK_CANDLES * len(example.mock_symbols)):
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the mock session streamed no candles"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)  # how a deployment stops it
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr[-3000:]
    session = cancel(daphne_url, key, workspace, session_id)
    assert (session.state, session.failure_reason) == ("cancelled", "cancelled")
    candles = journaled(session_id, "candle")
    assert journaled(session_id, "order") or candles >= MOCK_CANDLES * len(example.mock_symbols)
    assert candles > 0
    return session_id, stderr


@pytest.mark.parametrize("platform", ["backtest", "mock"])
@pytest.mark.parametrize("script", sorted(RUNS))
def test_each_example_runs_unchanged_on_backtest_and_mock_without_an_error_event(
    daphne_url, celery_worker, fast_mock_registry, trader_key, owner, workspace, tmp_path,
    script, platform
):
    example = RUNS[script]
    if platform == "backtest":
        session_id, stderr = run_on_backtest(script, example, daphne_url=daphne_url,
                                             key=trader_key, owner=owner, workspace=workspace,
                                             tmp_path=tmp_path)
    else:
        session_id, stderr = run_on_mock(script, example, daphne_url=daphne_url,
                                         key=trader_key, workspace=workspace)
    assert journaled(session_id, "error") == 0
    assert "Traceback" not in stderr and " ERROR " not in stderr, stderr[-3000:]


# -- the unmodified SDK, async and sync, against a mock session -----------------------------------


@dataclass
class FillWatch:
    """What the stream showed: quotes and candles first; then, once the strategy bought, the
    buy's order, trade, position and account events."""

    order_id: str | None = None
    kinds: Counter = field(default_factory=Counter)
    filled: list[str] = field(default_factory=list)  # what says the buy filled, in order

    def see(self, event) -> None:
        self.kinds[type(event).__name__] += 1
        if self.order_id is None:
            return
        if isinstance(event, OrderEvent) and event.order.id == self.order_id:
            if event.order.status == OrderStatus.FILLED:
                self.filled.append("order")
        elif isinstance(event, TradeEvent) and event.trade.order_id == self.order_id:
            self.filled.append("trade")
        elif isinstance(event, PositionEvent) and event.position.symbol == AAPL:
            self.filled.append("position")
        elif isinstance(event, AccountEvent) and self.filled:
            self.filled.append("account")

    @property
    def time_to_buy(self) -> bool:
        return (self.order_id is None and self.kinds[QuoteEvent.__name__] > 0
                and self.kinds[CandleEvent.__name__] > 0)

    @property
    def done(self) -> bool:
        return {"order", "trade", "position", "account"} <= set(self.filled)


async def check_every_rest_call(gw, call, *, base: str, key: str, bought: str) -> None:
    """Every REST call of the SDK once the buy of 2 AAPL has filled; `call(fn, *args)` awaits
    `fn(*args)` (async client) or runs it in a thread (sync client)."""
    health = await call(gw.get_health)
    assert health.status.value == "connected"
    caps = await call(gw.get_capabilities)
    assert [t.value for t in caps.supported_order_types] == [
        "MARKET", "LIMIT", "STOP", "STOP_LIMIT", "TRAILING_STOP"]
    assert (await call(gw.get_status)).connected is True
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as raw:
        info = (await raw.get(f"{base}/v1/session")).json()
    assert (info["platform"], info["state"], info["symbols"]) == ("mock", "running", [AAPL])

    order = await call(gw.get_order, bought)
    assert (order.status, order.filled_quantity) == (OrderStatus.FILLED, "2")
    assert [o.id for o in await call(gw.get_order_history, status=["FILLED"])] == [bought]
    [trade] = await call(gw.list_trades, order_id=bought)
    assert trade.quantity == "2"
    [position] = await call(gw.list_positions, symbol=AAPL)
    assert position.quantity == "2"
    assert (await call(gw.get_position, position.id)).symbol == AAPL
    account = await call(gw.get_account)
    assert Decimal(account.margin_available) == Decimal(100_000) - 2 * Decimal(trade.price)

    quote = await call(gw.get_quote, AAPL)
    assert Decimal(quote.bid) < Decimal(quote.ask)
    bars = await call(gw.get_bars, AAPL, "1m", limit=5)
    assert len(bars) == 5 and all(b.symbol == AAPL for b in bars)

    low = (Decimal(quote.bid) / 2).quantize(Decimal("0.01"))
    resting = await call(gw.submit_order, AAPL, "buy", "1", order_type="limit",
                         limit_price=str(low))
    assert [o.id for o in await call(gw.list_orders)] == [resting.id]
    modified = await call(gw.modify_order, resting.id, limit_price=str(low - 1))
    assert Decimal(modified.order.limit_price) == low - 1
    assert Decimal((await call(gw.get_order, resting.id)).limit_price) == low - 1
    cancelled = await call(gw.cancel_order, resting.id)
    assert cancelled.success and cancelled.order.status == OrderStatus.CANCELLED
    assert await call(gw.list_orders) == []

    closing = await call(gw.close_position, position.id)
    deadline = time.monotonic() + 10
    while (await call(gw.get_order, closing.id)).status != OrderStatus.FILLED:
        assert time.monotonic() < deadline, "the closing market order did not fill"
        await asyncio.sleep(0.02)
    assert await call(gw.list_positions) == []
    assert sorted(t.order_id for t in await call(gw.list_trades)) == sorted([bought, closing.id])


async def awaited(fn, *args, **kwargs):
    return await fn(*args, **kwargs)


async def trade_with_the_async_sdk(
    gw: AsyncTradingGateway, *, base: str, daphne_url: str, key: str, workspace, session_id: str
) -> None:
    """Stream the session until a buy of 2 AAPL has filled, make every REST call, cancel the
    session; the stream showed the fill and the journal holds no error."""
    watch = FillWatch()
    try:
        async with gw:
            async with gw.stream() as events:
                async for event in events:
                    watch.see(event)
                    if watch.time_to_buy:
                        watch.order_id = (await gw.submit_order(AAPL, "buy", "2")).id
                    if watch.done:
                        break
            await check_every_rest_call(gw, awaited, base=base, key=key, bought=watch.order_id)
    finally:
        session = await in_thread(cancel)(daphne_url, key, workspace, session_id)
    assert watch.filled[:3] == ["order", "trade", "position"]
    assert session.state == "cancelled"
    assert await in_thread(journaled)(session_id, "error") == 0


async def test_the_async_sdk_streams_a_mock_session_and_makes_every_call(
    daphne_url, celery_worker, fast_mock_registry, trader_key, workspace
):
    session_id = await in_thread(create_mock)(daphne_url, trader_key, workspace, [AAPL])
    base = f"{daphne_url}/sessions/{session_id}"
    gw = AsyncTradingGateway(base_url=base, api_key=trader_key, max_retries=0)
    await trade_with_the_async_sdk(gw, base=base, daphne_url=daphne_url, key=trader_key,
                                   workspace=workspace, session_id=session_id)


def test_the_sync_sdk_streams_a_mock_session_and_makes_every_call(
    daphne_url, celery_worker, fast_mock_registry, trader_key, workspace
):
    session_id = create_mock(daphne_url, trader_key, workspace, [AAPL])
    base = f"{daphne_url}/sessions/{session_id}"
    watch = FillWatch()
    gw = TradingGateway(base_url=base, api_key=trader_key, max_retries=0)
    try:
        with gw.stream() as events:
            for event in events:
                watch.see(event)
                if watch.time_to_buy:
                    watch.order_id = gw.submit_order(AAPL, "buy", "2").id
                if watch.done:
                    break
        asyncio.run(check_every_rest_call(gw, asyncio.to_thread, base=base, key=trader_key,
                                          bought=watch.order_id))
    finally:
        gw.close()
        session = cancel(daphne_url, trader_key, workspace, session_id)
    assert watch.filled[:3] == ["order", "trade", "position"]
    assert session.state == "cancelled"
    assert journaled(session_id, "error") == 0


async def test_the_sdk_given_only_a_mock_sessions_share_url_streams_and_makes_every_call(
    daphne_url, celery_worker, fast_mock_registry, trader_key, workspace, monkeypatch
):
    for name in ("TEKTII_TRADING_GATEWAY_API_KEY", "TRADING_GATEWAY_API_KEY",
                 "TEKTII_TRADING_GATEWAY_URL", "TRADING_GATEWAY_URL"):
        monkeypatch.delenv(name, raising=False)  # the URL alone: no key from anywhere
    session_id = await in_thread(create_mock)(daphne_url, trader_key, workspace, [AAPL])
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {trader_key}"}) as manage:
        made = await manage.post(f"{daphne_url}/api/v1/workspaces/{workspace.id}/sessions/"
                                 f"{session_id}/share-links", json={})
    assert made.status_code == 201, made.json()
    url = made.json()["url"]
    assert url.startswith(f"{daphne_url}/share/psl_")
    gw = AsyncTradingGateway(base_url=url, max_retries=0)  # no key: the URL carries it
    await trade_with_the_async_sdk(gw, base=url, daphne_url=daphne_url, key=trader_key,
                                   workspace=workspace, session_id=session_id)
