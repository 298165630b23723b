"""The fake Alpaca's market: quotes, the 1m bars pushed or given, aggregation into the
historical endpoint's timeframes, the clock and the calendar (weekdays 09:30-16:00 New York; the
fake knows no holidays)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from runtimes.core.bars import Bar
from tests.fakes.alpaca.values import ApiError

NEW_YORK = ZoneInfo("America/New_York")
OPEN_TIME = time(9, 30)
CLOSE_TIME = time(16, 0)

_TIMEFRAME = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_UNIT_SECONDS = {"Min": 60, "T": 60, "Hour": 3600, "H": 3600}


@dataclass(frozen=True, slots=True)
class Quote:
    """Top of book of a symbol."""

    symbol: str
    bid: Decimal
    ask: Decimal
    at: datetime
    bid_size: int = 100
    ask_size: int = 100


@dataclass(slots=True)
class Agg:
    """A bar of the historical endpoint (any timeframe), built from 1m bars."""

    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    count: int
    value: Decimal  # sum of close * volume, for vw

    def json(self) -> dict[str, object]:
        vw = self.value / self.volume if self.volume else self.close
        return {
            "t": self.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "o": float(self.open),
            "h": float(self.high),
            "l": float(self.low),
            "c": float(self.close),
            "v": _number(self.volume),
            "n": self.count,
            "vw": float(round(vw, 6)),
        }


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def bucket_start(moment: datetime, timeframe: str) -> datetime:
    """The start of the bucket of `timeframe` ("5Min", "1Hour", "1Day"...) holding `moment`;
    days, weeks and months start at midnight New York, as Alpaca stamps them."""
    match = _TIMEFRAME.match(timeframe)
    if not match:
        raise ApiError(422, f"invalid timeframe: {timeframe}", 42210000)
    amount, unit = int(match.group(1)), match.group(2)
    if unit in _UNIT_SECONDS:
        size = amount * _UNIT_SECONDS[unit]
        epoch = int(moment.timestamp())
        return datetime.fromtimestamp(epoch - epoch % size, UTC)
    local = moment.astimezone(NEW_YORK).date()
    if unit in ("Week", "W"):
        local -= timedelta(days=local.weekday())
    elif unit in ("Month", "M"):
        local = local.replace(day=1)
    return datetime.combine(local, time(0), NEW_YORK).astimezone(UTC)


def aggregate(bars: list[Bar], timeframe: str) -> list[Agg]:
    """1m bars (sorted) into bars of `timeframe`."""
    out: list[Agg] = []
    for bar in bars:
        start = bucket_start(bar.timestamp, timeframe)
        if out and out[-1].start == start:
            agg = out[-1]
            agg.high = max(agg.high, bar.high)
            agg.low = min(agg.low, bar.low)
            agg.close = bar.close
            agg.volume += bar.volume
            agg.count += 1
            agg.value += bar.close * bar.volume
        else:
            out.append(
                Agg(
                    start,
                    bar.open,
                    bar.high,
                    bar.low,
                    bar.close,
                    bar.volume,
                    1,
                    bar.close * bar.volume,
                )
            )
    return out


def is_trading_day(day: date) -> bool:
    return day.weekday() < 5


def session(day: date) -> tuple[datetime, datetime]:
    """The regular session of a (trading) day, in UTC."""
    return (
        datetime.combine(day, OPEN_TIME, NEW_YORK).astimezone(UTC),
        datetime.combine(day, CLOSE_TIME, NEW_YORK).astimezone(UTC),
    )


def next_open_after(moment: datetime) -> datetime:
    day = moment.astimezone(NEW_YORK).date()
    while True:
        if is_trading_day(day):
            opens, _ = session(day)
            if opens > moment:
                return opens
        day += timedelta(days=1)


def next_close_after(moment: datetime) -> datetime:
    day = moment.astimezone(NEW_YORK).date()
    while True:
        if is_trading_day(day):
            _, closes = session(day)
            if closes > moment:
                return closes
        day += timedelta(days=1)


def calendar(start: date, end: date) -> list[dict[str, str]]:
    """/v2/calendar rows between two dates (inclusive)."""
    rows = []
    day = start
    while day <= end:
        if is_trading_day(day):
            rows.append(
                {
                    "date": day.isoformat(),
                    "open": "09:30",
                    "close": "16:00",
                    "session_open": "0400",
                    "session_close": "2000",
                    "settlement_date": _settlement(day).isoformat(),
                }
            )
        day += timedelta(days=1)
    return rows


def _settlement(day: date) -> date:
    settle = day + timedelta(days=1)
    while not is_trading_day(settle):
        settle += timedelta(days=1)
    return settle


def new_york_iso(moment: datetime) -> str:
    """Alpaca's clock answers in New York time with an offset."""
    return moment.astimezone(NEW_YORK).isoformat()
