"""The buy-and-hold benchmark: equal weights bought at each symbol's first bar, its curve
downsampled while it streams, and the strategy's alpha and beta against it, checked by hand
and against empyrical-reloaded's alpha_beta on the same daily returns."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pytest
from empyrical import alpha_beta as empyrical_alpha_beta

from runtimes.core.benchmark import StreamingDownsample, alpha_beta, buy_and_hold
from runtimes.core.daily import daily_closes
from runtimes.core.market_data import MarketData
from runtimes.core.metrics import downsample
from tests.runtimes.core.scenario import DAY_MINUTES, T0, bars

D = Decimal


def _days(returns):
    start = date(2024, 1, 1)
    return [(start + timedelta(days=i), D(str(r))) for i, r in enumerate(returns)]


def test_beta_and_alpha_of_a_strategy_that_is_twice_the_benchmark_plus_a_constant():
    benchmark = [D("0.01"), D("-0.02"), D("0.03"), D("0")]
    strategy = [2 * b + D("0.001") for b in benchmark]

    alpha, beta, count = alpha_beta(_days(strategy), _days(benchmark), 252)

    assert beta == 2 and count == 4
    assert alpha == D("1.001") ** 252 - 1  # (1 + daily alpha) ^ 252 - 1


def test_alpha_and_beta_are_undefined_for_a_flat_benchmark_or_a_single_day():
    assert alpha_beta(_days([0.01, 0.02]), _days([0, 0]), 365) == (None, None, 2)
    assert alpha_beta(_days([0.01]), _days([0.02]), 365) == (None, None, 1)


@pytest.mark.parametrize("days_per_year", [252, 365])
def test_alpha_and_beta_match_empyrical_on_the_same_daily_returns(days_per_year):
    rng = random.Random(15)
    benchmark = [round(rng.gauss(0.0005, 0.012), 6) for _ in range(300)]
    strategy = [round(0.6 * b + rng.gauss(0.0002, 0.008), 6) for b in benchmark]

    alpha, beta, _ = alpha_beta(_days(strategy), _days(benchmark), days_per_year)
    expected = empyrical_alpha_beta(np.array(strategy), np.array(benchmark),
                                    annualization=days_per_year)

    assert float(alpha) == pytest.approx(expected[0], rel=1e-9)
    assert float(beta) == pytest.approx(expected[1], rel=1e-9)


def test_equal_weights_are_bought_at_each_symbols_first_open_and_wait_as_cash_before():
    # AAA from day 0 (open 100), BBB from day 1 (open 50): 500 each, 5 AAA and 10 BBB.
    data = MarketData.from_bars(
        bars([(100, 110, 100, 110), (110, 120, 110, 120), (120, 120, 90, 90)], "AAA",
             minutes=DAY_MINUTES)
        + bars([(50, 55, 50, 55), (55, 55, 40, 40)], "BBB", start=T0 + timedelta(days=1),
               minutes=DAY_MINUTES))
    strategy = [(date(2024, 1, 2), D(1000)), (date(2024, 1, 3), D(1000)),
                (date(2024, 1, 4), D(1000))]

    bench = buy_and_hold(data=data, initial_cash=D(1000), strategy_closes=strategy,
                         calendar="crypto", chart_points=100)

    # day 0: 5 x 110 + 500 cash; day 1: 5 x 120 + 10 x 55; day 2: 5 x 90 + 10 x 40
    assert [v for _, v in bench.curve] == [D(1050), D(1150), D(850)]
    assert bench.weights == {"AAA": D("0.5"), "BBB": D("0.5")}
    assert (bench.final_equity, bench.total_return) == (D(850), D("-0.15"))
    assert bench.beta == 0 and bench.alpha == 0  # a flat strategy: no beta, no alpha
    assert bench.days_per_year == 365 and bench.daily_returns == 3
    assert bench.span_seconds == 3 * 86400
    # CAGR over the 3 days from the first bar's open to the last bar's close, in Julian years
    assert bench.cagr == (D("0.85") ** (D(365.25) / 3) - 1).quantize(D("0.000001"))


def test_the_streamed_curve_keeps_what_downsample_keeps():
    rng = random.Random(7)
    for total, limit in [(1, 10), (10, 10), (11, 10), (1000, 37), (5003, 200), (3, 2)]:
        points = [(i, D(rng.randint(-500, 500))) for i in range(total)]
        sampler = StreamingDownsample(total, limit)
        for moment, value in points:
            sampler.add(moment, value)

        assert sampler.points == downsample(points, limit), (total, limit)


def test_without_daily_closes_of_the_strategy_there_is_no_alpha_but_a_benchmark():
    data = MarketData.from_bars(bars([(10, 10, 10, 10)] * 2 + [(10, 12, 10, 12)], "AAA",
                                     minutes=DAY_MINUTES))

    bench = buy_and_hold(data=data, initial_cash=D(100), strategy_closes=daily_closes([]),
                         calendar="stocks", chart_points=100)

    assert [v for _, v in bench.curve] == [D(100), D(100), D(120)]
    assert bench.total_return == D("0.2") and bench.alpha is None and bench.daily_returns == 0
