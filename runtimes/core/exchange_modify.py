"""Validation of order modifications: which fields an open order may change, and to what.

Raises the same protocol errors as order submission (INVALID_VALUE with field and provided).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any, Final

from runtimes.core.domain import Order, OrderType, TrailingType
from runtimes.core.errors import OrderValidationError
from runtimes.core.exchange_matching import Working, trail_level

HUNDRED: Final = Decimal(100)
MODIFIABLE: Final = frozenset(
    {"quantity", "limit_price", "stop_price", "stop_loss", "take_profit", "trailing_distance"}
)
_ALLOWED_TYPES: Final = {
    "limit_price": frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT}),
    "stop_price": frozenset({OrderType.STOP, OrderType.STOP_LIMIT}),
    "trailing_distance": frozenset({OrderType.TRAILING_STOP}),
}


def apply_modification(
    order: Order, working: Working, changes: dict[str, Decimal | None]
) -> dict[str, Any]:
    """The field updates for `order`; None values mean "leave as is". Raises
    OrderValidationError for unknown fields, non-positive values or fields the type lacks."""
    updates: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in MODIFIABLE:
            raise OrderValidationError.invalid(name, value, "cannot be modified")
        if value is None:
            continue
        _check(order, name, value)
        updates[name] = value
    if "trailing_distance" in updates and working.extreme is not None:
        moved = replace_distance(order, updates["trailing_distance"])
        updates["stop_price"] = trail_level(moved, working.extreme)
    return updates


def replace_distance(order: Order, distance: Decimal) -> Order:
    return replace(order, trailing_distance=distance)


def _check(order: Order, name: str, value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise OrderValidationError.invalid(name, value, "must be a positive decimal")
    allowed = _ALLOWED_TYPES.get(name)
    if allowed is not None and order.order_type not in allowed:
        raise OrderValidationError.invalid(
            name, value, f"is not allowed on a {order.order_type} order"
        )
    if name == "quantity" and order.awaits_sizing:
        raise OrderValidationError.invalid(
            name, value, "of an order sized at fill is set by its fill; cancel and resubmit"
        )
    if name == "quantity" and value <= order.filled_quantity:
        raise OrderValidationError.invalid(name, value, "must exceed the filled quantity")
    percent = order.trailing_type is TrailingType.PERCENT
    if name == "trailing_distance" and percent and value >= HUNDRED:
        raise OrderValidationError.invalid(name, value, "must be below 100 for PERCENT")
