"""Equity resampled to days: the series the field computes risk statistics on.

Per-bar returns annualised by bars per year overstate Sharpe and volatility on intraday data
(and depend on a timeframe the user typed); peers resample equity to one value per day first.
A day's value is the last one at or before its end (UTC); a day without any point has no value
(a weekend of a stock calendar, a gap in the data), so its move falls into the next day's return.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

_NO_OFFSET = timedelta(0)


def daily_closes(points: Iterable[tuple[datetime, Decimal]]) -> list[tuple[date, Decimal]]:
    """The last value of each UTC day that has points, in time order. `points` are
    (tz-aware time, value) in time order."""
    closes: list[tuple[date, Decimal]] = []
    for stamp, value in points:
        day = stamp.date() if stamp.utcoffset() == _NO_OFFSET else stamp.astimezone(UTC).date()
        if closes and closes[-1][0] == day:
            closes[-1] = (day, value)
        else:
            closes.append((day, value))
    return closes


def daily_returns(closes: list[tuple[date, Decimal]],
                  initial: Decimal | None = None) -> list[tuple[date, Decimal]]:
    """Simple returns from one daily close to the next, dated by the later day. With `initial`
    (the value before the first point, e.g. the starting cash) the first day has a return too.
    Empty when any base value is at or below zero: returns are then undefined."""
    values = [initial] if initial is not None else []
    values += [value for _, value in closes]
    days = [day for day, _ in closes]
    if initial is None:
        days = days[1:]
    bases = values[:-1]
    if any(base <= 0 for base in bases):
        return []
    return [(day, after / before - 1)
            for day, before, after in zip(days, bases, values[1:], strict=True)]

