"""A small sweep run for real: the SMA example at 4 points of a grid with a walk-forward split,
each point a hosted backtest in the sandbox on the test worker, with a quota of 2 hosted
backtests so that points wait for slots and start as others end (the worker tells the sweep)."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from runtimes.models import TradingSession, WorkspaceQuota
from runtimes.sandbox.runner import probe_bubblewrap
from runtimes.sweeps import results
from runtimes.sweeps.models import Sweep
from runtimes.sweeps.services import Split, create_sweep
from runtimes.sweeps.space import parse_space

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "strategies"
SUPPORT = probe_bubblewrap()

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(180),
    pytest.mark.skipif(not django_settings.CELERY_EMBEDDED_WORKER,
                       reason="needs the embedded worker (settings are overridden in-process)"),
    pytest.mark.skipif(not SUPPORT.available,
                       reason=f"bubblewrap unavailable here: {SUPPORT.reason}"),
]


def wait_for_sweep(sweep: Sweep, timeout: float = 150.0) -> Sweep:
    deadline = time.monotonic() + timeout
    while True:
        sweep.refresh_from_db()
        if sweep.state != "running":
            return sweep
        if time.monotonic() > deadline:
            raise AssertionError(f"the sweep is still running: "
                                 f"{results.progress(results.point_rows(sweep))}")
        time.sleep(0.1)


def test_a_walk_forward_sweep_runs_every_point_within_the_quota_and_checks_the_best(
        owner, workspace, dataset, celery_worker, daphne_url, settings):
    from strategies.services import upload_strategy_version

    settings.PLATFORM_INTERNAL_URL = daphne_url
    settings.SANDBOX_ALLOW_UNSANDBOXED = False
    WorkspaceQuota.objects.create(workspace=workspace, hosted_backtests=2)
    version = upload_strategy_version(
        workspace=workspace, author=owner, strategy="SMA", filename="main.py",
        content=(EXAMPLES / "sma_crossover.py").read_bytes())
    space = parse_space(mode="grid", parameters={"fast": [3, 5], "slow": [10, 20]},
                        fixed={"quantity": "0.5"})

    sweep = create_sweep(workspace=workspace, created_by=owner, version=version,
                         dataset=dataset, name="SMA", space=space, metric="total_return",
                         commission={"percent": Decimal("0.1")},
                         split=Split(fraction=Decimal("0.5"), top=1))
    assert results.progress(results.point_rows(sweep))["pending"] == 2  # the quota's 2 run
    sweep = wait_for_sweep(sweep)

    rows = results.point_rows(sweep)
    assert [r["failure_reason"] for r in rows] == [""] * 5, [
        (s.failure_reason, s.output_tail[-600:]) for s in TradingSession.objects.filter(
            sweep=sweep, state="failed")]
    assert sweep.state == "completed"
    assert results.progress(rows) == {"total": 5, "completed": 5, "failed": 0, "cancelled": 0,
                                      "running": 0, "queued": 0, "pending": 0}
    sessions = TradingSession.objects.filter(sweep=sweep)
    assert sessions.count() == 5
    assert {s.sandboxed for s in sessions} == {True}
    best = results.best_points(rows, "total_return", count=1)[0]
    (pair,) = results.walk_forward(rows, "total_return")
    assert pair["params"] == best["params"]
    assert pair["in_sample"] == best["metrics"]["total_return"]
    out = TradingSession.objects.get(pk=pair["out_of_sample_session"])
    assert (out.start, out.params) == (sweep.split_at, best["params"])
    assert pair["out_of_sample"] == out.result.metrics["total_return"]
    # Every point ran with its own parameters (the example logs them).
    for row in rows:
        session = sessions.get(pk=row["session"])
        assert f"fast {row['params']['fast']}, slow {row['params']['slow']}" in session.output
