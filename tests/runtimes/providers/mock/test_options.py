"""Options of the mock market: defaults, bounds, and errors that name the option."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from runtimes.core.costs import Commission
from runtimes.providers.mock import MockConfig, parse_options, validate_options

D = Decimal


def test_defaults_give_three_symbols_at_250_ms_in_one_minute_bars() -> None:
    assert parse_options({}) == MockConfig(
        seed=0,
        symbols=("AAPL", "MSFT", "BTCUSDT"),
        timeframes=("1m",),
        quote_interval_ms=250,
        spread_bps=D(2),
        slippage_bps=D(0),
        commission=Commission(),
        volatility=D("0.8"),
        initial_cash=D(100_000),
    )


def test_the_session_gives_symbols_timeframes_and_cash_and_options_win() -> None:
    config = parse_options({}, symbols=("ETHUSDT",), timeframes=("5m", "1m"), initial_cash=D(500))
    assert (config.symbols, config.timeframes, config.initial_cash) == (
        ("ETHUSDT",),
        ("5m", "1m"),
        D(500),
    )
    config = parse_options({"symbols": ["SPY"], "initial_cash": "250.50"}, symbols=("ETHUSDT",))
    assert (config.symbols, config.initial_cash) == (("SPY",), D("250.50"))


def test_commission_is_a_preset_charged_in_usd_or_explicit_values() -> None:
    assert parse_options({"commission": "binance"}).commission == Commission(
        percent=D("0.1"), currency="USD"
    )
    assert parse_options({"commission": {"per_share": "0.005", "minimum": 1}}).commission == (
        Commission(per_share=D("0.005"), minimum=D(1), currency="USD")
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"colour": "red"}, "option 'colour': unknown"),
        ({"seed": -1}, "option 'seed': must be between 0 and"),
        ({"seed": "7"}, "option 'seed': must be an integer"),
        ({"seed": True}, "option 'seed': must be an integer"),
        ({"symbols": []}, "option 'symbols': must be a non-empty list"),
        ({"symbols": "AAPL"}, "option 'symbols': must be a non-empty list"),
        ({"symbols": ["aapl"]}, "option 'symbols': 'aapl' is not a symbol"),
        ({"symbols": ["AAPL", "AAPL"]}, "option 'symbols': must not repeat"),
        ({"symbols": [f"S{i}" for i in range(21)]}, "option 'symbols': at most 20"),
        ({"quote_interval_ms": 10}, "option 'quote_interval_ms': must be between 50 and 1000"),
        ({"quote_interval_ms": 1500}, "option 'quote_interval_ms': must be between 50 and 1000"),
        ({"spread_bps": "0"}, "option 'spread_bps': must be from more than 0 to 500"),
        ({"spread_bps": 0.5}, "option 'spread_bps': must be a number as an integer or a string"),
        ({"slippage_bps": "-1"}, "option 'slippage_bps': must be from 0 to 500"),
        ({"slippage_bps": "NaN"}, "option 'slippage_bps': must be from 0 to 500"),
        ({"volatility": "6"}, "option 'volatility': must be from more than 0 to 5"),
        ({"volatility": "x"}, "option 'volatility': must be a number"),
        ({"initial_cash": "-5"}, "option 'initial_cash': must be from 0 to"),
        ({"commission": "ibkr"}, "option 'commission': unknown platform preset 'ibkr'"),
        ({"commission": {"percent": "-1"}}, "option 'commission.percent': must be from 0"),
        ({"commission": {"rebate": "1"}}, "option 'commission': unknown field 'rebate'"),
        ({"commission": 3}, "option 'commission': must be a preset name or an object"),
    ],
)
def test_a_bad_option_raises_value_error_naming_it(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        validate_options(options)


def test_bad_session_timeframes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^option 'timeframes': unknown timeframe '7m'"):
        parse_options({}, timeframes=("7m",))
    with pytest.raises(ValueError, match=r"^option 'timeframes': 1w is longer"):
        parse_options({}, timeframes=("1w",))
