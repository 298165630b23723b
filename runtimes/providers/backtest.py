"""The `backtest` provider: the engine over one session's dataset, in ack-gated simulated time.

It is the BacktestEngine itself with the provider's identity and self-description added (a
subclass, not a wrapper: the host's per-bar path calls the engine with no extra hop, so the seam
costs a backtest nothing). Framework-free: the host's settings builder (runtimes/hosting) reads
the session row and the dataset's file paths; this module only reads those files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from runtimes.core import wire
from runtimes.core.costs import Commission
from runtimes.core.datasets import load_market_data
from runtimes.core.engine import BacktestConfig, BacktestEngine
from runtimes.core.market_data import MarketData
from runtimes.core.platforms import BACKTEST
from runtimes.core.provider import JsonDict, Pacing, Provider, ProviderSettings, Wake

CAPABILITIES: Final[JsonDict] = {
    "supported_asset_classes": ["CRYPTO", "STOCK"],
    "supported_order_types": ["MARKET", "LIMIT", "STOP", "STOP_LIMIT", "TRAILING_STOP"],
    "position_mode": "NETTING",
    "features": ["bracket_orders", "oco_orders", "client_order_id_idempotency", "event_ack",
                 "notional_orders"],
    "max_leverage": "1",
}
CIRCUIT_BREAKERS: Final[JsonDict] = {
    "adapter": {"state": "closed", "failure_count": 0},
    "exit_order": {"state": "closed", "failure_count": 0},
}


@dataclass(frozen=True, slots=True)
class BacktestSettings:
    """A ProviderSettings for a backtest. `options`: `paths` {symbol: file path} (required),
    `start`/`end` (tz-aware datetimes or None), `commission` {field: decimal string},
    `slippage_bps` (decimal string), `bar_cache` (a BarCache of parsed files, or None)."""

    symbols: tuple[str, ...]
    timeframes: tuple[str, ...]
    initial_cash: Decimal
    options: Mapping[str, Any] = field(default_factory=dict)
    restored: JsonDict | None = None
    platform: str = BACKTEST
    session_id: str = ""


class BacktestProvider(BacktestEngine):
    """A backtest as a Provider: SIMULATED pacing, so the host drives it with `next_batch()`."""

    platform = BACKTEST
    broker = BACKTEST
    pacing = Pacing.SIMULATED

    def capabilities(self) -> JsonDict:
        return CAPABILITIES

    def status(self) -> JsonDict:
        # Simulated time is the backtest's heartbeat: it is what "now" means to the strategy.
        return {"connected": True, "last_heartbeat": wire.timestamp_str(self.now),
                "latency_ms": 0}

    def circuit_breakers(self) -> JsonDict:
        return CIRCUIT_BREAKERS

    def next_due(self) -> float | None:
        return None  # time moves only when the host asks for the next batch

    def advance(self, now: datetime) -> None:
        """Nothing: a backtest's time is not the wall clock's."""

    def snapshot(self) -> JsonDict:
        # A backtest is rerun rather than carried on: its dataset is its record.
        return {"steps_done": self.steps_done}

    def close(self) -> None:
        """Nothing to release: the data is in memory."""


def build(settings: ProviderSettings, *, wake: Wake) -> Provider:
    """The registry's factory (runtimes/providers/registry.py). Raises DatasetError, ValueError
    or OSError for data that cannot be read."""
    return build_backtest(settings)


def build_backtest(settings: ProviderSettings) -> BacktestProvider:
    """The engine over the dataset files in `settings.options["paths"]`, restricted to the
    session's symbols and its [start, end] period, in its first timeframe."""
    options = settings.options
    paths = {s: p for s, p in dict(options["paths"]).items() if s in settings.symbols}
    data: MarketData = load_market_data(paths, timeframe=settings.timeframes[0],
                                        cache=options.get("bar_cache"))
    data = data.slice(options.get("start"), options.get("end"))
    rates: dict[str, Any] = {k: Decimal(v) for k, v in
                             dict(options.get("commission") or {}).items()}
    commission = Commission(**rates)
    config = BacktestConfig(
        initial_cash=settings.initial_cash,
        commission=commission,
        slippage_bps=Decimal(options.get("slippage_bps") or 0),
    )
    return BacktestProvider(data, config)
