"""Every REST call of the unmodified tektii SDK against a running backtest session, and the
error classes it maps our envelopes to."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from decimal import Decimal as D
from functools import partial

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from tektii import (
    AsyncTradingGateway,
    AuthenticationError,
    BadRequestError,
    CandleEvent,
    ConflictError,
    NotFoundError,
    OrderRejectedError,
    OrderStatus,
    TradingGateway,
)

from tests.runtimes.conftest import SYMBOL, wait_for_state
from tests.runtimes.shell.sdk_client import act_on_candles

in_thread = partial(sync_to_async, thread_sensitive=False)
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


async def check_every_call(gw: AsyncTradingGateway, base: str, key: str, step: int, state: dict):
    """Called on candles 30 and 31: submit on 30 (acts from the next bar), inspect on 31."""
    if step == 30:
        health = await gw.get_health()
        assert health.status.value == "connected"
        caps = await gw.get_capabilities()
        assert caps.position_mode.value == "NETTING"
        assert (await gw.get_status()).connected is True
        account = await gw.get_account()
        assert Decimal(account.equity) == Decimal(100_000)
        handle = await gw.submit_order(SYMBOL, "buy", "0.5", client_order_id="c-1")
        again = await gw.submit_order(SYMBOL, "buy", "0.5", client_order_id="c-1")
        assert again.id == handle.id  # client_order_id is idempotent
        state["order_id"] = handle.id
        assert [o.id for o in await gw.list_orders()] == [handle.id]
        return
    order = await gw.get_order(state["order_id"])
    assert (order.status, order.filled_quantity) == (OrderStatus.FILLED, "0.5")
    assert [o.id for o in await gw.get_order_history(status=["FILLED"])] == [order.id]
    assert await gw.list_orders() == []
    trades = await gw.list_trades(order_id=order.id)
    assert [t.quantity for t in trades] == ["0.5"]
    positions = await gw.list_positions(symbol=SYMBOL)
    assert [p.quantity for p in positions] == ["0.5"]
    assert (await gw.get_position(positions[0].id)).symbol == SYMBOL
    quote = await gw.get_quote(SYMBOL)
    assert quote.bid == quote.ask == quote.last
    bars = await gw.get_bars(SYMBOL, "1m", limit=5)
    assert len(bars) == 5 and bars[-1].close == quote.last
    limit = await gw.submit_order(SYMBOL, "buy", "0.1", order_type="limit", limit_price="1000")
    modified = await gw.modify_order(limit.id, limit_price="1100")
    assert modified.order.limit_price == "1100"
    cancelled = await gw.cancel_order(limit.id)
    assert cancelled.success and cancelled.order.status == OrderStatus.CANCELLED
    with pytest.raises(ConflictError):
        await gw.cancel_order(limit.id)
    assert (await gw.cancel_all_orders()).cancelled_count == 0
    breakers = await gw.get_circuit_breakers()
    assert breakers.adapter.state == "closed"
    assert (await gw.reset_circuit_breakers()).exit_order.failure_count == 0
    assert await gw.close_all_positions(symbol="ETHUSDT") == []
    closing = await gw.close_position(positions[0].id)
    assert closing.status in (OrderStatus.PENDING, OrderStatus.OPEN)
    assert (await gw.close_position(positions[0].id)).id == closing.id  # a retry is harmless
    assert [h.id for h in await gw.close_all_positions()] == [closing.id]
    # errors
    with pytest.raises(NotFoundError) as missing:
        await gw.get_order("does-not-exist")
    assert missing.value.code == "ORDER_NOT_FOUND"
    with pytest.raises(NotFoundError) as unknown_symbol:
        await gw.get_quote("BTC/USD")  # travels as BTC%2FUSD
    assert unknown_symbol.value.code == "SYMBOL_NOT_FOUND"
    with pytest.raises(BadRequestError) as invalid:
        await gw.submit_order(SYMBOL, "buy", "1", order_type="limit")
    assert invalid.value.code == "INVALID_REQUEST"
    with pytest.raises(BadRequestError):
        await gw.list_orders(status=["NOPE"])
    bad = AsyncTradingGateway(base_url=base, api_key="prt_abcdefgh_wrong", max_retries=0)
    async with bad:
        with pytest.raises(AuthenticationError):
            await bad.get_account()
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as raw:
        session = (await raw.get(f"{base}/v1/session")).json()
        assert (session["state"], session["symbols"]) == ("running", [SYMBOL])
        assert session["events_sent"] > 30
        assert session["simulated_time"] == "2021-04-02T00:30:00Z"  # candle 31's bar


async def test_every_sdk_call_conforms_during_a_running_backtest(
    daphne_url, start_backtest, trader_key
):
    session = await in_thread(start_backtest)()
    base = f"{daphne_url}/sessions/{session.id}"
    state: dict = {}
    gw = AsyncTradingGateway(base_url=base, api_key=trader_key, max_retries=0)
    await act_on_candles(gw, (30, 31),
                         lambda candle: check_every_call(gw, base, trader_key, candle, state))
    session = await in_thread(wait_for_state)(session, {"completed", "failed"})
    assert session.state == "completed"
    result = await in_thread(lambda: session.result)()
    assert [o["status"] for o in result.orders] == ["FILLED", "CANCELLED", "FILLED"]


# -- the sync client, moving exits, resampled bars, risk blocks -----------------------------------


def sync_calls_on(gw: TradingGateway, base: str, key: str, step: int, state: dict) -> None:
    """Run from a plain thread (the sync client refuses a thread with a running loop). On
    candle 10 a bracketed buy is sent; on candle 11 (simulated 00:10) it has filled."""
    if step == 10:
        assert Decimal(gw.get_account().equity) == Decimal(100_000)
        last = Decimal(gw.get_quote(SYMBOL).last)
        state["stop"], state["target"] = last - 1000, last + 1000
        handle = gw.submit_order(SYMBOL, "buy", "0.5", stop_loss=str(state["stop"]),
                                 take_profit=str(state["target"]))
        state["entry"] = handle.id
        return
    assert gw.get_order(state["entry"]).status == OrderStatus.FILLED
    [position] = gw.list_positions()
    legs = {o.order_type.value: o for o in gw.list_orders()}
    assert set(legs) == {"STOP", "LIMIT"}
    moved = str(state["stop"] + 500)
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}) as raw:  # not in the SDK
        answer = raw.patch(f"{base}/v1/positions/{position.id}", json={"stop_loss": moved})
    assert answer.status_code == 200
    assert answer.json() == {"position_id": position.id, "stop_loss": {
        "order_ids": [legs["STOP"].id], "trigger_price": moved}}
    assert Decimal(gw.get_order(legs["STOP"].id).stop_price) == Decimal(moved)
    minutes = gw.get_bars(SYMBOL, "1m", limit=11)
    fives = gw.get_bars(SYMBOL, "5m")
    assert [b.timestamp.isoformat() for b in fives] == ["2021-04-02T00:00:00+00:00",
                                                       "2021-04-02T00:05:00+00:00"]
    assert (fives[1].open, fives[1].close) == (minutes[5].open, minutes[9].close)
    assert Decimal(fives[1].volume) == sum(Decimal(b.volume) for b in minutes[5:10])
    with pytest.raises(BadRequestError) as finer:
        gw.get_bars(SYMBOL, "3m")
    assert finer.value.details == {"field": "timeframe", "provided": "3m"}
    result = gw.cancel_all_orders()
    assert (result.cancelled_count, result.failed_count, result.failed_order_ids) == (2, 0, [])
    assert gw.close_position(position.id).status in (OrderStatus.PENDING, OrderStatus.OPEN)
    assert [t.order_id for t in gw.list_trades()] == [state["entry"]]


async def test_the_sync_client_moves_exits_and_reads_resampled_bars_from_a_thread(
    daphne_url, start_backtest, trader_key
):
    session = await in_thread(start_backtest)()
    base = f"{daphne_url}/sessions/{session.id}"
    state: dict = {}
    sync_gw = TradingGateway(base_url=base, api_key=trader_key, max_retries=0)
    gw = AsyncTradingGateway(base_url=base, api_key=trader_key, max_retries=0)
    try:
        await act_on_candles(gw, (10, 11), lambda candle: asyncio.to_thread(
            sync_calls_on, sync_gw, base, trader_key, candle, state))
    finally:
        await asyncio.to_thread(sync_gw.close)
    session = await in_thread(wait_for_state)(session, {"completed", "failed"})
    assert session.state == "completed"


async def test_risk_blocks_and_the_kill_switch_reach_the_sdk_as_order_rejected_errors(
    daphne_url, start_backtest, trader_key, owner
):
    from runtimes.hosting.risk import RiskLimits
    from runtimes.models import SessionAudit
    from runtimes.services import kill_session

    session = await in_thread(start_backtest)(risk_limits=RiskLimits(max_order_quantity=D(1)))
    base = f"{daphne_url}/sessions/{session.id}"
    candles = 0
    gw = AsyncTradingGateway(base_url=base, api_key=trader_key, max_retries=0)
    async with gw, gw.stream() as events, httpx.AsyncClient(
        headers={"Authorization": f"Bearer {trader_key}"}
    ) as raw:
        async for event in events:
            if not isinstance(event, CandleEvent):
                continue
            candles += 1
            if candles != 5:
                continue
            with pytest.raises(OrderRejectedError) as blocked:
                await gw.submit_order(SYMBOL, "buy", "2")
            assert blocked.value.code == "ORDER_REJECTED"
            assert blocked.value.details == {"reject_code": "MAX_ORDER_QUANTITY",
                                             "limit": "1", "value": "2"}
            assert blocked.value.message == "MAX_ORDER_QUANTITY: quantity 2 is above the limit 1"
            resting = await gw.submit_order(SYMBOL, "buy", "1", order_type="limit",
                                            limit_price="1000")
            info = (await raw.get(f"{base}/v1/session")).json()
            assert info["risk_limits"]["max_order_quantity"] == "1"
            assert info["kill_switch"] == {"active": False, "scope": None, "reason": ""}
            await in_thread(lambda: kill_session(session=session, set_by=owner, reason="test",
                                                 now=timezone.now()))()
            with pytest.raises(OrderRejectedError) as killed:
                await gw.submit_order(SYMBOL, "buy", "1")
            assert killed.value.details["reject_code"] == "KILL_SWITCH"
            assert (await gw.get_order(resting.id)).status == OrderStatus.CANCELLED
            info = (await raw.get(f"{base}/v1/session")).json()
            assert info["kill_switch"] == {"active": True, "scope": "session", "reason": "test"}
    session = await in_thread(wait_for_state)(session, {"completed", "failed"})
    assert session.state == "completed"
    audits = await in_thread(lambda: sorted(SessionAudit.objects.filter(session=session)
                                            .values_list("kind", "reject_code")))()
    assert audits == [("kill_switch", "KILL_SWITCH"), ("order_blocked", "KILL_SWITCH"),
                      ("order_blocked", "MAX_ORDER_QUANTITY")]
