"""Broker connections as the host hands them to providers: where each broker is (settings
BROKER_URLS), the keys (revealed here and nowhere else), the request budget every session on one
connection shares, and the health sink that keeps the connection's row up to date.

Also the table of broker families: the fields a connection of each family asks for and the
function that checks its keys on save (runtimes/credentials.py).

Binance counts request weight per IP, so its connections are also given the SharedBudget of the
address the workers call from (runtimes/hosting/shared_budget.py): one set of counters per IP
scope (settings BINANCE_IP_SCOPE and Binance's host), viewed by each workspace for its fair share.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import import_module
from typing import Any, Final
from urllib.parse import urlsplit

from django.conf import settings

from accounts.crypto import reveal_credential
from accounts.models import BrokerCredential
from runtimes.core.connection import (
    BrokerAccess,
    BrokerConnection,
    ConnectionHealth,
    RateBudget,
    SharedBudget,
)
from runtimes.core.platforms import PLATFORMS
from runtimes.core.rate_budget import local_budget

HEALTH_WRITE_INTERVAL_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class BrokerFamily:
    """What a connection of one broker family is made of."""

    label: str
    key_id_label: str
    secret_label: str
    # Non-secret options: name -> (allowed values, default, label for people).
    options: dict[str, tuple[tuple[str, ...], str, str]]
    validator: str  # "module:function", (BrokerConnection, *, timeout) -> account summary
    rate_limit_setting: str  # the settings name of its per-account budget (requests or orders)
    rate_window_seconds: float = 60.0  # ... counted over this window
    # The settings names of the per-IP budget's limit a minute and fair-share floor ("": none).
    shared_limit_setting: str = ""
    shared_floor_setting: str = ""


FAMILIES: Final[dict[str, BrokerFamily]] = {
    "alpaca": BrokerFamily(
        label="Alpaca", key_id_label="API key id",
        secret_label="API secret key",  # noqa: S106  (a field label, not a password)
        options={"feed": (("iex", "sip"), "iex", "Market data feed")},
        validator="runtimes.providers.alpaca.connect:validate",
        rate_limit_setting="ALPACA_RATE_LIMIT_PER_MINUTE"),
    "binance": BrokerFamily(
        label="Binance", key_id_label="API key",
        secret_label="Secret key (HMAC) or private key (Ed25519, PEM)",  # noqa: S106
        # Binance's key kinds that python-binance signs with (RSA keys are not offered: an
        # Ed25519 key is the one Binance recommends besides HMAC). Not secret: which signature.
        options={"key_type": (("hmac", "ed25519"), "hmac", "Key type")},
        validator="runtimes.providers.binance.connect:validate",
        rate_limit_setting="BINANCE_ORDER_LIMIT_PER_10S", rate_window_seconds=10.0,
        shared_limit_setting="BINANCE_WEIGHT_LIMIT_PER_MINUTE",
        shared_floor_setting="BINANCE_WEIGHT_FAIR_SHARE_FLOOR"),
}


def family_of(platform_id: str) -> BrokerFamily | None:
    """The family of a broker platform that this build can connect to, or None."""
    spec = PLATFORMS.get(platform_id)
    return None if spec is None else FAMILIES.get(spec.broker)


def validator_for(platform_id: str) -> Callable[..., dict[str, Any]]:
    """The function that checks keys of `platform_id` (KeyError for a family without one)."""
    family = family_of(platform_id)
    if family is None:
        raise KeyError(platform_id)
    module_name, _, attribute = family.validator.partition(":")
    validate: Callable[..., dict[str, Any]] = getattr(
        import_module(module_name), attribute)
    return validate


def urls_for(platform_id: str) -> dict[str, str]:
    """Where `platform_id`'s broker is (settings BROKER_URLS; {} for one without)."""
    return dict(settings.BROKER_URLS.get(platform_id, {}))


def unsaved_connection(*, platform: str, key_id: str, secret: str,
                       options: dict[str, Any]) -> BrokerConnection:
    """A connection for keys not stored yet (to check them on save)."""
    return BrokerConnection(id="unsaved", platform=platform, key_id=key_id, secret=secret,
                            urls=urls_for(platform), options=dict(options))


def connection_of(credential: BrokerCredential) -> BrokerConnection:
    """The connection of a stored credential, its secret revealed: for a provider only."""
    secret = reveal_credential(credential)
    return BrokerConnection(
        id=str(credential.pk), platform=credential.platform, key_id=secret["key_id"],
        secret=secret["secret"], urls=urls_for(credential.platform),
        options=dict(credential.options or {}))


def budget_for(credential: BrokerCredential) -> RateBudget:
    """The request budget every session on `credential` shares (Binance: its order budget): in
    Redis when the platform runs on Redis (as the session bus decides: REDIS_URL), else in this
    process."""
    family = family_of(credential.platform)
    limit = int(getattr(settings, family.rate_limit_setting)) if family else 200
    window = family.rate_window_seconds if family else 60.0
    if settings.REDIS_URL:
        from runtimes.hosting.budget_redis import RedisBudget

        return RedisBudget(_redis_client(), str(credential.pk), limit=limit,
                           window_seconds=window)
    return local_budget(str(credential.pk), limit=limit, window_seconds=window)


def ip_scope_of(platform_id: str) -> str:
    """The counters a platform's per-IP budget is kept in: the address the workers call from
    (settings BINANCE_IP_SCOPE) and the broker host they call (testnet and live count apart)."""
    host = urlsplit(urls_for(platform_id).get("api", "")).netloc or platform_id
    return f"{settings.BINANCE_IP_SCOPE}:{host}"


def shared_budget_for(credential: BrokerCredential) -> SharedBudget | None:
    """The per-IP budget `credential`'s sessions spend, as its workspace's fair share of it (None
    for a family without one: Alpaca). In Redis with REDIS_URL, else in this process."""
    return shared_budget_of(credential.platform, str(credential.workspace_id))


def shared_budget_of(platform: str, workspace_id: str) -> SharedBudget | None:
    """The per-IP budget of `platform`'s sessions, as workspace `workspace_id`'s fair share of it
    (None for a family without one)."""
    family = family_of(platform)
    if family is None or not family.shared_limit_setting:
        return None
    scope = ip_scope_of(platform)
    limit = int(getattr(settings, family.shared_limit_setting))
    floor = int(getattr(settings, family.shared_floor_setting))
    if settings.REDIS_URL:
        from runtimes.hosting.shared_budget import RedisSharedBudget

        return RedisSharedBudget(_redis_client(), scope, workspace_id, limit=limit, floor=floor)
    from runtimes.hosting.shared_budget import local_shared_budget

    return local_shared_budget(scope, workspace_id, limit=limit, floor=floor)


_redis: Any = None
_redis_lock = threading.Lock()


def _redis_client() -> Any:
    global _redis
    with _redis_lock:
        if _redis is None:
            import redis

            _redis = redis.Redis.from_url(settings.REDIS_URL)
        return _redis


def broker_access_for(credential: BrokerCredential) -> BrokerAccess:
    """Everything a provider on `credential` is given: the connection, the shared budget and a
    health sink writing to the credential's row."""
    return BrokerAccess(connection=connection_of(credential), budget=budget_for(credential),
                        health=DatabaseHealthSink(str(credential.pk)),
                        shared=shared_budget_for(credential))


class DatabaseHealthSink:
    """HealthSink writing a connection's health onto its row: at once when a stream's state or
    the circuit breaker changes (what people look for), else at most every
    `interval` seconds (a provider reports on every call). Thread-safe: SDK threads report too."""

    def __init__(self, credential_id: str, *, interval: float = HEALTH_WRITE_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.credential_id = credential_id
        self.interval = interval
        self.clock = clock
        self.now = now
        self._lock = threading.Lock()
        self._written: ConnectionHealth | None = None
        self._written_at = 0.0

    def report(self, health: ConnectionHealth) -> None:
        with self._lock:
            if not self._due(health):
                return
            self._written, self._written_at = health, self.clock()
        # By id alone, as the host that revealed this very row's keys: no tenant is crossed.
        BrokerCredential.objects.filter(pk=self.credential_id).update(
            health=health.as_json(), health_at=self.now())

    def _due(self, health: ConnectionHealth) -> bool:
        last = self._written
        if last is None or dict(last.streams) != dict(health.streams):
            return True
        if (last.circuit_breaker, last.banned_until) != (health.circuit_breaker,
                                                          health.banned_until):
            return True
        return self.clock() - self._written_at >= self.interval and last != health
