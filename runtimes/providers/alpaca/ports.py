"""What the provider needs of the market data and the streams (market_data.py and
streams.py implement them): typed here so that the provider
can be built with other implementations in tests and type-checks on its own."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Protocol

from runtimes.core.bars import Bar
from runtimes.core.domain import Quote
from runtimes.core.events import Event


class MarketData(Protocol):
    def quote(self, symbol: str) -> Quote: ...

    def history(self, symbol: str, start: datetime | None, end: datetime | None,
                limit: int | None) -> list[Bar]: ...

    def last_price(self, symbol: str) -> Decimal | None: ...

    def drain_events(self) -> list[Event]: ...

    def next_due(self) -> float | None: ...

    def advance(self, now: datetime) -> None: ...


class Streams(Protocol):
    def start(self) -> None: ...

    def close(self) -> None: ...

    def states(self) -> dict[str, str]: ...
