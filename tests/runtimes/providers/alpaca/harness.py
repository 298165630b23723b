"""An AlpacaProvider on the fake Alpaca (tests/fakes/alpaca) through the real alpaca-py: the
contract's harness and the fault tests' fixture.

Waits are signalled: the provider's `wake` sets an Event, and `until` re-checks its condition
each time it is set (the fake's own `wait_for` for conditions on the fake)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from runtimes.core.bars import Bar
from runtimes.core.connection import (
    STREAM_CONNECTED,
    BrokerAccess,
    BrokerConnection,
    ConnectionHealth,
)
from runtimes.core.events import Event
from runtimes.core.rate_budget import LocalBudget
from runtimes.providers.alpaca import AlpacaProvider, build
from tests.fakes.alpaca.server import KEY_ID, SECRET, FakeAlpaca

CASH = Decimal(100_000)
SYMBOLS = ("AAPL", "MSFT")
LEVELS = {"AAPL": Decimal("190.00"), "MSFT": Decimal("410.00")}
WAIT_SECONDS = 10.0


def seed_bars(now: datetime, count: int = 30) -> list[Bar]:
    """Completed 1m bars of both symbols ending before `now`."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=count)
    bars = []
    for symbol, level in LEVELS.items():
        for i in range(count):
            close = level + Decimal(i % 5) / 100
            bars.append(Bar(symbol, "1m", start + timedelta(minutes=i), close, close + 1,
                            close - 1, close, Decimal(100)))
    return bars


def started_fake(**options: Any) -> FakeAlpaca:
    """A fake Alpaca with history and quotes of both symbols whose orders fill only when time
    passes (pass_time), as on the mock market, not at submit."""
    now = datetime.now(UTC)
    fake = FakeAlpaca(cash=CASH, bars=seed_bars(now), **options).start()
    fake.hold_fills(True)
    for symbol, level in LEVELS.items():
        fake.set_quote(symbol, bid=level - Decimal("0.01"), ask=level + Decimal("0.01"),
                       at=now - timedelta(seconds=1))
    return fake


class HealthLog:
    def __init__(self) -> None:
        self.reports: list[ConnectionHealth] = []

    def report(self, health: ConnectionHealth) -> None:
        self.reports.append(health)


class AlpacaHarness:
    """One fake Alpaca account and one session's provider on it."""

    symbol, other_symbol = "AAPL", "MSFT"
    initial_cash = CASH
    client_order_id_idempotent = True

    def __init__(self, *, fake: FakeAlpaca | None = None, budget: LocalBudget | None = None,
                 restored: dict[str, Any] | None = None, session_id: str = "",
                 connection: BrokerConnection | None = None) -> None:
        self.fake = fake or started_fake()
        self.budget = budget or LocalBudget(200)
        self.health = HealthLog()
        self.connection = connection or BrokerConnection(
            id=f"conn-{uuid.uuid4().hex[:8]}", platform="alpaca-paper", key_id=KEY_ID,
            secret=SECRET, urls=dict(self.fake.urls), options={"feed": "iex"})
        self.woken = threading.Event()
        self.settings = SimpleNamespace(
            platform="alpaca-paper", symbols=SYMBOLS, timeframes=("1m",), initial_cash=CASH,
            options={}, restored=restored, session_id=session_id,
            broker_access=BrokerAccess(self.connection, self.budget, self.health))
        self.venue: AlpacaProvider = build(self.settings, wake=self.woken.set)
        self._events: list[Event] = []
        self.until(lambda: self.venue.health().streams.get("trade_updates") == STREAM_CONNECTED,
                   "the trade stream connects")
        self.tick()  # the first connect's reconcile

    # -- waiting --------------------------------------------------------------------------------

    def until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait for `condition`, re-checked each time the provider wakes its host."""
        deadline = time.monotonic() + WAIT_SECONDS
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting until {what}")
            self.woken.wait(left)
            self.woken.clear()

    def tick(self) -> None:
        """What the host does when woken: advance when due, then drain."""
        due = self.venue.next_due()
        if due is not None and due <= 0:
            self.venue.advance(datetime.now(UTC))
        self._events += self.venue.drain_events()

    def synced(self) -> bool:
        """Every execution of this session's orders at the fake has reached the provider."""
        filled: dict[str, Decimal] = {}
        for fill in self.venue.fills():
            filled[fill.order_id] = filled.get(fill.order_id, Decimal(0)) + fill.quantity
        for raw in self.fake.orders():
            if not self.venue._mine(raw):
                continue
            known_as = self.venue.book.alias.get(str(raw["id"]), str(raw["id"]))
            if Decimal(str(raw.get("filled_qty") or 0)) != filled.get(known_as, Decimal(0)):
                return False
        return True

    def wait_synced(self) -> None:
        self.until(self.synced, "the fake's executions reach the provider")

    # -- the contract's Harness -----------------------------------------------------------------

    def pass_time(self) -> None:
        """A new quote at the last prices: market orders fill, resting orders it crosses fill;
        then wait for the executions it caused."""
        now = datetime.now(UTC)
        self.fake.hold_fills(False)
        for symbol, level in LEVELS.items():
            self.fake.set_quote(symbol, bid=level - Decimal("0.01"), ask=level + Decimal("0.01"),
                                at=now)
        self.fake.hold_fills(True)
        self.wait_synced()

    def take_events(self) -> list[Event]:
        self.wait_synced()
        self.tick()
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        self.venue.close()
        self.fake.stop()
