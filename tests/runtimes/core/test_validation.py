"""Order request validation follows the reference's table 4.2 with its error codes and fields."""

from __future__ import annotations

from decimal import Decimal

import pytest

from runtimes.core.domain import OrderRequest, OrderType, Side, TrailingType
from runtimes.core.errors import OrderValidationError
from runtimes.core.validation import validate_order_request

D = Decimal


def request(order_type: OrderType, **fields: object) -> OrderRequest:
    return OrderRequest(
        symbol="AAPL", side=Side.BUY, quantity=D(1), order_type=order_type, **fields
    )  # type: ignore[arg-type]


def error_of(req: OrderRequest) -> OrderValidationError:
    with pytest.raises(OrderValidationError) as caught:
        validate_order_request(req)
    return caught.value


VALID = [
    request(OrderType.MARKET),
    request(OrderType.LIMIT, limit_price=D("185.5")),
    request(OrderType.STOP, stop_price=D(180)),
    request(OrderType.STOP_LIMIT, stop_price=D(180), limit_price=D(181)),
    request(OrderType.TRAILING_STOP, trailing_distance=D(2), trailing_type=TrailingType.ABSOLUTE),
    request(
        OrderType.TRAILING_STOP, trailing_distance=D("99.9"), trailing_type=TrailingType.PERCENT
    ),
    request(OrderType.MARKET, stop_loss=D(170), take_profit=D(200), leverage=D(2)),
    request(OrderType.LIMIT, limit_price=D(1), display_quantity=D("0.5")),
]


@pytest.mark.parametrize("req", VALID, ids=lambda r: r.order_type.value)
def test_valid_requests_pass(req: OrderRequest) -> None:
    validate_order_request(req)


@pytest.mark.parametrize(
    ("order_type", "fields", "missing"),
    [
        (OrderType.LIMIT, {}, "limit_price"),
        (OrderType.STOP, {}, "stop_price"),
        (OrderType.STOP_LIMIT, {"limit_price": D(1)}, "stop_price"),
        (OrderType.STOP_LIMIT, {"stop_price": D(1)}, "limit_price"),
        (OrderType.TRAILING_STOP, {"trailing_type": TrailingType.PERCENT}, "trailing_distance"),
        (OrderType.TRAILING_STOP, {"trailing_distance": D(1)}, "trailing_type"),
    ],
)
def test_a_missing_required_price_is_invalid_request_with_the_field(order_type, fields, missing):
    error = error_of(request(order_type, **fields))
    assert (error.code, error.status, error.details) == ("INVALID_REQUEST", 400, {"field": missing})


@pytest.mark.parametrize(
    ("order_type", "fields", "forbidden", "provided"),
    [
        (OrderType.MARKET, {"limit_price": D("10.50")}, "limit_price", "10.5"),
        (OrderType.MARKET, {"stop_price": D(10)}, "stop_price", "10"),
        (OrderType.MARKET, {"trailing_distance": D(1)}, "trailing_distance", "1"),
        (OrderType.LIMIT, {"limit_price": D(1), "stop_price": D(2)}, "stop_price", "2"),
        (OrderType.STOP, {"stop_price": D(1), "limit_price": D(2)}, "limit_price", "2"),
        (
            OrderType.STOP_LIMIT,
            {"stop_price": D(1), "limit_price": D(1), "trailing_distance": D(3)},
            "trailing_distance",
            "3",
        ),
        (
            OrderType.TRAILING_STOP,
            {"trailing_distance": D(1), "trailing_type": TrailingType.ABSOLUTE, "stop_price": D(4)},
            "stop_price",
            "4",
        ),
    ],
)
def test_a_forbidden_price_is_invalid_value_with_field_and_provided(
    order_type, fields, forbidden, provided
):
    error = error_of(request(order_type, **fields))
    assert (error.code, error.details) == (
        "INVALID_VALUE",
        {"field": forbidden, "provided": provided},
    )


@pytest.mark.parametrize(
    ("fields", "field", "provided"),
    [
        ({"quantity": D(0)}, "quantity", "0"),
        ({"quantity": D("-1.5")}, "quantity", "-1.5"),
        ({"limit_price": D(0)}, "limit_price", "0"),
        ({"stop_loss": D(-1)}, "stop_loss", "-1"),
        ({"take_profit": D(0)}, "take_profit", "0"),
        ({"leverage": D(0)}, "leverage", "0"),
        ({"display_quantity": D(0)}, "display_quantity", "0"),
        ({"display_quantity": D(5)}, "display_quantity", "5"),
        ({"quantity": D("NaN")}, "quantity", "NaN"),
    ],
)
def test_non_positive_or_out_of_range_values_are_invalid_value(fields, field, provided):
    base = {"symbol": "AAPL", "side": Side.BUY, "quantity": D(2), "order_type": OrderType.LIMIT}
    base["limit_price"] = D(1)
    error = error_of(OrderRequest(**{**base, **fields}))
    assert (error.code, error.details) == ("INVALID_VALUE", {"field": field, "provided": provided})


def test_percent_trailing_distance_must_be_below_one_hundred():
    error = error_of(
        request(
            OrderType.TRAILING_STOP, trailing_distance=D(100), trailing_type=TrailingType.PERCENT
        )
    )
    assert error.details == {"field": "trailing_distance", "provided": "100"}


def test_symbol_and_ids_have_length_limits():
    assert error_of(OrderRequest(symbol="", side=Side.BUY, quantity=D(1))).code == "INVALID_REQUEST"
    long_symbol = OrderRequest(symbol="X" * 21, side=Side.BUY, quantity=D(1))
    assert error_of(long_symbol).details["field"] == "symbol"
    long_id = OrderRequest(symbol="AAPL", side=Side.BUY, quantity=D(1), client_order_id="c" * 65)
    assert error_of(long_id).details["field"] == "client_order_id"


def test_an_unknown_time_in_force_is_invalid_value():
    bad = OrderRequest(symbol="AAPL", side=Side.BUY, quantity=D(1), time_in_force="GTD")  # type: ignore[arg-type]
    assert error_of(bad).details == {"field": "time_in_force", "provided": "GTD"}


def test_errors_are_permanent_and_render_as_the_envelope():
    error = error_of(request(OrderType.LIMIT))
    assert error.permanent
    assert error.as_dict() == {
        "code": "INVALID_REQUEST",
        "message": "limit_price is required",
        "details": {"field": "limit_price"},
    }
