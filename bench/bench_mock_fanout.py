"""Fan-out of the `mock` market (issue 11): one worker host serving 50 concurrent mock sessions,
each streamed to its own WebSocket client, for a fixed wall-clock window.

Per delivered quote: the latency from the quote's generation to its receipt on the client's
socket. "Generation" is the quote's own timestamp: the tick time the mock market stamps on it
(runtimes/providers/mock/provider.py `_tick_time`, a multiple of quote_interval_ms since the
epoch), which is when the quote becomes due, not when the host got round to computing it. So
the figure includes the host's wake-up lateness, and is what a strategy sees: how old a quote
is when it arrives. Server and clients share this machine's clock (time.time() on both sides).

Figures: events/s delivered to all clients, p50/p99/max quote latency in ms against the target
(p99 <= 50 ms), and the CPU of the platform's processes over the window. Embedded only (the
worker is in the bench's own process there): where a quote's time goes, the host's wake-up
lateness (tick due -> `advance` called) and the rest (host -> bus -> consumer -> daphne ->
socket).

The clients run in a process of their own (raw `websockets`, acking every frame as the SDK
does), as remote strategies would.

Knobs: BENCH_MOCK_SESSIONS (50), BENCH_MOCK_SECONDS (20), BENCH_MOCK_INTERVAL_MS (250),
BENCH_TOPOLOGIES ("embedded,distributed"), BENCH_REDIS_URL, BENCH_POSTGRES_URL (as
bench_trading_api).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.bench_trading_api import (
    RESULT_MARK,
    ROOT,
    _child_env,
    _cpu_seconds,
    _create_database,
    _drop_database,
    _env,
    _start_platform,
)

TARGET_P99_MS = 50.0
SYMBOLS = ["AAPL", "MSFT", "BTCUSDT"]


def _sessions() -> int:
    return int(_env("BENCH_MOCK_SESSIONS", "50"))


def _seconds() -> float:
    return float(_env("BENCH_MOCK_SECONDS", "20"))


def _interval_ms() -> int:
    return int(_env("BENCH_MOCK_INTERVAL_MS", "250"))


# -- the parent: one child per topology, the report -----------------------------------------------


def main() -> None:
    print(f"{_sessions()} mock sessions x {len(SYMBOLS)} symbols, a quote every "
          f"{_interval_ms()} ms, {_seconds():.0f} s window; target p99 <= {TARGET_P99_MS:.0f} ms")
    for topology in _env("BENCH_TOPOLOGIES", "embedded,distributed").split(","):
        topology = topology.strip()
        env = _child_env()
        env.setdefault("LOG_LEVEL", "WARNING")  # not a line per session task
        child = subprocess.run([sys.executable, "-m", "bench.bench_mock_fanout", topology],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
                               check=False)
        results = [line for line in child.stdout.splitlines() if line.startswith(RESULT_MARK)]
        for line in child.stdout.splitlines():
            if not line.startswith(RESULT_MARK):
                print(f"  [{topology}] {line}")
        if child.returncode != 0 or not results:
            print(f"{topology}: the run failed (exit {child.returncode})")
            continue
        report(topology, json.loads(results[-1].removeprefix(RESULT_MARK)))


def report(topology: str, result: dict[str, Any]) -> None:
    clients, cpu = result["clients"], result["cpu"]
    latency = clients["latency_ms"]
    verdict = "ok" if latency["p99"] <= TARGET_P99_MS else "MISSES TARGET"
    print(f"{topology}:")
    print(f"  delivered {clients['events'] / clients['elapsed']:,.0f} events/s "
          f"({clients['events']:,} events, {clients['quotes']:,} quotes to "
          f"{clients['connected']} sockets in {clients['elapsed']:.1f} s)")
    print(f"  quote latency (tick time -> socket): p50 {latency['p50']:.1f} ms, "
          f"p99 {latency['p99']:.1f} ms, max {latency['max']:.1f} ms "
          f"(target p99 <= {TARGET_P99_MS:.0f} ms: {verdict})")
    print(f"  platform CPU: {cpu['server_s'] / cpu['wall_s'] * 100:.0f}% of one core "
          f"({cpu['server_s']:.1f} s in {cpu['wall_s']:.1f} s; clients "
          f"{cpu['clients_s'] / cpu['wall_s'] * 100:.0f}%)")
    wake = result.get("wake_ms")
    if wake:
        print(f"  where it goes: host wake-up lateness (tick due -> advance) p50 "
              f"{wake['p50']:.1f} ms, p99 {wake['p99']:.1f} ms, max {wake['max']:.1f} ms over "
              f"{wake['count']:,} ticks; the rest (host -> bus -> consumer -> daphne -> socket) "
              f"is the difference")
    writes = result.get("writes_ms")
    if writes:
        print(f"  the hosts' journal and lease writes (each holds its host's loop): p50 "
              f"{writes['p50']:.1f} ms, p99 {writes['p99']:.1f} ms, max {writes['max']:.1f} ms "
              f"over {writes['count']:,} writes")


def _summary(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"),
                "count": len(values)}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p99": cuts[98], "max": max(values), "count": len(values)}


# -- a child: one topology ------------------------------------------------------------------------


def run_topology(topology: str) -> None:
    with tempfile.TemporaryDirectory(prefix="parity-bench-") as tmp:
        os.environ["PARITY_DATA_DIR"] = tmp
        # One workspace holds every session: its quota of live remote sessions must allow them.
        os.environ["QUOTA_REMOTE_BACKTESTS"] = str(_sessions() + 10)
        database = None
        if topology == "distributed":
            database = _create_database()
            os.environ["DATABASE_URL"] = database
            os.environ["REDIS_URL"] = _env("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
        try:
            result = _run(topology, Path(tmp))
        finally:
            if database is not None:
                _drop_database(database)
    print(RESULT_MARK + json.dumps(result), flush=True)
    os._exit(0)  # the embedded worker's pool threads are not daemons (see bench_trading_api)


def _run(topology: str, tmp: Path) -> dict[str, Any]:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    wake = _record_wake_lateness() if topology == "embedded" else None
    writes = _record_host_writes() if topology == "embedded" else None
    # A worker slot per session host, plus a few for the dispatch tasks.
    stop, pids = _start_platform(topology, tmp, concurrency=_sessions() + 4)
    sessions: list[Any] = []
    try:
        key, sessions = _mock_sessions(_sessions())
        base = f"ws://127.0.0.1:{os.environ['BENCH_PORT']}/sessions"
        clients = _run_clients(base, key, [str(s.id) for s in sessions], pids)
        result: dict[str, Any] = {"clients": clients["answer"], "cpu": clients["cpu"]}
        if wake is not None and writes is not None:
            result["wake_ms"], result["writes_ms"] = _summary(wake), _summary(writes)
        return result
    finally:
        _cancel(sessions)
        stop()


def _record_wake_lateness() -> list[float]:
    """Wrap MockMarket.advance (this process hosts the sessions when embedded): how late, in
    ms, each tick was played after it was due."""
    from runtimes.providers.mock.provider import MockMarket, _ms

    lateness: list[float] = []
    advance = MockMarket.advance

    def timed(self: Any, now: datetime) -> None:
        moment = _ms(now)
        due = moment - (moment - self._origin_ms) % self._interval
        if due > self._origin_ms + self._tick * self._interval:  # a tick is due: it plays now
            lateness.append(time.time() * 1000 - due)
        advance(self, now)

    MockMarket.advance = timed  # type: ignore[method-assign]
    return lateness


def _record_host_writes() -> list[float]:
    """Wrap SessionHost._sync: how long, in ms, each host's journal and lease writes hold its
    loop (a host writing is not ticking)."""
    from runtimes.hosting.host import SessionHost

    durations: list[float] = []
    sync = SessionHost._sync

    def timed(self: Any) -> None:
        started = time.perf_counter()
        sync(self)
        spent = (time.perf_counter() - started) * 1000
        if spent > 0.2:  # it wrote (a call with nothing due costs microseconds)
            durations.append(spent)

    SessionHost._sync = timed  # type: ignore[method-assign]
    return durations


def _mock_sessions(count: int) -> tuple[str, list[Any]]:
    from decimal import Decimal

    from accounts.models import User
    from accounts.services import create_api_key, create_workspace
    from runtimes.services import create_live_session

    user = User.objects.create_user("bench@example.com", "bench-password-1")
    workspace = create_workspace(owner=user, name="Bench")
    _, key = create_api_key(workspace=workspace, created_by=user, name="bench",
                            scopes=["read", "trade:paper"])
    sessions = [
        create_live_session(
            workspace=workspace, created_by=user, platform="mock", symbols=SYMBOLS,
            timeframe="1m", timeframes=["1m"], initial_cash=Decimal(100_000),
            options={"seed": number, "quote_interval_ms": _interval_ms()},
            connect_timeout_s=120)
        for number in range(count)
    ]
    return key, sessions


def _run_clients(base: str, key: str, session_ids: list[str],
                 pids: tuple[int, ...]) -> dict[str, Any]:
    import resource

    before = _cpu_seconds(pids)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_mock_fanout", "clients", base, key,
         str(_seconds()), *session_ids],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    answer = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    # CPU over the whole client run (connecting included) against its wall time.
    return {"answer": answer, "cpu": {
        "server_s": _cpu_seconds(pids) - before, "wall_s": wall,
        "clients_s": (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)}}


def _cancel(sessions: list[Any]) -> None:
    from django.utils import timezone

    from runtimes.services import cancel_session

    for session in sessions:
        session.refresh_from_db()
        cancel_session(session=session, now=timezone.now(), reason="bench over")


# -- the clients' process -------------------------------------------------------------------------


async def run_clients(base: str, key: str, seconds: float,
                      session_ids: list[str]) -> dict[str, Any]:
    """One socket per session, acking every frame at once (as the SDK does). The window opens
    once every socket has had its first frame; quotes received in it are measured."""
    import websockets

    latencies: list[float] = []
    counts = {"events": 0, "quotes": 0}
    first_frame = [asyncio.Event() for _ in session_ids]
    window = {"open": False}

    async def client(number: int, session_id: str) -> None:
        url = f"{base}/{session_id}/v1/ws"
        async with websockets.connect(url, max_size=None, compression=None,
                                      additional_headers={"Authorization": f"Bearer {key}"},
                                      open_timeout=60) as socket:
            async for text in socket:
                received = time.time()
                frame = json.loads(text)
                first_frame[number].set()
                if window["open"]:
                    counts["events"] += 1
                    if frame.get("type") == "quote":
                        counts["quotes"] += 1
                        stamp = _parse_stamp(frame["quote"]["timestamp"])
                        latencies.append((received - stamp) * 1000)
                event_id = frame.get("event_id")
                if event_id is not None:
                    await socket.send(json.dumps({
                        "type": "event_ack", "events_processed": [event_id],
                        "correlation_id": event_id, "timestamp": int(received * 1000)}))

    tasks = [asyncio.create_task(client(n, s)) for n, s in enumerate(session_ids)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in first_frame)), 120)
    window["open"] = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)  # the measured window: wall-clock time is what is measured
    window["open"] = False
    elapsed = time.perf_counter() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"events": counts["events"], "quotes": counts["quotes"], "elapsed": elapsed,
            "connected": len(session_ids), "latency_ms": _summary(latencies)}


def _parse_stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


if __name__ == "__main__":
    if sys.argv[1] == "clients":
        answer = asyncio.run(run_clients(sys.argv[2], sys.argv[3], float(sys.argv[4]),
                                         sys.argv[5:]))
        print(json.dumps(answer), flush=True)
    else:
        run_topology(sys.argv[1])
