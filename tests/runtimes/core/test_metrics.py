"""Metrics on small hand-computed equity curves and trade lists (exact rendered strings)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from runtimes.core.metrics import (
    EquityPoint,
    RoundTrip,
    compute_metrics,
    downsample,
    drawdown_series,
)

D = Decimal
START = datetime(2021, 1, 1, tzinfo=UTC)


def curve(*values: int, exposed: tuple[int, ...] = ()) -> list[EquityPoint]:
    return [
        EquityPoint(START + timedelta(days=i), D(v), D(v), D(v) if i in exposed else D(0))
        for i, v in enumerate(values)
    ]


def trip(net: str, side: str = "LONG", quantity: str = "1", entry: str = "100") -> RoundTrip:
    return RoundTrip(
        "BTCUSDT", side, D(quantity), START, D(entry), START, D(entry), D(net), D(1), D(net)
    )


TRADES = [trip("9"), trip("-11", side="SHORT", quantity="2", entry="50"), trip("22")]


def test_hand_computed_metrics_of_a_five_day_crypto_curve():
    # returns 0.1, -0.1, 121/99 - 1, 120/121 - 1: mean 0.05348944, sample stdev 0.13905219
    metrics = compute_metrics(
        equity_curve=curve(100, 110, 99, 121, 120, exposed=(0, 2, 4)),
        round_trips=TRADES,
        total_fees=D(3),
        timeframe="1d",
        calendar="crypto",
    ).as_dict()
    assert metrics == {
        "start": "2021-01-01T00:00:00Z",
        "end": "2021-01-05T00:00:00Z",
        "timeframe": "1d",
        "calendar": "crypto",
        "periods_per_year": "365",
        "days": 4,  # daily returns: one a day after the first
        "short_run": True,  # fewer than 91.25 (a quarter of 365)
        "risk_free_rate": "0",
        "initial_equity": "100",
        "final_equity": "120",
        "total_return": "0.2",
        "cagr": "16991726.309885",
        "annualised_volatility": "2.656588",  # 0.13905219 * sqrt(365)
        "sharpe": "7.349142",  # 0.05348944 / 0.13905219 * sqrt(365)
        "sortino": "20.368844",  # downside deviation sqrt((0.01 + 0.0000683) / 4) = 0.0501704
        "max_drawdown": "0.1",  # 110 -> 99
        "max_drawdown_peak": "2021-01-02T00:00:00Z",
        "max_drawdown_trough": "2021-01-03T00:00:00Z",
        "max_drawdown_recovery": "2021-01-04T00:00:00Z",
        "max_drawdown_duration_seconds": 172_800,
        "longest_drawdown_seconds": 172_800,
        "calmar": "169917263.098854",
        "number_of_trades": 3,
        "win_rate": "0.666667",
        "profit_factor": "2.818182",  # (9 + 22) / 11
        "expectancy": "6.66666667",  # 20 / 3
        "average_trade_return": "0.066667",  # (0.09 - 0.11 + 0.22) / 3
        "average_win": "15.5",
        "average_loss": "-11",
        "best_trade": "22",
        "worst_trade": "-11",
        "exposure_time": "0.6",
        "total_fees": "3",
    }


def test_cagr_over_two_julian_years_and_calmar():
    two_years = timedelta(days=730, hours=12)
    points = [
        EquityPoint(START, D(100), D(100), D(0)),
        EquityPoint(START + two_years / 2, D(80), D(80), D(0)),
        EquityPoint(START + two_years, D(121), D(121), D(0)),
    ]
    metrics = compute_metrics(
        equity_curve=points, round_trips=[], total_fees=D(0), timeframe="1d", calendar="stocks"
    )
    assert (metrics.cagr, metrics.max_drawdown, metrics.calmar) == (D("0.1"), D("0.2"), D("0.5"))
    assert metrics.max_drawdown_duration_seconds == int(two_years.total_seconds())


def test_risk_free_rate_is_deducted_as_the_daily_rate_that_compounds_to_it():
    metrics = compute_metrics(
        equity_curve=curve(100, 110, 99, 121, 120),
        round_trips=[],
        total_fees=D(0),
        timeframe="1d",
        calendar="crypto",
        risk_free_rate=D("0.0365"),
    )
    # per day 1.0365^(1/365) - 1 = 0.00009822305; (0.05348944 - 0.00009822) / 0.13905219
    # * sqrt(365) = 7.3356468
    assert metrics.sharpe == D("7.335647")


def test_initial_equity_adds_a_starting_point_one_bar_earlier():
    metrics = compute_metrics(
        equity_curve=curve(110, 121),
        round_trips=[],
        total_fees=D(0),
        timeframe="1d",
        initial_equity=D(100),
        calendar="stocks",
    )
    assert (metrics.initial_equity, metrics.total_return) == (D(100), D("0.21"))
    assert metrics.annualised_volatility == D(0)  # two equal returns of 10%
    assert metrics.sharpe is None  # zero deviation: undefined, not infinite


def test_undefined_values_are_none_without_trades_or_movement():
    metrics = compute_metrics(
        equity_curve=curve(100, 100, 100),
        round_trips=[],
        total_fees=D(0),
        timeframe="1d",
        calendar="crypto",
    )
    values = metrics.as_dict()
    assert values["sharpe"] is None and values["sortino"] is None
    assert values["max_drawdown"] == "0" and values["calmar"] is None
    assert values["number_of_trades"] == 0
    assert values["win_rate"] is None and values["profit_factor"] is None
    assert values["max_drawdown_duration_seconds"] == 0


def test_profit_factor_is_none_when_nothing_lost():
    metrics = compute_metrics(
        equity_curve=curve(100, 101),
        round_trips=[trip("1"), trip("2")],
        total_fees=D("0.00002"),
        timeframe="1d",
        calendar="crypto",
    )
    assert (metrics.profit_factor, metrics.win_rate) == (None, D(1))
    assert metrics.as_dict()["total_fees"] == "0.00002"  # never exponent form


def test_calendar_is_stocks_when_no_point_falls_on_a_weekend():
    weekdays = [
        EquityPoint(datetime(2021, 1, 4 + i, tzinfo=UTC), D(100 + i), D(0), D(0)) for i in range(5)
    ]
    metrics = compute_metrics(
        equity_curve=weekdays, round_trips=[], total_fees=D(0), timeframe="1d"
    )
    assert (metrics.calendar, metrics.periods_per_year) == ("stocks", D(252))
    weekend = curve(100, 101, 102)  # 2021-01-02 is a Saturday
    metrics = compute_metrics(equity_curve=weekend, round_trips=[], total_fees=D(0), timeframe="1d")
    assert metrics.calendar == "crypto"


def test_metrics_are_deterministic():
    def run() -> dict[str, str | int | None]:
        return compute_metrics(
            equity_curve=curve(100, 110, 99, 121, 120),
            round_trips=TRADES,
            total_fees=D(3),
            timeframe="1d",
        ).as_dict()

    assert run() == run()


def test_drawdown_series_is_zero_at_peaks_and_negative_below():
    series = drawdown_series(curve(100, 110, 99, 121, 120))
    assert [str(v) for _, v in series] == ["0", "0", "-0.100000", "0", "-0.008264"]


def test_downsample_keeps_first_last_and_bucket_extremes():
    points = curve(100, 110, 99, 121, 120)
    assert [p.equity for p in downsample(points, 4)] == [D(100), D(99), D(121), D(120)]
    assert downsample(points, 10) == points
    long = curve(*[100 + (i % 7) for i in range(50)], 40, *[100] * 49)
    kept = downsample(long, 20)
    assert len(kept) <= 20
    assert D(40) in [p.equity for p in kept]  # the crash survives downsampling
    with pytest.raises(ValueError):
        downsample(points, 1)


def test_cagr_of_a_few_profitable_minutes_is_undefined_not_an_error():
    points = [
        EquityPoint(START + timedelta(minutes=i), D(v), D(v), D(0))
        for i, v in enumerate((100000, 100100, 100200, 100300, 100301))
    ]
    metrics = compute_metrics(
        equity_curve=points, round_trips=[], total_fees=D(0), timeframe="1m", calendar="crypto"
    )
    assert (metrics.cagr, metrics.calmar) == (None, None)
    assert metrics.as_dict()["total_return"] == "0.00301"


def daily_equity(values: list[int], start: datetime = datetime(2021, 1, 4, tzinfo=UTC)
                 ) -> list[EquityPoint]:
    return [EquityPoint(start + timedelta(days=i), D(v), D(v), D(0)) for i, v in enumerate(values)]


RISK = ("annualised_volatility", "sharpe", "sortino", "days", "periods_per_year")


def test_the_same_daily_equity_labelled_1d_or_1m_gives_the_same_ratios():
    points = daily_equity([100, 103, 101, 106, 104, 108, 107])
    daily, minutes = (
        compute_metrics(equity_curve=points, round_trips=[], total_fees=D(0), timeframe=label,
                        initial_equity=D(100), calendar="stocks")
        for label in ("1d", "1m")
    )
    assert [getattr(daily, k) for k in RISK] == [getattr(minutes, k) for k in RISK]
    # 7 daily returns from 100: mean 0.01006026, sample stdev 0.02869477; x sqrt(252)
    assert daily.sharpe == D("5.565533")


def test_intraday_points_are_resampled_to_their_last_value_of_each_utc_day():
    closes = [100, 103, 101, 106, 104]
    minutes = [
        EquityPoint(datetime(2021, 1, 4 + day, 14, 30, tzinfo=UTC) + timedelta(minutes=m),
                    D(value + (m % 3) - 1 if m < 389 else value), D(0), D(0))
        for day, value in enumerate(closes) for m in range(390)
    ]
    intraday = compute_metrics(equity_curve=minutes, round_trips=[], total_fees=D(0),
                               timeframe="1m", calendar="stocks")
    daily = compute_metrics(equity_curve=daily_equity(closes), round_trips=[], total_fees=D(0),
                            timeframe="1d", calendar="stocks")
    assert [getattr(intraday, k) for k in RISK] == [getattr(daily, k) for k in RISK]
    # returns 0.03, -0.019417, 0.049505, -0.018868: sample stdev 0.03492379 x sqrt(252)
    assert (intraday.days, intraday.annualised_volatility) == (4, D("0.554398"))


def test_ratios_are_undefined_with_fewer_than_two_daily_returns():
    # A day of minutes that swing: per-bar annualisation made this a Sharpe in the hundreds.
    points = [EquityPoint(START + timedelta(minutes=i), D(100 + (i % 2)), D(0), D(0))
              for i in range(48)]
    metrics = compute_metrics(equity_curve=points, round_trips=[], total_fees=D(0),
                              timeframe="1m", initial_equity=D(100), calendar="crypto")
    assert (metrics.days, metrics.short_run) == (1, True)
    assert (metrics.annualised_volatility, metrics.sharpe, metrics.sortino) == (None, None, None)


@pytest.mark.parametrize(("calendar", "returns", "short"), [
    ("stocks", 62, True), ("stocks", 63, False), ("crypto", 91, True), ("crypto", 92, False),
])
def test_a_run_with_fewer_daily_returns_than_a_quarter_year_is_short(
    calendar: str, returns: int, short: bool
) -> None:
    values = [100 + i % 5 for i in range(returns)]
    metrics = compute_metrics(equity_curve=daily_equity(values), round_trips=[],
                              total_fees=D(0), timeframe="1d", initial_equity=D(99),
                              calendar=calendar)  # type: ignore[arg-type]
    assert (metrics.days, metrics.short_run) == (returns, short)
    assert metrics.as_dict()["short_run"] is short


def test_a_crypto_pair_sets_the_crypto_calendar_even_on_weekdays_only():
    weekdays = daily_equity([100, 101, 103, 102, 104])  # Monday to Friday
    guessed = compute_metrics(equity_curve=weekdays, round_trips=[], total_fees=D(0),
                              timeframe="1d", symbols=("BTCUSDT",))
    assert (guessed.calendar, guessed.periods_per_year) == ("crypto", D(365))
    shares = compute_metrics(equity_curve=weekdays, round_trips=[], total_fees=D(0),
                             timeframe="1d", symbols=("AAPL", "MSFT"))
    assert shares.calendar == "stocks"
    chosen = compute_metrics(equity_curve=weekdays, round_trips=[], total_fees=D(0),
                             timeframe="1d", symbols=("BTCUSDT",), calendar="stocks")
    assert (chosen.calendar, chosen.periods_per_year) == ("stocks", D(252))
