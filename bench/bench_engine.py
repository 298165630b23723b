"""Backtest engine speed on 1M one-minute bars: no open orders, and an SMA 10/30 crossover.

Each figure is printed beside a bare Python loop over the same bars (reading each close), measured
in the same run; the targets are 300,000 bars/s (no orders), 100,000 bars/s (SMA) and < 500 MB.
"""

from __future__ import annotations

import gc
import os
import resource
import time
from collections import deque
from decimal import Decimal

from bench.bench_data import load_benchmark_series
from runtimes.core.bars import BarSeries
from runtimes.core.domain import OrderRequest, Side
from runtimes.core.engine import BacktestConfig, BacktestEngine, Batch
from runtimes.core.market_data import MarketData

ROWS = 1_000_000
NO_ORDERS_TARGET = 300_000
SMA_TARGET = 100_000
MEMORY_LIMIT_MB = 500


def bare_loop(series: BarSeries) -> float:
    """Seconds for the simplest loop an engine could be: read every bar's close."""
    close_at = series.close_at
    started = time.perf_counter()
    for i in range(len(series)):
        close_at(i)
    return time.perf_counter() - started


def do_nothing(engine: BacktestEngine, batch: Batch) -> None:
    """A strategy that only watches: the engine's own cost per bar, callback included."""


def run_no_orders(data: MarketData) -> tuple[float, int]:
    engine = BacktestEngine(data, BacktestConfig())
    next_batch = engine.next_batch
    started = time.perf_counter()
    while (batch := next_batch()) is not None:
        do_nothing(engine, batch)
    return time.perf_counter() - started, engine.steps_done


class SmaCross:
    """Long 1 unit when SMA(10) crosses above SMA(30); flat when it crosses below."""

    def __init__(self, symbol: str, fast: int = 10, slow: int = 30) -> None:
        self.symbol, self.fast, self.slow = symbol, fast, slow
        self.window: deque[Decimal] = deque()
        self.sum_fast = self.sum_slow = Decimal(0)
        self.above: bool | None = None
        self.crosses = 0

    def on_batch(self, engine: BacktestEngine, batch: Batch) -> None:
        close = engine.last_close(self.symbol)
        assert close is not None
        window = self.window
        window.append(close)
        self.sum_fast += close
        self.sum_slow += close
        if len(window) > self.fast:
            self.sum_fast -= window[-1 - self.fast]
        if len(window) > self.slow:
            self.sum_slow -= window.popleft()
        if len(window) < self.slow:
            return
        above = self.sum_fast * self.slow > self.sum_slow * self.fast
        if above == self.above:
            return
        was, self.above = self.above, above
        if was is None:
            return
        self.crosses += 1
        side = Side.BUY if above else Side.SELL
        if side is Side.SELL and not engine.exchange.held(self.symbol):
            return
        engine.submit_order(OrderRequest(symbol=self.symbol, side=side, quantity=Decimal(1)))


def run_sma(data: MarketData, symbol: str) -> tuple[float, int, SmaCross, BacktestEngine]:
    engine = BacktestEngine(data, BacktestConfig(initial_cash=Decimal(1_000_000)))
    strategy = SmaCross(symbol)
    next_batch, on_batch = engine.next_batch, strategy.on_batch
    started = time.perf_counter()
    while (batch := next_batch()) is not None:
        on_batch(engine, batch)
    return time.perf_counter() - started, engine.steps_done, strategy, engine


def main() -> None:
    rows = int(os.environ.get("BENCH_ROWS", ROWS))  # a smaller run for a quick look
    series = load_benchmark_series(rows)
    data = MarketData.from_series([series])
    gc.collect()
    bare = bare_loop(series)
    ceiling = rows / bare
    print(f"bare loop (close_at per bar): {ceiling:12,.0f} bars/s  ({bare:.2f} s)")
    elapsed, steps = run_no_orders(data)
    rate = steps / elapsed
    print(
        f"engine, no open orders:       {rate:12,.0f} bars/s  ({elapsed:.2f} s; "
        f"target {NO_ORDERS_TARGET:,}; {rate / ceiling:.0%} of bare loop)"
    )
    elapsed, steps, strategy, engine = run_sma(data, series.symbol)
    rate = steps / elapsed
    print(
        f"engine, SMA 10/30 crossover:  {rate:12,.0f} bars/s  ({elapsed:.2f} s; "
        f"target {SMA_TARGET:,}; {rate / ceiling:.0%} of bare loop; "
        f"{strategy.crosses:,} crosses, {len(engine.exchange.fills):,} fills)"
    )
    print(
        f"peak resident memory after both runs: {_peak_mb():,.0f} MB (limit {MEMORY_LIMIT_MB} MB)"
    )
    started = time.perf_counter()
    result = engine.result()
    print(
        f"result() with metrics: {time.perf_counter() - started:.2f} s "
        f"({len(result.equity_curve):,} equity points, {len(result.round_trips):,} round trips)"
    )
    print(f"peak resident memory with the full result: {_peak_mb():,.0f} MB")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
