"""What Alpaca refuses that is cheap to see before sending, and Alpaca's 4xx answers turned into
the protocol's errors (with Alpaca's reason in the message and in details.broker_message)."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from runtimes.core.domain import OrderRequest, OrderType, RejectReason, TimeInForce
from runtimes.core.errors import (
    OrderNotFound,
    OrderNotModifiable,
    OrderRejected,
    OrderValidationError,
    PositionNotFound,
    TradingError,
)
from runtimes.core.validation import validate_order_request
from runtimes.providers.alpaca.rest import AlpacaError

FRACTIONAL_TYPES: Final = (OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT)
UNSUPPORTED_FLAGS: Final = ("reduce_only", "post_only", "hidden")
CENT: Final = Decimal("0.01")


def check_request(request: OrderRequest) -> None:
    """The protocol's validation, then what Alpaca does not take. Raises OrderValidationError."""
    validate_order_request(request)
    for name in UNSUPPORTED_FLAGS:
        if getattr(request, name):
            raise OrderValidationError.invalid(name, True, "is not supported on Alpaca")
    for name in ("display_quantity", "leverage", "margin_mode"):
        value = getattr(request, name)
        if value is not None:
            raise OrderValidationError.invalid(name, value, "is not supported on Alpaca")
    if request.position_id is not None and request.position_id != request.symbol:
        raise OrderValidationError.invalid("position_id", request.position_id,
                                           "must be the symbol (Alpaca nets per symbol)")
    if request.sized_at_fill:
        _check_sized(request)
    elif request.quantity != request.quantity.to_integral_value():
        _check_fractional(request)
    if (request.stop_loss is not None or request.take_profit is not None) and (
        request.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC)
    ):
        raise OrderValidationError.invalid("time_in_force", request.time_in_force.value,
                                           "must be DAY or GTC on an Alpaca bracket order")


OCO_TYPES: Final = (OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT)


def check_oco_leg(request: OrderRequest) -> None:
    """An order of an OCO group: a take-profit LIMIT or a stop-loss STOP/STOP_LIMIT exit, whole
    quantity, DAY or GTC, no bracket of its own (Alpaca's `oco` order class)."""
    reason = None
    if request.order_type not in OCO_TYPES:
        reason = "must be on a LIMIT, STOP or STOP_LIMIT order on Alpaca"
    elif request.stop_loss is not None or request.take_profit is not None:
        reason = "cannot be combined with stop_loss/take_profit on Alpaca"
    elif request.quantity != request.quantity.to_integral_value():
        reason = "needs a whole quantity on Alpaca"
    elif request.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC):
        reason = "needs DAY or GTC on Alpaca"
    if reason is not None:
        raise OrderValidationError.invalid("oco_group_id", request.oco_group_id, reason)


def check_oco_pair(first: OrderRequest, second: OrderRequest) -> None:
    """The two orders of a group: one LIMIT and one STOP/STOP_LIMIT, same symbol, side,
    quantity and time in force."""
    kinds = {first.order_type, second.order_type}
    same = (first.symbol, first.side, first.quantity, first.time_in_force) == (
        second.symbol, second.side, second.quantity, second.time_in_force)
    if not same or OrderType.LIMIT not in kinds or len(kinds) != 2:
        raise OrderValidationError.invalid(
            "oco_group_id", second.oco_group_id,
            "must pair one LIMIT and one STOP or STOP_LIMIT order of the same symbol, side, "
            "quantity and time in force on Alpaca")


def _check_sized(request: OrderRequest) -> None:
    """Alpaca takes a `notional` (and so an equity fraction, turned into one) on simple DAY
    market orders only."""
    field = "notional" if request.notional is not None else "equity_fraction"
    value = request.notional if request.notional is not None else request.equity_fraction
    if request.order_type is not OrderType.MARKET:
        raise OrderValidationError.invalid(field, value, "needs a MARKET order on Alpaca")
    if request.notional is not None and request.notional < CENT:
        raise OrderValidationError.invalid(field, value, "must be at least 0.01 on Alpaca")
    if request.time_in_force is not TimeInForce.DAY:
        raise OrderValidationError.invalid("time_in_force", request.time_in_force.value,
                                           f"must be DAY for an order by {field} on Alpaca")
    if request.stop_loss is not None or request.take_profit is not None or \
            request.oco_group_id is not None:
        raise OrderValidationError.invalid(field, value,
                                           "cannot have exit legs or an OCO group on Alpaca")


def _check_fractional(request: OrderRequest) -> None:
    """Alpaca: fractional quantities only on day orders, not trailing stops nor brackets."""
    if request.time_in_force is not TimeInForce.DAY:
        raise OrderValidationError.invalid("time_in_force", request.time_in_force.value,
                                           "must be DAY for a fractional quantity on Alpaca")
    if request.order_type not in FRACTIONAL_TYPES:
        raise OrderValidationError.invalid("quantity", request.quantity,
                                           "must be whole for a trailing stop on Alpaca")
    if request.stop_loss is not None or request.take_profit is not None:
        raise OrderValidationError.invalid("quantity", request.quantity,
                                           "must be whole for a bracket order on Alpaca")


def submit_error(error: AlpacaError) -> TradingError:
    """An order Alpaca refused: 403 (buying power, shorting) and 422 (quantity, price, time in
    force) are rejections carrying Alpaca's message."""
    details = {"broker_message": error.message, "broker_code": error.code}
    text = error.message.lower()
    if error.status == 403:
        code = "INSUFFICIENT_BALANCE" if "buying power" in text or "insufficient" in text \
            else "UNKNOWN"
        return OrderRejected(f"Alpaca rejected the order: {error.message}", reject_code=code,
                             details=details)
    if error.status == 422:
        return OrderRejected(f"Alpaca rejected the order: {error.message}",
                             reject_code=_reject_code(text), details=details)
    return OrderValidationError(f"Alpaca refused the order: {error.message}", details=details)


def _reject_code(text: str) -> str:
    if "qty" in text or "quantity" in text or "fraction" in text:
        return "INVALID_QUANTITY"
    if "price" in text or "sub-penny" in text:
        return "INVALID_PRICE"
    if "not tradable" in text or "not tradeable" in text or "asset" in text:
        return "SYMBOL_NOT_TRADEABLE"
    if "buying power" in text or "insufficient" in text:
        return "INSUFFICIENT_BALANCE"
    return "INVALID_VALUE"


def reject_reason(text: str | None) -> RejectReason:
    """The protocol's reject reason of a `rejected` trade update's reason text."""
    if not text:
        return RejectReason.UNKNOWN
    lowered = text.lower()
    if "market" in lowered and "closed" in lowered:
        return RejectReason.MARKET_CLOSED
    code = _reject_code(lowered)
    return RejectReason(code) if code in RejectReason.__members__ else RejectReason.UNKNOWN


def order_error(error: AlpacaError, order_id: str) -> TradingError:
    """A read, replace or cancel of one order that Alpaca refused."""
    if error.status in (400, 404) or (error.status == 422 and "uuid" in error.message.lower()):
        return OrderNotFound(order_id)
    if error.status == 422:
        return OrderNotModifiable(order_id, f"Alpaca: {error.message}")
    return OrderValidationError(f"Alpaca refused: {error.message}",
                                details={"broker_message": error.message})


def position_error(error: AlpacaError, symbol: str) -> TradingError:
    if error.status == 404:
        return PositionNotFound(symbol)
    return OrderRejected(f"Alpaca refused to close the position: {error.message}",
                         reject_code=_reject_code(error.message.lower()),
                         details={"broker_message": error.message})
