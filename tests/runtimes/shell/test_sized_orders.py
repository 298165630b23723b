"""Orders sized at the fill price (notional, equity_fraction) over the real Trading API, with the
unmodified tektii SDK: a plain SDK strategy still works beside them, the orders the SDK reads back
parse, and the fills have exactly the quantity the fill price gives."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from functools import partial
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from tektii import AsyncTradingGateway, BadRequestError, OrderStatus
from tektii.models import OrderHandle

from tests.runtimes.conftest import SYMBOL, wait_for_state
from tests.runtimes.shell.sdk_client import act_on_candles

in_thread = partial(sync_to_async, thread_sensitive=False)
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]
STEP = Decimal("0.00000001")  # the backtest's default quantity step


async def submit_sized_order(gateway: AsyncTradingGateway, **order: Any) -> OrderHandle:
    """The helper docs/trading-api.md shows: what the SDK's submit_order does (its `_post` and
    its model), with the extension's fields instead of quantity."""
    return OrderHandle.model_validate(await gateway._post("/v1/orders", json=order))


def floor_to_step(value: Decimal) -> Decimal:
    return (value / STEP).to_integral_value(rounding=ROUND_FLOOR) * STEP


async def act(gw: AsyncTradingGateway, candle: int, state: dict) -> None:
    """Candle 30: a plain SDK order and a notional order; 31: check them, send a fraction of
    equity; 32: check that one."""
    if candle == 30:
        state["plain"] = (await gw.submit_order(SYMBOL, "buy", "0.5")).id
        handle = await submit_sized_order(gw, symbol=SYMBOL, side="buy", order_type="market",
                                          notional="1000")
        order = await gw.get_order(handle.id)
        assert (order.quantity, order.remaining_quantity, order.status) == (
            "0", "0", OrderStatus.OPEN)
        state["notional"] = handle.id
        with pytest.raises(BadRequestError) as both:  # the SDK's own error, as submit_order's
            await submit_sized_order(gw, symbol=SYMBOL, side="buy", order_type="market",
                                     quantity="1", equity_fraction="1")
        assert (both.value.code, both.value.details) == (
            "INVALID_REQUEST", {"field": "equity_fraction"})
        return
    bar = (await gw.get_bars(SYMBOL, "1m", limit=1))[-1]
    if candle == 31:
        plain = await gw.get_order(state["plain"])
        assert (plain.status, plain.filled_quantity) == (OrderStatus.FILLED, "0.5")
        order = await gw.get_order(state["notional"])
        expected = floor_to_step(Decimal(1000) / Decimal(bar.open))
        assert (order.status, Decimal(order.filled_quantity), Decimal(order.quantity)) == (
            OrderStatus.FILLED, expected, expected)
        [trade] = await gw.list_trades(order_id=order.id)
        assert (Decimal(trade.quantity), trade.price) == (expected, bar.open)
        state["equity"] = Decimal((await gw.get_account()).equity)
        handle = await submit_sized_order(gw, symbol=SYMBOL, side="BUY", order_type="MARKET",
                                          equity_fraction="0.25")
        state["fraction"] = handle.id
        return
    order = await gw.get_order(state["fraction"])
    expected = floor_to_step(state["equity"] * Decimal("0.25") / Decimal(bar.open))
    assert (order.status, Decimal(order.filled_quantity)) == (OrderStatus.FILLED, expected)


async def test_sized_orders_fill_at_the_fill_price_beside_a_plain_sdk_strategy(
    daphne_url, start_backtest, trader_key
):
    session = await in_thread(start_backtest)()
    base = f"{daphne_url}/sessions/{session.id}"
    state: dict = {}
    gw = AsyncTradingGateway(base_url=base, api_key=trader_key, max_retries=0)
    await act_on_candles(gw, (30, 31, 32), lambda candle: act(gw, candle, state))
    session = await in_thread(wait_for_state)(session, {"completed", "failed"})
    assert session.state == "completed"
    assert len(state) == 4


async def test_two_sizes_at_once_is_the_protocols_error_envelope(
    daphne_url, start_backtest, trader_key
):
    session = await in_thread(start_backtest)()
    base = f"{daphne_url}/sessions/{session.id}"
    body = {"symbol": SYMBOL, "side": "buy", "order_type": "market", "quantity": "1",
            "notional": "100"}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {trader_key}"}) as client:
        both = await client.post(f"{base}/v1/orders", json=body)
        body.pop("quantity")
        body["notional"] = "-1"
        negative = await client.post(f"{base}/v1/orders", json=body)
    assert (both.status_code, both.json()) == (400, {
        "code": "INVALID_REQUEST",
        "message": "give exactly one of quantity, notional and equity_fraction",
        "details": {"field": "notional"},
    })
    assert (negative.status_code, negative.json()["details"]) == (
        400, {"field": "notional", "provided": "-1"})
