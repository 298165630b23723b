"""The `binance-testnet` and `binance-live` platforms: spot crypto on a Binance account through
python-binance, behind the Trading API (docs/binance.md).

`build` is both platforms' provider factory (runtimes/providers/registry.py): the session's
BrokerConnection, the account's order budget, the IP's request-weight SharedBudget and the
HealthSink come in `settings.broker_access`.
"""

from runtimes.providers.binance.build import build
from runtimes.providers.binance.provider import BinanceProvider

__all__ = ["BinanceProvider", "build"]
