"""Bar series storage and access, and alignment of several symbols on one timeline."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from config.sample_data import require_series
from runtimes.core.bars import Bar, BarSeries
from runtimes.core.dataset_errors import DatasetError
from runtimes.core.datasets import load_bar_series
from runtimes.core.market_data import MarketData

D = Decimal


def minute(m: int) -> datetime:
    return datetime(2021, 4, 2, 0, m, tzinfo=UTC)


def bar(m: int, o: str, h: str, low: str, c: str, v: str = "1", symbol: str = "BTCUSDT") -> Bar:
    return Bar(symbol, "1m", minute(m), D(o), D(h), D(low), D(c), D(v))


def test_series_round_trips_bars_exactly():
    bars = [bar(0, "1.5", "2", "1", "1.25", "0.001"), bar(1, "1.25", "3", "1.2", "2.99")]
    series = BarSeries.from_bars(bars)
    assert len(series) == 2
    assert series.bar(0) == bars[0]
    assert series.bar(1) == bars[1]
    assert series.close_at(1) == D("2.99")
    assert str(series.open_at(0)) == "1.50"  # every price carries the series' 2 decimals
    assert series.epoch_seconds(1) == 1617321660
    assert list(series.closes_float()) == [1.25, 2.99]


def test_index_at_or_before_bisects_and_gives_minus_one_before_the_start():
    series = BarSeries.from_bars([bar(0, "1", "1", "1", "1"), bar(5, "1", "1", "1", "1")])
    assert series.index_at_or_before(1617321600 - 1) == -1
    assert series.index_at_or_before(1617321600) == 0
    assert series.index_at_or_before(1617321600 + 299) == 0
    assert series.index_at_or_before(1617321600 + 300) == 1


def test_from_bars_rejects_high_below_low_and_returns_nothing():
    with pytest.raises(DatasetError) as caught:
        BarSeries.from_bars([bar(0, "1", "1", "1", "1"), bar(1, "100.5", "100.5", "101", "101")])
    assert str(caught.value) == "<bars> row 2: high 100.5 is below low 101"


def test_slice_is_inclusive_at_both_ends():
    series = BarSeries.from_bars([bar(m, "1", "1", "1", "1") for m in range(5)])
    part = series.slice(minute(1), minute(3))
    assert [part.bar(i).timestamp for i in range(len(part))] == [minute(1), minute(2), minute(3)]
    assert len(series.slice(None, minute(0))) == 1


def test_real_btcusdt_file_loads_with_readme_counts_and_extremes():
    series = load_bar_series(require_series("crypto-1m/BTCUSDT.csv"), symbol="BTCUSDT")
    assert (series.timeframe, len(series)) == ("1m", 69_927)
    assert series.bar(0).timestamp == datetime(2021, 4, 2, tzinfo=UTC)
    assert series.bar(-1).timestamp == datetime(2021, 5, 20, 20, 40, tzinfo=UTC)
    assert series.bar(0) == Bar(
        "BTCUSDT",
        "1m",
        datetime(2021, 4, 2, tzinfo=UTC),
        D("58720.45"),
        D("58840.43"),
        D("58720.44"),
        D("58760.34"),
        D("61.685675"),
    )
    highs = series.scaled_column("high")
    top = max(range(len(series)), key=highs.__getitem__)
    assert (series.high_at(top), series.bar(top).timestamp) == (
        D("64854"),
        datetime(2021, 4, 14, 6, 14, tzinfo=UTC),
    )
    assert min(series.low_at(i) for i in range(len(series))) == D("30000")
    assert series.nbytes() == 69_927 * 6 * 8


def test_daily_stocks_align_by_date_with_gaps_for_missing_orcl_days():
    aapl = load_bar_series(require_series("stocks-daily/AAPL.csv"), symbol="AAPL")
    orcl = load_bar_series(require_series("stocks-daily/ORCL.csv"), symbol="ORCL")
    market = MarketData.from_series([aapl, orcl])
    assert market.timeframe == "1d"
    assert market.symbols == ("AAPL", "ORCL")
    assert (len(aapl), len(orcl), len(market.timeline())) == (1259, 1257, 1259)
    july_15 = int(datetime(2013, 7, 15, tzinfo=UTC).timestamp())
    step = list(market.timeline()).index(july_15)
    assert [b.symbol for b in market.bars_at(step)] == ["AAPL"]
    assert [b.symbol for b in market.bars_at(step + 1)] == ["AAPL"]
    assert [b.symbol for b in market.bars_at(step + 2)] == ["AAPL", "ORCL"]
    assert market.series_index_at(1, step) == -1
    assert market.bars_at(step + 2)[1] == orcl.bar(step)


def test_symbols_on_one_clock_align_without_a_map_and_the_whole_period_is_the_data_itself():
    bars = [bar(m, "1", "1", "1", "1", symbol=s) for s in ("B", "A") for m in (0, 1, 3)]
    market = MarketData.from_bars(bars)
    assert list(market.timeline()) == [1617321600, 1617321660, 1617321780]
    assert [market.series_index_at(1, step) for step in range(3)] == [0, 1, 2]
    assert [b.symbol for b in market.bars_at(2)] == ["B", "A"]
    assert market.slice(None, None) is market
    assert len(market.slice(None, minute(1))) == 2


def test_market_data_from_bars_unions_timestamps_and_keeps_symbol_order():
    bars = [
        bar(0, "1", "1", "1", "1", symbol="B"),
        bar(2, "1", "1", "1", "1", symbol="B"),
        bar(1, "2", "2", "2", "2", symbol="A"),
    ]
    market = MarketData.from_bars(bars)
    assert market.symbols == ("B", "A")
    assert list(market.timeline()) == [1617321600, 1617321660, 1617321720]
    assert [b.symbol for b in market.bars_at(1)] == ["A"]
    assert len(market.slice(minute(1), None).series("B")) == 1


def test_market_data_refuses_mixed_timeframes():
    one_minute = BarSeries.from_bars([bar(0, "1", "1", "1", "1")])
    hourly = BarSeries.from_bars([Bar("X", "1h", minute(0), D(1), D(1), D(1), D(1), D(1))])
    with pytest.raises(ValueError, match="different timeframes: 1h, 1m"):
        MarketData.from_series([one_minute, hourly])


def test_market_data_modules_import_no_framework_in_a_fresh_interpreter():
    import subprocess
    import sys

    code = (
        "import sys, runtimes.core.bars, runtimes.core.datasets, runtimes.core.metrics\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('django', 'rest_framework', 'channels', 'celery')]\n"
        "print(bad)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
