"""The strategy side of the Trading API benchmark, run as its own process so that it competes
with the platform for the two cores the way a remote strategy would, not for one GIL.

`python -m bench.trading_client sma BASE_URL KEY QUANTITY` runs the SDK SMA 10/30 crossover
(market orders on each cross, per symbol) and prints one JSON line: candles, events, orders,
elapsed seconds and the submit latencies. `acks BASE_URL KEY` drives a session with a bare
`websockets` client that acks each frame at once and prints the ack round trips (send ack ->
next frame). `echo-server` / `echo-client PORT N` measure the loopback ceiling;
`lockstep-server N` serves N candles lock-step and does nothing else (the SDK's own ceiling:
run `sma http://127.0.0.1:PORT/x any-key 1` against it; its closes never cross, so no orders).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import deque
from typing import Any

FAST, SLOW = 10, 30


class SmaCross:
    """Per-symbol 10/30 SMA state with running sums: says "buy" or "sell" on a cross."""

    def __init__(self) -> None:
        self.window: deque[float] = deque(maxlen=SLOW)
        self.fast_sum = self.slow_sum = 0.0
        self.long = False

    def on_close(self, close: float) -> str | None:
        window = self.window
        if len(window) == SLOW:
            self.slow_sum -= window[0]
        if len(window) >= FAST:
            self.fast_sum -= window[-FAST]
        window.append(close)
        self.fast_sum += close
        self.slow_sum += close
        if len(window) < SLOW:
            return None
        fast, slow = self.fast_sum / FAST, self.slow_sum / SLOW
        if fast > slow and not self.long:
            self.long = True
            return "buy"
        if fast < slow and self.long:
            self.long = False
            return "sell"
        return None


async def run_sma(base_url: str, key: str, quantity: str) -> dict[str, Any]:
    from tektii import AsyncTradingGateway, CandleEvent

    crosses: dict[str, SmaCross] = {}
    candles = events = 0
    submits: list[float] = []
    complete: list[object] = []
    started = time.perf_counter()
    async with AsyncTradingGateway(base_url=base_url, api_key=key, max_retries=0) as gateway:
        stream = gateway.stream(on_backtest_complete=complete.append)
        async with stream as frames:
            async for event in frames:
                events += 1
                if not isinstance(event, CandleEvent):
                    continue
                candles += 1
                symbol = event.bar.symbol
                cross = crosses.setdefault(symbol, SmaCross())
                side = cross.on_close(float(event.bar.close))
                if side is not None:
                    sent = time.perf_counter()
                    await gateway.submit_order(symbol, side, quantity)
                    submits.append(time.perf_counter() - sent)
    return {"candles": candles, "events": events, "orders": len(submits),
            "complete": len(complete), "elapsed": time.perf_counter() - started,
            "submit_s": submits}


async def run_acks(base_url: str, key: str) -> dict[str, Any]:
    """Ack every frame at once; the round trip is ack sent -> next frame received."""
    import websockets

    url = base_url.replace("http", "ws", 1) + "/v1/ws"
    round_trips: list[float] = []
    frames = 0
    started = time.perf_counter()
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {key}"},
                                  max_size=None) as socket:
        sent_at: float | None = None
        async for text in socket:
            if sent_at is not None:
                round_trips.append(time.perf_counter() - sent_at)
            frames += 1
            frame = json.loads(text)
            event_id = frame.get("event_id")
            if event_id is None:
                sent_at = None
                continue
            await socket.send(json.dumps({"type": "event_ack", "events_processed": [event_id],
                                          "correlation_id": event_id,
                                          "timestamp": int(time.time() * 1000)}))
            sent_at = time.perf_counter()
            if frame.get("type") == "backtest_complete":
                break  # that ack ends the session
    return {"frames": frames, "elapsed": time.perf_counter() - started, "ack_s": round_trips}


async def echo_server(ready: Any = None) -> None:
    import websockets

    async def echo(socket: Any) -> None:
        async for message in socket:
            await socket.send(message)

    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(port, flush=True)
        await asyncio.Future()


async def echo_client(port: int, count: int) -> dict[str, Any]:
    import websockets

    async with websockets.connect(f"ws://127.0.0.1:{port}") as socket:
        message = json.dumps({"type": "event_ack", "events_processed": ["evt-1"]})
        for _ in range(200):  # warm up
            await socket.send(message)
            await socket.recv()
        started = time.perf_counter()
        for _ in range(count):
            await socket.send(message)
            await socket.recv()
        return {"round_trips": count, "elapsed": time.perf_counter() - started}


async def lockstep_server(count: int) -> None:
    """One strategy connection: `count` candle frames, each sent once the previous one is acked,
    then `backtest_complete`. Frames are prepared beforehand: the server costs next to nothing,
    so the rate is what the client can do (and the loopback)."""
    import websockets

    frames = [_candle_text(i) for i in range(1, count + 1)]
    done = asyncio.get_running_loop().create_future()

    async def serve(socket: Any) -> None:
        for frame in frames:
            await socket.send(frame)
            while not json.loads(await socket.recv()).get("events_processed"):
                pass
        await socket.send(json.dumps({"type": "backtest_complete", "event_id": "evt-end",
                                      "timestamp": "2024-01-01T00:00:00Z"}))
        with contextlib.suppress(Exception):
            await socket.recv()
        if not done.done():
            done.set_result(None)

    # No permessage-deflate: daphne does not negotiate it either.
    async with websockets.serve(serve, "127.0.0.1", 0, compression=None) as server:
        print(next(iter(server.sockets)).getsockname()[1], flush=True)
        await done


def _candle_text(number: int) -> str:
    stamp = f"2024-01-01T{number // 3600 % 24:02d}:{number // 60 % 60:02d}:{number % 60:02d}Z"
    return json.dumps({
        "type": "candle",
        "bar": {"symbol": "BTCUSDT", "provider": "backtest", "timeframe": "1m",
                "timestamp": stamp, "open": "42000.1", "high": "42010.5", "low": "41990.25",
                "close": "42000.1", "volume": "12.345"},
        "timestamp": stamp, "event_id": f"evt-{number}"}, separators=(",", ":"))


def main(argv: list[str]) -> None:
    command, args = argv[0], argv[1:]
    if command == "echo-server":
        asyncio.run(echo_server())
        return
    if command == "lockstep-server":
        asyncio.run(lockstep_server(int(args[0])))
        return
    runners = {
        "sma": lambda: run_sma(args[0], args[1], args[2]),
        "acks": lambda: run_acks(args[0], args[1]),
        "echo-client": lambda: echo_client(int(args[0]), int(args[1])),
    }
    print(json.dumps(asyncio.run(runners[command]())), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
