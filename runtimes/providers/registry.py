"""Which provider runs each platform: platform id -> factory, resolved lazily by import string.

A platform of the registry (runtimes/core/platforms.py) without an entry here has no provider in
this build: sessions on it are refused at creation. An entry whose module is missing (a provider
not merged yet) fails the session at start with the reason, never silently as a backtest.
Framework-free.
"""

from __future__ import annotations

from importlib import import_module
from typing import Final

from runtimes.core.platforms import BACKTEST, MOCK, PLATFORMS
from runtimes.core.provider import ProviderFactory

FACTORIES: Final[dict[str, str]] = {
    BACKTEST: "runtimes.providers.backtest:build",
    MOCK: "runtimes.providers.mock:build",
    "alpaca-paper": "runtimes.providers.alpaca:build",
    "alpaca-live": "runtimes.providers.alpaca:build",
    "binance-testnet": "runtimes.providers.binance:build",
    "binance-live": "runtimes.providers.binance:build",
}


class ProviderUnavailable(LookupError):
    """No provider can be built for a platform in this build; the message says why."""


def available() -> list[str]:
    """The platform ids this build has a provider for, in the registry's order."""
    return [platform_id for platform_id in PLATFORMS if platform_id in FACTORIES]


def factory(platform_id: str) -> ProviderFactory:
    """The factory of `platform_id`'s provider. Raises ProviderUnavailable for a platform
    without a provider here, or whose provider module cannot be imported."""
    target = FACTORIES.get(platform_id)
    if target is None:
        raise ProviderUnavailable(f"no provider for platform {platform_id!r} in this build; "
                                  f"available: {', '.join(available())}")
    module_name, _, attribute = target.partition(":")
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module_name == exc.name
                                    or module_name.startswith(exc.name + ".")):
            raise  # the provider's own import failed: a bug to see, not a missing provider
        raise ProviderUnavailable(f"the {platform_id} provider is not installed in this build "
                                  f"({module_name})") from None
    built: ProviderFactory = getattr(module, attribute)
    return built
