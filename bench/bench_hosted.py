"""Hosted backtests end to end (issue 5): the SMA crossover example run by the platform itself.

Figure: bars/s of a hosted backtest of examples/strategies/sma_crossover.py (params fast 10,
slow 30) over 100,000 one-minute BTCUSDT bars, timed from the session's creation to its
completion (queueing, sandbox start, interpreter and SDK start-up included), printed beside its
target (5,000 bars/s) and beside the remote SDK figure of the Trading API benchmark (the same
strategy logic driven over the same rows from a process of its own) measured in the same run.
Also printed: the SDK's own ceiling (the same client against a lock-step server that does
nothing), the start overhead, creation to the strategy connecting (the session's
`started_at`), which holds the sandbox start.

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

TARGET = 5000.0
PARAMS = {"fast": 10, "slow": 30}
EXAMPLE = ROOT / "examples" / "strategies" / "sma_crossover.py"
ENDED = {"completed", "failed", "cancelled"}
SKIP_MARK = "BENCH-SKIP "


# -- the parent: one child, the report -------------------------------------------------------------


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
    sdk = measure_sdk_ceiling(int(os.environ.get("BENCH_SDK_CEILING_EVENTS") or 20000))
    report(dict(json.loads(results[-1].removeprefix(RESULT_MARK))), sdk)


def report(result: dict[str, Any], sdk_ceiling: float) -> None:
    hosted, remote = result["hosted"], result["remote"]
    remote_bars = remote["candles"] / remote["elapsed"]
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
    verdict = "ok" if bars >= TARGET else "BELOW TARGET"
    start = hosted["start_s"]
    run = hosted["elapsed"] - start if start is not None else None
    print(
        f"hosted SMA 10/30 over {hosted['bars']:,} BTCUSDT bars (sandboxed "
        f"{hosted['sandboxed']}): {bars:,.0f} bars/s end to end (target {TARGET:,.0f}: "
        f"{verdict}; remote SDK {remote_bars:,.0f} bars/s) {hosted['orders']:,} orders in "
        f"{hosted['elapsed']:.2f} s"
    )
    print(f"  ceiling: the SDK SMA client against a do-nothing lock-step server "
          f"{sdk_ceiling:,.0f} events/s (no platform: what a lock-step SDK strategy can reach)")
    if start is not None and run is not None and run > 0:
        print(
            f"  start overhead (created -> strategy connected, sandbox start included): "
            f"{start:.2f} s; the run after it: {hosted['bars'] / run:,.0f} bars/s "
            f"in {run:.2f} s"
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


def _run(tmp: Path) -> dict[str, Any] | None:
    import django
    from django.core.management import call_command

    django.setup()
    from runtimes.services import hosted_runs_support

    support = hosted_runs_support()  # probed once and cached: not part of the timed run
    if not support.available:
        print(SKIP_MARK + f"bubblewrap unavailable here: {support.reason}", flush=True)
        return None
    call_command("migrate", verbosity=0)
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
