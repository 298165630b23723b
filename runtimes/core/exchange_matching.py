"""Price rules of the simulated exchange: when and at what price a resting order fills in a bar.

Pure functions over one order and one bar's open/high/low. A bar that opens beyond an order's
price fills it at the open (the gap); otherwise a touched price fills at the order's own price.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from runtimes.core.domain import Order, OrderType, Side, TrailingType

HUNDRED: Final = Decimal(100)
STOP_TYPES: Final = frozenset({OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP})


class Working:
    """Exchange-side state of an open order that the wire model does not carry."""

    __slots__ = ("extreme", "notional", "same_bar", "seq", "session_day", "triggered")

    def __init__(self, seq: int, *, extreme: Decimal | None = None, same_bar: bool = False):
        self.seq = seq  # submission order: the tie-break inside a bar
        self.triggered = False  # a STOP_LIMIT whose stop was hit now works as a limit
        self.extreme: Decimal | None = extreme  # best price seen, for trailing stops
        self.session_day: object = None  # the trading day a DAY order belongs to
        self.notional = Decimal(0)  # sum of price x quantity of its fills (exact average)
        self.same_bar = same_bar  # an exit leg allowed to act in its entry's bar


@dataclass(frozen=True, slots=True)
class Match:
    """A price at which `order` can fill in this bar; `at_open` when the open itself filled it."""

    order_id: str
    price: Decimal
    at_open: bool
    rank: tuple[int, int, int]


def find_match(
    order: Order, working: Working, o: Decimal, h: Decimal, low: Decimal, *, pessimistic: bool
) -> Match | None:
    """Where `order` would fill in the bar (o, h, low), or None. May mark a STOP_LIMIT triggered."""
    found = _price_for(order, working, o, h, low)
    if found is None:
        return None
    price, at_open = found
    return Match(order.id, price, at_open, _rank(order, at_open, working.seq, pessimistic))


def _price_for(
    order: Order, working: Working, o: Decimal, h: Decimal, low: Decimal
) -> tuple[Decimal, bool] | None:
    kind = order.order_type
    buy = order.side is Side.BUY
    if kind is OrderType.MARKET:
        return o, True
    if kind is OrderType.LIMIT or (kind is OrderType.STOP_LIMIT and working.triggered):
        assert order.limit_price is not None
        return limit_fill(buy, order.limit_price, o, h, low)
    if kind is OrderType.STOP_LIMIT:
        return _stop_limit_fill(order, working, o, h, low)
    assert order.stop_price is not None  # STOP, and TRAILING_STOP's current trigger level
    return stop_fill(buy, order.stop_price, o, h, low)


def limit_fill(
    buy: bool, limit: Decimal, o: Decimal, h: Decimal, low: Decimal
) -> tuple[Decimal, bool] | None:
    """A limit order fills at the open when the bar opens better than the limit, else at it."""
    if buy:
        if o <= limit:
            return o, True
        return (limit, False) if low <= limit else None
    if o >= limit:
        return o, True
    return (limit, False) if h >= limit else None


def stop_fill(
    buy: bool, stop: Decimal, o: Decimal, h: Decimal, low: Decimal
) -> tuple[Decimal, bool] | None:
    """A stop fills at the open when the bar gaps through it, else at the stop price."""
    if buy:
        if o >= stop:
            return o, True
        return (stop, False) if h >= stop else None
    if o <= stop:
        return o, True
    return (stop, False) if low <= stop else None


def _stop_limit_fill(
    order: Order, working: Working, o: Decimal, h: Decimal, low: Decimal
) -> tuple[Decimal, bool] | None:
    """Trigger at the stop; then the limit applies. After an intrabar trigger the path of the
    rest of the bar is unknown, so a limit worse than the stop waits for the next bar."""
    assert order.stop_price is not None and order.limit_price is not None
    buy = order.side is Side.BUY
    stop, limit = order.stop_price, order.limit_price
    trigger = stop_fill(buy, stop, o, h, low)
    if trigger is None:
        return None
    working.triggered = True
    _, at_open = trigger
    if at_open:
        return limit_fill(buy, limit, o, h, low)
    reachable = limit >= stop if buy else limit <= stop
    return (stop, False) if reachable else None


def _rank(order: Order, at_open: bool, seq: int, pessimistic: bool) -> tuple[int, int, int]:
    """Order of fills inside one bar: open fills first (they happened first), then - because the
    path inside the bar is unknown - stops before limits when pessimistic (limits first when
    optimistic), then submission order."""
    if order.order_type is OrderType.MARKET:
        kind_rank = 0
    else:
        is_stop = order.order_type in STOP_TYPES
        kind_rank = 1 if is_stop == pessimistic else 2
    return (0 if at_open else 1, kind_rank, seq)


def initial_trailing_stop(order: Order, reference: Decimal) -> Decimal:
    """The first trigger level of a trailing stop placed when the market is at `reference`."""
    return trail_level(order, reference)


def trail_level(order: Order, extreme: Decimal) -> Decimal:
    """Trigger level `trailing_distance` from `extreme` (the high for sells, the low for buys)."""
    assert order.trailing_distance is not None
    distance = order.trailing_distance
    if order.trailing_type is TrailingType.PERCENT:
        distance = extreme * distance / HUNDRED
    return extreme - distance if order.side is Side.SELL else extreme + distance


def updated_extreme(order: Order, extreme: Decimal, h: Decimal, low: Decimal) -> Decimal:
    """The best price so far after a bar: the highest high for sells, lowest low for buys."""
    if order.side is Side.SELL:
        return h if h > extreme else extreme
    return low if low < extreme else extreme
