"""Importing OHLCV files in every supported shape, rejecting bad data, and resampling."""

import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.sample_data import open_series, require_series
from runtimes.core.bars import Bar, BarSeries
from runtimes.core.datasets import (
    DatasetError,
    load_bar_series,
    load_market_data,
    parse_bar_series,
    resample,
)
from runtimes.core.timeframes import TimeframeError

D = Decimal
HEADER = "timestamp,open,high,low,close,volume\n"
FIRST = Bar(
    "BTCUSDT",
    "1m",
    datetime(2021, 4, 2, tzinfo=UTC),
    D("58720.45"),
    D("58840.43"),
    D("58720.44"),
    D("58760.34"),
    D("61.685675"),
)
SECOND_CLOSE = D("58750.01")


def parse(text: str, name: str = "BTCUSDT.csv", **kwargs: object) -> BarSeries:
    return parse_bar_series(text.encode(), filename=name, symbol="BTCUSDT", **kwargs)  # type: ignore[arg-type]


def rejected(text: str, name: str = "BTCUSDT.csv", **kwargs: object) -> DatasetError:
    result = None
    with pytest.raises(DatasetError) as caught:
        result = parse(text, name, **kwargs)
    assert result is None  # nothing half-imported
    return caught.value


# -- formats -------------------------------------------------------------------------------------

TWO_ROWS = (
    "2021-04-02T00:00:00Z,58720.45,58840.43,58720.44,58760.34,61.685675\n"
    "2021-04-02T00:01:00Z,58760.34,58820.97,58739.28,58750.01,25.392093\n"
)


def assert_first_two_btc_bars(series: BarSeries) -> None:
    assert (len(series), series.timeframe) == (2, "1m")
    assert series.bar(0) == FIRST
    assert series.close_at(1) == SECOND_CLOSE


def test_iso_header_csv():
    assert_first_two_btc_bars(parse(HEADER + TWO_ROWS))


def test_unix_seconds_and_milliseconds_are_detected_by_size():
    seconds = HEADER + TWO_ROWS.replace("2021-04-02T00:00:00Z", "1617321600").replace(
        "2021-04-02T00:01:00Z", "1617321660"
    )
    assert_first_two_btc_bars(parse(seconds))
    millis = seconds.replace("1617321600", "1617321600000").replace("1617321660", "1617321660000")
    assert_first_two_btc_bars(parse(millis))


def test_separate_date_and_time_columns_with_offsets():
    text = (
        "Date,Time,Open,High,Low,Close,Volume\n"
        "2021-04-02,00:00:00+00:00,58720.45,58840.43,58720.44,58760.34,61.685675\n"
        "2021-04-02,02:01:00+02:00,58760.34,58820.97,58739.28,58750.01,25.392093\n"
    )
    assert_first_two_btc_bars(parse(text))


def test_date_only_column_is_utc_midnight():
    series = parse_bar_series(
        b"date,open,high,low,close,volume\n2013-02-08,1,2,1,2,5\n2013-02-11,2,2,1,1,6\n"
        b"2013-02-12,1,1,1,1,0\n",
        filename="AAPL.csv",
        symbol="AAPL",
    )
    assert series.timeframe == "1d"  # a weekend apart, but the smallest spacing would be 1 day
    assert series.bar(1).timestamp == datetime(2013, 2, 11, tzinfo=UTC)


BINANCE_ROWS = [
    [
        1617321600000,
        "58720.45",
        "58840.43",
        "58720.44",
        "58760.34",
        "61.685675",
        1617321659999,
        "3627150.3",
        1512,
        "30.5",
        "1794000.1",
        "0",
    ],
    [
        1617321660000,
        "58760.34",
        "58820.97",
        "58739.28",
        "58750.01",
        "25.392093",
        1617321719999,
        "1492000.2",
        900,
        "12.1",
        "711000.3",
        "0",
    ],
]


def test_binance_kline_csv_without_header():
    text = "\n".join(",".join(str(v) for v in row) for row in BINANCE_ROWS) + "\n"
    assert_first_two_btc_bars(parse(text, "BTCUSDT-1m-2021-04.csv"))


def test_binance_kline_json_arrays():
    assert_first_two_btc_bars(parse(json.dumps(BINANCE_ROWS), "klines.json"))


def test_freqtrade_json_numbers_are_read_exactly():
    text = (
        "[[1617321600000,58720.45,58840.43,58720.44,58760.34,61.685675],"
        "[1617321660000,58760.34,58820.97,58739.28,58750.01,25.392093]]"
    )
    assert_first_two_btc_bars(parse(text, "BTC_USDT-1m.json"))


def test_parquet_with_float_prices_and_utc_timestamps(tmp_path):
    table = pa.table(
        {
            "timestamp": pa.array(
                [datetime(2021, 4, 2, 0, 0, tzinfo=UTC), datetime(2021, 4, 2, 0, 1, tzinfo=UTC)],
                type=pa.timestamp("ms", tz="UTC"),
            ),
            "open": [58720.45, 58760.34],
            "high": [58840.43, 58820.97],
            "low": [58720.44, 58739.28],
            "close": [58760.34, 58750.01],
            "volume": [61.685675, 25.392093],
        }
    )
    path = tmp_path / "btc.parquet"
    pq.write_table(table, path)
    assert_first_two_btc_bars(load_bar_series(path, symbol="BTCUSDT"))


def test_parquet_with_naive_timestamps_is_rejected(tmp_path):
    table = pa.table(
        {
            "timestamp": pa.array([datetime(2021, 4, 2)], type=pa.timestamp("s")),
            **{name: [1.0] for name in ("open", "high", "low", "close", "volume")},
        }
    )
    pq.write_table(table, tmp_path / "naive.parquet")
    with pytest.raises(DatasetError) as caught:
        load_bar_series(tmp_path / "naive.parquet", symbol="X", timeframe="1d")
    assert str(caught.value) == (
        "naive.parquet: timestamp column has no time zone; store it as UTC (timestamp with tz) "
        "or pass assume_utc=True"
    )


# -- bad data ------------------------------------------------------------------------------------


def test_gzipped_csv_file_loads_like_the_plain_one(tmp_path):
    path = tmp_path / "BTCUSDT.csv.gz"
    path.write_bytes(gzip.compress((HEADER + TWO_ROWS).encode()))
    assert_first_two_btc_bars(load_bar_series(path, symbol="BTCUSDT"))


def test_gzipped_json_file_is_detected_from_its_content(tmp_path):
    path = tmp_path / "klines.gz"
    path.write_bytes(gzip.compress(json.dumps(BINANCE_ROWS).encode()))
    assert_first_two_btc_bars(load_bar_series(path, symbol="BTCUSDT"))


def test_bad_row_of_a_gzipped_file_is_named_after_the_file(tmp_path):
    path = tmp_path / "BTCUSDT.csv.gz"
    path.write_bytes(gzip.compress((HEADER + TWO_ROWS.replace("25.392093", "-1")).encode()))
    with pytest.raises(DatasetError) as caught:
        load_bar_series(path, symbol="BTCUSDT")
    assert str(caught.value) == (
        "BTCUSDT.csv.gz line 3: volume -1 is negative"
    )


def test_truncated_gzip_file_is_a_dataset_error(tmp_path):
    path = tmp_path / "BTCUSDT.csv.gz"
    path.write_bytes(gzip.compress((HEADER + TWO_ROWS).encode())[:-12])
    with pytest.raises(DatasetError) as caught:
        load_bar_series(path, symbol="BTCUSDT")
    assert caught.value.problem.startswith("cannot read file (bad gzip data: ")


def test_high_below_low_names_file_row_and_values():
    error = rejected(HEADER + TWO_ROWS + "2021-04-02T00:02:00Z,101,100.5,101,101,1\n")
    assert str(error) == (
        "BTCUSDT.csv line 4: high 100.5 is below low 101"
    )
    assert (error.file, error.row, error.column) == ("BTCUSDT.csv", 3, "high")


def test_open_or_close_outside_the_high_low_range():
    error = rejected(HEADER + "2021-04-02T00:00:00Z,102,101.5,100,101,1\n", timeframe="1m")
    assert error.problem == "open 102 is above high 101.5"
    error = rejected(HEADER + "2021-04-02T00:00:00Z,100,101.5,100,99,1\n", timeframe="1m")
    assert error.problem == "close 99 is below low 100"


def test_negative_volume():
    error = rejected(HEADER + "2021-04-02T00:00:00Z,1,1,1,1,-0.5\n", timeframe="1m")
    assert (
        str(error) == "BTCUSDT.csv line 2: volume -0.5 is negative"
    )


def test_duplicate_and_unsorted_timestamps():
    duplicate = HEADER + TWO_ROWS + "2021-04-02T00:01:00Z,1,1,1,1,1\n"
    assert rejected(duplicate).problem == (
        "duplicate timestamp 2021-04-02T00:01:00Z (same as the previous row)"
    )
    unsorted = HEADER + TWO_ROWS + "2021-04-02T00:00:30Z,1,1,1,1,1\n"
    error = rejected(unsorted)
    assert error.row == 3
    assert error.problem == (
        "timestamp 2021-04-02T00:00:30Z is earlier than the previous row's 2021-04-02T00:01:00Z; "
        "rows must be in ascending time order"
    )


def test_missing_columns_are_listed_with_what_was_found():
    error = rejected("timestamp,open,low,close\n2021-04-02T00:00:00Z,1,1,1\n")
    assert str(error) == (
        "BTCUSDT.csv: missing columns high, volume (found: timestamp, open, low, close)"
    )
    assert error.row is None


def test_naive_and_mixed_time_zones():
    naive = HEADER + "2021-04-02 00:00:00,1,1,1,1,1\n"
    assert rejected(naive, timeframe="1m").problem == (
        "timestamp '2021-04-02 00:00:00' has no time zone; write UTC times with a Z "
        "(2021-04-02T00:00:00Z) or an offset, or pass assume_utc=True"
    )
    assert len(parse(naive, timeframe="1m", assume_utc=True)) == 1
    mixed = HEADER + "2021-04-02T00:00:00Z,1,1,1,1,1\n2021-04-02 00:01:00,1,1,1,1,1\n"
    error = rejected(mixed, assume_utc=True)
    assert str(error) == (
        "BTCUSDT.csv line 3: mixed time zones: "
        "timestamp '2021-04-02 00:01:00' has no time zone but row 1 has one"
    )


def test_empty_and_non_numeric_values():
    assert rejected(HEADER + "2021-04-02T00:00:00Z,1,,1,1,1\n", timeframe="1m").problem == (
        "high is empty"
    )
    assert rejected(HEADER + "2021-04-02T00:00:00Z,1,1,1,abc,1\n", timeframe="1m").problem == (
        "close 'abc' is not a number"
    )
    assert rejected(HEADER + "2021-04-02T00:00:00Z,1,1,1,1\n", timeframe="1m").problem == (
        "expected at least 6 fields, found 5"
    )
    assert rejected(HEADER).problem == "no data rows"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("1e-999999999", "close '1e-999999999' is smaller than the precision of 12 decimal places"),
        ("1e999999999", "close '1e999999999' must have at most 18 digits before the decimal point"),
        ("NaN", "close 'NaN' must be a finite decimal"),
        ("1" * 19, f"close '{'1' * 19}' must have at most 18 digits before the decimal point"),
    ],
)
def test_values_out_of_the_platforms_range_are_refused_naming_the_column(value, problem):
    row = f"2021-04-02T00:00:00Z,1,1e30,0,{value},1\n".replace("1e30", "9" * 18)
    assert rejected(HEADER + row, timeframe="1m").problem == problem


def test_more_than_twelve_decimals_are_rounded_to_the_platforms_precision():
    row = "2021-04-02T00:00:00Z,1.00000000000000000000000000000000000000000001,2,0.5,1,1\n"
    series = parse(HEADER + row, timeframe="1m")
    assert (series.price_decimals, series.bar(0).open) == (12, D(1))


@pytest.mark.parametrize("where", ["header", "row"])
def test_a_field_longer_than_the_csv_module_reads_is_a_dataset_error_not_a_crash(where):
    long = "x" * 200_000
    text = f"{long}\n" if where == "header" else HEADER + f"2021-04-02T00:00:00Z,{long},1,1,1,1\n"
    assert rejected(text, timeframe="1m").problem == (
        "not a readable CSV file (field larger than field limit (131072))"
    )


def test_json_nested_too_deeply_is_a_dataset_error_not_a_crash():
    error = rejected("[" * 100_000 + "]" * 100_000, name="BTCUSDT.json")
    assert error.problem == "not valid JSON (nested too deeply)"


def test_bad_row_deep_in_a_real_file_rejects_the_whole_file(tmp_path):
    with open_series("crypto-1m/BTCUSDT.csv") as source:
        lines = source.read().splitlines()
    lines[50_001] = lines[50_001].replace(lines[50_001].split(",")[5], "-1")
    bad = tmp_path / "BTCUSDT.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as caught:
        load_bar_series(bad, symbol="BTCUSDT")
    assert str(caught.value) == (
        "BTCUSDT.csv line 50002: volume -1 is negative"
    )


def test_a_timeframe_longer_than_the_bar_spacing_is_refused_offering_the_inferred_one():
    error = rejected(HEADER + TWO_ROWS, timeframe="1h")
    assert str(error) == (
        "BTCUSDT.csv: the rows are 1 minute apart but the timeframe given is 1h; give 1m, "
        "or leave the timeframe empty to have it read from the file"
    )
    assert (error.row, error.bad_rows) == (None, ())


def test_real_daily_bars_given_as_one_minute_bars_are_refused_despite_weekends():
    with open_series("stocks-daily/AAPL.csv") as source:
        text = source.read()
    error = rejected(text, "AAPL.csv", timeframe="1m")
    assert error.problem == (
        "the rows are 1 day apart but the timeframe given is 1m; give 1d, "
        "or leave the timeframe empty to have it read from the file"
    )
    assert parse(text, "AAPL.csv", timeframe="1d").timeframe == "1d"


def test_real_minute_bars_given_as_daily_bars_are_refused():
    with open_series("crypto-1m/ETHUSDT.csv") as source:
        text = "".join(line for _, line in zip(range(2_001), source, strict=False))
    assert rejected(text, "ETHUSDT.csv", timeframe="1d").problem == (
        "the rows are 1 minute apart but the timeframe given is 1d; give 1m, "
        "or leave the timeframe empty to have it read from the file"
    )


def test_a_spacing_that_is_no_timeframe_is_said_in_words():
    rows = "".join(f"2021-04-02T00:{m:02d}:{s:02d}Z,1,1,1,1,1\n"
                   for m, s in ((0, 0), (1, 30), (3, 0), (4, 30)))
    assert rejected(HEADER + rows, timeframe="1m").problem == (
        "the rows are 90 seconds apart but the timeframe given is 1m, and 90 seconds is none of "
        "1m, 2m, 5m, 10m, 15m, 30m, 1h, 2h, 4h, 12h, 1d, 1w"
    )
    assert rejected(HEADER + rows).problem.startswith(
        "cannot infer the timeframe: the bars are most often 90 seconds apart")
    weekend = HEADER + "2013-02-08,1,1,1,1,1\n2013-02-11,1,1,1,1,1\n"  # a Friday, a Monday
    assert rejected(weekend).problem.startswith(
        "cannot infer the timeframe: the bars are most often 3 days apart, which is none of")


def test_sparse_bars_keep_the_timeframe_given_when_some_bars_are_that_far_apart():
    minutes = (0, 2, 4, 5, 7, 9)  # mostly 2 minutes apart, one minute bar without trades
    rows = "".join(f"2021-04-02T00:{m:02d}:00Z,1,1,1,1,1\n" for m in minutes)
    assert parse(HEADER + rows, timeframe="1m").timeframe == "1m"


def test_a_stray_bar_closer_than_the_spacing_is_a_bad_row_with_its_line():
    stamps = ["2021-04-02", "2021-04-03", "2021-04-04", "2021-04-04T12:00:00Z", "2021-04-06"]
    text = HEADER + "".join(f"{t},1,1,1,1,1\n" for t in stamps)
    error = rejected(text)  # the smallest gap would have made these 12h bars
    assert [(b.row, b.line, b.column, b.problem) for b in error.bad_rows] == [
        (4, 5, "timestamp", "bar is 12 hours after the previous one, less than one 1d bar")]


def test_line_numbers_count_the_header_and_blank_lines_and_quoted_line_breaks():
    text = (HEADER + TWO_ROWS + "\n" + '"2021-04-02T00:02:00Z",1,1,1,"1\n2",1\n'
            + "2021-04-02T00:03:00Z,1,1,1,1,1\n2021-04-02T00:04:00Z,1,1,1,x,1\n")
    error = rejected(text, timeframe="1m")
    assert [(b.row, b.line, b.problem) for b in error.bad_rows] == [
        (3, 5, "close '1\\n2' is not a number"), (5, 8, "close 'x' is not a number")]
    assert str(error) == "BTCUSDT.csv line 5: close '1\\n2' is not a number (and 1 more bad row)"


def test_a_file_whose_line_7_is_bad_is_reported_at_line_7():
    lines = [f"2021-04-02T00:{m:02d}:00Z,1,1,1,1,1" for m in range(10)]
    lines[5] = "2021-04-02T00:05:00Z,1,1,1,1"  # the sixth data row: line 7 with the header
    error = rejected(HEADER + "\n".join(lines) + "\n")
    assert (error.row, error.line, error.column) == (6, 7, None)
    assert str(error) == "BTCUSDT.csv line 7: expected at least 6 fields, found 5"


def test_bad_rows_are_listed_up_to_a_hundred_and_the_rest_counted():
    rows = "".join(f"2021-04-02T{i // 60:02d}:{i % 60:02d}:00Z,1,1,1,{'x' if i % 2 else 1},1\n"
                   for i in range(300))
    error = rejected(HEADER + rows)
    assert len(error.bad_rows) == 100 and error.more == 50
    assert [(b.row, b.line) for b in error.bad_rows[:2]] == [(2, 3), (4, 5)]
    assert (error.bad_rows[-1].row, error.bad_rows[-1].line) == (200, 201)
    assert str(error) == "BTCUSDT.csv line 3: close 'x' is not a number (and 149 more bad rows)"


def test_json_bad_rows_are_named_by_row():
    text = json.dumps([BINANCE_ROWS[0], [1617321660000, "1"], "bar", BINANCE_ROWS[1]])
    error = rejected(text, "klines.json")
    assert [(b.row, b.line, b.problem) for b in error.bad_rows] == [
        (2, None, "expected at least 6 values, found 2"),
        (3, None, "expected an array or an object")]
    assert str(error) == ("klines.json row 2: expected at least 6 values, found 2 "
                          "(and 1 more bad row)")


# -- real files and resampling -------------------------------------------------------------------


def test_readme_row_counts_of_real_files():
    expected = {
        "stocks-daily/ORCL.csv": (1257, "1d", datetime(2013, 2, 8, tzinfo=UTC)),
        "stocks-daily/SPY.csv": (5241, "1d", datetime(1999, 11, 1, tzinfo=UTC)),
        "stocks-1m/SPY.csv": (31_757, "1m", datetime(2011, 1, 3, 9, 0, tzinfo=UTC)),
        "stocks-1m/AAPL.csv": (1167, "1m", datetime(2021, 8, 23, 13, 30, tzinfo=UTC)),
    }
    for name, (rows, timeframe, first) in expected.items():
        series = load_bar_series(require_series(name), symbol=Path(name).stem)
        assert (len(series), series.timeframe, series.bar(0).timestamp) == (rows, timeframe, first)


def test_load_market_data_aligns_files():
    market = load_market_data(
        {s: require_series(f"stocks-1m/{s}.csv") for s in ("AAPL", "MSFT")}
    )
    assert market.symbols == ("AAPL", "MSFT")
    assert len(market.timeline()) == 1167


@pytest.fixture(scope="module")
def btc() -> BarSeries:
    return load_bar_series(require_series("crypto-1m/BTCUSDT.csv"), symbol="BTCUSDT")


def test_resample_real_minutes_to_five_minutes(btc):
    five = resample(btc, "5m")
    first_five = [btc.bar(i) for i in range(5)]
    assert five.bar(0) == Bar(
        "BTCUSDT",
        "5m",
        first_five[0].timestamp,
        first_five[0].open,
        max(b.high for b in first_five),
        min(b.low for b in first_five),
        first_five[-1].close,
        sum((b.volume for b in first_five), D(0)),
    )
    assert (five.open_at(0), five.close_at(0)) == (D("58720.45"), btc.close_at(4))


def test_resample_real_minutes_to_hours_keeps_partial_buckets_around_gaps(btc):
    hours = resample(btc, "1h")
    hour = [btc.bar(i) for i in range(60)]
    assert hours.bar(0).high == max(b.high for b in hour)
    assert hours.bar(0).volume == sum((b.volume for b in hour), D(0))
    # Exchange gap 2021-04-20 02:00-04:29: the 04:00 hour has only its last 30 minutes.
    four = hours.index_at(int(datetime(2021, 4, 20, 4, tzinfo=UTC).timestamp()))
    start = btc.index_at(int(datetime(2021, 4, 20, 4, 30, tzinfo=UTC).timestamp()))
    assert hours.bar(four).open == btc.open_at(start)
    assert hours.index_at(int(datetime(2021, 4, 20, 3, tzinfo=UTC).timestamp())) == -1
    assert sum(hours.volume_at(i) for i in range(len(hours))) == sum(
        btc.volume_at(i) for i in range(len(btc))
    )


def test_resample_refuses_smaller_or_non_multiple_timeframes(btc):
    with pytest.raises(TimeframeError) as caught:
        resample(resample(btc, "2m"), "5m")
    assert str(caught.value) == (
        "cannot resample 2m bars to 5m: the target must be a larger whole multiple of 2m"
    )
    with pytest.raises(TimeframeError):
        resample(resample(btc, "1h"), "1m")


prices = st.integers(min_value=1, max_value=10**6)


@st.composite
def minute_bars(draw: st.DrawFn) -> list[Bar]:
    count = draw(st.integers(min_value=1, max_value=60))
    offsets = sorted(draw(st.sets(st.integers(0, 600), min_size=count, max_size=count)))
    bars = []
    for offset in offsets:
        a, b, c, d = (draw(prices) for _ in range(4))
        low, high = min(a, b, c, d), max(a, b, c, d)
        bars.append(
            Bar(
                "X",
                "1m",
                datetime.fromtimestamp(1617321600 + 60 * offset, UTC),
                D(b).scaleb(-2),
                D(high).scaleb(-2),
                D(low).scaleb(-2),
                D(c).scaleb(-2),
                D(draw(st.integers(0, 10**9))).scaleb(-3),
            )
        )
    return bars


@settings(max_examples=60, deadline=None)
@given(minute_bars(), st.sampled_from(["2m", "5m", "15m", "1h", "1d"]))
def test_resample_preserves_volume_and_extremes(bars, timeframe):
    series = BarSeries.from_bars(bars)
    coarse = resample(series, timeframe)
    assert sum(coarse.volume_at(i) for i in range(len(coarse))) == sum(b.volume for b in bars)
    assert max(coarse.high_at(i) for i in range(len(coarse))) == max(b.high for b in bars)
    assert min(coarse.low_at(i) for i in range(len(coarse))) == min(b.low for b in bars)
    assert coarse.open_at(0) == bars[0].open
    assert coarse.close_at(len(coarse) - 1) == bars[-1].close
