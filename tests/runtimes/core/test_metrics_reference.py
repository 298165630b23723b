"""Our Decimal metrics against empyrical-reloaded (a maintained library, installed for the tests
only) on the same equity curves: real data through the real engine, and synthetic curves.

The reference side builds its own daily series (pandas resampling of the equity to UTC days,
the initial cash first) and calls empyrical with the calendar's annualisation; nothing of it
comes from runtimes/core. We publish 6 decimal places, so the two must agree to half a unit
of the last one (plus 1e-9 relative for float rounding in the reference).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import empyrical
import pandas as pd
import pytest

from config.sample_data import require_series
from runtimes.core.datasets import load_market_data
from runtimes.core.domain import OrderRequest, Side
from runtimes.core.engine import BacktestConfig, BacktestEngine
from runtimes.core.metrics import EquityPoint, Metrics, compute_metrics
from runtimes.core.timeframes import timeframe_seconds

D = Decimal
CASH = D(100_000)
HALF_LAST_PLACE = 5e-7
RELATIVE = 1e-9
JULIAN_YEAR = timedelta(days=365.25)


def agree(ours: Decimal | None, theirs: float) -> bool:
    tolerance = HALF_LAST_PLACE + RELATIVE * abs(theirs)
    return ours is not None and abs(float(ours) - theirs) <= tolerance


def sma_run(files: dict[str, str], fast: int, slow: int) -> tuple[Metrics, list[EquityPoint]]:
    """A long-only SMA crossover on the first symbol, 90 % of cash in at each cross up, all out
    at each cross down; fills at the next bar's open as the engine does."""
    data = load_market_data({s: require_series(f) for s, f in files.items()})
    engine = BacktestEngine(data, BacktestConfig(initial_cash=CASH))
    symbol, closes, held = data.symbols[0], list[Decimal](), D(0)
    while (batch := engine.next_batch()) is not None:
        bar = next((b for b in batch.bars if b.symbol == symbol), None)
        if bar is None:
            continue
        closes.append(bar.close)
        if len(closes) < slow:
            continue
        rising = sum(closes[-fast:]) / fast > sum(closes[-slow:]) / slow
        if rising and not held:
            held = (engine.account().cash * D("0.9") / bar.close).quantize(D("0.0001"))
            engine.submit_order(OrderRequest(symbol=symbol, side=Side.BUY, quantity=held))
        elif not rising and held:
            engine.submit_order(OrderRequest(symbol=symbol, side=Side.SELL, quantity=held))
            held = D(0)
    result = engine.result()
    return result.metrics, list(result.equity_curve)


def reference(points: Sequence[EquityPoint], initial: Decimal, *, bar: timedelta,
              days_per_year: int, risk_free_rate: float = 0.0) -> dict[str, float]:
    """empyrical's figures for the curve: daily returns from pandas' UTC-day resampling with
    the initial value before the first bar; CAGR over calendar time from that start."""
    equity = pd.Series([float(p.equity) for p in points],
                       index=pd.DatetimeIndex([p.timestamp for p in points]))
    daily = equity.resample("1D").last().dropna()
    returns = pd.concat([pd.Series([float(initial)]), daily.reset_index(drop=True)]).pct_change()
    returns = returns.dropna()
    per_day = (1 + risk_free_rate) ** (1 / days_per_year) - 1
    every_bar = pd.concat([pd.Series([float(initial)]), equity.reset_index(drop=True)])
    years = (points[-1].timestamp - (points[0].timestamp - bar)) / JULIAN_YEAR
    cagr = empyrical.annual_return(returns, annualization=len(returns) / years)
    drawdown = -empyrical.max_drawdown(every_bar.pct_change().dropna())
    return {
        "total_return": empyrical.cum_returns_final(returns),
        "cagr": cagr,
        "annualised_volatility": empyrical.annual_volatility(returns, annualization=days_per_year),
        "sharpe": empyrical.sharpe_ratio(returns, risk_free=per_day, annualization=days_per_year),
        "sortino": empyrical.sortino_ratio(returns, required_return=per_day,
                                           annualization=days_per_year),
        "max_drawdown": drawdown,
        "calmar": cagr / drawdown,
        "days": len(returns),
    }


def assert_agrees(metrics: Metrics, expected: dict[str, float]) -> None:
    assert metrics.days == expected["days"]
    for name in ("total_return", "cagr", "annualised_volatility", "sharpe", "sortino",
                 "max_drawdown", "calmar"):
        assert agree(getattr(metrics, name), expected[name]), (name, getattr(metrics, name),
                                                               expected[name])


def test_sma_on_aapl_daily_agrees_with_empyrical():
    metrics, points = sma_run({"AAPL": "stocks-daily/AAPL.csv"}, fast=20, slow=50)
    assert (metrics.calendar, metrics.number_of_trades, metrics.short_run) == ("stocks", 15, False)
    assert_agrees(metrics, reference(points, CASH, bar=timedelta(days=1), days_per_year=252))
    assert metrics.sharpe == D("0.40648")


def test_sma_on_two_stocks_daily_agrees_with_empyrical():
    metrics, points = sma_run({"MSFT": "stocks-daily/MSFT.csv", "KO": "stocks-daily/KO.csv"},
                              fast=10, slow=30)
    assert metrics.calendar == "stocks"
    assert_agrees(metrics, reference(points, CASH, bar=timedelta(days=1), days_per_year=252))


def test_sma_on_btcusdt_1m_agrees_with_empyrical_on_daily_returns():
    metrics, points = sma_run({"BTCUSDT": "crypto-1m/BTCUSDT.csv"}, fast=50, slow=200)
    assert (metrics.calendar, metrics.periods_per_year, metrics.days) == ("crypto", D(365), 49)
    assert metrics.short_run  # 49 days of 1m bars: fewer than a quarter of a year
    assert_agrees(metrics, reference(points, CASH, bar=timedelta(minutes=1), days_per_year=365))


def random_walk(start: datetime, bars: int, bar: timedelta, seed: int) -> list[EquityPoint]:
    rng = random.Random(seed)
    value, points = CASH, []
    for i in range(bars):
        value *= D(1) + D(round(rng.gauss(0.0004, 0.012), 6))
        points.append(EquityPoint(start + i * bar, value, value, D(0)))
    return points


@pytest.mark.parametrize(("timeframe", "bars", "calendar", "days_per_year"), [
    ("1d", 400, "stocks", 252),
    ("1d", 30, "crypto", 365),
    ("1h", 24 * 120, "crypto", 365),
    ("5m", 12 * 24 * 20, "stocks", 252),
])
def test_synthetic_curves_agree_with_empyrical_with_a_risk_free_rate(
    timeframe: str, bars: int, calendar: str, days_per_year: int,
) -> None:
    bar = timedelta(seconds=timeframe_seconds(timeframe))
    points = random_walk(datetime(2022, 3, 7, tzinfo=UTC), bars, bar, seed=bars)
    metrics = compute_metrics(equity_curve=points, round_trips=[], total_fees=D(0),
                              timeframe=timeframe, initial_equity=CASH, calendar=calendar,  # type: ignore[arg-type]
                              risk_free_rate=D("0.04"))
    assert_agrees(metrics, reference(points, CASH, bar=bar, days_per_year=days_per_year,
                                     risk_free_rate=0.04))


def test_the_reference_check_fails_on_per_bar_annualisation():
    # The same hourly curve annualised per bar (the old way) is far from empyrical's figure.
    bar = timedelta(hours=1)
    points = random_walk(datetime(2022, 3, 7, tzinfo=UTC), 24 * 60, bar, seed=1)
    expected = reference(points, CASH, bar=bar, days_per_year=365)
    hourly = pd.Series([float(CASH)] + [float(p.equity) for p in points]).pct_change().dropna()
    per_bar_sharpe = empyrical.sharpe_ratio(hourly, annualization=365 * 24)
    assert not agree(D(repr(per_bar_sharpe)), expected["sharpe"])
