"""A session's provider, built from its row: the settings a factory of the registry
(runtimes/providers/registry.py) is given, read from the TradingSession, its dataset and, on a
broker platform, its broker connection (runtimes/hosting/brokers.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from accounts.crypto import CredentialDecryptionError
from runtimes.core.connection import BrokerAccess
from runtimes.core.platforms import PLATFORMS
from runtimes.core.provider import JsonDict, Provider, Wake
from runtimes.hosting.brokers import broker_access_for
from runtimes.models import TradingSession
from runtimes.providers import registry
from strategies.services import bar_cache


@dataclass(frozen=True, slots=True)
class SessionProviderSettings:
    """A ProviderSettings (runtimes/core/provider.py) read from one session row."""

    platform: str
    symbols: tuple[str, ...]
    timeframes: tuple[str, ...]
    initial_cash: Decimal
    options: Mapping[str, Any] = field(default_factory=dict)
    restored: JsonDict | None = None
    session_id: str = ""
    broker_access: BrokerAccess | None = None


def settings_for(session: TradingSession) -> SessionProviderSettings:
    """The provider settings of `session`. A backtest's options carry its dataset's file paths,
    its period, its costs and the cache of parsed files; other platforms get the session's own
    `options`. A broker platform's session gets its connection (`broker_access`); ValueError
    when it has none (its keys were deleted), as for any settings a provider cannot use."""
    options: dict[str, Any] = dict(session.options or {})
    if session.dataset is not None:
        options.update(
            paths=session.dataset.paths(), start=session.start, end=session.end,
            commission=dict(session.commission or {}), slippage_bps=str(session.slippage_bps),
            bar_cache=bar_cache())
    timeframes = [session.timeframe,
                  *(t for t in session.timeframes or () if t != session.timeframe)]
    return SessionProviderSettings(
        platform=session.platform,
        symbols=tuple(session.symbols),
        timeframes=tuple(timeframes),
        initial_cash=Decimal(session.initial_cash),
        options=options,
        restored=session.provider_state,
        session_id=str(session.id),
        broker_access=_broker_access(session),
    )


def _broker_access(session: TradingSession) -> BrokerAccess | None:
    spec = PLATFORMS.get(session.platform)
    if spec is None or not spec.needs_connection:
        return None
    if session.connection is None:
        raise ValueError(f"{spec.label} needs a broker connection and this session has none "
                         "(was it deleted?)")
    try:
        return broker_access_for(session.connection)
    except CredentialDecryptionError:
        raise ValueError(f"the keys of the connection {session.connection.label!r} cannot be "
                         "decrypted here (CREDENTIALS_ENCRYPTION_KEYS)") from None


def build_provider(session: TradingSession, *, wake: Wake) -> Provider:
    """The provider of `session`'s platform. Raises registry.ProviderUnavailable when this build
    has none; whatever the factory raises for settings it cannot use (DatasetError, ValueError,
    OSError for a backtest's data)."""
    return registry.factory(session.platform)(settings_for(session), wake=wake)
