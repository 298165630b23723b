"""Building one session's AlpacaProvider: the REST client, the market data, the streams, and,
for a session taken over, the reconcile that must finish before the host accepts an order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Final

from runtimes.core.provider import ProviderFactory, ProviderSettings, Wake
from runtimes.providers.alpaca.provider import BROKER, AlpacaProvider
from runtimes.providers.alpaca.rest import AlpacaRest

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
        provider.refresh_clock()
        if restored:
            provider.restore(restored)
        provider.expect_first_connect()
        provider.streams = AlpacaStreams(connection, provider, market, symbols=settings.symbols)
        provider.streams.start()
    except BaseException:
        provider.close()
        raise
    return provider


def session_prefix(session_id: str) -> str:
    """"pty-" + 8 characters of the session id + "-": the session's client_order_ids at Alpaca
    start with it (a random one for a session without an id: tests)."""
    token = session_id.replace("-", "")[:8] or uuid.uuid4().hex[:8]
    return f"{PREFIX_HEAD}{token}-"


_CHECKED: ProviderFactory = build  # mypy proves here that `build` makes a Provider
