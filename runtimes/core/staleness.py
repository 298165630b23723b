"""When a broker's market data goes quiet: per symbol, no bar or quote for longer than the session
allows while the market is open makes it STALE; its next data makes it FRESH again.

A plain state machine on the times it is given (no clock, no thread): the provider feeds it the
arrival of data, whether the market is open, and the time of each check, and streams the
StalenessEvents it returns. While the market is closed nothing becomes stale (no data is due);
a symbol already stale stays so until its data comes back. When the market opens, every symbol
that is not stale is watched from that moment, so that a quiet night is not a gap.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final

from runtimes.core.events import StalenessEvent

STALE: Final = "STALE"
FRESH: Final = "FRESH"


class StalenessTracker:
    """Staleness of a session's symbols. Not thread-safe: the owner holds its own lock."""

    def __init__(self, symbols: Iterable[str], *, seconds: float, broker: str,
                 now: datetime, market_open: bool = False) -> None:
        if seconds <= 0:
            raise ValueError("staleness seconds must be positive")
        self.limit = timedelta(seconds=seconds)
        self.broker = broker
        self.market_open = market_open
        # The time each symbol was last heard of (or watched from, when it has said nothing yet).
        self._last: dict[str, datetime] = dict.fromkeys(symbols, now)
        self._stale: set[str] = set()

    def set_market_open(self, is_open: bool, now: datetime) -> None:
        """The market opened or closed at `now`. On opening, quiet symbols are watched anew."""
        if is_open and not self.market_open:
            for symbol, last in self._last.items():
                if symbol not in self._stale:
                    self._last[symbol] = max(last, now)
        self.market_open = is_open

    def seen(self, symbol: str, now: datetime) -> StalenessEvent | None:
        """Data of `symbol` arrived at `now`: FRESH when the symbol was stale, else None."""
        if symbol not in self._last:
            return None
        self._last[symbol] = max(self._last[symbol], now)
        if symbol not in self._stale:
            return None
        self._stale.discard(symbol)
        return StalenessEvent(FRESH, (symbol,), self.broker, now)

    def check(self, now: datetime) -> StalenessEvent | None:
        """STALE for the symbols that have been quiet for longer than allowed by `now` and were
        not stale yet (one event; `stale_since` is the earliest of their last data), or None."""
        if not self.market_open:
            return None
        newly = sorted(s for s, last in self._last.items()
                       if s not in self._stale and now - last >= self.limit)
        if not newly:
            return None
        self._stale.update(newly)
        since = min(self._last[s] for s in newly)
        return StalenessEvent(STALE, tuple(newly), self.broker, now, stale_since=since)

    def next_due(self, now: datetime) -> float | None:
        """Seconds until the next symbol could become stale (0 when one is due), or None when
        nothing can (the market is closed, or every symbol is stale already)."""
        if not self.market_open:
            return None
        watched = [last for s, last in self._last.items() if s not in self._stale]
        if not watched:
            return None
        due = min(watched) + self.limit
        return max(0.0, (due - now).total_seconds())

    def stale_symbols(self) -> tuple[str, ...]:
        return tuple(sorted(self._stale))
