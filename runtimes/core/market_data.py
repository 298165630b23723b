"""Several BarSeries of one timeframe aligned by timestamp: what the engine steps through."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from datetime import datetime

from runtimes.core.bars import Bar, BarSeries, readonly_column


class MarketData:
    """Several BarSeries of one timeframe aligned on the sorted union of their open times."""

    __slots__ = ("_by_symbol", "_index_maps", "_series", "_timeline", "symbols", "timeframe")

    def __init__(self, series: Sequence[BarSeries]) -> None:
        """Align `series` (distinct symbols, one timeframe); ValueError otherwise."""
        if not series:
            raise ValueError("MarketData needs at least one series")
        timeframes = {s.timeframe for s in series}
        if len(timeframes) > 1:
            raise ValueError(f"series have different timeframes: {', '.join(sorted(timeframes))}")
        symbols = tuple(s.symbol for s in series)
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"duplicate symbols: {', '.join(symbols)}")
        self.timeframe = series[0].timeframe
        self.symbols = symbols
        self._series = tuple(series)
        self._by_symbol = {s.symbol: s for s in series}
        self._timeline = _union_timeline(self._series)
        self._index_maps = tuple(_index_map(s, self._timeline) for s in self._series)

    @classmethod
    def from_series(cls, series: Sequence[BarSeries]) -> MarketData:
        """Align several series; symbols keep the given order."""
        return cls(series)

    @classmethod
    def from_bars(cls, bars: Iterable[Bar]) -> MarketData:
        """Group Bars by symbol (in order of first appearance), validate, align (for tests)."""
        groups: dict[str, list[Bar]] = {}
        for bar in bars:
            groups.setdefault(bar.symbol, []).append(bar)
        return cls(
            [BarSeries.from_bars(sorted(g, key=lambda b: b.timestamp)) for g in groups.values()]
        )

    def series(self, symbol: str) -> BarSeries:
        """The series of `symbol`; KeyError when absent."""
        return self._by_symbol[symbol]

    def all_series(self) -> tuple[BarSeries, ...]:
        """Every series, in `symbols` order."""
        return self._series

    def timeline(self) -> Sequence[int]:
        """Sorted union of every series' open times, epoch seconds."""
        return readonly_column(self._timeline)

    def __len__(self) -> int:
        return len(self._timeline)

    def series_index_at(self, position: int, step: int) -> int:
        """Index into series number `position` of its bar at timeline()[step], or -1 (a gap)."""
        mapping = self._index_maps[position]
        return step if mapping is None else mapping[step]

    def bars_at(self, step: int) -> list[Bar]:
        """Bars of every symbol that has one at timeline()[step], in `symbols` order."""
        found = []
        for series, mapping in zip(self._series, self._index_maps, strict=True):
            i = step if mapping is None else mapping[step]
            if i >= 0:
                found.append(series.bar(i))
        return found

    def slice(self, start: datetime | None, end: datetime | None) -> MarketData:
        """Every series restricted to [start, end] (inclusive); series may become empty."""
        if start is None and end is None:
            return self  # immutable: the whole period is this very data
        return MarketData([s.slice(start, end) for s in self._series])


def _union_timeline(series: Sequence[BarSeries]) -> Sequence[int]:
    longest = max(series, key=len)
    if all(s._timestamps == longest._timestamps for s in series):
        return longest._timestamps  # one symbol, or all on one clock: share, compared in C
    stamps = set(longest.timestamps())
    if all(stamps.issuperset(s.timestamps()) for s in series):
        return longest._timestamps  # the common case of one symbol: share, do not copy
    for s in series:
        stamps.update(s.timestamps())
    return array("q", sorted(stamps))


def _index_map(series: BarSeries, timeline: Sequence[int]) -> Sequence[int] | None:
    """For each timeline step, the series index of the bar at that time or -1; None = identity."""
    if len(series) == len(timeline):
        return None
    mapping = array("q", [-1]) * len(timeline)
    own = series._timestamps
    j = 0
    for step, epoch in enumerate(timeline):
        if j < len(own) and own[j] == epoch:
            mapping[step] = j
            j += 1
    return mapping
