"""The Trading API end to end (issue 4): an SDK strategy over the real WebSocket and REST API.

Figures, each printed beside its target and the ceilings measured in the same run (a bare
WebSocket echo; the SDK SMA client against a do-nothing lock-step server): bars/s of a
100,000-bar BTCUSDT backtest driven by an SDK SMA 10/30 crossover, also as a fraction of the SDK
ceiling (issue 14: >= 0.5 x embedded, >= 0.33 x through Redis), on the embedded topology (daphne
thread + in-process Celery worker, SQLite file) and through Redis (a daphne process and a `celery
worker` process over Redis and a fresh PostgreSQL database); events/s of a 20-symbol daily
universe; ack round trip; order submit latency (p50, p99; embedded target 2 ms / 5 ms).

Each topology runs in a child process of its own (Django is configured once per process), and
every strategy in a grandchild (`bench.trading_client`), as a remote strategy would.

Knobs: BENCH_ROWS (100000), BENCH_LATENCY_ROWS (10000), BENCH_TOPOLOGIES
("embedded,distributed"), BENCH_REDIS_URL (redis://127.0.0.1:6379/14), BENCH_POSTGRES_URL
(postgres://postgres@127.0.0.1:5432), BENCH_ECHO_ROUND_TRIPS (20000); DJANGO_DEBUG (0).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"embedded": 2500.0, "distributed": 1000.0}
# Issue 14: SMA bars/s as a fraction of the SDK-alone ceiling of the same run, and order submit
# latency (p50, p99 seconds; embedded only: the Redis topology has no latency target).
SDK_RATIO_TARGETS = {"embedded": 0.5, "distributed": 0.33}
SUBMIT_TARGETS = {"embedded": (0.002, 0.005)}
UNIVERSE_SIZE = 20
RESULT_MARK = "BENCH-RESULT "


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _rows() -> int:
    return int(_env("BENCH_ROWS", "100000"))


# -- the parent: ceiling, one child per topology, the report ---------------------------------------


def main() -> None:
    ceiling = measure_ceiling(int(_env("BENCH_ECHO_ROUND_TRIPS", "20000")))
    print(f"ceiling: bare websockets echo on loopback {ceiling:,.0f} round trips/s")
    sdk = measure_sdk_ceiling(int(_env("BENCH_SDK_CEILING_EVENTS", "20000")))
    print(f"ceiling: the SDK SMA client against a do-nothing lock-step server "
          f"{sdk:,.0f} events/s (no platform at all: what a lock-step SDK strategy can reach)")
    for topology in _env("BENCH_TOPOLOGIES", "embedded,distributed").split(","):
        result = _run_child(topology.strip())
        if result is not None:
            report(topology.strip(), result, ceiling, sdk)


def measure_sdk_ceiling(events: int) -> float:
    """Events/s of the SDK SMA client (bench.trading_client) against a lock-step server that
    does nothing but send prepared candles: the most any lock-step SDK strategy can get here."""
    server = subprocess.Popen([sys.executable, "-m", "bench.trading_client", "lockstep-server",
                               str(events)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        answer = _client("sma", f"http://127.0.0.1:{port}/ceiling", "no-key", "1")
    finally:
        server.terminate()
        server.wait(5)
    return float(answer["events"]) / float(answer["elapsed"])


def measure_ceiling(round_trips: int) -> float:
    """Round trips/s of a bare `websockets` echo, server and client in two processes."""
    server = subprocess.Popen([sys.executable, "-m", "bench.trading_client", "echo-server"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        answer = _client("echo-client", port, str(round_trips))
    finally:
        server.terminate()
        server.wait(5)
    return answer["round_trips"] / answer["elapsed"]


def _run_child(topology: str) -> dict[str, Any] | None:
    child = subprocess.run([sys.executable, "-m", "bench.bench_trading_api", topology], cwd=ROOT,
                           env=_child_env(), stdout=subprocess.PIPE, text=True, check=False)
    results = [line for line in child.stdout.splitlines() if line.startswith(RESULT_MARK)]
    for line in child.stdout.splitlines():
        if not line.startswith(RESULT_MARK):
            print(f"  [{topology}] {line}")
    if child.returncode != 0 or not results:
        print(f"{topology}: the run failed (exit {child.returncode})")
        return None
    return dict(json.loads(results[-1].removeprefix(RESULT_MARK)))


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    # As deployed: DEBUG keeps every SQL query in memory and renders error pages at length.
    env.setdefault("DJANGO_DEBUG", "0")
    env.pop("CELERY_BROKER_URL", None)
    return env


def report(topology: str, result: dict[str, Any], ceiling: float, sdk_ceiling: float) -> None:
    sma, universe, acks = result["sma"], result["universe"], result["acks"]
    bars = sma["candles"] / sma["elapsed"]
    target = TARGETS[topology]
    verdict = "ok" if bars >= target else "BELOW TARGET"
    print(f"{topology}:")
    print(f"  SMA 10/30 over {sma['candles']:,} BTCUSDT bars: {bars:,.0f} bars/s "
          f"(target {target:,.0f}: {verdict}; ceiling {ceiling:,.0f} rt/s) "
          f"{sma['orders']:,} orders in {sma['elapsed']:.1f} s")
    ratio, ratio_target = bars / sdk_ceiling, SDK_RATIO_TARGETS[topology]
    print(f"  SMA against the SDK ceiling ({sdk_ceiling:,.0f} events/s): {ratio:.2f} x "
          f"(target >= {ratio_target:.2f} x: {'ok' if ratio >= ratio_target else 'BELOW TARGET'})")
    events = universe["events"] / universe["elapsed"]
    print(f"  {UNIVERSE_SIZE}-symbol daily universe: {events:,.0f} events/s "
          f"({universe['events']:,} events, {universe['candles']:,} candles, "
          f"{universe['orders']:,} orders; ceiling {ceiling:,.0f} rt/s)")
    print(f"  ack round trip: {_percentiles(acks['ack_s'])} over {len(acks['ack_s']):,} acks "
          f"(ceiling {1e6 / ceiling:,.0f} us)")
    print(f"  order submit:   {_percentiles(sma['submit_s'])} over {len(sma['submit_s']):,} orders"
          f"{_submit_verdict(topology, sma['submit_s'])}")
    for name, run, count in (("SMA", sma, sma["events"]), ("acks", acks, acks["frames"])):
        cpu = run.get("cpu")
        if cpu:
            parts = cpu.get("processes_s", [])
            split = (f" (web {parts[0] / count * 1e6:,.0f} us + worker "
                     f"{parts[1] / count * 1e6:,.0f} us)" if len(parts) == 2 else "")
            print(f"  CPU per event ({name}): platform {cpu['server_s'] / count * 1e6:,.0f} us"
                  f"{split}, "
                  f"strategy {cpu['strategy_s'] / count * 1e6:,.0f} us, "
                  f"wall {cpu['wall_s'] / count * 1e6:,.0f} us")


def _submit_verdict(topology: str, seconds: list[float]) -> str:
    """` (target p50 <= 2,000 us, p99 <= 5,000 us: ok)`, or nothing without a target."""
    target = SUBMIT_TARGETS.get(topology)
    if target is None or len(seconds) < 2:
        return ""
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    met = cuts[49] <= target[0] and cuts[98] <= target[1]
    return (f" (target p50 <= {target[0] * 1e6:,.0f} us, p99 <= {target[1] * 1e6:,.0f} us: "
            f"{'ok' if met else 'BELOW TARGET'})")


def _percentiles(seconds: list[float]) -> str:
    if len(seconds) < 2:
        return "n/a"
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return f"p50 {cuts[49] * 1e6:,.0f} us, p99 {cuts[98] * 1e6:,.0f} us"


def _client(*args: str, server_pids: tuple[int, ...] = ()) -> dict[str, Any]:
    """Run one strategy process to its end. With `server_pids`, also the CPU seconds that the
    platform's processes and the strategy's spent meanwhile (where a lock-step second goes)."""
    import resource

    started = time.perf_counter()
    server_before = _cpu_seconds(server_pids)
    each_before = [_cpu_seconds((pid,)) for pid in server_pids]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, "-m", "bench.trading_client", *args], cwd=ROOT,
                         stdout=subprocess.PIPE, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    elapsed = time.perf_counter() - started
    print(f"{args[0]} client took {elapsed:.1f} s", flush=True)
    answer = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    if server_pids:
        answer["cpu"] = {
            "server_s": _cpu_seconds(server_pids) - server_before,
            # Per platform process (distributed: the web process, then the worker's).
            "processes_s": [_cpu_seconds((pid,)) - before
                            for pid, before in zip(server_pids, each_before, strict=True)],
            "strategy_s": (after.ru_utime + after.ru_stime)
                          - (children.ru_utime + children.ru_stime),
            "wall_s": elapsed,
        }
    return answer


def _cpu_seconds(pids: tuple[int, ...]) -> float:
    """User + system CPU seconds of processes, from /proc (Linux, as these machines are)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / ticks


# -- a child: one topology ------------------------------------------------------------------------


def run_topology(topology: str) -> None:
    with tempfile.TemporaryDirectory(prefix="parity-bench-") as tmp:
        os.environ["PARITY_DATA_DIR"] = tmp
        database = None
        if topology == "distributed":
            database = _create_database()
            os.environ["DATABASE_URL"] = database
            os.environ["REDIS_URL"] = _env("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
        try:
            result = _run_scenarios(topology, Path(tmp))
        finally:
            if database is not None:
                _drop_database(database)
    print(RESULT_MARK + json.dumps(result), flush=True)
    # The embedded worker's pool threads are not daemons and would hold the exit; every
    # result is out and the database is gone, so nothing is left to clean up.
    os._exit(0)


def _run_scenarios(topology: str, tmp: Path) -> dict[str, Any]:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    stop, pids = _start_platform(topology, tmp)
    try:
        key, make_session = _tenant()
        base = f"http://127.0.0.1:{os.environ['BENCH_PORT']}/sessions"
        btc = _btc_csv(tmp, _rows())
        session = make_session({"BTCUSDT": btc})
        sma = _client("sma", f"{base}/{session}", key, "0.1", server_pids=pids)
        universe = _client("sma", f"{base}/{make_session(_universe_files())}", key, "1",
                           server_pids=pids)
        latency_rows = int(_env("BENCH_LATENCY_ROWS", "10000"))
        acks = _client("acks", f"{base}/{make_session({'BTCUSDT': _head(btc, latency_rows)})}",
                       key, server_pids=pids)
        return {"sma": sma, "universe": universe, "acks": acks}
    finally:
        stop()


def _start_platform(
    topology: str, tmp: Path, *, concurrency: int | None = None
) -> tuple[Any, tuple[int, ...]]:
    """Serve the platform; returns a function that stops it and the platform's process ids.
    `concurrency`: the worker's session slots (default 2 embedded, 4 distributed)."""
    port = _free_port()
    os.environ["BENCH_PORT"] = str(port)
    if topology == "embedded":
        return _start_embedded(port, concurrency or 2), (os.getpid(),)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    web = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port)], cwd=ROOT,
                           env=env, stdout=subprocess.DEVNULL)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "threads",
         "--concurrency", str(concurrency or 4), "--loglevel", "WARNING", "--without-gossip",
         "--without-mingle",
         "--hostname", f"bench-{os.getpid()}@localhost"], cwd=ROOT, env=env)
    _wait_for_port(port)
    return stopper(web, worker), (web.pid, worker.pid)


def stopper(*processes: subprocess.Popen[Any]) -> Callable[[], None]:
    """Stops `processes`: terminated together, killed after 15 s (a worker's warm shutdown
    waits for its running sessions; none matter once a benchmark is done)."""

    def stop() -> None:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    return stop


def _start_embedded(port: int, concurrency: int) -> Any:
    import threading

    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server

    from config.asgi import application
    from config.celery import app
    from config.embedded import start_embedded_services

    server = Server(application=application, signal_handlers=False, verbosity=0,
                    endpoints=build_endpoint_description_strings(host="127.0.0.1", port=port))
    threading.Thread(target=server.run, daemon=True, name="bench-daphne").start()
    services = start_embedded_services(app, concurrency=concurrency, with_beat=False)
    _wait_for_port(port)

    def stop() -> None:
        from twisted.internet import reactor

        reactor.callFromThread(reactor.stop)  # type: ignore[attr-defined]
        services.stop()

    return stop


def _tenant() -> tuple[str, Any]:
    """A user, workspace and trading key; and a function making a backtest session."""
    from decimal import Decimal

    from accounts.models import User
    from accounts.services import create_api_key, create_workspace
    from runtimes.services import create_backtest_session
    from strategies.services import register_dataset

    user = User.objects.create_user("bench@example.com", "bench-password-1")
    workspace = create_workspace(owner=user, name="Bench")
    _, key = create_api_key(workspace=workspace, created_by=user, name="bench",
                            scopes=["read", "trade:paper"])

    def make_session(files: dict[str, Path]) -> str:
        dataset = register_dataset(workspace=workspace, name="bench", files=files)
        session = create_backtest_session(
            workspace=workspace, created_by=user, dataset=dataset, symbols=None, timeframe=None,
            start=None, end=None, initial_cash=Decimal(10_000_000), commission={},
            slippage_bps=Decimal(0), connect_timeout_s=120, idle_timeout_s=120)
        return str(session.id)

    return key, make_session


def _btc_csv(tmp: Path, rows: int) -> Path:
    from bench.bench_data import load_benchmark_series
    from runtimes.core.bars import scaled_to_text
    from runtimes.core.datasets import _iso

    series = load_benchmark_series(rows, "crypto-1m/BTCUSDT.csv")
    columns = [series.scaled_column(n) for n in ("open", "high", "low", "close", "volume")]
    places = [series.price_decimals] * 4 + [series.volume_decimals]
    target = tmp / "BTCUSDT.csv"
    with target.open("w") as out:
        out.write("timestamp,open,high,low,close,volume\n")
        for i, epoch in enumerate(series.timestamps()):
            values = (scaled_to_text(c[i], p) for c, p in zip(columns, places, strict=True))
            out.write(f"{_iso(epoch)},{','.join(values)}\n")
    return target


def _head(path: Path, rows: int) -> Path:
    target = path.with_name(f"head-{rows}") / path.name
    target.parent.mkdir(exist_ok=True)
    with path.open() as source, target.open("w") as out:
        for number, line in enumerate(source):
            if number > rows:
                break
            out.write(line)
    return target


def _universe_files() -> dict[str, Path]:
    """20 of the 29 aligned daily files (SPY has another period and is not one of them)."""
    from config.sample_data import require_series, series_names

    names = [n for n in series_names("stocks-daily") if n != "stocks-daily/SPY.csv"]
    return {Path(n).stem: require_series(n) for n in names[:UNIVERSE_SIZE]}


def _create_database() -> str:
    import psycopg

    server = _env("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
    name = f"parity_bench_{os.getpid()}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def _drop_database(url: str) -> None:
    import psycopg

    server, name = url.rsplit("/", 1)
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


if __name__ == "__main__":
    run_topology(sys.argv[1])
