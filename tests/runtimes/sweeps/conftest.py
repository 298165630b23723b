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


def random_sweep_done(*, workspace, owner, version, dataset, samples=1000):
    """A random sweep of `samples` points over two float ranges, every point completed with
    total_return = fast * slow / 100 (its backtests copied from the first, in bulk)."""
    import copy
    import uuid

    from runtimes.models import SessionResult, TradingSession
    from runtimes.sweeps.models import SweepPoint
    from runtimes.sweeps.services import create_sweep
    from runtimes.sweeps.space import parse_space

    sweep = create_sweep(
        workspace=workspace, created_by=owner, version=version, dataset=dataset, name="wide",
        metric="total_return", space=parse_space(
            mode="random", parameters={"fast": {"min": 1.0, "max": 2.0},
                                       "slow": {"min": 10.0, "max": 50.0}},
            samples=samples, seed=1))
    first = TradingSession.objects.filter(sweep=sweep).first()
    points = list(sweep.points.filter(session__isnull=True))
    sessions = []
    for point in points:
        session = copy.copy(first)
        session.pk, session.state = uuid.uuid4(), "completed"
        sessions.append(session)
        point.session = session
    TradingSession.objects.bulk_create(sessions)
    SweepPoint.objects.bulk_update(points, ["session"])
    TradingSession.objects.filter(sweep=sweep).update(state="completed")
    SessionResult.objects.bulk_create(
        SessionResult(session_id=p.session_id, metrics={"total_return": str(
            round(p.params["fast"] * p.params["slow"] / 100, 4))})
        for p in sweep.points.all())
    return sweep
