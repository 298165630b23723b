"""The in-memory SDK ceiling (issue 14): the unmodified `tektii` SDK running the unmodified
examples/strategies/sma_crossover.py against canned frames and canned REST answers, with no
socket, no engine and no platform. What a hosted SDK strategy could reach if the platform cost
nothing.

The child (`python -m bench.sdk_ceiling ROWS`) builds the candle frames from the real BTCUSDT
1m rows the hosted benchmark uses, with the platform's own wire encoder (so they are the bytes a
hosted run sends), swaps `websockets.asyncio.client.connect` (what tektii.stream calls) for an
in-memory connection and gives every httpx.AsyncClient an httpx.MockTransport, then runs the
example file with runpy. Only the run is timed; the frames are built before it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "strategies" / "sma_crossover.py"
PARAMS = {"fast": 10, "slow": 30}


@dataclass(frozen=True)
class CeilingRun:
    """One in-memory run: candles streamed, orders the strategy placed, acks it sent."""

    candles: int
    orders: int
    acks: int
    elapsed: float

    @property
    def events_per_second(self) -> float:
        return self.candles / self.elapsed

    @property
    def micros_per_event(self) -> float:
        return self.elapsed / self.candles * 1e6


def measure_in_memory_ceiling(rows: int) -> CeilingRun:
    """Run the child over `rows` bars and return its figures. Raises RuntimeError if it fails."""
    child = subprocess.run(
        [sys.executable, "-m", "bench.sdk_ceiling", str(rows)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = child.stdout.strip().splitlines()
    if child.returncode != 0 or not lines:
        raise RuntimeError(f"the in-memory SDK run failed (exit {child.returncode})")
    return CeilingRun(**json.loads(lines[-1]))


# -- the child: canned frames and answers, the example run in this process -------------------------


def candle_frames(rows: int) -> list[str]:
    """The text frames of a backtest of `rows` BTCUSDT 1m bars: candles evt-1..evt-N, then the
    terminal `backtest_complete`, as the platform's wire encoder writes them."""
    from bench.bench_data import load_benchmark_series
    from runtimes.core.events import CandleEvent
    from runtimes.core.session import event_id_of
    from runtimes.core.wire import backtest_complete_frame, encode_frame, event_frame

    series = load_benchmark_series(rows, "crypto-1m/BTCUSDT.csv")
    frames = []
    for i, bar in enumerate(series):
        event = CandleEvent(bar, bar.timestamp)
        frames.append(encode_frame(event_frame(event, event_id=event_id_of(i + 1),
                                               provider="backtest")))
    last = series.timestamp_at(len(series) - 1) if len(series) else None
    frames.append(encode_frame(backtest_complete_frame(event_id=event_id_of(len(series) + 1),
                                                       timestamp=last)))
    return frames


class InMemoryConnection:
    """Stands in for a websockets ClientConnection: yields the canned frames, counts acks."""

    def __init__(self, frames: list[str]) -> None:
        self._frames: Iterator[str] = iter(frames)
        self.acks = 0

    def __aiter__(self) -> InMemoryConnection:
        return self

    async def __anext__(self) -> str:
        try:
            return next(self._frames)
        except StopIteration:
            raise StopAsyncIteration from None

    async def send(self, message: str) -> None:
        self.acks += 1

    async def close(self) -> None:
        return None


class CannedGateway:
    """The REST answers of a gateway that accepts every order: a buy opens the position, closing
    it returns one handle, closing with nothing open returns none (as the platform answers)."""

    def __init__(self) -> None:
        self.orders = 0
        self._holding = False

    def __call__(self, request: Any) -> Any:
        import httpx

        if request.method == "POST" and request.url.path.endswith("/v1/orders"):
            self._holding = True
            return httpx.Response(201, json=self._handle())
        if request.method == "DELETE" and request.url.path.endswith("/v1/positions"):
            handles = [self._handle()] if self._holding else []
            self._holding = False
            return httpx.Response(200, json=handles)
        return httpx.Response(404, json={"code": "NOT_FOUND", "message": request.url.path})

    def _handle(self) -> dict[str, str]:
        self.orders += 1
        return {"id": f"ord-{self.orders}", "status": "PENDING"}


def run_child(rows: int) -> None:
    import asyncio  # noqa: F401  (imported before the clock starts, as the example needs it)
    import os
    import runpy
    import time

    import httpx
    import tektii  # noqa: F401  (the SDK's import is start-up, not per-event work)
    import websockets.asyncio.client

    frames = candle_frames(rows)
    connection = InMemoryConnection(frames)
    gateway = CannedGateway()

    async def connect(*_: Any, **__: Any) -> InMemoryConnection:
        return connection

    websockets.asyncio.client.connect = connect  # type: ignore[assignment]
    original_init = httpx.AsyncClient.__init__

    def init_with_canned_answers(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **{**kwargs, "transport": httpx.MockTransport(gateway)})

    httpx.AsyncClient.__init__ = init_with_canned_answers  # type: ignore[method-assign]
    os.environ["TEKTII_TRADING_GATEWAY_URL"] = "http://127.0.0.1:9/sessions/in-memory"
    os.environ["PARITY_STRATEGY_PARAMS"] = json.dumps(PARAMS)
    os.environ["LOG_LEVEL"] = "WARNING"  # the example logs each order at INFO
    started = time.perf_counter()
    try:
        runpy.run_path(str(EXAMPLE), run_name="__main__")
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise
    elapsed = time.perf_counter() - started
    result = {"candles": len(frames) - 1, "orders": gateway.orders, "acks": connection.acks,
              "elapsed": elapsed}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    run_child(int(sys.argv[1]))
