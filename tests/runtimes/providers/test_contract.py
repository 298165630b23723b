"""The provider contract (contract.py) run against every provider we have: the backtest engine over
a small in-memory dataset, the mock market on a fake clock, Alpaca on the fake Alpaca and Binance
on the fake Binance."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from runtimes.core.bars import Bar
from runtimes.core.engine import BacktestConfig, BacktestEngine
from runtimes.core.events import Event
from runtimes.core.market_data import MarketData
from runtimes.providers.mock import MockMarket, build
from tests.runtimes.providers.alpaca.harness import AlpacaHarness
from tests.runtimes.providers.binance.harness import BinanceHarness
from tests.runtimes.providers.clock import FakeClock
from tests.runtimes.providers.contract import Harness, ProviderContract

CASH = Decimal(100_000)
T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def wavy_bars(symbol: str, level: int, count: int = 200) -> list[Bar]:
    """1m bars gently waving around `level`, as a small in-memory dataset."""
    made = []
    close = Decimal(level)
    for i in range(count):
        open_ = close
        close = (Decimal(level) + Decimal(round(math.sin(i / 5) * 100)) / 100).quantize(
            Decimal("0.01")
        )
        high, low = max(open_, close) + Decimal("0.05"), min(open_, close) - Decimal("0.05")
        made.append(
            Bar(symbol, "1m", T0 + timedelta(minutes=i), open_, high, low, close, Decimal(1000))
        )
    return made


class BacktestHarness:
    """The engine delivers its first batch; each pass of time is the next batch."""

    symbol, other_symbol = "AAA", "BBB"
    initial_cash = CASH
    client_order_id_idempotent = True

    def __init__(self) -> None:
        data = MarketData.from_bars([*wavy_bars("AAA", 100), *wavy_bars("BBB", 50)])
        self.venue = self.engine = BacktestEngine(data, BacktestConfig(initial_cash=CASH))
        self._events: list[Event] = list(self._next())

    def _next(self) -> list[Event]:
        batch = self.engine.next_batch()
        assert batch is not None, "the contract dataset ran out"
        return batch.events

    def pass_time(self) -> None:
        self._events += self.engine.drain_events()
        self._events += self._next()

    def take_events(self) -> list[Event]:
        events, self._events = self._events + self.engine.drain_events(), []
        return events

    def close(self) -> None:
        pass


class MockHarness:
    """The mock market on a fake clock; each pass of time is one quote interval."""

    symbol, other_symbol = "AAPL", "MSFT"
    initial_cash = CASH
    client_order_id_idempotent = True

    def __init__(self) -> None:
        self.clock = FakeClock()
        settings = SimpleNamespace(
            platform="mock",
            symbols=(),
            timeframes=("1m",),
            initial_cash=CASH,
            options={"seed": 11, "commission": "binance", "slippage_bps": "1"},
            restored=None,
            session_id="",
        )
        self.venue: MockMarket = build(settings, wake=lambda: None, clock=self.clock)

    def pass_time(self) -> None:
        self.clock.advance(ms=self.venue.config.quote_interval_ms)
        self.venue.advance(self.clock())

    def take_events(self) -> list[Event]:
        return self.venue.drain_events()

    def close(self) -> None:
        self.venue.close()


HARNESSES: dict[str, Callable[[], Harness]] = {
    "backtest": BacktestHarness,
    "mock": MockHarness,
    "alpaca": AlpacaHarness,
    "binance": BinanceHarness,
}


class TestProviderContract(ProviderContract):
    @pytest.fixture(params=sorted(HARNESSES))
    def harness(self, request: pytest.FixtureRequest) -> Harness:
        return HARNESSES[request.param]()
