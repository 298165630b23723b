"""Prices of the `mock` market: a seeded random walk in whole cents, its history, its candles.

Prices are integers of cents (the tick of every mock symbol is 0.01), so the walk, its snapshot
and the bars built from it are exact; Decimals are made only at the edge. Each symbol walks around
a realistic level (a pull back to it over about a day keeps a long session plausible).
"""

from __future__ import annotations

import hashlib
import math
import random
from decimal import Decimal
from typing import Final

from runtimes.core import candles
from runtimes.core.bars import Bar
from runtimes.core.domain import utc_from_epoch

KNOWN_LEVELS_CENTS: Final = {"AAPL": 190_00, "MSFT": 420_00, "BTCUSDT": 60_000_00}
SECONDS_PER_YEAR: Final = 365 * 86_400
HISTORY_BARS: Final = 1_000  # 1m bars generated backwards before the first tick
MINUTE: Final = 60

# One bar as integers: (open epoch seconds, open, high, low, close, volume); prices in cents.
BarTuple = tuple[int, int, int, int, int, int]


def level_cents(symbol: str) -> int:
    """The price a symbol walks around: known ones at a realistic level, any other one at a
    level from 10.00 to 999.99 derived from its name (the same on every machine)."""
    known = KNOWN_LEVELS_CENTS.get(symbol)
    if known is not None:
        return known
    digest = int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "big")
    return 10_00 + digest % (990_00)


def cents(value: int) -> Decimal:
    """Decimal of a price in cents, with its two decimals (190.00)."""
    return Decimal(value).scaleb(-2)


def floor_cents(level: int) -> int:
    """The walk never goes below 1 % of the level (and never below one cent)."""
    return max(1, level // 100)


def sigma_per_step(volatility: float, seconds: float) -> float:
    """Standard deviation of the relative move over `seconds` for an annualised volatility."""
    return volatility * math.sqrt(seconds / SECONDS_PER_YEAR)


def step_cents(rng: random.Random, mid: int, level: int, sigma: float, pull: float) -> int:
    """The next price after one step: a gaussian relative move plus a pull towards the level."""
    move = mid * sigma * rng.gauss(0.0, 1.0) + pull * (level - mid)
    return max(floor_cents(level), mid + round(move))


def backward_history(
    symbol: str, *, seed: int, close: int, before: int, volatility: float, count: int
) -> list[BarTuple]:
    """`count` 1m bars ending at epoch `before` (the open of the first live bar) whose last close
    is `close`, walked backwards with their own random stream, oldest first."""
    rng = random.Random(f"mock-history:{seed}:{symbol}")
    level = level_cents(symbol)
    floor = floor_cents(level)
    sigma = sigma_per_step(volatility, MINUTE)
    bars: list[BarTuple] = []
    for i in range(1, count + 1):
        open_ = max(floor, close - round(close * sigma * rng.gauss(0.0, 1.0)))
        wick = close * sigma / 2
        high = max(open_, close) + round(abs(rng.gauss(0.0, 1.0)) * wick)
        low = max(floor, min(open_, close) - round(abs(rng.gauss(0.0, 1.0)) * wick))
        volume = rng.randint(100, 10_000)
        bars.append((before - MINUTE * i, open_, high, low, close, volume))
        close = open_
    bars.reverse()
    return bars


def to_bar(symbol: str, timeframe: str, row: BarTuple) -> Bar:
    epoch, o, h, low, c, v = row
    return Bar(
        symbol,
        timeframe,
        utc_from_epoch(epoch),
        cents(o),
        cents(h),
        cents(low),
        cents(c),
        Decimal(v),
    )


# The aggregation is the core's (runtimes/core/candles.py), here on integer cents.
Forming = candles.Forming[int]
Aggregator = candles.Aggregator[int]
