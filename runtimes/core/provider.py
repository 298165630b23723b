"""The provider seam: what a session host needs from any runtime behind the Trading API.

A provider is one session's market and account: the simulated exchange of a backtest, the
`mock` market, a broker account reached through its SDK. The host (runtimes/hosting/host.py)
runs the Trading API commands against a `Venue` and streams the normalised events it drains;
`Provider` adds what differs between runtimes: its identity, its capabilities and status, and
how time moves.

Two pacings:
- `Pacing.SIMULATED` (backtest): time moves only when the strategy has acknowledged every event
  of the current batch; the host drives it with `next_batch()` (runtimes/core/session.py,
  BacktestStream).
- `Pacing.WALL_CLOCK` (mock, brokers): the market moves by itself; the host calls
  `advance(now)` when `next_due()` says so (or when `wake` was called from another thread, for
  providers fed by SDK streams) and streams whatever `drain_events()` returns. Acks are
  journaled, and gate nothing.

Framework-free: clients, clocks and random sources are passed in; nothing here imports Django.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from runtimes.core.bars import Bar
from runtimes.core.connection import BrokerAccess
from runtimes.core.domain import Account, Fill, Order, OrderRequest, Position, Quote
from runtimes.core.events import Event

JsonDict = dict[str, Any]


class Pacing(StrEnum):
    SIMULATED = "simulated"  # ack-gated simulated time
    WALL_CLOCK = "wall_clock"  # the market moves in real time; acks gate nothing


@runtime_checkable
class Venue(Protocol):
    """Orders, positions, the account and market data of one session. Raises the core's
    TradingError subclasses (runtimes/core/errors.py) for anything a client got wrong; the host
    turns them into the protocol's error envelope."""

    @property
    def now(self) -> datetime:
        """The venue's time: simulated in a backtest, the wall clock elsewhere (tz-aware UTC)."""

    def submit_order(self, request: OrderRequest) -> Order: ...

    def modify_order(
        self,
        order_id: str,
        *,
        quantity: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        stop_loss: Decimal | None = None,
        take_profit: Decimal | None = None,
        trailing_distance: Decimal | None = None,
    ) -> tuple[Order, str | None]:
        """(order, previous_order_id): the id of the replaced order where the venue replaces
        rather than modifies in place (None when the id did not change)."""

    def cancel_order(self, order_id: str) -> Order: ...

    def close_position(
        self,
        symbol_or_position_id: str,
        quantity: Decimal | None = None,
        order_type: str = "MARKET",
        limit_price: Decimal | None = None,
    ) -> Order: ...

    def orders(self, *, open_only: bool = False, symbol: str | None = None) -> list[Order]: ...

    def all_orders(self) -> list[Order]: ...

    def order(self, order_id: str) -> Order: ...

    def order_by_client_id(self, client_order_id: str) -> Order | None: ...

    def fills(self, *, symbol: str | None = None, order_id: str | None = None) -> list[Fill]: ...

    def positions(self) -> list[Position]: ...

    def position(self, symbol_or_position_id: str) -> Position: ...

    def account(self) -> Account: ...

    def quote(self, symbol: str) -> Quote: ...

    def history(
        self,
        symbol: str,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[Bar]:
        """Bars of `symbol` in the session's timeframe up to now (never a future bar)."""

    def drain_events(self) -> list[Event]:
        """Events (candles, quotes, orders, fills, positions, account) since the last drain,
        oldest first, each once."""


class Provider(Venue, Protocol):
    """A Venue with its identity, its description of itself, and its pacing."""

    platform: str  # the platform id (runtimes/core/platforms.py)
    broker: str  # what the protocol's events call the broker
    pacing: Pacing

    def capabilities(self) -> JsonDict:
        """The protocol's Capabilities object."""

    def status(self) -> JsonDict:
        """The protocol's ConnectionStatus (`connected`, `last_heartbeat`, `latency_ms`), plus
        whatever the provider can say of its connection."""

    def circuit_breakers(self) -> JsonDict: ...

    def next_due(self) -> float | None:
        """Seconds until the provider has something to do by itself (the next tick of a wall-
        clock market), or None when it only reacts (a backtest: the host drives it)."""

    def advance(self, now: datetime) -> None:
        """Move the market to `now` (wall-clock providers): what happened is then drained."""

    def snapshot(self) -> JsonDict:
        """What another host needs to carry the session on after this one died (JSON). Broker
        providers hold little: the broker is the record; the `mock` market holds its book."""

    def close(self) -> None:
        """Release connections and threads; idempotent."""


Wake = Callable[[], None]  # a provider fed from another thread calls it to wake its host


class ProviderFactory(Protocol):
    def __call__(self, settings: ProviderSettings, *, wake: Wake) -> Provider: ...


class ProviderSettings(Protocol):
    """What a factory is given to build one session's provider (the host reads it from the
    session row; nothing here knows the row)."""

    # Read-only members, so that a frozen dataclass (runtimes/hosting/provision.py) is one.

    @property
    def platform(self) -> str: ...

    @property
    def symbols(self) -> tuple[str, ...]: ...

    @property
    def timeframes(self) -> tuple[str, ...]:
        """The stream's timeframes, the session's own first."""

    @property
    def initial_cash(self) -> Decimal: ...

    @property
    def options(self) -> Mapping[str, Any]:
        """Platform-specific: seed, spreads, dataset paths, credentials."""

    @property
    def restored(self) -> JsonDict | None:
        """A previous host's snapshot when this host takes a session over."""

    @property
    def broker_access(self) -> BrokerAccess | None:
        """A broker platform's connection (keys, URLs), shared request budget and health sink;
        None for platforms without a broker (backtest, mock)."""

    @property
    def session_id(self) -> str:
        """A stable id of the session ("" when there is none, as in tests): a provider may
        derive defaults from it that differ between sessions (the mock market's tick phase)."""
