"""Domain types: enums, orders, the simulated clock and the error hierarchy."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from runtimes.core.domain import (
    Order,
    OrderStatus,
    OrderType,
    Side,
    SimulatedClock,
    TimeInForce,
)
from runtimes.core.errors import (
    OrderNotFound,
    OrderNotModifiable,
    OrderRejected,
    PositionNotFound,
    SymbolNotFound,
    TradingError,
    format_decimal,
)

T = datetime(2024, 1, 2, tzinfo=UTC)


def test_side_knows_its_sign_and_opposite():
    assert (Side.BUY.sign, Side.SELL.sign) == (1, -1)
    assert Side.BUY.opposite is Side.SELL


def test_terminal_statuses_are_the_four_of_the_reference():
    terminal = {s.value for s in OrderStatus if s.is_terminal}
    assert terminal == {"FILLED", "CANCELLED", "REJECTED", "EXPIRED"}


def test_order_remaining_quantity_and_openness():
    order = Order(
        id="ord-1",
        symbol="AAPL",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal(5),
        status=OrderStatus.PARTIALLY_FILLED,
        time_in_force=TimeInForce.GTC,
        created_at=T,
        updated_at=T,
        filled_quantity=Decimal(2),
    )
    assert order.remaining_quantity == Decimal(3)
    assert order.is_open


def test_simulated_clock_moves_only_forward_and_only_when_told():
    clock = SimulatedClock(T)
    assert clock.now() == T
    clock.set(1704153600 + 60)
    assert clock.now() == datetime(2024, 1, 2, 0, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(T)


def test_simulated_clock_refuses_naive_datetimes():
    with pytest.raises(ValueError, match="naive"):
        SimulatedClock(datetime(2024, 1, 2))


@pytest.mark.parametrize(
    ("error", "code", "status", "details"),
    [
        (OrderNotFound("ord-9"), "ORDER_NOT_FOUND", 404, {"resource": "order", "id": "ord-9"}),
        (PositionNotFound("p"), "POSITION_NOT_FOUND", 404, {"resource": "position", "id": "p"}),
        (SymbolNotFound("ZZZ"), "SYMBOL_NOT_FOUND", 404, {"symbol": "ZZZ"}),
        (OrderNotModifiable("ord-1"), "ORDER_NOT_MODIFIABLE", 409, {"order_id": "ord-1"}),
        (
            OrderRejected("no", reject_code="INSUFFICIENT_FUNDS"),
            "ORDER_REJECTED",
            422,
            {"reject_code": "INSUFFICIENT_FUNDS"},
        ),
    ],
)
def test_errors_carry_the_protocol_code_status_and_details(error, code, status, details):
    assert isinstance(error, TradingError)
    assert (error.code, error.status, error.details, error.permanent) == (
        code,
        status,
        details,
        True,
    )


def test_decimals_render_normalised():
    assert format_decimal(Decimal("1.00000000")) == "1"
    assert format_decimal(Decimal("185.50")) == "185.5"
    assert format_decimal(Decimal("1E-7")) == "0.0000001"
