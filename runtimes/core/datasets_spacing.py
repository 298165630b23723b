"""The bar spacing of a file and the check of its timeframe: the most common gap between bars
is the bar length (nights, weekends and outages only make some gaps longer), a timeframe given
is checked against it, and bars closer than the timeframe are bad rows placed in the file."""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from typing import Any

from runtimes.core.dataset_errors import BadRows, DatasetError
from runtimes.core.timeframes import TIMEFRAMES, timeframe_for_seconds, timeframe_seconds


class RowPlaces:
    """Where each kept bar was in the file (its data row and line), stored only where the step
    between bar index and row or line changes (after a blank line or a bad row)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.offsets: list[tuple[int, int | None]] = []

    def note(self, index: int, row: int, line: int | None) -> None:
        offset = (row - index, None if line is None else line - index)
        if not self.offsets or self.offsets[-1] != offset:
            self.starts.append(index)
            self.offsets.append(offset)

    def of(self, index: int) -> tuple[int, int | None]:
        """(row, line) of bar `index`."""
        row_offset, line_offset = self.offsets[bisect.bisect_right(self.starts, index) - 1]
        return index + row_offset, None if line_offset is None else index + line_offset


# A gap shorter than the most common one is the bar length when this share of the gaps (and at
# least FINER_GAP_MIN) have it: an illiquid minute series is most often 2 minutes apart, yet its
# bars are 1m. A stray bar (two short gaps) is not enough: it stays a bad row of a daily file.
FINER_GAP_SHARE = 0.05
FINER_GAP_MIN = 4


def bar_spacing(timestamps: Any) -> int | None:
    """The most common gap in seconds between consecutive bars (the smaller on a tie), or None
    for fewer than two bars. Nights, weekends and outages make some gaps longer; the bar length
    is still the gap most bars have."""
    counts = _gaps(timestamps)
    if not counts:
        return None
    return min(counts, key=lambda gap: (-counts[gap], gap))


def inferred_spacing(timestamps: Any) -> int | None:
    """The bar length to infer a timeframe from: the shortest gap that is a timeframe, divides
    the most common gap and is common itself (FINER_GAP_SHARE), else the most common gap."""
    counts = _gaps(timestamps)
    if not counts:
        return None
    common = min(counts, key=lambda gap: (-counts[gap], gap))
    enough = max(FINER_GAP_MIN, FINER_GAP_SHARE * sum(counts.values()))
    finer = [gap for gap, count in counts.items()
             if 0 < gap < common and common % gap == 0 and count >= enough
             and timeframe_for_seconds(gap) is not None]
    return min(finer, default=common)


def _gaps(timestamps: Any) -> Counter[int]:
    return Counter(b - a for a, b in itertools.pairwise(timestamps))


def describe_seconds(seconds: int) -> str:
    """'1 day', '15 minutes', '90 seconds': a spacing as a person says it."""
    for unit, length in (("week", 604_800), ("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds % length == 0:
            count = seconds // length
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def check_timeframe(timestamps: Any, places: RowPlaces, timeframe: str | None,
                    source: str) -> str:
    """The timeframe of bars at `timestamps` (epoch seconds, ascending): the one given after
    checking it against their spacing, or the one their spacing is. Raises DatasetError: for a
    given timeframe longer than the spacing, or shorter when no two bars are that far apart (the
    sentence names the spacing and the timeframe it is); for bars closer than the timeframe (bad
    rows, placed in the file by `places`); for a spacing that is no timeframe."""
    spacing = bar_spacing(timestamps)
    if timeframe is None:
        spacing = inferred_spacing(timestamps)
        if spacing is None:
            raise DatasetError(file=source, problem="one bar only; pass the timeframe explicitly")
        inferred = timeframe_for_seconds(spacing)
        if inferred is None:
            apart = describe_seconds(spacing)
            raise DatasetError(
                file=source,
                problem=f"cannot infer the timeframe: the bars are most often {apart} apart, "
                f"which is none of {', '.join(TIMEFRAMES)}; pass the timeframe explicitly",
            )
        timeframe = inferred
    length = timeframe_seconds(timeframe)
    if spacing is not None and spacing != length:
        sparse = spacing > length and length in (b - a for a, b in itertools.pairwise(timestamps))
        if not sparse:
            raise DatasetError(file=source, problem=_mismatch(spacing, timeframe))
    _refuse_close_bars(timestamps, places, timeframe, length, source)
    return timeframe


def _mismatch(spacing: int, timeframe: str) -> str:
    said = f"the rows are {describe_seconds(spacing)} apart but the timeframe given is {timeframe}"
    found = timeframe_for_seconds(spacing)
    if found is None:
        return f"{said}, and {describe_seconds(spacing)} is none of {', '.join(TIMEFRAMES)}"
    return f"{said}; give {found}, or leave the timeframe empty to have it read from the file"


def _refuse_close_bars(timestamps: Any, places: RowPlaces, timeframe: str, length: int,
                       source: str) -> None:
    bad = BadRows()
    for i in range(1, len(timestamps)):
        gap = timestamps[i] - timestamps[i - 1]
        if gap < length:
            row, line = places.of(i)
            bad.add(row, line, "timestamp", f"bar is {describe_seconds(gap)} after the previous "
                                            f"one, less than one {timeframe} bar")
    if bad:
        raise bad.error(source)
