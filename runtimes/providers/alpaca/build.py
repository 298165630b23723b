"""Building one session's AlpacaProvider: the REST client, the market data, the streams, and,
for a session taken over, the reconcile that must finish before the host accepts an order."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Final

from runtimes.core.connection import ConnectionRejected
from runtimes.core.errors import BrokerUnavailable, RateLimited
from runtimes.core.provider import ProviderFactory, ProviderSettings, Wake
from runtimes.providers.alpaca.provider import BROKER, AlpacaProvider
from runtimes.providers.alpaca.rest import AlpacaError, AlpacaRest

log = logging.getLogger(__name__)

PREFIX_HEAD: Final = "pty-"


def build(settings: ProviderSettings, *, wake: Wake) -> AlpacaProvider:
    """The provider of an `alpaca-paper` or `alpaca-live` session. Raises ValueError without a
    broker connection, and what the broker raises when it cannot be reached (BrokerUnavailable):
    a session taken over must not start before it has reconciled."""
    from runtimes.providers.alpaca.market_data import AlpacaMarketData
    from runtimes.providers.alpaca.streams import AlpacaStreams

    access = settings.broker_access
    if access is None:
        raise ValueError(f"{settings.platform} needs a broker connection")
    connection = access.connection
    restored = settings.restored
    prefix = str(restored["prefix"]) if restored else session_prefix(settings.session_id)
    market = AlpacaMarketData(connection, symbols=settings.symbols,
                              timeframes=settings.timeframes, broker=BROKER,
                              budget=access.budget, clock=lambda: datetime.now(UTC), wake=wake)
    provider = AlpacaProvider(platform=settings.platform, connection=connection,
                              rest=AlpacaRest(connection, access.budget, broker=BROKER),
                              market=market, health=access.health, prefix=prefix, wake=wake)
    try:
        _first_clock(provider, restored=bool(restored))
        if restored:
            provider.restore(restored)
        provider.expect_first_connect()
        provider.streams = AlpacaStreams(connection, provider, market, symbols=settings.symbols)
        provider.streams.start()
    except BaseException:
        provider.close()
        raise
    return provider


def _first_clock(provider: AlpacaProvider, *, restored: bool) -> None:
    """The first call: keys Alpaca refuses fail the session with a plain sentence; a busy or
    unreachable Alpaca fails only a session taken over (it must reconcile first); a new one
    starts and reads the clock again in a few seconds."""
    try:
        provider.refresh_clock()
    except AlpacaError as error:
        raise ConnectionRejected(
            f"Alpaca refused the connection ({error.status}: {error.message}); check its keys"
        ) from None
    except (BrokerUnavailable, RateLimited) as error:
        if restored:
            raise
        log.warning("alpaca: the market clock could not be read at start: %s", error.code)


def session_prefix(session_id: str) -> str:
    """"pty-" + 8 characters of the session id + "-": the session's client_order_ids at Alpaca
    start with it (a random one for a session without an id: tests)."""
    token = session_id.replace("-", "")[:8] or uuid.uuid4().hex[:8]
    return f"{PREFIX_HEAD}{token}-"


_CHECKED: ProviderFactory = build  # mypy proves here that `build` makes a Provider
