"""Bar timeframes of the protocol: names, lengths in seconds, UTC bucket alignment, annualisation.

Every timeframe is a whole number of seconds. Buckets are aligned to the Unix epoch in UTC, except
weeks, which start on Monday 00:00 UTC (the epoch itself fell on a Thursday). A market's calendar
(stocks or 24/7 crypto) sets how many days make a year.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Final, Literal

Calendar = Literal["crypto", "stocks"]

MINUTE: Final = 60
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR
WEEK: Final = 7 * DAY

TIMEFRAME_SECONDS: Final[dict[str, int]] = {
    "1m": MINUTE,
    "2m": 2 * MINUTE,
    "5m": 5 * MINUTE,
    "10m": 10 * MINUTE,
    "15m": 15 * MINUTE,
    "30m": 30 * MINUTE,
    "1h": HOUR,
    "2h": 2 * HOUR,
    "4h": 4 * HOUR,
    "12h": 12 * HOUR,
    "1d": DAY,
    "1w": WEEK,
}
TIMEFRAMES: Final[tuple[str, ...]] = tuple(TIMEFRAME_SECONDS)

# Monday 1970-01-05T00:00:00Z: the origin of weekly buckets.
WEEK_ORIGIN: Final = 4 * DAY

# Annualisation of daily returns (see docs/metrics.md): crypto trades every day of a 365-day
# year; US stocks trade 252 days a year.
CRYPTO_DAYS: Final = 365
STOCK_TRADING_DAYS: Final = 252
# Quote currencies that end a crypto pair's symbol ("BTCUSDT", "ETH/USD", "SOL-EUR"). A listed
# share's ticker has at most five letters, so a longer symbol ending in one of them is a pair.
CRYPTO_QUOTES: Final = ("USDT", "USDC", "BUSD", "FDUSD", "TUSD", "DAI", "USD", "EUR", "BTC",
                        "ETH", "BNB")
_LONGEST_TICKER: Final = 5


class TimeframeError(ValueError):
    """An unknown timeframe name, or a timeframe that does not fit the operation."""


def parse_timeframe(name: str) -> str:
    """Return `name` when it is a protocol timeframe; raise TimeframeError naming the valid ones."""
    if name not in TIMEFRAME_SECONDS:
        raise TimeframeError(f"unknown timeframe {name!r}; expected one of {', '.join(TIMEFRAMES)}")
    return name


def timeframe_seconds(name: str) -> int:
    """Length of one bar of timeframe `name` in seconds; TimeframeError when unknown."""
    return TIMEFRAME_SECONDS[parse_timeframe(name)]


def timeframe_for_seconds(seconds: int) -> str | None:
    """The timeframe whose bars last exactly `seconds`, or None when there is none."""
    for name, length in TIMEFRAME_SECONDS.items():
        if length == seconds:
            return name
    return None


def bucket_start(epoch_seconds: int, timeframe: str) -> int:
    """Open time (epoch seconds) of the `timeframe` bucket that contains `epoch_seconds`."""
    length = timeframe_seconds(timeframe)
    origin = WEEK_ORIGIN if length == WEEK else 0
    return epoch_seconds - (epoch_seconds - origin) % length


def days_per_year(calendar: Calendar) -> Decimal:
    """Daily returns in one year on `calendar`: 252 trading days for stocks, 365 for crypto."""
    if calendar == "crypto":
        return Decimal(CRYPTO_DAYS)
    if calendar == "stocks":
        return Decimal(STOCK_TRADING_DAYS)
    raise TimeframeError(f"unknown calendar {calendar!r}; expected 'crypto' or 'stocks'")


def is_crypto_pair(symbol: str) -> bool:
    """Whether `symbol` reads as a crypto pair: a base and a known quote currency, either
    separated ("BTC/USD", "eth-usdt") or joined in a name longer than a share's ticker."""
    text = symbol.strip().upper()
    for separator in ("/", "-"):
        base, found, quote = text.partition(separator)
        if found and base and quote in CRYPTO_QUOTES:
            return True
    joined = text.isalnum() and len(text) > _LONGEST_TICKER
    return joined and any(text.endswith(q) and len(text) > len(q) for q in CRYPTO_QUOTES)


def guess_calendar(symbols: Iterable[str], days: Iterable[date]) -> Calendar:
    """"crypto" when any symbol is a crypto pair or any of `days` (days with data) is a
    Saturday or Sunday; else "stocks". Pass the calendar explicitly where this could mislead."""
    if any(is_crypto_pair(s) for s in symbols) or any(d.weekday() >= 5 for d in days):
        return "crypto"
    return "stocks"
