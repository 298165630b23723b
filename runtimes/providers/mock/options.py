"""Options of the `mock` market, validated and bounded: what the management API may be given.

`parse_options` turns a session's settings into a `MockConfig` or raises ValueError whose message
starts with the option's name (`option 'spread_bps': ...`), so the API can answer 400 with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from runtimes.core.costs import Commission, preset
from runtimes.core.timeframes import TimeframeError, parse_timeframe, timeframe_seconds

DEFAULT_SYMBOLS: Final = ("AAPL", "MSFT", "BTCUSDT")
DEFAULT_TIMEFRAMES: Final = ("1m",)
MAX_SYMBOLS: Final = 20
SYMBOL_PATTERN: Final = re.compile(r"^[A-Z0-9][A-Z0-9._/-]{0,19}$")
MAX_SEED: Final = 2**63 - 1
QUOTE_INTERVAL_MS: Final = (50, 1000)  # market orders must fill within a second
MAX_SPREAD_BPS: Final = Decimal(500)
MAX_SLIPPAGE_BPS: Final = Decimal(500)
MAX_VOLATILITY: Final = Decimal(5)  # annualised, as a fraction (5 = 500 %)
MAX_INITIAL_CASH: Final = Decimal(10) ** 12
MAX_COMMISSION: Final = Decimal(1_000)
KNOWN_OPTIONS: Final = frozenset(
    {
        "seed",
        "symbols",
        "quote_interval_ms",
        "tick_phase_ms",
        "spread_bps",
        "slippage_bps",
        "commission",
        "volatility",
        "initial_cash",
    }
)
COMMISSION_FIELDS: Final = ("percent", "per_share", "fixed", "minimum")


@dataclass(frozen=True, slots=True)
class MockConfig:
    """One mock market's settings, all checked."""

    seed: int = 0
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    timeframes: tuple[str, ...] = DEFAULT_TIMEFRAMES
    quote_interval_ms: int = 250
    # Where in each interval the ticks fall (ms after a multiple of the interval since the
    # epoch): markets on one host tick at different instants rather than all in one burst.
    tick_phase_ms: int = 0
    spread_bps: Decimal = Decimal(2)
    slippage_bps: Decimal = Decimal(0)
    commission: Commission = field(default_factory=Commission)
    volatility: Decimal = Decimal("0.8")
    initial_cash: Decimal = Decimal(100_000)


def parse_options(
    options: Mapping[str, Any],
    *,
    symbols: Sequence[str] = (),
    timeframes: Sequence[str] = (),
    initial_cash: Decimal | None = None,
) -> MockConfig:
    """The MockConfig of a session: `options` (platform-specific), then the session's own
    symbols, timeframes and cash. options['symbols'] wins over `symbols`; options['initial_cash']
    over `initial_cash`. Raises ValueError naming the first bad option."""
    unknown = sorted(set(options) - KNOWN_OPTIONS)
    if unknown:
        raise ValueError(
            f"option {unknown[0]!r}: unknown; known: {', '.join(sorted(KNOWN_OPTIONS))}"
        )
    base = MockConfig()
    cash = options.get("initial_cash", initial_cash)
    return replace(
        base,
        seed=_int("seed", options.get("seed", base.seed), 0, MAX_SEED),
        symbols=_symbols(options.get("symbols", symbols or base.symbols)),
        timeframes=_timeframes(timeframes or base.timeframes),
        quote_interval_ms=_int(
            "quote_interval_ms", options.get("quote_interval_ms", 250), *QUOTE_INTERVAL_MS
        ),
        tick_phase_ms=_int("tick_phase_ms", options.get("tick_phase_ms", 0), 0,
                           QUOTE_INTERVAL_MS[1] - 1),
        spread_bps=_decimal("spread_bps", options.get("spread_bps", 2), MAX_SPREAD_BPS, zero=False),
        slippage_bps=_decimal("slippage_bps", options.get("slippage_bps", 0), MAX_SLIPPAGE_BPS),
        commission=_commission(options.get("commission")),
        volatility=_decimal(
            "volatility", options.get("volatility", "0.8"), MAX_VOLATILITY, zero=False
        ),
        initial_cash=_decimal(
            "initial_cash", base.initial_cash if cash is None else cash, MAX_INITIAL_CASH
        ),
    )


def validate_options(options: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first bad option of `options` (for the management API)."""
    parse_options(options)


def _fail(name: str, problem: str) -> ValueError:
    return ValueError(f"option {name!r}: {problem}")


def _int(name: str, raw: Any, low: int, high: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise _fail(name, f"must be an integer, got {raw!r}")
    if not low <= raw <= high:
        raise _fail(name, f"must be between {low} and {high}, got {raw}")
    return raw


def _decimal(name: str, raw: Any, high: Decimal, *, zero: bool = True) -> Decimal:
    # floats are refused: 0.1 as a float is not 0.1, and money must be exact
    if isinstance(raw, bool) or not isinstance(raw, int | str | Decimal):
        raise _fail(name, f"must be a number as an integer or a string, got {raw!r}")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise _fail(name, f"must be a number, got {raw!r}") from None
    if not value.is_finite() or value < 0 or (not zero and value == 0) or value > high:
        low = "0" if zero else "more than 0"
        raise _fail(name, f"must be from {low} to {high}, got {raw!r}")
    return value


def _symbols(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str) or not isinstance(raw, Sequence) or not raw:
        raise _fail("symbols", "must be a non-empty list of symbols")
    if len(raw) > MAX_SYMBOLS:
        raise _fail("symbols", f"at most {MAX_SYMBOLS} symbols, got {len(raw)}")
    for symbol in raw:
        if not isinstance(symbol, str) or not SYMBOL_PATTERN.match(symbol):
            raise _fail("symbols", f"{symbol!r} is not a symbol (A-Z, 0-9, . _ / -; 1-20 chars)")
    if len(set(raw)) != len(raw):
        raise _fail("symbols", "must not repeat a symbol")
    return tuple(raw)


def _timeframes(raw: Sequence[str]) -> tuple[str, ...]:
    for name in raw:
        try:
            parse_timeframe(name)
        except TimeframeError as exc:
            raise _fail("timeframes", str(exc)) from None
        if timeframe_seconds(name) > 86_400:
            raise _fail("timeframes", f"{name} is longer than the mock market's 1d")
    if len(set(raw)) != len(raw):
        raise _fail("timeframes", "must not repeat a timeframe")
    return tuple(raw)


def _commission(raw: Any) -> Commission:
    """None (free), a preset name ('alpaca', 'binance'), or {percent, per_share, fixed, minimum};
    charged in the mock account's USD."""
    if raw is None or raw == "none":
        return Commission()
    if isinstance(raw, str):
        try:
            return replace(preset(raw).commission, currency="USD")
        except KeyError as exc:
            raise _fail("commission", str(exc.args[0])) from None
    if not isinstance(raw, Mapping):
        raise _fail("commission", f"must be a preset name or an object, got {raw!r}")
    extra = sorted(set(raw) - set(COMMISSION_FIELDS))
    if extra:
        raise _fail(
            "commission", f"unknown field {extra[0]!r}; known: {', '.join(COMMISSION_FIELDS)}"
        )
    values = {
        k: _decimal(f"commission.{k}", raw[k], MAX_COMMISSION)
        for k in COMMISSION_FIELDS
        if k in raw
    }
    return Commission(**values, currency="USD")
