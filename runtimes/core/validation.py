"""Order request validation: the cross-field table of the Trading API (reference 4.2).

Raises `OrderValidationError` with the protocol's codes, so the API layer only maps them:
a missing required field is INVALID_REQUEST with `details.field`; a forbidden, non-positive or
otherwise bad value is INVALID_VALUE with `details.field` and `details.provided`. An order's size
is exactly one of `quantity`, `notional` or `equity_fraction` (our extension, docs/trading-api.md).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from runtimes.core.domain import OrderRequest, OrderType, Side, TimeInForce, TrailingType
from runtimes.core.errors import OrderValidationError

MAX_SYMBOL_LENGTH: Final = 20
MAX_ID_LENGTH: Final = 64
HUNDRED: Final = Decimal(100)
# The ways to size an order; exactly one is given. The last two are sized at the fill price.
SIZE_FIELDS: Final = ("quantity", "notional", "equity_fraction")
# An absolute bound on equity_fraction; each platform then allows at most its leverage.
MAX_EQUITY_FRACTION: Final = Decimal(100)

# order type -> (prices it must carry, prices it must not carry); reference table 4.2.
PRICE_RULES: Final[dict[OrderType, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    OrderType.MARKET: ((), ("limit_price", "stop_price", "trailing_distance")),
    OrderType.LIMIT: (("limit_price",), ("stop_price", "trailing_distance")),
    OrderType.STOP: (("stop_price",), ("limit_price", "trailing_distance")),
    OrderType.STOP_LIMIT: (("stop_price", "limit_price"), ("trailing_distance",)),
    OrderType.TRAILING_STOP: (("trailing_distance",), ("limit_price", "stop_price")),
}


def validate_order_request(request: OrderRequest) -> None:
    """Check `request` against the protocol's rules; return None or raise OrderValidationError."""
    _check_identity(request)
    _check_size(request)
    _check_prices_for_type(request)
    if request.order_type is OrderType.TRAILING_STOP:
        _check_trailing(request)
    for name in ("stop_loss", "take_profit", "leverage"):
        _check_positive(name, getattr(request, name), required=False)
    _check_display_quantity(request)


def _check_identity(request: OrderRequest) -> None:
    if not request.symbol:
        raise OrderValidationError.missing("symbol")
    if len(request.symbol) > MAX_SYMBOL_LENGTH:
        raise OrderValidationError.invalid("symbol", request.symbol, "is longer than 20")
    if not isinstance(request.side, Side):
        raise OrderValidationError.invalid("side", request.side, "must be BUY or SELL")
    if not isinstance(request.order_type, OrderType):
        raise OrderValidationError.invalid("order_type", request.order_type, "is not known")
    if not isinstance(request.time_in_force, TimeInForce):
        raise OrderValidationError.invalid("time_in_force", request.time_in_force, "is not known")
    for name in ("client_order_id", "oco_group_id"):
        value = getattr(request, name)
        if value is not None and not 0 < len(value) <= MAX_ID_LENGTH:
            raise OrderValidationError.invalid(name, value, "must have 1 to 64 characters")


def _check_size(request: OrderRequest) -> None:
    """Exactly one size: a positive quantity, or a notional / equity fraction with quantity 0."""
    if not request.sized_at_fill:
        _check_positive("quantity", request.quantity, required=True)
        return
    given = [name for name in SIZE_FIELDS if getattr(request, name) not in (None, 0)]
    if len(given) > 1:
        raise exclusive_sizes_error(given[1])
    _check_positive("notional", request.notional, required=False)
    fraction = request.equity_fraction
    _check_positive("equity_fraction", fraction, required=False)
    if fraction is not None and fraction > MAX_EQUITY_FRACTION:
        raise OrderValidationError.invalid(
            "equity_fraction", fraction, f"must be at most {MAX_EQUITY_FRACTION}"
        )
    if request.display_quantity is not None:
        raise OrderValidationError.invalid(
            "display_quantity", request.display_quantity, f"is not allowed with {given[0]}"
        )


def exclusive_sizes_error(field: str) -> OrderValidationError:
    """INVALID_REQUEST naming `field`, the second size given where only one is allowed."""
    return OrderValidationError(
        "give exactly one of quantity, notional and equity_fraction",
        code="INVALID_REQUEST",
        details={"field": field},
    )


def _check_prices_for_type(request: OrderRequest) -> None:
    required, forbidden = PRICE_RULES[request.order_type]
    for name in forbidden:
        value = getattr(request, name)
        if value is not None:
            raise OrderValidationError.invalid(
                name, value, f"is not allowed on a {request.order_type} order"
            )
    for name in required:
        _check_positive(name, getattr(request, name), required=True)


def _check_trailing(request: OrderRequest) -> None:
    if request.trailing_type is None:
        raise OrderValidationError.missing("trailing_type")
    if not isinstance(request.trailing_type, TrailingType):
        raise OrderValidationError.invalid(
            "trailing_type", request.trailing_type, "must be ABSOLUTE or PERCENT"
        )
    distance = request.trailing_distance
    percent = request.trailing_type is TrailingType.PERCENT
    if percent and distance is not None and distance >= HUNDRED:
        raise OrderValidationError.invalid(
            "trailing_distance", distance, "must be below 100 for a PERCENT trailing stop"
        )


def _check_display_quantity(request: OrderRequest) -> None:
    shown = request.display_quantity
    if shown is None:
        return
    _check_positive("display_quantity", shown, required=False)
    if shown >= request.quantity:
        raise OrderValidationError.invalid(
            "display_quantity", shown, "must be smaller than quantity"
        )


def _check_positive(name: str, value: Decimal | None, *, required: bool) -> None:
    if value is None:
        if required:
            raise OrderValidationError.missing(name)
        return
    if not isinstance(value, Decimal) or not value.is_finite():
        raise OrderValidationError.invalid(name, value, "must be a finite decimal")
    if value <= 0:
        raise OrderValidationError.invalid(name, value, "must be positive")
