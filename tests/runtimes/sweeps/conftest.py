"""Fixtures of the sweep tests: a version, a dataset of 100 daily bars (2021-01-01 to
2021-04-10), hosted runs allowed here without a sandbox, and a way to end a point's backtest
with given metrics (the runs themselves: test_end_to_end.py)."""

from __future__ import annotations

import pytest

from tests.runtimes.schedules.conftest import daily_bars


@pytest.fixture
def version(owner, workspace):
    from strategies.services import upload_strategy_version

    return upload_strategy_version(workspace=workspace, author=owner, strategy="SMA",
                                   filename="main.py", content=b"import tektii\n")


@pytest.fixture
def daily_dataset(owner, workspace):
    from strategies.services import upload_dataset

    return upload_dataset(workspace=workspace, by=owner, name="SPY daily",
                          files={"SPY": ("SPY.csv", daily_bars())})


@pytest.fixture(autouse=True)
def _hosted_runs_allowed(settings):
    settings.SANDBOX_ALLOW_UNSANDBOXED = True


def end_point(session, *, state="completed", **metrics):
    """End `session` as its host would: `state`, and (completed) a result with `metrics`."""
    from django.utils import timezone

    from runtimes.models import SessionResult, TradingSession

    TradingSession.objects.filter(pk=session.pk).update(state=state,
                                                        finished_at=timezone.now())
    if state == "completed":
        SessionResult.objects.create(session=session, metrics={
            k: (v if isinstance(v, int) else str(v)) for k, v in metrics.items()})
