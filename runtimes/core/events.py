"""Events the backtest engine emits, each stamped with simulated time.

One batch = the candles of one timestamp, then the order, trade, position and account events
that the fills at that timestamp produced; wall-clock markets add quotes. The shell turns these
into WebSocket frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from runtimes.core.bars import Bar
from runtimes.core.domain import Account, Fill, Order, Position, Quote
from runtimes.core.exchange_accounting import PositionChange

PositionEventKind = PositionChange


class OrderEventKind(StrEnum):
    ORDER_CREATED = "ORDER_CREATED"
    ORDER_MODIFIED = "ORDER_MODIFIED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    ORDER_REJECTED = "ORDER_REJECTED"
    ORDER_FILLED = "ORDER_FILLED"
    ORDER_PARTIALLY_FILLED = "ORDER_PARTIALLY_FILLED"
    ORDER_EXPIRED = "ORDER_EXPIRED"


@dataclass(frozen=True, slots=True)
class CandleEvent:
    bar: Bar
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class OrderEvent:
    kind: OrderEventKind
    order: Order
    timestamp: datetime
    parent_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class TradeEvent:
    fill: Fill
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class PositionEvent:
    kind: PositionChange
    position: Position
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class AccountEvent:
    account: Account
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class QuoteEvent:
    """Top of book of one symbol at one tick of a wall-clock market (never in a backtest)."""

    quote: Quote
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """The broker connection changed (reference: `connection`): BROKER_DISCONNECTED when a broker
    stream dropped, BROKER_RECONNECTED (with the gap, and what was reconciled) once it is back
    and reconciled, BROKER_CONNECTION_FAILED when the provider gave up or the keys were refused.
    `error` is a plain sentence that never carries a secret."""

    event: str
    broker: str
    timestamp: datetime
    error: str | None = None
    gap_duration_ms: int | None = None
    reconciled: dict[str, list[str]] | None = None  # as takeover.Reconciliation.as_json()


@dataclass(frozen=True, slots=True)
class StalenessEvent:
    """No market data for `symbols` for longer than the session allows (STALE, with the time of
    the last data), or data again (FRESH)."""

    event: str  # STALE | FRESH
    symbols: tuple[str, ...]
    broker: str
    timestamp: datetime
    stale_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class RateLimitEvent:
    """The broker's request budget shared by the session's connection is nearly spent
    (RATE_LIMIT_WARNING) or spent (RATE_LIMIT_HIT: requests are refused until `reset_at`)."""

    event: str  # RATE_LIMIT_WARNING | RATE_LIMIT_HIT
    requests_remaining: int
    reset_at: datetime
    timestamp: datetime


Event = (CandleEvent | OrderEvent | TradeEvent | PositionEvent | AccountEvent | QuoteEvent
         | ConnectionEvent | StalenessEvent | RateLimitEvent)
