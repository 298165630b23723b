"""Fair share of workers (issue 10): one workspace cannot starve another.

Figure: a busy workspace submits 50 backtests, then a quiet one submits 1; printed is the time
from the quiet one's submission until a worker starts it (target: within a few seconds), beside
what first-in-first-out dispatch gives in the same run (the dispatcher's order swapped for
arrival order), and how long the busy workspace's 50 take.

The platform is the embedded topology as `make run` serves it (an in-process Celery worker of 4
threads, SQLite file), in a child process (Django is configured once per process). Each backtest
is a real remote session driven over the in-process session bus by a strategy that acknowledges
every batch at once; it asks for a worker at its first contact, as the SDK's first request does.

Knobs: BENCH_FAIR_BUSY (50), BENCH_FAIR_ROWS (2000 bars a backtest), BENCH_FAIR_WORKERS (4).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.bench_trading_api import RESULT_MARK, ROOT, _child_env

# "Within a few seconds": a worker is never taken from a running backtest, so the single one
# waits for the first of the busy workspace's running backtests to end (one run at most).
TARGET_SECONDS = 5.0
ENDED = {"completed", "failed", "cancelled"}


def _knob(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


# -- the parent: one child per dispatch order, the report -----------------------------------------


def main() -> None:
    results = {order: _run_child(order) for order in ("fair", "fifo")}
    if any(r is None for r in results.values()):
        return
    fair, fifo = results["fair"], results["fifo"]
    assert fair is not None and fifo is not None
    busy, rows, workers = fair["busy"], fair["rows"], fair["workers"]
    print(
        f"{busy} backtests of {rows} bars from one workspace, then 1 from another; "
        f"{workers} worker threads"
    )
    verdict = "ok" if fair["quiet_wait_s"] <= TARGET_SECONDS else "OVER TARGET"
    print(
        f"  fair dispatch: the single backtest started {fair['quiet_wait_s']:.2f} s after its "
        f"submission (target <= {TARGET_SECONDS:.0f} s: {verdict}), after "
        f"{fair['busy_started_before']} of the {busy} "
        f"({fair['busy_started_while_queued']} while it waited); it ran "
        f"{fair['quiet_run_s']:.2f} s; "
        f"the {busy} took {fair['busy_total_s']:.1f} s"
    )
    print(
        f"  FIFO dispatch (for comparison): started {fifo['quiet_wait_s']:.2f} s after its "
        f"submission, after {fifo['busy_started_before']} of the {busy} "
        f"({fifo['busy_started_while_queued']} while it waited); "
        f"the {busy} took {fifo['busy_total_s']:.1f} s"
    )


def _run_child(order: str) -> dict[str, Any] | None:
    child = subprocess.run(
        [sys.executable, "-m", "bench.bench_fair_share", order],
        cwd=ROOT,
        env=_child_env(),
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    results = [line for line in child.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if child.returncode != 0 or not results:
        print(f"{order}: the run failed (exit {child.returncode})")
        return None
    return dict(json.loads(results[-1].removeprefix(RESULT_MARK)))


# -- a child: the platform, two workspaces, one measurement ---------------------------------------


def run_child(order: str) -> None:
    with tempfile.TemporaryDirectory(prefix="parity-bench-fair-") as tmp:
        os.environ["PARITY_DATA_DIR"] = tmp
        result = _measure(order, Path(tmp))
    print(RESULT_MARK + json.dumps(result), flush=True)
    os._exit(0)  # the embedded worker's pool threads are not daemons and would hold the exit


def _measure(order: str, tmp: Path) -> dict[str, Any]:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.db import transaction

    from config.celery import app
    from config.embedded import start_embedded_services

    if order == "fifo":
        _dispatch_in_arrival_order()
    busy, rows, workers = (
        _knob("BENCH_FAIR_BUSY", 50),
        _knob("BENCH_FAIR_ROWS", 2000),
        _knob("BENCH_FAIR_WORKERS", 4),
    )
    services = start_embedded_services(app, concurrency=workers, with_beat=False)
    try:
        csv = _synthetic_bars(tmp / "BTCUSDT.csv", rows)
        loud, quiet = _tenant("busy", csv, quota=busy), _tenant("quiet", csv, quota=1)
        started = time.monotonic()
        with transaction.atomic():  # all 50 queued at once, before any starts
            sessions = [_contact(loud()) for _ in range(busy)]
        _wait(lambda: sum(_state(s) == "running" for s in sessions) >= workers)
        submitted = time.monotonic()
        single = _contact(quiet())
        _wait(lambda: _state(single) != "queued")
        claimed = time.monotonic()
        _wait(lambda: _state(single) in ENDED)
        quiet_done = time.monotonic()
        _wait(lambda: all(_state(s) in ENDED for s in sessions), timeout=1800)
        ahead = _started_before(single, sessions)
        return {
            "busy": busy,
            "rows": rows,
            "workers": workers,
            "quiet_wait_s": claimed - submitted,
            "quiet_run_s": quiet_done - claimed,
            "busy_total_s": time.monotonic() - started,
            "busy_started_before": ahead[0],
            "busy_started_while_queued": ahead[1],
            "states": sorted({_state(s) for s in [*sessions, single]}),
        }
    finally:
        services.stop(timeout=1)


def _dispatch_in_arrival_order() -> None:
    """The comparison: first come, first served (what Celery's queue alone would do)."""
    from runtimes.hosting import dispatch

    def arrival_order(waiting: Any, **_: Any) -> list[str]:
        return [w.session_id for w in sorted(waiting, key=lambda w: (w.queued_at, w.session_id))]

    dispatch.fair_order = arrival_order  # type: ignore[assignment]


def _tenant(name: str, csv: Path, *, quota: int) -> Any:
    """A user and workspace with a dataset; returns a function creating a remote backtest."""
    from accounts.models import User
    from accounts.services import create_workspace
    from runtimes.models import WorkspaceQuota
    from runtimes.services import create_backtest_session
    from strategies.services import register_dataset

    user = User.objects.create_user(f"{name}@example.com", "bench-password-1")
    workspace = create_workspace(owner=user, name=name.title())
    WorkspaceQuota.objects.create(workspace=workspace, remote_backtests=quota)
    dataset = register_dataset(workspace=workspace, name=name, files={"BTCUSDT": csv})

    def create() -> Any:
        return create_backtest_session(
            workspace=workspace,
            created_by=user,
            dataset=dataset,
            symbols=None,
            timeframe=None,
            start=None,
            end=None,
            initial_cash=Decimal(1_000_000),
            commission={},
            slippage_bps=Decimal(0),
            connect_timeout_s=600,
            idle_timeout_s=600,
        )

    return create


def _contact(session: Any) -> str:
    """What a strategy does: its first contact queues the session; its socket acks everything."""
    from django.utils import timezone

    from runtimes.hosting.bus import get_bus
    from runtimes.hosting.dispatch import request_worker

    session_id, bus = str(session.pk), get_bus()
    connected = threading.Event()
    connection: list[str] = []

    def sink(texts: list[str], close_code: int | None) -> None:
        connected.wait()  # the host may answer the attach before connect() returns its id
        ids = [json.loads(text)["event_id"] for text in texts]
        if ids and close_code is None:
            bus.post(
                session_id,
                {"kind": "ack", "connection": connection[0], "events": ids, "correlation_id": ""},
            )

    request_worker(session=session, now=timezone.now())
    connection.append(bus.connect(session_id, sink, last_event_id=None))
    connected.set()
    return session_id


def _started_before(single: str, sessions: list[str]) -> tuple[int, int]:
    """How many of `sessions` a worker claimed before `single`: in all, and while it was queued."""
    from runtimes.models import TradingSession

    queued, claimed = TradingSession.objects.values_list("queued_at", "dispatched_at").get(
        pk=single
    )
    before = TradingSession.objects.filter(pk__in=sessions, dispatched_at__lt=claimed)
    return before.count(), before.filter(dispatched_at__gt=queued).count()


def _state(session_id: str) -> str:
    from runtimes.models import TradingSession

    return str(TradingSession.objects.values_list("state", flat=True).get(pk=session_id))


def _wait(condition: Any, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark's condition did not hold in time")
        time.sleep(0.01)


def _synthetic_bars(path: Path, rows: int) -> Path:
    """`rows` one-minute bars of a gentle zigzag: the data does not matter here, only the time
    a backtest holds a worker."""
    first = datetime(2024, 1, 1, tzinfo=UTC)
    with path.open("w") as out:
        out.write("timestamp,open,high,low,close,volume\n")
        for i in range(rows):
            price = Decimal(100) + Decimal(i % 40) / 4
            stamp = (first + timedelta(minutes=i)).isoformat().replace("+00:00", "Z")
            out.write(f"{stamp},{price},{price + 1},{price - 1},{price},10\n")
    return path


if __name__ == "__main__":
    if len(sys.argv) > 1:
        run_child(sys.argv[1])
    else:
        main()
