"""Candles of a coarser timeframe built from completed 1m bars, as they arrive.

Generic over the number type: the `mock` market aggregates integer cents, a broker's stream
Decimals. A bucket's bar is complete when the 1m bar that ends its bucket arrives, or when a 1m
bar of a later bucket does (after a gap); whoever owns the aggregator may also close a bucket
whose time is up (`forming` is public for that).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Generic, TypeVar

from runtimes.core.timeframes import bucket_start, timeframe_seconds

MINUTE: Final = 60

N = TypeVar("N", int, Decimal)

# One bar: (open epoch seconds, open, high, low, close, volume).
Row = tuple[int, N, N, N, N, N]


@dataclass(slots=True)
class Forming(Generic[N]):
    """The bar of one bucket while it forms."""

    start: int
    open: N
    high: N
    low: N
    close: N
    volume: N

    def row(self) -> Row[N]:
        return (self.start, self.open, self.high, self.low, self.close, self.volume)

    def add(self, high: N, low: N, close: N, volume: N) -> None:
        self.high = max(self.high, high)
        self.low = min(self.low, low)
        self.close = close
        self.volume += volume


class Aggregator(Generic[N]):
    """Bars of one timeframe (>= 1m) built from completed 1m bars (see the module doc)."""

    __slots__ = ("forming", "length", "timeframe")

    def __init__(self, timeframe: str) -> None:
        self.timeframe = timeframe
        self.length = timeframe_seconds(timeframe)
        self.forming: Forming[N] | None = None

    def add(self, row: Row[N]) -> list[Row[N]]:
        """Take one completed 1m bar; return the bars of this timeframe it completed."""
        epoch, o, h, low, c, v = row
        done: list[Row[N]] = []
        start = bucket_start(epoch, self.timeframe)
        if self.forming is not None and self.forming.start != start:
            done.append(self.forming.row())
            self.forming = None
        if self.forming is None:
            self.forming = Forming(start, o, h, low, c, v)
        else:
            self.forming.add(h, low, c, v)
        if bucket_start(epoch + MINUTE, self.timeframe) != start:
            done.append(self.forming.row())
            self.forming = None
        return done

    def add_all(self, rows: Iterable[Row[N]]) -> list[Row[N]]:
        return [bar for row in rows for bar in self.add(row)]
