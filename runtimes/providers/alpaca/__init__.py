"""The `alpaca-paper` and `alpaca-live` platforms: US stocks on an Alpaca account through
alpaca-py, behind the Trading API (docs/alpaca.md).

`build` is both platforms' provider factory (runtimes/providers/registry.py): the session's
BrokerConnection, shared RateBudget and HealthSink come in `settings.broker_access`.
`connect.py` checks a connection's keys when it is saved.
"""

from runtimes.providers.alpaca.build import build
from runtimes.providers.alpaca.provider import AlpacaProvider

__all__ = ["AlpacaProvider", "build"]
