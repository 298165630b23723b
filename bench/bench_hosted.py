"""Hosted backtests end to end (issues 5 and 14): the SMA crossover example run by the platform.

Figure: bars/s of a hosted backtest of examples/strategies/sma_crossover.py (params fast 10,
slow 30) over 100,000 one-minute BTCUSDT bars, timed from the session's creation to its
completion (queueing, sandbox start, interpreter and SDK start-up included), printed beside the
in-memory SDK ceiling of the same rows measured in the same run (bench/sdk_ceiling.py: the
unmodified SDK and example against canned frames and REST answers, no socket, no platform) and
its target (hosted >= 0.5 x that ceiling), and beside the remote SDK figure of the Trading API
benchmark (the same strategy logic driven over the same rows from a process of its own). Also
printed: the lock-step SDK ceiling (the SDK client against a WebSocket server that does nothing:
the remote path's ceiling), and the start-up, creation to the strategy connecting (the
session's `started_at`, sandbox start included; target <= 0.5 s).

The platform is the embedded topology of bench_trading_api (daphne thread + in-process Celery
worker, SQLite file), started by its helpers in a child process (Django is configured once per
process). Skipped, with the reason, when the bubblewrap sandbox cannot run here.

Knobs: BENCH_ROWS (100000); DJANGO_DEBUG (0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_trading_api import (
    RESULT_MARK,
    ROOT,
    _btc_csv,
    _child_env,
    _client,
    _rows,
    _start_platform,
    _tenant,
    measure_sdk_ceiling,
)
from bench.sdk_ceiling import CeilingRun, measure_in_memory_ceiling

CEILING_SHARE = 0.5  # target: hosted bars/s >= this share of the in-memory SDK ceiling
START_TARGET_S = 0.5  # target: created -> strategy connected
PARAMS = {"fast": 10, "slow": 30}
EXAMPLE = ROOT / "examples" / "strategies" / "sma_crossover.py"
ENDED = {"completed", "failed", "cancelled"}
SKIP_MARK = "BENCH-SKIP "


# -- the parent: one child, the ceilings, the report -----------------------------------------------


def main() -> None:
    child = subprocess.run(
        [sys.executable, "-m", "bench.bench_hosted"],
        cwd=ROOT,
        env=_child_env(),
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = child.stdout.splitlines()
    for line in lines:
        if not line.startswith((RESULT_MARK, SKIP_MARK)):
            print(f"  [hosted] {line}")
    skipped = [line.removeprefix(SKIP_MARK) for line in lines if line.startswith(SKIP_MARK)]
    if skipped:
        print(f"hosted: skipped: {skipped[-1]}")
        return
    results = [line for line in lines if line.startswith(RESULT_MARK)]
    if child.returncode != 0 or not results:
        print(f"hosted: the run failed (exit {child.returncode})")
        return
    in_memory = measure_in_memory_ceiling(_rows())
    lockstep = measure_sdk_ceiling(int(os.environ.get("BENCH_SDK_CEILING_EVENTS") or 20000))
    report(dict(json.loads(results[-1].removeprefix(RESULT_MARK))), in_memory, lockstep)


def report(result: dict[str, Any], in_memory: CeilingRun, lockstep: float) -> None:
    hosted, remote = result["hosted"], result["remote"]
    remote_bars = remote["candles"] / remote["elapsed"]
    ceiling = in_memory.events_per_second
    print(
        f"ceiling: the unmodified SDK and SMA example in memory (canned frames and REST "
        f"answers, no socket, no platform) {ceiling:,.0f} events/s "
        f"({in_memory.micros_per_event:,.0f} us per event; {in_memory.candles:,} bars, "
        f"{in_memory.orders:,} orders = {in_memory.orders / in_memory.candles:.1%})"
    )
    print(f"ceiling: the SDK SMA client against a do-nothing lock-step WebSocket server "
          f"{lockstep:,.0f} events/s (the remote path's ceiling)")
    print(
        f"remote SDK (embedded), same rows: {remote_bars:,.0f} bars/s "
        f"({remote['candles']:,} bars, {remote['orders']:,} orders in "
        f"{remote['elapsed']:.1f} s)"
    )
    if hosted["state"] != "completed":
        print(f"hosted: ended {hosted['state']}: {hosted['failure_reason']}")
        print(f"  output tail: {hosted['output_tail'][-500:]}")
        return
    bars = hosted["bars"] / hosted["elapsed"]
    target = CEILING_SHARE * ceiling
    verdict = "ok" if bars >= target else "BELOW TARGET"
    print(
        f"hosted SMA 10/30 over {hosted['bars']:,} BTCUSDT bars (sandboxed "
        f"{hosted['sandboxed']}): {bars:,.0f} bars/s end to end = {bars / ceiling:.2f} x the "
        f"in-memory SDK ceiling (target >= {CEILING_SHARE} x = {target:,.0f}: {verdict}; "
        f"remote SDK {remote_bars:,.0f} bars/s) {hosted['orders']:,} orders in "
        f"{hosted['elapsed']:.2f} s"
    )
    start = hosted["start_s"]
    if start is not None:
        run = hosted["elapsed"] - start
        verdict = "ok" if start <= START_TARGET_S else "OVER TARGET"
        print(
            f"  start-up (created -> strategy connected, sandbox start included): {start:.2f} s "
            f"(target <= {START_TARGET_S} s: {verdict}); the run after it: "
            f"{hosted['bars'] / run:,.0f} bars/s in {run:.2f} s"
        )


# -- the child: the platform, a remote run, then the hosted one -----------------------------------


def run_child() -> None:
    with tempfile.TemporaryDirectory(prefix="parity-bench-hosted-") as tmp:
        os.environ["PARITY_DATA_DIR"] = tmp
        result = _run(Path(tmp))
    if result is not None:
        print(RESULT_MARK + json.dumps(result), flush=True)
    # As bench_trading_api: the embedded worker's pool threads are not daemons.
    os._exit(0)


def hosted_child_ready() -> bool:
    """In a benchmark's child: Django set up and migrated, and the sandbox probed (once, cached:
    not part of any timed run). False, having printed why, when hosted runs cannot run here."""
    import django
    from django.core.management import call_command

    django.setup()
    from runtimes.services import hosted_runs_support

    support = hosted_runs_support()
    if not support.available:
        print(SKIP_MARK + f"bubblewrap unavailable here: {support.reason}", flush=True)
        return False
    call_command("migrate", verbosity=0)
    return True


def _run(tmp: Path) -> dict[str, Any] | None:
    if not hosted_child_ready():
        return None
    stop, _ = _start_platform("embedded", tmp)
    try:
        key, make_session = _tenant()
        base = f"http://127.0.0.1:{os.environ['BENCH_PORT']}/sessions"
        btc = _btc_csv(tmp, _rows())
        remote = _client("sma", f"{base}/{make_session({'BTCUSDT': btc})}", key, "0.1")
        hosted = _hosted(btc)
        return {"remote": remote, "hosted": hosted}
    finally:
        stop()


def _hosted(btc: Path) -> dict[str, Any]:
    from decimal import Decimal

    from django.conf import settings

    from accounts.models import User, Workspace
    from runtimes.models import TradingSession
    from runtimes.services import create_hosted_backtest
    from strategies.services import register_dataset, upload_strategy_version

    settings.PLATFORM_INTERNAL_URL = f"http://127.0.0.1:{os.environ['BENCH_PORT']}"
    # Roomy limits: the run is timed, not capped (the defaults, unless the environment is lower).
    settings.SANDBOX_CPU_SECONDS = max(settings.SANDBOX_CPU_SECONDS, 600)
    settings.SANDBOX_WALL_SECONDS = max(settings.SANDBOX_WALL_SECONDS, 3600)
    user = User.objects.get(email="bench@example.com")  # both made by _tenant
    workspace = Workspace.objects.get(name="Bench")
    dataset = register_dataset(workspace=workspace, name="bench-hosted", files={"BTCUSDT": btc})
    version = upload_strategy_version(
        workspace=workspace,
        author=user,
        strategy="sma",
        filename="main.py",
        content=EXAMPLE.read_bytes(),
    )
    started = time.perf_counter()
    session = create_hosted_backtest(
        workspace=workspace,
        created_by=user,
        version=version,
        dataset=dataset,
        params=PARAMS,
        initial_cash=Decimal(10_000_000),
    )
    while True:
        session.refresh_from_db()
        if session.state in ENDED:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    print(f"hosted backtest took {elapsed:.2f} s", flush=True)
    bars = TradingSession.objects.with_total_bars().get(pk=session.pk).total_bars
    start_s = (
        (session.started_at - session.created_at).total_seconds()
        if session.started_at is not None
        else None
    )
    orders = len(session.result.orders) if hasattr(session, "result") else 0
    return {
        "state": session.state,
        "failure_reason": session.failure_reason,
        "output_tail": session.output_tail,
        "sandboxed": session.sandboxed,
        "bars": bars,
        "elapsed": elapsed,
        "start_s": start_s,
        "orders": orders,
    }


if __name__ == "__main__":
    run_child()
