"""Domain types of the trading core: enums, order requests, orders, fills, positions, account.

Plain frozen dataclasses with `Decimal` money and tz-aware UTC datetimes, shaped like the models of
the Trading API (reference section 3) so that the shell only serialises them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

ZERO = Decimal(0)


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell: the direction a fill moves the net position."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"
    TRAILING_STOP = "TRAILING_STOP"


class TimeInForce(StrEnum):
    GTC = "GTC"
    DAY = "DAY"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    PENDING_CANCEL = "PENDING_CANCEL"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


class TrailingType(StrEnum):
    ABSOLUTE = "ABSOLUTE"
    PERCENT = "PERCENT"


class PositionSide(StrEnum):
    LONG = "LONG"
    SHORT = "SHORT"


class MarginMode(StrEnum):
    CROSS = "CROSS"
    ISOLATED = "ISOLATED"


class RejectReason(StrEnum):
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    INVALID_PRICE = "INVALID_PRICE"
    SYMBOL_NOT_TRADEABLE = "SYMBOL_NOT_TRADEABLE"
    MARKET_CLOSED = "MARKET_CLOSED"
    REDUCE_ONLY_VIOLATED = "REDUCE_ONLY_VIOLATED"
    POST_ONLY_VIOLATED = "POST_ONLY_VIOLATED"
    RATE_LIMITED = "RATE_LIMITED"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a strategy submits (reference: OrderRequest). Validated by `validation.py`.

    Its size is exactly one of `quantity`, `notional` (an amount of the quote currency) or
    `equity_fraction` (of the account's equity); the last two are our extension and leave
    `quantity` at zero: such an order is sized when it fills, at the fill's price.
    """

    symbol: str
    side: Side
    quantity: Decimal = ZERO
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trailing_distance: Decimal | None = None
    trailing_type: TrailingType | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    position_id: str | None = None
    reduce_only: bool = False
    post_only: bool = False
    hidden: bool = False
    display_quantity: Decimal | None = None
    margin_mode: MarginMode | None = None
    leverage: Decimal | None = None
    client_order_id: str | None = None
    oco_group_id: str | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    notional: Decimal | None = None
    equity_fraction: Decimal | None = None

    @property
    def sized_at_fill(self) -> bool:
        """True when the quantity is computed at the fill price (notional or equity fraction)."""
        return self.notional is not None or self.equity_fraction is not None


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the exchange knows it (reference: Order).

    For TRAILING_STOP orders `stop_price` is the current trigger level, which the exchange moves
    as the market moves in the order's favour. An order sized by `notional` or `equity_fraction`
    has `quantity` zero until its first fill sets it (see `awaits_sizing`).
    """

    id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    status: OrderStatus
    time_in_force: TimeInForce
    created_at: datetime
    updated_at: datetime
    filled_quantity: Decimal = ZERO
    client_order_id: str | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_distance: Decimal | None = None
    trailing_type: TrailingType | None = None
    average_fill_price: Decimal | None = None
    reject_reason: RejectReason | None = None
    position_id: str | None = None
    parent_order_id: str | None = None
    reduce_only: bool = False
    post_only: bool = False
    hidden: bool = False
    display_quantity: Decimal | None = None
    oco_group_id: str | None = None
    notional: Decimal | None = None
    equity_fraction: Decimal | None = None

    @property
    def awaits_sizing(self) -> bool:
        """Sized by notional or equity fraction and not filled yet: quantity still unknown."""
        sized = self.notional is not None or self.equity_fraction is not None
        return sized and not self.quantity

    @property
    def remaining_quantity(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        return not self.status.is_terminal


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution (the wire's "Trade"). `base_price` is the price before slippage."""

    id: str
    order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    commission: Decimal
    commission_currency: str
    timestamp: datetime
    base_price: Decimal
    is_maker: bool = False
    position_id: str | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """A netting position (reference: Position). `quantity` is always positive; see `side`."""

    id: str
    symbol: str
    side: PositionSide
    quantity: Decimal
    average_entry_price: Decimal
    current_price: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    opened_at: datetime
    updated_at: datetime
    leverage: Decimal | None = None

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side is PositionSide.LONG else -self.quantity


@dataclass(frozen=True, slots=True)
class Account:
    """Account summary (reference: Account) plus realised PnL and fees paid, for reports."""

    balance: Decimal
    equity: Decimal
    margin_used: Decimal
    margin_available: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    total_commission: Decimal
    currency: str = "USD"
    cash: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class Quote:
    """Top of book. In a backtest bid = ask = last = the last seen close."""

    symbol: str
    provider: str
    bid: Decimal
    ask: Decimal
    last: Decimal
    timestamp: datetime
    volume: Decimal | None = None


class Clock(Protocol):
    """Where the core gets the time from; never the wall clock inside the core."""

    def now(self) -> datetime: ...


class SimulatedClock:
    """A clock that only moves when told to (bar timestamps in a backtest).

    Stores epoch seconds and builds the datetime on demand, because the engine moves it on every
    bar and most bars nobody asks for the time.
    """

    __slots__ = ("_cached", "_epoch")

    def __init__(self, start: datetime | int = 0) -> None:
        self._epoch = 0
        self._cached: datetime | None = None
        self.set(start)

    def set(self, moment: datetime | int) -> None:
        """Move to `moment` (aware datetime or epoch seconds). Time never moves backwards."""
        epoch = moment if isinstance(moment, int) else _epoch_of(moment)
        if epoch < self._epoch:
            raise ValueError("a simulated clock never moves backwards")
        if epoch != self._epoch:
            self._epoch = epoch
            self._cached = None

    @property
    def epoch(self) -> int:
        return self._epoch

    def now(self) -> datetime:
        if self._cached is None:
            self._cached = datetime.fromtimestamp(self._epoch, tz=UTC)
        return self._cached


def _epoch_of(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are not allowed; use tz-aware UTC")
    return int(moment.timestamp())


def utc_from_epoch(epoch: int) -> datetime:
    """The tz-aware UTC datetime of epoch seconds."""
    return datetime.fromtimestamp(epoch, tz=UTC)
