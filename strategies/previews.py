"""What a dataset looks like without downloading it: per symbol the first and last bars and a
downsampled close series (column per field, decimals as strings), for the API and the dashboard;
and downsampled candles (one per bucket of bars) for the dashboard's preview chart and the price
chart of a backtest's result (its symbols over its period).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from runtimes.core.bars import BarSeries, scaled_to_text
from runtimes.core.datasets import load_bar_series
from runtimes.core.timeframes import timeframe_seconds
from runtimes.core.wire import decimal_str
from strategies.models import Dataset

PREVIEW_POINTS = 200
PREVIEW_CANDLES = 300
EDGE_BARS = 5


def dataset_preview(
    dataset: Dataset, *, symbols: list[str] | None = None, points: int = PREVIEW_POINTS,
    edge_bars: int = EDGE_BARS,
) -> dict[str, Any]:
    """`{id, name, timeframe, symbols: [{symbol, rows, first_bars, last_bars, closes}]}`.

    `closes` is `{"timestamps": [...], "values": [...]}` with at most `points` points, evenly
    spaced over the whole file and always including its first and last bar. Raises
    DatasetError if a file can no longer be read.
    """
    files = dataset.files.order_by("symbol")
    if symbols:
        files = files.filter(symbol__in=symbols)
    return {
        "id": str(dataset.pk),
        "name": dataset.name,
        "timeframe": dataset.timeframe,
        "symbols": [_file_preview(f.path, f.symbol, points, edge_bars) for f in files],
    }


def _file_preview(path: str, symbol: str, points: int, edge_bars: int) -> dict[str, Any]:
    stat = os.stat(path)  # the cache key changes when the file does
    return _cached_preview(path, stat.st_mtime_ns, stat.st_size, symbol, points, edge_bars)


@lru_cache(maxsize=32)
def _cached_preview(path: str, _mtime_ns: int, _size: int, symbol: str, points: int,
                    edge_bars: int) -> dict[str, Any]:
    series = load_bar_series(path, symbol=symbol)
    n = len(series)
    return {
        "symbol": symbol,
        "rows": n,
        "first_bars": [_bar(series, i) for i in range(min(edge_bars, n))],
        "last_bars": [_bar(series, i) for i in range(max(n - edge_bars, 0), n)],
        "closes": {
            "timestamps": [_stamp(series, i) for i in sample_indexes(n, points)],
            "values": [decimal_str(series.close_at(i)) for i in sample_indexes(n, points)],
        },
    }


def sample_indexes(n: int, points: int) -> list[int]:
    """`points` indexes spread evenly over 0…n-1 (both ends included); all of them if n ≤ points."""
    if n <= points:
        return list(range(n))
    if points < 2:
        return [n - 1]
    steps = points - 1
    return [(i * (n - 1) + steps // 2) // steps for i in range(points)]


def _stamp(series: BarSeries, i: int) -> str:
    return series.timestamp_at(i).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bar(series: BarSeries, i: int) -> dict[str, str]:
    return {
        "timestamp": _stamp(series, i),
        "open": decimal_str(series.open_at(i)),
        "high": decimal_str(series.high_at(i)),
        "low": decimal_str(series.low_at(i)),
        "close": decimal_str(series.close_at(i)),
        "volume": decimal_str(series.volume_at(i)),
    }


def dataset_candles(dataset: Dataset, *, candles: int = PREVIEW_CANDLES) -> dict[str, Any]:
    """`{symbol: {time, open, high, low, close}}`: at most `candles` candles per symbol, each the
    aggregate of an equal run of consecutive bars (open of the first, high, low, close of the
    last); `time` in epoch seconds, prices as decimal strings. Raises DatasetError if a file
    can no longer be read."""
    out = {}
    for file in dataset.files.order_by("symbol"):
        stat = os.stat(file.path)
        out[file.symbol] = _cached_candles(file.path, stat.st_mtime_ns, stat.st_size,
                                           file.symbol, candles)
    return out


@lru_cache(maxsize=32)
def _cached_candles(path: str, _mtime_ns: int, _size: int, symbol: str,
                    candles: int) -> dict[str, list[Any]]:
    return _bucket_candles(load_bar_series(path, symbol=symbol), candles)


@dataclass(frozen=True)
class PeriodCandles:
    """Candles of one symbol over a period (`columns` as `dataset_candles` gives them), and
    `until`: the epoch second the period's last bar closes (0 when there is no bar)."""

    columns: dict[str, list[Any]]
    until: int


def period_candles(dataset: Dataset, symbols: list[str], *, start: datetime | None,
                   end: datetime | None, candles: int) -> dict[str, PeriodCandles]:
    """`{symbol: PeriodCandles}` of the bars of `symbols` (every file when empty) whose open time
    lies in [start, end] (None: unbounded), at most `candles` per symbol, aggregated as in
    `dataset_candles`. Cached per file version; the result is shared: do not change it. Raises
    DatasetError if a file can no longer be read."""
    files = dataset.files.order_by("symbol")
    if symbols:
        files = files.filter(symbol__in=symbols)
    out = {}
    for file in files:
        stat = os.stat(file.path)
        out[file.symbol] = _cached_period_candles(file.path, stat.st_mtime_ns, stat.st_size,
                                                  file.symbol, start, end, candles)
    return out


@lru_cache(maxsize=32)
def _cached_period_candles(path: str, _mtime_ns: int, _size: int, symbol: str,
                           start: datetime | None, end: datetime | None,
                           candles: int) -> PeriodCandles:
    series = load_bar_series(path, symbol=symbol)
    part = series.slice(start, end)
    until = (part.epoch_seconds(len(part) - 1) + timeframe_seconds(series.timeframe)
             if len(part) else 0)
    return PeriodCandles(_bucket_candles(part, candles), until)


def _bucket_candles(series: BarSeries, candles: int) -> dict[str, list[Any]]:
    """At most `candles` candles, each the aggregate of an equal run of consecutive bars: open
    of the first, the highest high, the lowest low, close of the last; stamped with its first."""
    n, places = len(series), series.price_decimals
    opens, highs = series.scaled_column("open"), series.scaled_column("high")
    lows, closes = series.scaled_column("low"), series.scaled_column("close")
    stamps = series.timestamps()
    size = max(1, -(-n // candles))  # ceiling division: at most `candles` buckets
    columns: dict[str, list[Any]] = {"time": [], "open": [], "high": [], "low": [], "close": []}
    for start in range(0, n, size):
        end = min(start + size, n)
        columns["time"].append(stamps[start])
        columns["open"].append(scaled_to_text(opens[start], places))
        columns["high"].append(scaled_to_text(max(highs[start:end]), places))
        columns["low"].append(scaled_to_text(min(lows[start:end]), places))
        columns["close"].append(scaled_to_text(closes[end - 1], places))
    return columns
