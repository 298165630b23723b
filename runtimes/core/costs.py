"""Trading costs of the simulated exchange: commission models, slippage, platform presets.

All amounts are exact `Decimal` arithmetic (no rounding), so the same fills always cost the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from runtimes.core.domain import Side

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)
HUNDRED: Final = Decimal(100)
BPS: Final = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class Commission:
    """Commission per fill: `percent` of notional + `per_share` x quantity + `fixed`.

    A fill that costs anything costs at least `minimum`. `percent` is in percent (0.1 = 0.1 %).
    """

    percent: Decimal = ZERO
    per_share: Decimal = ZERO
    fixed: Decimal = ZERO
    minimum: Decimal = ZERO
    currency: str = "USD"

    def __post_init__(self) -> None:
        for name in ("percent", "per_share", "fixed", "minimum"):
            if getattr(self, name) < 0:
                raise ValueError(f"commission {name} must not be negative")

    @property
    def is_free(self) -> bool:
        return not (self.percent or self.per_share or self.fixed or self.minimum)

    def fee(self, quantity: Decimal, price: Decimal) -> Decimal:
        """The commission of one fill of `quantity` at `price`."""
        if self.is_free:
            return ZERO
        raw = quantity * price * self.percent / HUNDRED + quantity * self.per_share + self.fixed
        return max(raw, self.minimum)

    def describe(self) -> dict[str, str]:
        return {
            "percent_of_notional": str(self.percent),
            "per_share": str(self.per_share),
            "fixed_per_fill": str(self.fixed),
            "minimum_per_fill": str(self.minimum),
            "currency": self.currency,
        }


@dataclass(frozen=True, slots=True)
class PlatformPreset:
    """Defaults that make a backtest resemble one live platform."""

    name: str
    commission: Commission
    currency: str
    day_session_timezone: str


PLATFORM_PRESETS: Final[dict[str, PlatformPreset]] = {
    # Alpaca charges no commission on US equities; DAY means the New York trading day.
    "alpaca": PlatformPreset(
        name="alpaca",
        commission=Commission(currency="USD"),
        currency="USD",
        day_session_timezone="America/New_York",
    ),
    # Binance spot: 0.1 % of notional (the base rate without BNB discount), a UTC day.
    "binance": PlatformPreset(
        name="binance",
        commission=Commission(percent=Decimal("0.1"), currency="USDT"),
        currency="USDT",
        day_session_timezone="UTC",
    ),
}


def preset(name: str) -> PlatformPreset:
    """The preset called `name`; raises KeyError with the known names otherwise."""
    try:
        return PLATFORM_PRESETS[name]
    except KeyError:
        known = sorted(PLATFORM_PRESETS)
        raise KeyError(f"unknown platform preset {name!r}; known: {known}") from None


def apply_slippage(price: Decimal, side: Side, bps: Decimal) -> Decimal:
    """`price` moved `bps` basis points against the taker: up for buys, down for sells."""
    if not bps:
        return price
    factor = ONE + bps / BPS if side is Side.BUY else ONE - bps / BPS
    return price * factor
