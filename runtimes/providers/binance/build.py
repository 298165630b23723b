"""Building one session's BinanceProvider: the REST client, the clock offset, the exchange
filters, the balances, the market data and the streams, and, for a session taken over, the
reconcile that must finish before the host accepts an order."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Final

from runtimes.core.connection import ConnectionRejected
from runtimes.core.provider import ProviderFactory, ProviderSettings, Wake
from runtimes.providers.binance.mapping import normalise
from runtimes.providers.binance.provider import BinanceProvider
from runtimes.providers.binance.rest import BROKER, BinanceError, BinanceRest

log = logging.getLogger(__name__)

PREFIX_HEAD: Final = "pty"


def build(settings: ProviderSettings, *, wake: Wake) -> BinanceProvider:
    """The provider of a `binance-testnet` or `binance-live` session. Raises ValueError without
    a broker connection or its shared request-weight budget, ConnectionRejected when Binance
    refuses the keys, and what Binance raises when it cannot be reached (a session must know
    the clock offset and the filters before its first order)."""
    from runtimes.providers.binance.market_data import BinanceMarketData
    from runtimes.providers.binance.streams import BinanceStreams

    access = settings.broker_access
    if access is None or access.shared is None:
        raise ValueError(f"{settings.platform} needs a broker connection and the IP's "
                         "request-weight budget")
    connection = access.connection
    restored = settings.restored
    prefix = str(restored["prefix"]) if restored else session_prefix(settings.session_id)
    symbols = tuple(normalise(s) for s in settings.symbols)
    market = BinanceMarketData(connection, symbols=symbols, timeframes=settings.timeframes,
                               broker=BROKER, shared=access.shared,
                               clock=lambda: datetime.now(UTC), wake=wake)
    provider = BinanceProvider(platform=settings.platform, connection=connection,
                               rest=BinanceRest(connection, access.budget, access.shared),
                               market=market, health=access.health, prefix=prefix, wake=wake,
                               symbols=symbols)
    try:
        start(provider, restored=restored)
        streams = BinanceStreams(connection, provider, market, symbols=symbols,
                                 timeframes=settings.timeframes)
        provider.streams = streams
        streams.start()
    except BaseException:
        provider.close()
        raise
    return provider


def start(provider: BinanceProvider, *, restored: dict[str, object] | None) -> None:
    """The clock offset (GET time), the filters (exchangeInfo) and the balances (account, which
    checks the keys); a restored session reconciles before it takes an order."""
    try:
        provider.measure_clock()
        provider.load_rules()
        provider.refresh_balances()
    except BinanceError as error:
        raise ConnectionRejected(
            f"Binance refused the connection ({error.code}: {error.message}); check its keys"
        ) from None
    if restored:
        provider.restore(dict(restored))
    provider.expect_first_connect()


def session_prefix(session_id: str) -> str:
    """"pty" + 8 characters of the session id + "-" (12 characters of Binance's 36): the
    session's newClientOrderIds start with it (a random one for a session without an id)."""
    token = session_id.replace("-", "")[:8] or uuid.uuid4().hex[:8]
    return f"{PREFIX_HEAD}{token}-"


_CHECKED: ProviderFactory = build  # mypy proves here that `build` makes a Provider
