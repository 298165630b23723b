"""Order requests to Binance's parameters, as pure functions (orders.py): types by side and
market, trailing stops in basis points, and what is refused before sending."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from runtimes.core.domain import OrderRequest, OrderType, Side, TrailingType
from runtimes.core.errors import OrderRejected, OrderValidationError, UnsupportedOperation
from runtimes.providers.binance import filters as f
from runtimes.providers.binance.orders import order_params
from tests.runtimes.providers.binance.test_filters import BTCUSDT

RULES = f.symbol_rules(BTCUSDT)
MARKET = D(40000)


def params(request: OrderRequest, rules: f.SymbolRules = RULES) -> dict[str, object]:
    return order_params(request, rules, client_id="ptyabcdef12-g1", market=MARKET,
                        open_orders=0)


def trailing(distance: str, kind: TrailingType = TrailingType.PERCENT) -> OrderRequest:
    return OrderRequest(symbol="BTCUSDT", side=Side.SELL, quantity=D("0.5"),
                        order_type=OrderType.TRAILING_STOP, trailing_distance=D(distance),
                        trailing_type=kind)


def test_a_percent_trailing_stop_is_a_stop_loss_with_a_trailing_delta_in_bips() -> None:
    assert params(trailing("2.5")) == {
        "symbol": "BTCUSDT", "side": "SELL", "quantity": "0.50000", "type": "STOP_LOSS",
        "trailingDelta": "250", "newClientOrderId": "ptyabcdef12-g1",
        "newOrderRespType": "FULL"}


def test_trailing_stops_binance_cannot_take_are_refused() -> None:
    with pytest.raises(OrderValidationError) as absolute:
        params(trailing("100", TrailingType.ABSOLUTE))
    assert absolute.value.details["field"] == "trailing_type"
    with pytest.raises(OrderValidationError) as wide:
        params(trailing("25"))
    assert wide.value.details["field"] == "trailing_distance"
    no_trailing = replace(RULES, trailing_allowed=False)
    with pytest.raises(UnsupportedOperation):
        params(trailing("2.5"), no_trailing)


@pytest.mark.parametrize(("side", "stop", "expected"), [
    (Side.SELL, "35000", "STOP_LOSS_LIMIT"),
    (Side.SELL, "45000", "TAKE_PROFIT_LIMIT"),
    (Side.BUY, "45000", "STOP_LOSS_LIMIT"),
    (Side.BUY, "35000", "TAKE_PROFIT_LIMIT"),
])
def test_stop_limits_are_stop_loss_or_take_profit_by_side_and_market(
        side: Side, stop: str, expected: str) -> None:
    sent = params(OrderRequest(symbol="BTCUSDT", side=side, quantity=D(1),
                               order_type=OrderType.STOP_LIMIT, stop_price=D(stop),
                               limit_price=D(stop)))
    assert (sent["type"], sent["timeInForce"]) == (expected, "GTC")


def test_a_market_stop_the_symbol_does_not_offer_is_refused_naming_its_types() -> None:
    limited = replace(RULES, order_types=frozenset({"LIMIT", "MARKET", "STOP_LOSS_LIMIT"}))
    with pytest.raises(OrderValidationError) as caught:
        params(OrderRequest(symbol="BTCUSDT", side=Side.SELL, quantity=D(1),
                            order_type=OrderType.STOP, stop_price=D(35000)), limited)
    assert caught.value.details["field"] == "order_type"
    assert "LIMIT, MARKET, STOP_LOSS_LIMIT" in str(caught.value)


def test_a_symbol_not_trading_is_refused() -> None:
    halted = replace(RULES, status="HALT")
    with pytest.raises(OrderRejected) as caught:
        params(OrderRequest(symbol="BTCUSDT", side=Side.BUY, quantity=D(1)), halted)
    assert caught.value.reject_code == "SYMBOL_NOT_TRADEABLE"
