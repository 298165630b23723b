"""A broker connection as a provider sees it: the keys, where the broker is, the request budget it
shares with every other session on the same connection, and where it reports its health.

A workspace's connection is a BrokerCredential row (accounts/models.py), sealed at rest; the
host reveals it only to build the provider (runtimes/hosting/provision.py), and it never
reaches a strategy, a log line, an event or an error. `BrokerConnection.__repr__` and `str`
show the last four characters of the key id and nothing of the secret, so that a traceback
or a debug log of the settings cannot leak it.

Framework-free: the budget and the health sink are injected (in process when embedded, Redis
and the database in production: runtimes/hosting/brokers.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

JsonDict = dict[str, Any]

# The URL keys of `BrokerConnection.urls`, per broker family. Production, testnet and the
# offline fakes differ only in these (settings BROKER_URLS, runtimes/hosting/brokers.py).
ALPACA_URL_KEYS: Final = ("trading", "data", "trading_stream", "data_stream")
# trading:        REST base, no trailing slash, no /v2 ("https://paper-api.alpaca.markets")
# data:           market data REST base ("https://data.alpaca.markets")
# trading_stream: the full trade_updates URL ("wss://paper-api.alpaca.markets/stream")
# data_stream:    the stock data stream base without the feed ("wss://stream.data.alpaca.markets/v2");
#                 the provider appends "/" + the connection's feed ("iex" or "sip")

BINANCE_URL_KEYS: Final = ("api", "ws_api", "stream")
# api:    REST base including /api ("https://api.binance.com/api"); the SDK appends /v3/<path>
# ws_api: the WebSocket API ("wss://ws-api.binance.com:443/ws-api/v3"): the user data stream
# stream: market streams base with a trailing slash ("wss://stream.binance.com:9443/")

STREAM_CONNECTED: Final = "connected"
STREAM_RECONNECTING: Final = "reconnecting"
STREAM_FAILED: Final = "failed"  # given up, or the keys were refused
STREAM_STOPPED: Final = "stopped"


class ConnectionRejected(Exception):
    """The broker refused the keys, or could not be reached to check them. The message is a
    plain sentence for the person who typed the keys, and never carries any part of them."""


@dataclass(frozen=True, slots=True)
class BrokerConnection:
    """One workspace's keys for one platform (`alpaca-paper`, `binance-live`, ...)."""

    id: str  # the BrokerCredential's id: the key of the shared budget and of the health row
    platform: str  # a platform id of runtimes/core/platforms.py
    key_id: str
    secret: str = field(repr=False)
    urls: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)  # not secret: e.g. {"feed": "iex"}

    @property
    def key_hint(self) -> str:
        """What may be shown of the key: its last four characters."""
        return f"…{self.key_id[-4:]}"

    def __repr__(self) -> str:
        return f"<BrokerConnection {self.id} {self.platform} {self.key_hint}>"

    __str__ = __repr__


class RateBudget(Protocol):
    """The broker's request budget of one connection (Alpaca: per account, about 200 requests a
    minute), shared by every session that uses the connection, in every process."""

    def acquire(self, cost: int = 1) -> float:
        """Spend `cost` requests now: 0.0 when granted; else the seconds until they could be
        (nothing is spent, the caller refuses the request with RATE_LIMITED)."""

    def observe(self, *, limit: int | None, remaining: int | None,
                reset_at: float | None) -> None:
        """What the broker's response headers said (X-RateLimit-*; reset as epoch seconds):
        the broker is the authority when it counts more than we did."""

    def blocked_for(self, seconds: float) -> None:
        """The broker answered 429 with Retry-After: no request until then, from any session."""

    def remaining(self) -> int | None:
        """Requests left in the current window (None before anything is known)."""

    def reset_at(self) -> float | None:
        """When the window resets (epoch seconds), or None."""


class SharedBudget(RateBudget, Protocol):
    """A budget several connections share, counted per IP by the broker (Binance's request
    weight: every tenant on a worker spends one budget; the implementation gives each
    workspace a fair share of it). `acquire` refuses while a ban holds."""

    def ban(self, seconds: float, reason: str) -> None:
        """The broker banned the IP (Binance 418 with Retry-After): every session of every
        connection on it stops calling until then."""

    def banned_until(self) -> float | None:
        """When the current ban ends (epoch seconds), or None."""


@dataclass(frozen=True, slots=True)
class ConnectionHealth:
    """What a provider knows of its connection, for the dashboard and `/v1/status`."""

    last_success_at: datetime | None = None  # the last broker call that succeeded
    rate_limit_remaining: int | None = None
    rate_limit_reset_at: datetime | None = None
    streams: Mapping[str, str] = field(default_factory=dict)  # name -> STREAM_* state
    market_open: bool | None = None
    last_error: str | None = None  # a plain sentence, never a secret
    circuit_breaker: str = "closed"  # "open" while broker calls are refused
    clock_offset_ms: int | None = None  # broker time minus ours (Binance), as last measured
    banned_until: datetime | None = None  # the broker banned this IP until then (Binance 418)

    def as_json(self) -> JsonDict:
        def stamp(moment: datetime | None) -> str | None:
            return None if moment is None else moment.isoformat().replace("+00:00", "Z")

        return {
            "last_success_at": stamp(self.last_success_at),
            "rate_limit_remaining": self.rate_limit_remaining,
            "rate_limit_reset_at": stamp(self.rate_limit_reset_at),
            "streams": dict(self.streams),
            "market_open": self.market_open,
            "last_error": self.last_error,
            "circuit_breaker": self.circuit_breaker,
            "clock_offset_ms": self.clock_offset_ms,
            "banned_until": stamp(self.banned_until),
        }


class HealthSink(Protocol):
    def report(self, health: ConnectionHealth) -> None:
        """Called by the provider whenever its health changes (cheap; the sink throttles)."""


@dataclass(frozen=True, slots=True)
class BrokerAccess:
    """Everything a broker provider is given besides the session's own settings."""

    connection: BrokerConnection
    budget: RateBudget  # the account's (Alpaca: requests; Binance: orders)
    health: HealthSink
    shared: SharedBudget | None = None  # the IP's (Binance request weight), None for Alpaca
