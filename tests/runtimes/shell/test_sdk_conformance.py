"""Every REST call of the unmodified tektii SDK against a running backtest session, and the
error classes it maps our envelopes to."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import httpx
import pytest
from asgiref.sync import sync_to_async
from tektii import (
    AsyncTradingGateway,
    AuthenticationError,
    BadRequestError,
    CandleEvent,
    ConflictError,
    NotFoundError,
    OrderStatus,
)

from tests.runtimes.conftest import SYMBOL, wait_for_state

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
    candles = 0
    gw = AsyncTradingGateway(base_url=base, api_key=trader_key, max_retries=0)
    async with gw, gw.stream() as events:
        async for event in events:
            if isinstance(event, CandleEvent):
                candles += 1
                if candles in (30, 31):
                    await check_every_call(gw, base, trader_key, candles, state)
    session = await in_thread(wait_for_state)(session, {"completed", "failed"})
    assert session.state == "completed"
    result = await in_thread(lambda: session.result)()
    assert [o["status"] for o in result.orders] == ["FILLED", "CANCELLED", "FILLED"]
