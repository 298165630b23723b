"""Commission models, slippage and platform presets compute exact Decimal amounts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from runtimes.core.costs import PLATFORM_PRESETS, Commission, apply_slippage, preset
from runtimes.core.domain import Side

D = Decimal


def test_percentage_commission_is_a_share_of_notional():
    assert Commission(percent=D("0.1")).fee(D(2), D("10.5")) == D("0.021")


def test_per_share_and_fixed_commissions_add_up():
    assert Commission(per_share=D("0.01"), fixed=D(1)).fee(D(100), D(50)) == D(2)


def test_minimum_commission_applies_per_fill():
    commission = Commission(per_share=D("0.005"), minimum=D(1))
    assert commission.fee(D(10), D(50)) == D(1)
    assert commission.fee(D(1000), D(50)) == D(5)


def test_free_commission_costs_nothing():
    assert Commission().fee(D(1000), D(50)) == 0
    assert Commission().is_free


def test_negative_commission_settings_are_refused():
    with pytest.raises(ValueError, match="percent"):
        Commission(percent=D(-1))


def test_presets_for_alpaca_and_binance():
    assert PLATFORM_PRESETS["alpaca"].commission.is_free
    assert PLATFORM_PRESETS["alpaca"].day_session_timezone == "America/New_York"
    binance = preset("binance")
    assert (binance.commission.percent, binance.currency, binance.day_session_timezone) == (
        D("0.1"),
        "USDT",
        "UTC",
    )
    with pytest.raises(KeyError, match="known"):
        preset("kraken")


def test_slippage_moves_the_price_against_the_taker():
    assert apply_slippage(D(100), Side.BUY, D(5)) == D("100.05")
    assert apply_slippage(D(100), Side.SELL, D(5)) == D("99.95")
    assert apply_slippage(D(100), Side.BUY, D(0)) == D(100)
