"""Fan-out of the `mock` market (issue 11): one worker host serving 50 concurrent mock sessions,
each streamed to its own WebSocket client, for a fixed wall-clock window.

Per delivered quote: the latency from the quote's generation to its receipt on the client's
socket. "Generation" is the quote's own timestamp: the tick time the mock market stamps on it
(runtimes/providers/mock/provider.py `_tick_time`, a multiple of quote_interval_ms since the
epoch), which is when the quote becomes due, not when the host got round to computing it. So
the figure includes the host's wake-up lateness, and is what a strategy sees: how old a quote
is when it arrives. Server and clients share this machine's clock (time.time() on both sides).

Figures: events/s delivered to all clients, p50/p99/max quote latency in ms against the target
(p99 <= 50 ms), and the CPU of the platform's processes over the window. Where a quote's time
goes, from the process hosting the sessions (instrument_hosts): tick due -> the host's turn
(wake-up), tick due -> frames handed to the bus; the rest of the total is the bus, the consumer,
daphne and the socket. And how long the hosts' journal and lease writes hold their loops.

The clients run in a process of their own (raw `websockets`, acking every frame as the SDK
does), as remote strategies would.

Knobs: BENCH_MOCK_SESSIONS (50), BENCH_MOCK_SECONDS (20), BENCH_MOCK_INTERVAL_MS (250),
BENCH_TOPOLOGIES ("embedded,distributed"), BENCH_REDIS_URL, BENCH_POSTGRES_URL (as
bench_trading_api). Each session ticks at a phase of its own within the interval (the mock
market's default, from its session id), as sessions do in production.
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
    for name, what in (("wake_ms", "tick due -> the host's turn (wake-up)"),
                       ("handed_ms", "tick due -> its frames handed to the bus")):
        if result.get(name, {}).get("count"):
            part = result[name]
            print(f"  where it goes: {what}: p50 {part['p50']:.1f} ms, p99 "
                  f"{part['p99']:.1f} ms, max {part['max']:.1f} ms over {part['count']:,} ticks")
    writes = result.get("writes_ms")
    if writes and writes["count"]:
        print(f"  the hosts' journal and lease writes (each holds its host's loop): p50 "
              f"{writes['p50']:.1f} ms, p99 {writes['p99']:.1f} ms, max {writes['max']:.1f} ms "
              f"over {writes['count']:,} writes")
    collections = result.get("gc_ms")
    if collections:
        print(f"  garbage collections over 1 ms in the hosting process (every thread waits): "
              f"{collections['count']}, {collections['total']:.0f} ms in all, the longest "
              f"{collections['max']:.0f} ms")


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
    timing = tmp / "host-timing.txt"
    # A worker slot per session host, plus a few for the dispatch tasks.
    slots = _sessions() + 4
    if topology == "embedded":
        instrument_hosts(timing)
        stop, pids = _start_platform(topology, tmp, concurrency=slots)
    else:
        stop, pids = _start_distributed(timing, slots)
    sessions: list[Any] = []
    try:
        key, sessions = _mock_sessions(_sessions())
        base = f"ws://127.0.0.1:{os.environ['BENCH_PORT']}/sessions"
        clients = _run_clients(base, key, [str(s.id) for s in sessions], pids)
        answer = clients["answer"]
        return {"clients": answer, "cpu": clients["cpu"],
                **_host_timing(timing, answer["window"])}
    finally:
        _cancel(sessions)
        stop()


def _start_distributed(timing: Path, slots: int) -> tuple[Any, tuple[int, ...]]:
    """As bench_trading_api's distributed topology (a daphne process, a threads-pool Celery
    worker process over Redis and PostgreSQL), the worker instrumented (`run_worker`)."""
    from bench.bench_trading_api import _free_port, _wait_for_port, stopper

    port = _free_port()
    os.environ["BENCH_PORT"] = str(port)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    web = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port)], cwd=ROOT,
                           env=env, stdout=subprocess.DEVNULL)
    worker = subprocess.Popen([sys.executable, "-m", "bench.bench_mock_fanout", "worker",
                               str(timing), str(slots)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL)
    _wait_for_port(port)
    return stopper(web, worker), (web.pid, worker.pid)


def run_worker(timing: str, slots: str) -> None:
    """The distributed topology's worker process, its session hosts instrumented."""
    import django

    django.setup()
    instrument_hosts(Path(timing))
    from config.celery import app

    app.worker_main(["worker", "--pool", "threads", "--concurrency", slots, "--loglevel",
                     "WARNING", "--without-gossip", "--without-mingle",
                     "--hostname", f"bench-mock-{os.getpid()}@localhost"])


def instrument_hosts(timing: Path) -> None:
    """Wrap the session host of this process (the one hosting the sessions) to append, a line
    each to `timing`: per tick played, `tick DUE_MS STARTED_LATE_MS HANDED_LATE_MS` (how late
    after the tick was due the host started it, and had handed its frames to the bus); per
    journal or lease write, `write AT_MS DURATION_MS` (time the host was not ticking); per
    garbage collection over 1 ms, `gc AT_MS DURATION_MS GENERATION`. Same clock as the clients:
    time.time()."""
    import gc
    import threading

    from runtimes.hosting.host import SessionHost

    out = timing.open("a", buffering=1)
    lock = threading.Lock()
    tick, sync = SessionHost._tick, SessionHost._sync

    def timed_tick(self: Any) -> None:
        market = self.provider
        moment = time.time() * 1000
        due = moment - (moment - market._origin_ms) % market._interval
        playing = due > market._origin_ms + market._tick * market._interval
        tick(self)
        if playing:
            line = f"tick {due:.0f} {moment - due:.3f} {time.time() * 1000 - due:.3f}\n"
            with lock:
                out.write(line)

    def timed_sync(self: Any) -> None:
        started = time.time() * 1000
        sync(self)
        spent = time.time() * 1000 - started
        if spent > 0.2:  # it wrote (a call with nothing due costs microseconds)
            with lock:
                out.write(f"write {started:.0f} {spent:.3f}\n")

    collecting: dict[str, float] = {}

    def timed_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collecting["at"] = time.time() * 1000
            return
        spent = time.time() * 1000 - collecting.get("at", time.time() * 1000)
        if spent > 1.0:  # the GIL is held throughout: every thread of the process waits
            with lock:
                out.write(f"gc {collecting['at']:.0f} {spent:.3f} {info['generation']}\n")

    SessionHost._tick = timed_tick  # type: ignore[method-assign]
    SessionHost._sync = timed_sync  # type: ignore[method-assign]
    gc.callbacks.append(timed_collection)


def _host_timing(timing: Path, window: list[float]) -> dict[str, Any]:
    """The instrumented hosts' figures inside the clients' measuring window (epoch ms)."""
    started: list[float] = []
    handed: list[float] = []
    writes: list[float] = []
    collections: list[float] = []
    for line in timing.read_text().splitlines() if timing.exists() else ():
        kind, at, *values = line.split()
        if not window[0] <= float(at) <= window[1]:
            continue
        if kind == "tick":
            started.append(float(values[0]))
            handed.append(float(values[1]))
        else:
            (writes if kind == "write" else collections).append(float(values[0]))
    return {"wake_ms": _summary(started), "handed_ms": _summary(handed),
            "writes_ms": _summary(writes),
            "gc_ms": {"count": len(collections), "total": sum(collections),
                      "max": max(collections, default=0.0)}}


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
    started, opened_at = time.perf_counter(), time.time() * 1000
    await asyncio.sleep(seconds)  # the measured window: wall-clock time is what is measured
    window["open"] = False
    elapsed, closed_at = time.perf_counter() - started, time.time() * 1000
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"events": counts["events"], "quotes": counts["quotes"], "elapsed": elapsed,
            "connected": len(session_ids), "latency_ms": _summary(latencies),
            "window": [opened_at, closed_at]}


def _parse_stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        run_worker(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "clients":
        answer = asyncio.run(run_clients(sys.argv[2], sys.argv[3], float(sys.argv[4]),
                                         sys.argv[5:]))
        print(json.dumps(answer), flush=True)
    else:
        run_topology(sys.argv[1])
