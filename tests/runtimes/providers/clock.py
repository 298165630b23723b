"""A fake wall clock for wall-clock providers: time moves only when a test moves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# A Monday 14:30:00.100 UTC: the first tick of a 250 ms market is 150 ms away.
START = datetime(2026, 1, 5, 14, 30, 0, 100_000, tzinfo=UTC)


class FakeClock:
    """Callable like the providers' clock; `advance` moves it forward."""

    def __init__(self, start: datetime = START) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, *, seconds: float = 0, ms: int = 0) -> datetime:
        self.moment += timedelta(seconds=seconds, milliseconds=ms)
        return self.moment
