"""The platforms a session can run on: one registry, framework-free.

Everything that varies by platform and is not the provider's code reads it from here: the label
shown to people, whether real money is at stake, the API-key scope a strategy needs to trade on
it, how time moves, and the cost preset that makes a backtest resemble it. The provider
factories live beside the providers (runtimes/providers/); `available` says whether this build
has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from runtimes.core.provider import Pacing

SCOPE_TRADE_PAPER: Final = "trade:paper"  # the same strings as accounts' API-key scopes
SCOPE_TRADE_LIVE: Final = "trade:live"


@dataclass(frozen=True, slots=True)
class PlatformSpec:
    id: str
    label: str
    live: bool  # real money: needs SCOPE_TRADE_LIVE, an owner, a typed confirmation
    pacing: Pacing
    cost_preset: str | None  # runtimes/core/costs.py PLATFORM_PRESETS
    broker: str  # the family a broker connection belongs to ("" when none is needed)

    @property
    def scope(self) -> str:
        return SCOPE_TRADE_LIVE if self.live else SCOPE_TRADE_PAPER

    @property
    def needs_connection(self) -> bool:
        return bool(self.broker)


BACKTEST: Final = "backtest"
MOCK: Final = "mock"

PLATFORMS: Final[dict[str, PlatformSpec]] = {spec.id: spec for spec in (
    PlatformSpec(BACKTEST, "Backtest", False, Pacing.SIMULATED, None, ""),
    PlatformSpec(MOCK, "Mock market", False, Pacing.WALL_CLOCK, None, ""),
    PlatformSpec("alpaca-paper", "Alpaca (paper)", False, Pacing.WALL_CLOCK, "alpaca", "alpaca"),
    PlatformSpec("alpaca-live", "Alpaca (live)", True, Pacing.WALL_CLOCK, "alpaca", "alpaca"),
    PlatformSpec("binance-testnet", "Binance (testnet)", False, Pacing.WALL_CLOCK, "binance",
                 "binance"),
    PlatformSpec("binance-live", "Binance (live)", True, Pacing.WALL_CLOCK, "binance", "binance"),
)}


def platform(platform_id: str) -> PlatformSpec:
    """The spec of `platform_id`; raises KeyError naming the known ids otherwise."""
    try:
        return PLATFORMS[platform_id]
    except KeyError:
        raise KeyError(f"unknown platform {platform_id!r}; known: {sorted(PLATFORMS)}") from None


def choices() -> list[tuple[str, str]]:
    """(id, label) pairs, for model fields and forms."""
    return [(spec.id, spec.label) for spec in PLATFORMS.values()]
