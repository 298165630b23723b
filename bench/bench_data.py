"""Benchmark input: a real one-minute series repeated to any length, as the data README says.

Each copy starts one bar after the previous copy's last bar, with every price multiplied by
(last close / first open) of the real series so the join has no jump; volumes are unchanged.
"""

from __future__ import annotations

from array import array
from pathlib import Path

from config.sample_data import require_series
from runtimes.core.bars import BarSeries
from runtimes.core.datasets import load_bar_series
from runtimes.core.timeframes import timeframe_seconds


def load_benchmark_series(rows: int, series: str = "crypto-1m/ETHUSDT.csv") -> BarSeries:
    """`rows` bars built from a real series (as config.sample_data names it: the bundled copy, or
    the whole file of ../shared/data when the bundle has a slice); prints how many real rows it
    started from."""
    path = require_series(series)
    real = load_bar_series(path, symbol=Path(series).stem)
    print(f"benchmark series: {rows:,} bars from {len(real):,} real rows of {path}")
    if rows <= len(real):
        return real.take(0, rows)
    return _repeat(real, rows)


def _repeat(real: BarSeries, rows: int) -> BarSeries:
    ts = real.timestamps()
    prices = [real.scaled_column(name) for name in ("open", "high", "low", "close")]
    volumes = real.scaled_column("volume")
    # The ratio as integers keeps scaling exact; each copy rounds half up to the series' scale,
    # which is monotone, so high >= open/close >= low still holds.
    ratio_num, ratio_den = prices[3][-1], prices[0][0]
    shift = ts[-1] - ts[0] + timeframe_seconds(real.timeframe)
    columns: list[array[int]] = [array("q") for _ in range(6)]
    copy = 0
    while len(columns[0]) < rows:
        take = min(len(real), rows - len(columns[0]))
        num, den = ratio_num**copy, ratio_den**copy
        columns[0].extend(t + copy * shift for t in ts[:take])
        for out, column in zip(columns[1:5], prices, strict=True):
            out.extend((v * num * 2 + den) // (2 * den) for v in column[:take])
        columns[5].extend(volumes[:take])
        copy += 1
    return BarSeries.from_scaled_columns(
        symbol=real.symbol,
        timeframe=real.timeframe,
        price_decimals=real.price_decimals,
        volume_decimals=real.volume_decimals,
        timestamps=columns[0],
        opens=columns[1],
        highs=columns[2],
        lows=columns[3],
        closes=columns[4],
        volumes=columns[5],
        validate=False,
    )


if __name__ == "__main__":
    import time
    import tracemalloc

    tracemalloc.start()
    started = time.perf_counter()
    series = load_benchmark_series(1_000_000)
    loaded = time.perf_counter() - started
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"built {len(series):,} bars in {loaded:.2f} s; columns {series.nbytes() / 1e6:.1f} MB,")
    print(f"traced memory now {current / 1e6:.1f} MB, peak {peak / 1e6:.1f} MB")
    started = time.perf_counter()
    for i in range(len(series)):
        series.close_at(i)
    per_call = (time.perf_counter() - started) / len(series) * 1e9
    print(f"close_at: {per_call:.0f} ns per call over {len(series):,} bars")
