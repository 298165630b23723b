"""A BinanceProvider on the fake Binance (tests/fakes/binance) through the real python-binance:
the contract's harness and the fault tests' fixture.

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
    SharedBudget,
)
from runtimes.core.events import Event
from runtimes.core.rate_budget import LocalBudget
from runtimes.hosting.shared_budget import local_shared_budget
from runtimes.providers.binance import BinanceProvider, build
from tests.fakes.binance.server import KEY_ID, SECRET, FakeBinance

CASH = Decimal(100_000)
SYMBOLS = ("BTCUSDT", "ETHUSDT")
LEVELS = {"BTCUSDT": Decimal("40000.00"), "ETHUSDT": Decimal("2000.00")}
WAIT_SECONDS = 10.0


def seed_bars(now: datetime, count: int = 30) -> list[Bar]:
    """Completed 1m bars of both symbols ending before `now`."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=count)
    bars = []
    for symbol, level in LEVELS.items():
        for i in range(count):
            close = level + Decimal(i % 5)
            bars.append(Bar(symbol, "1m", start + timedelta(minutes=i), close, close + 1,
                            close - 1, close, Decimal(100)))
    return bars


def started_fake(**options: Any) -> FakeBinance:
    """A fake Binance with history and books of both symbols whose orders fill only when time
    passes (pass_time), as on the mock market, not at submit."""
    options.setdefault("commission_rate", Decimal(0))
    fake = FakeBinance(balances={"USDT": CASH}, symbols=SYMBOLS,
                       bars=seed_bars(datetime.now(UTC)), **options).start()
    fake.hold_fills(True)
    for symbol, level in LEVELS.items():
        fake.set_book(symbol, bid=level, ask=level)
    return fake


class HealthLog:
    def __init__(self) -> None:
        self.reports: list[ConnectionHealth] = []

    def report(self, health: ConnectionHealth) -> None:
        self.reports.append(health)


def shared_budget(scope: str, workspace: str = "ws-1") -> SharedBudget:
    """`workspace`'s view of the in-process weight counters of the IP `scope`."""
    return local_shared_budget(scope, workspace, limit=6000, floor=100)


class BinanceHarness:
    """One fake Binance account and one session's provider on it."""

    symbol, other_symbol = "BTCUSDT", "ETHUSDT"
    initial_cash = CASH
    client_order_id_idempotent = True

    def __init__(self, *, fake: FakeBinance | None = None, shared: SharedBudget | None = None,
                 restored: dict[str, Any] | None = None, session_id: str = "",
                 symbols: tuple[str, ...] = SYMBOLS) -> None:
        self.fake = fake or started_fake()
        self.scope = f"ip-{uuid.uuid4().hex}"  # the IP of this test's worker
        self.shared = shared or shared_budget(self.scope)
        self.budget = LocalBudget(100, window_seconds=10)
        self.health = HealthLog()
        self.connection = BrokerConnection(
            id=f"conn-{uuid.uuid4().hex[:8]}", platform="binance-testnet", key_id=KEY_ID,
            secret=SECRET, urls=dict(self.fake.urls))
        self.woken = threading.Event()
        self.settings = SimpleNamespace(
            platform="binance-testnet", symbols=symbols, timeframes=("1m",),
            initial_cash=CASH, options={}, restored=restored, session_id=session_id,
            broker_access=BrokerAccess(self.connection, self.budget, self.health,
                                       shared=self.shared))
        self.venue: BinanceProvider = build(self.settings, wake=self.woken.set)
        self._events: list[Event] = []
        self.until(lambda: self.venue.health().streams.get("user_data") == STREAM_CONNECTED,
                   "the user data stream connects")
        self.tick()  # the first connect's reconcile

    # -- waiting --------------------------------------------------------------------------------

    def until(self, condition: Callable[[], bool], what: str) -> None:
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
            known_as = self.venue.book.local_id(str(raw["orderId"]))
            if Decimal(str(raw.get("executedQty") or 0)) != filled.get(known_as, Decimal(0)):
                return False
        return True

    def wait_synced(self) -> None:
        self.until(self.synced, "the fake's executions reach the provider")

    # -- the contract's Harness -----------------------------------------------------------------

    def pass_time(self) -> None:
        """The books again at the same prices with fills released: market orders fill, resting
        orders they cross fill; then wait for the executions it caused."""
        self.fake.hold_fills(False)
        for symbol, level in LEVELS.items():
            self.fake.set_book(symbol, bid=level, ask=level)
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
