"""Trading API JSON (protocol A) to domain objects: request bodies, query parameters, client frames.

Lenient where the protocol is (enums in any case, decimals as strings or numbers, "1E-7" too,
unknown fields ignored) and strict elsewhere, raising the core's errors with the protocol's codes:
INVALID_REQUEST with `details.field` for missing, malformed or wrongly typed fields; INVALID_VALUE
with `details.field` and `details.provided` for bad values; INVALID_MESSAGE for bad client frames.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, TypeVar

from runtimes.core.decimals import parse_decimal
from runtimes.core.domain import (
    MarginMode,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TrailingType,
)
from runtimes.core.errors import OrderValidationError, TradingError
from runtimes.core.session import sequence_of
from runtimes.core.validation import (
    PRICE_RULES,
    SIZE_FIELDS,
    exclusive_sizes_error,
    validate_order_request,
)

E = TypeVar("E", bound=StrEnum)

MAX_LIMIT: Final = 4_294_967_295  # the gateway's u32
MODIFIABLE_DECIMALS: Final = (
    "quantity",
    "limit_price",
    "stop_price",
    "stop_loss",
    "take_profit",
    "trailing_distance",
)
CLOSE_ORDER_TYPES: Final = frozenset({OrderType.MARKET, OrderType.LIMIT})
# A client frame longer than this is refused unread (the server's own frames stay under 256 KiB).
MAX_CLIENT_FRAME_LENGTH: Final = 256 * 1024


class InvalidMessage(TradingError):
    """A client WebSocket frame the server cannot use; the shell answers with an `error` frame
    of this code and keeps the connection up."""

    code = "INVALID_MESSAGE"
    status = 400
    permanent = True


@dataclass(frozen=True, slots=True)
class ModifyOrderRequest:
    """A PATCH /v1/orders/{id} body: the new values, None meaning "leave as is"."""

    quantity: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_distance: Decimal | None = None

    def changes(self) -> dict[str, Decimal]:
        """The fields given, as keyword arguments for `BacktestEngine.modify_order`."""
        given = {name: getattr(self, name) for name in MODIFIABLE_DECIMALS}
        return {name: value for name, value in given.items() if value is not None}


@dataclass(frozen=True, slots=True)
class ClosePositionRequest:
    """A DELETE /v1/positions/{id} body. The defaults close everything at market."""

    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    quantity: Decimal | None = None


@dataclass(frozen=True, slots=True)
class EventAck:
    """A client `event_ack`: the event ids it has processed; `timestamp` is Unix milliseconds."""

    correlation_id: str
    events_processed: tuple[str, ...]
    timestamp: int


@dataclass(frozen=True, slots=True)
class Pong:
    """A client `pong` (the answer to an application-level ping); carries nothing."""


ClientMessage = EventAck | Pong


# -- request bodies -----------------------------------------------------------------------------


def parse_order_request(body: object) -> OrderRequest:
    """POST /v1/orders body -> a validated OrderRequest. Raises OrderValidationError
    (INVALID_REQUEST or INVALID_VALUE), including the cross-field rules of `validation.py`.

    The size is exactly one of `quantity`, `notional` and `equity_fraction` (INVALID_REQUEST
    naming the field when none or several are given)."""
    fields = _require_object(body)
    symbol = _required_str(fields, "symbol")
    if not symbol:
        raise OrderValidationError.invalid("symbol", symbol, "must have 1 to 20 characters")
    sizes = [name for name in SIZE_FIELDS if fields.get(name) is not None]
    if len(sizes) > 1:
        raise exclusive_sizes_error(sizes[1])
    request = OrderRequest(
        symbol=symbol,
        side=_required_enum(fields, "side", Side),
        quantity=_order_quantity(fields, sizes),
        notional=_optional_decimal(fields, "notional"),
        equity_fraction=_optional_decimal(fields, "equity_fraction"),
        order_type=_required_enum(fields, "order_type", OrderType),
        time_in_force=_optional_enum(fields, "time_in_force", TimeInForce) or TimeInForce.GTC,
        trailing_type=_optional_enum(fields, "trailing_type", TrailingType),
        margin_mode=_optional_enum(fields, "margin_mode", MarginMode),
        position_id=_optional_str(fields, "position_id"),
        client_order_id=_optional_str(fields, "client_order_id"),
        oco_group_id=_optional_str(fields, "oco_group_id"),
        reduce_only=_optional_bool(fields, "reduce_only"),
        post_only=_optional_bool(fields, "post_only"),
        hidden=_optional_bool(fields, "hidden"),
        limit_price=_optional_decimal(fields, "limit_price"),
        stop_price=_optional_decimal(fields, "stop_price"),
        trailing_distance=_optional_decimal(fields, "trailing_distance"),
        stop_loss=_optional_decimal(fields, "stop_loss"),
        take_profit=_optional_decimal(fields, "take_profit"),
        display_quantity=_optional_decimal(fields, "display_quantity"),
        leverage=_optional_decimal(fields, "leverage"),
    )
    validate_order_request(request)
    return request


def _order_quantity(fields: Mapping[str, Any], sizes: list[str]) -> Decimal:
    """The quantity given, or zero for an order sized at the fill (notional, equity_fraction)."""
    if sizes and sizes[0] != "quantity":
        return Decimal(0)
    return _required_decimal(fields, "quantity")


def parse_modify_request(body: object) -> ModifyOrderRequest:
    """PATCH /v1/orders/{id} body -> ModifyOrderRequest. Every field is optional but each given
    one must be a positive decimal; whether the order's type allows it is the exchange's call.
    An empty body is INVALID_REQUEST: a modify that changes nothing is a client bug."""
    fields = _require_object(body)
    values = {name: _optional_decimal(fields, name) for name in MODIFIABLE_DECIMALS}
    for name, value in values.items():
        _check_positive(name, value)
    request = ModifyOrderRequest(**values)
    if not request.changes():
        raise OrderValidationError(
            "give at least one of: " + ", ".join(MODIFIABLE_DECIMALS), code="INVALID_REQUEST"
        )
    return request


def parse_close_position_request(body: object) -> ClosePositionRequest:
    """DELETE /v1/positions/{id} body -> ClosePositionRequest. None, "" and {} close everything
    at market. Only MARKET and LIMIT can close; the price rules are those of `validation.py`."""
    if body is None or body == "":
        return ClosePositionRequest()
    fields = _require_object(body)
    order_type = _optional_enum(fields, "order_type", OrderType) or OrderType.MARKET
    if order_type not in CLOSE_ORDER_TYPES:
        raise OrderValidationError.invalid(
            "order_type", fields["order_type"], "must be MARKET or LIMIT to close a position"
        )
    limit_price = _optional_decimal(fields, "limit_price")
    quantity = _optional_decimal(fields, "quantity")
    _check_close_prices(order_type, limit_price)
    _check_positive("quantity", quantity)
    return ClosePositionRequest(order_type=order_type, limit_price=limit_price, quantity=quantity)


def _check_close_prices(order_type: OrderType, limit_price: Decimal | None) -> None:
    required, forbidden = PRICE_RULES[order_type]
    if "limit_price" in forbidden and limit_price is not None:
        raise OrderValidationError.invalid(
            "limit_price", limit_price, f"is not allowed on a {order_type} order"
        )
    if "limit_price" in required and limit_price is None:
        raise OrderValidationError.missing("limit_price")
    _check_positive("limit_price", limit_price)


# -- query parameters and headers ---------------------------------------------------------------


def parse_datetime_param(name: str, value: str | None) -> datetime | None:
    """A tz-aware ISO 8601 query value -> UTC datetime (None when absent). Raises
    OrderValidationError INVALID_VALUE {field: name, provided} when unparsable or naive."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise OrderValidationError.invalid(name, value, "is not an ISO 8601 datetime") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise OrderValidationError.invalid(name, value, "needs a timezone (Z or an offset)")
    return moment.astimezone(UTC)


def parse_status_filter(value: str | Sequence[str] | None) -> tuple[OrderStatus, ...] | None:
    """`status` filter -> statuses in the order given, without repeats (None when absent).

    Takes a comma list or the values of a repeated parameter; any case (the gateway wants
    UPPER_CASE; we are lenient). Raises INVALID_VALUE {field: "status", provided: item}.
    """
    if value is None:
        return None
    joined = value if isinstance(value, str) else ",".join(value)
    if not joined.strip():
        return None
    statuses: dict[OrderStatus, None] = {}
    for item in joined.split(","):
        statuses[_enum_member("status", item.strip(), OrderStatus)] = None
    return tuple(statuses)


def parse_limit(value: str | None, *, name: str = "limit") -> int | None:
    """`limit` -> a non-negative int up to 2**32 - 1 (None when absent). Raises INVALID_VALUE."""
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise OrderValidationError.invalid(name, value, "must be a non-negative integer")
    number = int(text)
    if number > MAX_LIMIT:
        raise OrderValidationError.invalid(name, value, f"must be at most {MAX_LIMIT}")
    return number


def parse_last_event_id(value: str | None) -> str | None:
    """A resume cursor (`Last-Event-ID` header or `last_event_id` query) -> "evt-N" or None.
    Raises INVALID_VALUE {field: "last_event_id", provided} for anything else."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        sequence_of(text)
    except ValueError:
        raise OrderValidationError.invalid(
            "last_event_id", value, "must look like evt-<number>"
        ) from None
    return text


# -- client WebSocket frames --------------------------------------------------------------------


def parse_client_message(frame: object) -> ClientMessage:
    """One client text frame (raw text or decoded JSON) -> EventAck or Pong.
    Raises InvalidMessage for anything else."""
    data = _decode_frame(frame)
    if data.get("type") == "pong":
        return Pong()
    return _event_ack_of(data)


def parse_event_ack(frame: object) -> EventAck:
    """`{"type":"event_ack","correlation_id":str,"events_processed":[str...],"timestamp":int}`
    (raw text or decoded JSON) -> EventAck. All four fields are required, as the gateway's
    parser requires them. Raises InvalidMessage with `details.field` when known."""
    return _event_ack_of(_decode_frame(frame))


def _decode_frame(frame: object) -> dict[str, Any]:
    if isinstance(frame, str | bytes | bytearray):
        if len(frame) > MAX_CLIENT_FRAME_LENGTH:
            raise InvalidMessage(
                f"message is longer than {MAX_CLIENT_FRAME_LENGTH} characters",
                details={"limit": MAX_CLIENT_FRAME_LENGTH},
            )
        try:
            frame = json.loads(frame)
        except (ValueError, UnicodeDecodeError):
            raise InvalidMessage("message is not valid JSON") from None
        except RecursionError:  # nesting: a message needs 2 levels, json stops near 1,000
            raise InvalidMessage("message is nested too deeply") from None
    if not isinstance(frame, dict):
        raise InvalidMessage("message must be a JSON object")
    return frame


def _event_ack_of(data: Mapping[str, Any]) -> EventAck:
    if data.get("type") != "event_ack":
        raise InvalidMessage(
            "unknown message type; expected event_ack or pong", details={"field": "type"}
        )
    correlation_id = data.get("correlation_id")
    if not isinstance(correlation_id, str):
        raise _bad_ack_field("correlation_id", "must be a string")
    ids = data.get("events_processed")
    if not isinstance(ids, list) or not all(isinstance(item, str) for item in ids):
        raise _bad_ack_field("events_processed", "must be a list of event id strings")
    timestamp = data.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise _bad_ack_field("timestamp", "must be an integer of Unix milliseconds")
    return EventAck(correlation_id, tuple(ids), timestamp)


def _bad_ack_field(field: str, reason: str) -> InvalidMessage:
    return InvalidMessage(f"event_ack {field} {reason}", details={"field": field})


# -- fields -------------------------------------------------------------------------------------


def _require_object(body: object) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise OrderValidationError("request body must be a JSON object", code="INVALID_REQUEST")
    return body


def _malformed(field: str, reason: str) -> OrderValidationError:
    return OrderValidationError(
        f"{field} {reason}", code="INVALID_REQUEST", details={"field": field}
    )


def _required_str(fields: Mapping[str, Any], name: str) -> str:
    value = _optional_str(fields, name)
    if value is None:
        raise OrderValidationError.missing(name)
    return value


def _optional_str(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, str):
        raise _malformed(name, "must be a string")
    return value


def _optional_bool(fields: Mapping[str, Any], name: str) -> bool:
    """A boolean flag; absent or null means false (the protocol's default)."""
    value = fields.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _malformed(name, "must be true or false")
    return value


def _required_enum(fields: Mapping[str, Any], name: str, enum: type[E]) -> E:
    value = _optional_enum(fields, name, enum)
    if value is None:
        raise OrderValidationError.missing(name)
    return value


def _optional_enum(fields: Mapping[str, Any], name: str, enum: type[E]) -> E | None:
    value = _optional_str(fields, name)
    return None if value is None else _enum_member(name, value, enum)


def _enum_member(name: str, value: str, enum: type[E]) -> E:
    """Any case in: the SDK sends what the user typed ("buy", "stop_limit")."""
    try:
        return enum(value.upper())
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise OrderValidationError.invalid(name, value, f"must be one of {allowed}") from None


def _required_decimal(fields: Mapping[str, Any], name: str) -> Decimal:
    value = _optional_decimal(fields, name)
    if value is None:
        raise OrderValidationError.missing(name)
    return value


def _optional_decimal(fields: Mapping[str, Any], name: str) -> Decimal | None:
    """A decimal from a JSON string or number, bounded and at the platform's precision: see
    `decimals.parse_decimal` (INVALID_REQUEST when malformed, INVALID_VALUE out of range)."""
    raw = fields.get(name)
    return None if raw is None else parse_decimal(raw, field=name)


def _check_positive(name: str, value: Decimal | None) -> None:
    if value is not None and value <= 0:
        raise OrderValidationError.invalid(name, value, "must be positive")
