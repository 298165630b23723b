"""The real `mock` market on a fast clock, for end-to-end tests that need candles within seconds:
market time runs SPEED times the wall clock from the moment the market is built (a 1m candle
closes every second), and the market tells its host to wake SPEED times sooner and moves to
its own time when the host advances it. A test puts
`FACTORY` in the registry in place of the real factory (embedded worker: same process)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from runtimes.providers.mock.options import parse_options
from runtimes.providers.mock.provider import MockMarket

SPEED = 60
FACTORY = "tests.runtimes.providers.fast_mock:build"


class FastMockMarket(MockMarket):
    def next_due(self) -> float | None:
        due = super().next_due()  # in market seconds
        return None if due is None else due / SPEED

    def advance(self, now: datetime) -> None:
        super().advance(self.now)  # the host's `now` is the wall clock's; the market has its own


def build(settings: Any, *, wake: Any) -> FastMockMarket:
    started_at, started = datetime.now(UTC), time.monotonic()

    def clock() -> datetime:
        return started_at + timedelta(seconds=(time.monotonic() - started) * SPEED)

    config = parse_options(settings.options, symbols=settings.symbols,
                           timeframes=settings.timeframes, initial_cash=settings.initial_cash)
    return FastMockMarket(config, clock=clock, restored=settings.restored)
