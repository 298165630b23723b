"""Start-up of a hosted backtest (issue 14): creation -> the strategy connected, several times.

Each run creates a hosted backtest of examples/strategies/sma_crossover.py over BENCH_ROWS
one-minute BTCUSDT bars (a dataset registered once, as a user's would be), waits for its
`started_at` (the strategy's first connection) and cancels it. Printed: every run's start-up, the
median, and the host's own breakdown of it (its `runtimes.hosting.host` debug line: dispatch,
provider built, strategy process started). The first run is also the dataset's first use.

Same embedded platform as bench_hosted (daphne thread + in-process Celery worker, SQLite file),
in a child process; skipped, with the reason, when the bubblewrap sandbox cannot run here.

Knobs: BENCH_ROWS (100000); BENCH_STARTUP_RUNS (5).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_hosted import ENDED, EXAMPLE, PARAMS, SKIP_MARK, hosted_child_ready
from bench.bench_trading_api import (
    RESULT_MARK,
    ROOT,
    _btc_csv,
    _child_env,
    _rows,
    _start_platform,
    _tenant,
)

TARGET_S = 0.5


def main() -> None:
    child = subprocess.run([sys.executable, "-m", "bench.bench_startup"], cwd=ROOT,
                           env=_child_env(), stdout=subprocess.PIPE, text=True, check=False)
    lines = child.stdout.splitlines()
    skipped = [line.removeprefix(SKIP_MARK) for line in lines if line.startswith(SKIP_MARK)]
    results = [line for line in lines if line.startswith(RESULT_MARK)]
    if skipped:
        print(f"startup: skipped: {skipped[-1]}")
        return
    if child.returncode != 0 or not results:
        print(f"startup: the run failed (exit {child.returncode})")
        return
    report(json.loads(results[-1].removeprefix(RESULT_MARK)))


def report(runs: list[dict[str, Any]]) -> None:
    for number, run in enumerate(runs, start=1):
        parts = dict(run.get("parts") or {})
        if parts:  # the rest: the interpreter, the SDK and its first connection
            parts["to connection"] = run["start_s"] - sum(parts.values())
        shown = ", ".join(f"{name} {value * 1000:.0f} ms" for name, value in parts.items())
        print(f"  run {number}: created -> strategy connected {run['start_s']:.3f} s ({shown})")
    median = statistics.median(run["start_s"] for run in runs)
    verdict = "ok" if median <= TARGET_S else "ABOVE TARGET"
    print(f"hosted start-up over {runs[0]['bars']:,} bars: median {median:.3f} s "
          f"(target {TARGET_S} s: {verdict}; first run {runs[0]['start_s']:.3f} s)")


class _Breakdown(logging.Handler):
    """Keeps the host's start-up debug lines, by session id."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.parts: dict[str, dict[str, float]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        startup = getattr(record, "startup", None)
        if isinstance(startup, dict):
            self.parts[str(startup.pop("session"))] = startup


def run_child() -> None:
    with tempfile.TemporaryDirectory(prefix="parity-bench-startup-") as tmp:
        os.environ["PARITY_DATA_DIR"] = tmp
        result = _run(Path(tmp))
    if result is not None:
        print(RESULT_MARK + json.dumps(result), flush=True)
    os._exit(0)  # as bench_trading_api: the embedded worker's pool threads are not daemons


def _run(tmp: Path) -> list[dict[str, Any]] | None:
    if not hosted_child_ready():
        return None
    breakdown = _Breakdown()
    host_log = logging.getLogger("runtimes.hosting.host")
    host_log.addHandler(breakdown)
    host_log.setLevel(logging.DEBUG)
    stop, _ = _start_platform("embedded", tmp)
    try:
        _tenant()
        btc = _btc_csv(tmp, _rows())
        return _starts(btc, int(os.environ.get("BENCH_STARTUP_RUNS") or 5), breakdown)
    finally:
        stop()


def _starts(btc: Path, count: int, breakdown: _Breakdown) -> list[dict[str, Any]]:
    from decimal import Decimal

    from django.conf import settings
    from django.utils import timezone

    from accounts.models import User, Workspace
    from runtimes.services import cancel_session, create_hosted_backtest
    from strategies.services import register_dataset, upload_strategy_version

    settings.PLATFORM_INTERNAL_URL = f"http://127.0.0.1:{os.environ['BENCH_PORT']}"
    user = User.objects.get(email="bench@example.com")
    workspace = Workspace.objects.get(name="Bench")
    dataset = register_dataset(workspace=workspace, name="bench-startup", files={"BTCUSDT": btc})
    version = upload_strategy_version(workspace=workspace, author=user, strategy="sma",
                                      filename="main.py", content=EXAMPLE.read_bytes())
    bars = dataset.files.get().rows
    runs = []
    for _ in range(count):
        session = create_hosted_backtest(workspace=workspace, created_by=user, version=version,
                                         dataset=dataset, params=PARAMS,
                                         initial_cash=Decimal(10_000_000))
        while session.started_at is None and session.state not in ENDED:
            time.sleep(0.005)
            session.refresh_from_db()
        if session.started_at is None:
            raise RuntimeError(f"the run ended {session.state}: {session.failure_reason}")
        cancel_session(session=session, now=timezone.now(), reason="start-up measured")
        while session.state not in ENDED:
            time.sleep(0.01)
            session.refresh_from_db()
        start_s = (session.started_at - session.created_at).total_seconds()
        runs.append({"start_s": start_s, "bars": bars,
                     "parts": breakdown.parts.get(str(session.id))})
    return runs


if __name__ == "__main__":
    run_child()
