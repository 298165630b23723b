"""Domain objects to Trading API JSON (protocol A): plain dicts ready for `json.dumps`.

Decimals go out as normalised strings, enums UPPER_CASE, datetimes RFC 3339 UTC with `Z`;
optional fields are omitted when absent. Event frames follow section 5.3 of the gateway reference.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from runtimes.core.bars import Bar
from runtimes.core.domain import Account, Fill, Order, Position, Quote
from runtimes.core.events import (
    AccountEvent,
    CandleEvent,
    ConnectionEvent,
    Event,
    OrderEvent,
    PositionEvent,
    QuoteEvent,
    RateLimitEvent,
    StalenessEvent,
    TradeEvent,
)

JsonDict = dict[str, Any]

# Engine-relayed accounts are always BALANCE_UPDATED (reference 5.3).
ACCOUNT_EVENT: Final = "BALANCE_UPDATED"
TRADE_EVENT: Final = "TRADE_FILLED"


# -- scalars ------------------------------------------------------------------------------------


def decimal_str(value: Decimal) -> str:
    """The normalised string of a finite decimal: "1", "185.5", "0.0000001", "100".

    Never exponent form, never trailing zeros, never "-0". Formats with "f" (exact: unlike
    `Decimal.normalize()` it never rounds to the context's 28 digits) and strips the zeros after
    the point; one candle has five of these, so it stays in C as far as it can. Raises ValueError
    for NaN or infinity, which have no wire form.
    """
    if not value.is_finite():
        raise ValueError(f"{value} has no wire form")
    if value.is_zero():
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def optional_decimal_str(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(value)


def timestamp_str(moment: datetime) -> str:
    """RFC 3339 UTC with `Z`: "2025-01-15T10:30:00Z", fractions only when present (".5" is
    written as milliseconds ".500", other fractions as microseconds). Raises ValueError if naive."""
    global _last_timestamp
    last = _last_timestamp  # one read: hosts on other threads replace the pair, never edit it
    if moment == last[0]:  # a candle names its time twice (equal instants: one UTC text)
        return last[1]
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} is naive; the wire needs tz-aware datetimes")
    text = _timestamp_text(moment)
    _last_timestamp = (moment, text)
    return text


def _timestamp_text(moment: datetime) -> str:
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    micros = utc.microsecond
    if micros == 0:
        return utc.isoformat(timespec="seconds") + "Z"
    if micros % 1000 == 0:
        return utc.isoformat(timespec="milliseconds") + "Z"
    return utc.isoformat(timespec="microseconds") + "Z"


_last_timestamp: tuple[datetime, str] = (datetime(1970, 1, 1, tzinfo=UTC), "1970-01-01T00:00:00Z")


def encode_frame(frame: JsonDict) -> str:
    """The text of one WebSocket frame: compact JSON, keys in insertion order.

    Deterministic for equal dicts built the same way, so two runs of a backtest give the same bytes.
    """
    return _FRAME_ENCODER.encode(frame)


# One encoder for every frame: json.dumps with options builds a new one per call.
_FRAME_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False,
                                         allow_nan=False)


def _compact(fields: JsonDict) -> JsonDict:
    """Drop the None values: the protocol omits absent optional fields rather than sending null."""
    return {key: value for key, value in fields.items() if value is not None}


# -- models -------------------------------------------------------------------------------------


def order_json(order: Order, *, correlation_id: str | None = None) -> JsonDict:
    """An `Order` model. `correlation_id` is the platform's, kept outside the domain order.
    `notional` / `equity_fraction` (our extension) only on orders sized at the fill; their
    `quantity` is "0" until the first fill sets it."""
    return _compact(
        {
            "id": order.id,
            "client_order_id": order.client_order_id,
            "symbol": order.symbol,
            "side": order.side.value,
            "order_type": order.order_type.value,
            "quantity": decimal_str(order.quantity),
            "filled_quantity": decimal_str(order.filled_quantity),
            "remaining_quantity": decimal_str(order.remaining_quantity),
            "limit_price": optional_decimal_str(order.limit_price),
            "stop_price": optional_decimal_str(order.stop_price),
            "stop_loss": optional_decimal_str(order.stop_loss),
            "take_profit": optional_decimal_str(order.take_profit),
            "trailing_distance": optional_decimal_str(order.trailing_distance),
            "trailing_type": _enum_value(order.trailing_type),
            "average_fill_price": optional_decimal_str(order.average_fill_price),
            "status": order.status.value,
            "reject_reason": _enum_value(order.reject_reason),
            "position_id": order.position_id,
            "parent_order_id": order.parent_order_id,
            "reduce_only": order.reduce_only,
            "post_only": order.post_only,
            "hidden": order.hidden,
            "display_quantity": optional_decimal_str(order.display_quantity),
            "notional": optional_decimal_str(order.notional),
            "equity_fraction": optional_decimal_str(order.equity_fraction),
            "oco_group_id": order.oco_group_id,
            "correlation_id": correlation_id,
            "time_in_force": order.time_in_force.value,
            "created_at": timestamp_str(order.created_at),
            "updated_at": timestamp_str(order.updated_at),
        }
    )


def order_handle_json(order: Order, *, correlation_id: str | None = None) -> JsonDict:
    """An `OrderHandle`: what submit and close-position answer."""
    return _compact(
        {
            "id": order.id,
            "client_order_id": order.client_order_id,
            "correlation_id": correlation_id,
            "status": order.status.value,
        }
    )


def fill_json(fill: Fill) -> JsonDict:
    """A wire `Trade` (one execution). No PnL by design: that lives on the position."""
    return {
        "id": fill.id,
        "order_id": fill.order_id,
        "symbol": fill.symbol,
        "side": fill.side.value,
        "quantity": decimal_str(fill.quantity),
        "price": decimal_str(fill.price),
        "commission": decimal_str(fill.commission),
        "commission_currency": fill.commission_currency,
        "is_maker": fill.is_maker,
        "timestamp": timestamp_str(fill.timestamp),
    }


def position_json(position: Position) -> JsonDict:
    """A `Position`; `quantity` is positive and the direction is in `side`."""
    return _compact(
        {
            "id": position.id,
            "symbol": position.symbol,
            "side": position.side.value,
            "quantity": decimal_str(position.quantity),
            "average_entry_price": decimal_str(position.average_entry_price),
            "current_price": decimal_str(position.current_price),
            "unrealized_pnl": decimal_str(position.unrealized_pnl),
            "realized_pnl": decimal_str(position.realized_pnl),
            "leverage": optional_decimal_str(position.leverage),
            "opened_at": timestamp_str(position.opened_at),
            "updated_at": timestamp_str(position.updated_at),
        }
    )


def account_json(account: Account) -> JsonDict:
    """An `Account`: exactly the six protocol fields (reports read the domain object instead)."""
    return {
        "balance": decimal_str(account.balance),
        "equity": decimal_str(account.equity),
        "margin_used": decimal_str(account.margin_used),
        "margin_available": decimal_str(account.margin_available),
        "unrealized_pnl": decimal_str(account.unrealized_pnl),
        "currency": account.currency,
    }


def quote_json(quote: Quote) -> JsonDict:
    return _compact(
        {
            "symbol": quote.symbol,
            "provider": quote.provider,
            "bid": decimal_str(quote.bid),
            "ask": decimal_str(quote.ask),
            "last": decimal_str(quote.last),
            "volume": optional_decimal_str(quote.volume),
            "timestamp": timestamp_str(quote.timestamp),
        }
    )


def bar_json(bar: Bar, provider: str) -> JsonDict:
    """A `Bar`; `timestamp` is the bar's start. The domain bar has no provider, so it is given."""
    return {
        "symbol": bar.symbol,
        "provider": provider,
        "timeframe": bar.timeframe,
        "timestamp": timestamp_str(bar.timestamp),
        "open": decimal_str(bar.open),
        "high": decimal_str(bar.high),
        "low": decimal_str(bar.low),
        "close": decimal_str(bar.close),
        "volume": decimal_str(bar.volume),
    }


def _enum_value(member: Any) -> str | None:
    return None if member is None else str(member.value)


# -- WebSocket frames ---------------------------------------------------------------------------


def event_frame(event: Event, *, event_id: str, provider: str) -> JsonDict:
    """The WebSocket frame of one engine event. The envelope `timestamp` is the event's own
    (simulated time in a backtest), so equal runs give equal frames. Raises TypeError for an
    object that is not an engine event."""
    payload = _event_payload(event, provider)
    return {**payload, "timestamp": timestamp_str(event.timestamp), "event_id": event_id}


def _event_payload(event: Event, provider: str) -> JsonDict:
    if isinstance(event, CandleEvent):
        return {"type": "candle", "bar": bar_json(event.bar, provider)}
    if isinstance(event, OrderEvent):
        order = order_json(event.order)
        parent = event.parent_order_id
        return _compact(
            {"type": "order", "event": event.kind.value, "order": order, "parent_order_id": parent}
        )
    if isinstance(event, TradeEvent):
        return {"type": "trade", "event": TRADE_EVENT, "trade": fill_json(event.fill)}
    if isinstance(event, PositionEvent):
        position = position_json(event.position)
        return {"type": "position", "event": event.kind.value, "position": position}
    if isinstance(event, QuoteEvent):
        return {"type": "quote", "quote": quote_json(event.quote)}
    if isinstance(event, AccountEvent):
        return {"type": "account", "event": ACCOUNT_EVENT, "account": account_json(event.account)}
    if isinstance(event, ConnectionEvent):
        return _compact({"type": "connection", "event": event.event, "broker": event.broker,
                         "error": event.error, "gap_duration_ms": event.gap_duration_ms,
                         "reconciled": event.reconciled})
    if isinstance(event, StalenessEvent):
        since = None if event.stale_since is None else timestamp_str(event.stale_since)
        return _compact({"type": "data_staleness", "event": event.event,
                         "symbols": list(event.symbols), "stale_since": since,
                         "broker": event.broker})
    if isinstance(event, RateLimitEvent):
        return {"type": "rate_limit", "event": event.event,
                "requests_remaining": event.requests_remaining,
                "reset_at": timestamp_str(event.reset_at)}
    raise TypeError(f"not an engine event: {type(event).__name__}")


def backtest_complete_frame(
    *, event_id: str, timestamp: datetime | None, broker: str | None = None
) -> JsonDict:
    """The terminal frame of a backtest. `timestamp` is the last simulated time (None, and so
    omitted, only when the run had no data at all; the SDK then assumes the epoch)."""
    return _compact(
        {
            "type": "backtest_complete",
            "broker": broker,
            "timestamp": None if timestamp is None else timestamp_str(timestamp),
            "event_id": event_id,
        }
    )


def connection_frame(
    event: str,
    *,
    timestamp: datetime,
    event_id: str | None = None,
    broker: str | None = None,
    error: str | None = None,
    gap_duration_ms: int | None = None,
) -> JsonDict:
    """A `connection` frame, e.g. DISCONNECTING before a shutdown closes the socket."""
    return _compact(
        {
            "type": "connection",
            "event": event,
            "broker": broker,
            "error": error,
            "gap_duration_ms": gap_duration_ms,
            "timestamp": timestamp_str(timestamp),
            "event_id": event_id,
        }
    )


def error_frame(
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    timestamp: datetime,
    event_id: str | None = None,
) -> JsonDict:
    """An `error` frame (INVALID_MESSAGE, INTERNAL_ERROR, ...). `message` must not carry
    secrets; the caller owns that."""
    return _compact(
        {
            "type": "error",
            "code": code,
            "message": message,
            "details": details,
            "timestamp": timestamp_str(timestamp),
            "event_id": event_id,
        }
    )


def ping_frame(*, timestamp: datetime) -> JsonDict:
    """An application-level ping. It carries no `event_id`: the SDK answers with a pong and
    never acks a ping, so an id would stay pending for ever."""
    return {"type": "ping", "timestamp": timestamp_str(timestamp)}
