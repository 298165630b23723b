"""Parameter sweeps on more workers (issue 15): a 64-point sweep of the SMA example, wall time
with 1 and with 2 Celery worker processes, and the speed-up.

The sweep: examples/strategies/sma_crossover.py over an 8 x 8 grid (fast 5 .. 30, slow 40 ..
200, quantity 0.1) on the first BENCH_SWEEP_ROWS BTCUSDT 1m bars (5,000: a subset, so that 64
runs fit in a benchmark). Timed from the sweep's creation to its end (every point completed);
each phase a new sweep of the same points.

The platform is the distributed topology: real `celery worker` processes (`--pool threads
--concurrency 1`: one session slot each, so a second process is a second slot, as a second
machine would be) over Redis and a fresh PostgreSQL database, started and pinged before the
sweep is created; no web process (hosted backtests talk to their host over the local channel).
Points fan out as independent sessions any worker claims (runtimes/hosting/dispatch.py).
Skipped, with the reason, when the sandbox, Redis or PostgreSQL are not there.

Knobs: BENCH_SWEEP_ROWS (5000), BENCH_REDIS_URL (redis://127.0.0.1:6379/14),
BENCH_POSTGRES_URL (postgres://postgres@127.0.0.1:5432); DJANGO_DEBUG (0).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_hosted import EXAMPLE, SKIP_MARK
from bench.bench_trading_api import (
    RESULT_MARK,
    ROOT,
    _btc_csv,
    _child_env,
    _create_database,
    _drop_database,
    _env,
    stopper,
)

FAST = [5, 8, 10, 12, 15, 20, 25, 30]
SLOW = [40, 50, 60, 80, 100, 120, 150, 200]
WORKER_COUNTS = (1, 2)
SWEEP_TIMEOUT_S = 1800


def main() -> None:
    child = subprocess.run([sys.executable, "-m", "bench.bench_sweep", "child"], cwd=ROOT,
                           env=_child_env(), stdout=subprocess.PIPE, text=True, check=False)
    lines = child.stdout.splitlines()
    for line in lines:
        if not line.startswith((RESULT_MARK, SKIP_MARK)):
            print(f"  [sweep] {line}")
    skipped = [line.removeprefix(SKIP_MARK) for line in lines if line.startswith(SKIP_MARK)]
    if skipped:
        print(f"sweep: skipped: {skipped[-1]}")
        return
    results = [line for line in lines if line.startswith(RESULT_MARK)]
    if child.returncode != 0 or not results:
        print(f"sweep: the run failed (exit {child.returncode})")
        return
    report(json.loads(results[-1].removeprefix(RESULT_MARK)))


def report(result: dict[str, Any]) -> None:
    phases = result["phases"]
    for phase in phases:
        progress = phase["progress"]
        if progress["completed"] != progress["total"]:
            reason, tail = phase["first_failure"]
            print(f"sweep on {phase['workers']} worker(s) ({phase['wall_s']:.1f} s): not every "
                  f"point completed: {progress}; the first: {reason}: {tail[-300:]!r}")
            return
    one, two = phases[0]["wall_s"], phases[1]["wall_s"]
    points, bars = phases[0]["progress"]["total"], result["rows"]
    print(f"sweep of {points} SMA points x {bars:,} BTCUSDT 1m bars (distributed: celery worker "
          f"processes of 1 slot over Redis and PostgreSQL, {os.cpu_count()} cores): "
          f"1 worker {one:.1f} s ({points / one:.2f} points/s), 2 workers {two:.1f} s "
          f"({points / two:.2f} points/s): speed-up {one / two:.2f} x")


# -- the child: database, workers, sweeps ----------------------------------------------------------


def run_child() -> None:
    from runtimes.sandbox.runner import probe_bubblewrap

    support = probe_bubblewrap()
    if not support.available:
        print(SKIP_MARK + f"bubblewrap unavailable here: {support.reason}", flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="parity-bench-sweep-") as tmp:
        os.environ["PARITY_DATA_DIR"] = tmp
        # The runs' temp folders in a directory of their own: on a machine shared with other
        # platforms, their reapers remove the `parity-strategy-*` folders of sessions their own
        # databases do not know (runtimes/hosting/leases.py remove_sandbox_leftovers).
        # Short: the runs' unix socket paths live in it.
        private = Path(tempfile.mkdtemp(prefix="pbs"))
        private.chmod(0o1777)  # as /tmp: each run's slot uid reaches its own folder
        os.environ["TMPDIR"] = str(private)
        try:
            database = _create_database()
        except Exception as exc:
            print(SKIP_MARK + f"PostgreSQL unavailable: {exc}", flush=True)
            return
        os.environ["DATABASE_URL"] = database
        os.environ["REDIS_URL"] = _env("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
        try:
            result = _phases(Path(tmp))
        finally:
            _drop_database(database)
            shutil.rmtree(private, ignore_errors=True)
    print(RESULT_MARK + json.dumps(result), flush=True)


def _phases(tmp: Path) -> dict[str, Any]:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    rows = int(_env("BENCH_SWEEP_ROWS", "5000"))
    owner, workspace, version, dataset = _tenant(tmp, rows)
    phases = []
    for count in WORKER_COUNTS:
        stop = _start_workers(count)
        try:
            phases.append({"workers": count,
                           **_run_sweep(owner, workspace, version, dataset, count)})
        finally:
            stop()
    return {"rows": rows, "phases": phases}


def _tenant(tmp: Path, rows: int) -> tuple[Any, Any, Any, Any]:
    from accounts.models import User
    from accounts.services import create_workspace
    from runtimes.models import WorkspaceQuota
    from strategies.services import register_dataset, upload_strategy_version

    user = User.objects.create_user("bench@example.com", "bench-password-1")
    workspace = create_workspace(owner=user, name="Bench")
    WorkspaceQuota.objects.create(workspace=workspace, hosted_backtests=64)
    version = upload_strategy_version(workspace=workspace, author=user, strategy="SMA",
                                      filename="main.py", content=EXAMPLE.read_bytes())
    dataset = register_dataset(workspace=workspace, name="BTC 1m",
                               files={"BTCUSDT": _btc_csv(tmp, rows)})
    return user, workspace, version, dataset


def _start_workers(count: int) -> Any:
    from config.celery import app

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    workers = [subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "threads",
         "--concurrency", "1", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
         "--hostname", f"bench-sweep-{os.getpid()}-{n}@localhost"], cwd=ROOT, env=env)
        for n in range(count)]
    deadline = time.monotonic() + 60
    while len(app.control.ping(timeout=1.0)) < count:  # every worker consumes before the start
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} Celery workers did not answer a ping within 60 s")
    return stopper(*workers)


def _run_sweep(owner: Any, workspace: Any, version: Any, dataset: Any, workers: int
               ) -> dict[str, Any]:
    from runtimes.models import TradingSession
    from runtimes.sweeps import results
    from runtimes.sweeps.services import create_sweep
    from runtimes.sweeps.space import parse_space

    space = parse_space(mode="grid", parameters={"fast": FAST, "slow": SLOW},
                        fixed={"quantity": "0.1"})
    began = time.perf_counter()
    sweep = create_sweep(workspace=workspace, created_by=owner, version=version,
                         dataset=dataset, name=f"bench on {workers}", space=space,
                         metric="total_return")
    deadline = time.monotonic() + SWEEP_TIMEOUT_S
    while sweep.state == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
        sweep.refresh_from_db(fields=["state"])
    wall = time.perf_counter() - began
    failed = (TradingSession.objects.filter(sweep=sweep).exclude(state="completed")
              .values_list("failure_reason", "output_tail").first())
    return {"wall_s": wall, "state": sweep.state,
            "progress": results.progress(results.point_rows(sweep)), "first_failure": failed}


if __name__ == "__main__":
    run_child()
