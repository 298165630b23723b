"""Sweep services: creation starts as many points as the quota has room for and the rest wait,
ended points free slots for the next ones, the state rolls up from the sessions, the
walk-forward's out-of-sample stage runs the best in-sample points, and cancel drops waiting
points and cancels live ones. Results: best points and heatmaps."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from config.errors import ApiError
from runtimes.models import Source, State, TradingSession, WorkspaceQuota
from runtimes.sweeps import results
from runtimes.sweeps.models import Sweep, SweepState
from runtimes.sweeps.services import Split, advance_sweep, cancel_sweep, create_sweep
from runtimes.sweeps.space import parse_space
from tests.runtimes.sweeps.conftest import end_point

pytestmark = pytest.mark.django_db

GRID = parse_space(mode="grid", parameters={"fast": [5, 10], "slow": [20, 30]},
                   fixed={"quantity": "1"})


@pytest.fixture
def sweep_of(owner, workspace, version, daily_dataset):
    def make(space=GRID, **options):
        return create_sweep(workspace=workspace, created_by=owner, version=version,
                            dataset=daily_dataset, name="SMA grid", space=space, **options)
    return make


def quota(workspace, hosted):
    WorkspaceQuota.objects.create(workspace=workspace, hosted_backtests=hosted)


def sessions_of(sweep):
    return list(TradingSession.objects.filter(sweep=sweep).order_by("created_at"))


def test_a_sweep_starts_one_queued_hosted_backtest_per_point_with_its_params(sweep_of):
    sweep = sweep_of(commission={"percent": Decimal("0.1")}, initial_cash=Decimal(5000))

    sessions = sessions_of(sweep)
    assert [s.params for s in sessions] == [
        {"quantity": "1", "fast": 5, "slow": 20}, {"quantity": "1", "fast": 5, "slow": 30},
        {"quantity": "1", "fast": 10, "slow": 20}, {"quantity": "1", "fast": 10, "slow": 30}]
    assert {(s.source, s.state, s.commission["percent"], s.initial_cash) for s in sessions} == {
        (Source.HOSTED, State.QUEUED, "0.1", Decimal(5000))}
    assert results.progress(results.point_rows(sweep)) == {
        "total": 4, "completed": 0, "failed": 0, "cancelled": 0, "running": 0, "queued": 4,
        "pending": 0}


def test_points_beyond_the_quota_wait_and_start_as_points_end(sweep_of, workspace):
    quota(workspace, 3)
    sweep = sweep_of()

    assert results.progress(results.point_rows(sweep))["pending"] == 1
    assert len(sessions_of(sweep)) == 3
    end_point(sessions_of(sweep)[0], sharpe="1.5")
    advance_sweep(sweep_id=sweep.pk, now=timezone.now())

    assert len(sessions_of(sweep)) == 4
    assert results.progress(results.point_rows(sweep)) == {
        "total": 4, "completed": 1, "failed": 0, "cancelled": 0, "running": 0, "queued": 3,
        "pending": 0}


def test_a_quota_taken_by_other_backtests_leaves_every_point_waiting_without_failing(
        sweep_of, owner, workspace, daily_dataset):
    quota(workspace, 1)
    TradingSession.objects.create(  # another hosted backtest holds the one slot
        workspace=workspace, created_by=owner, dataset=daily_dataset, symbols=["SPY"],
        timeframe="1d", source=Source.HOSTED, state=State.QUEUED)

    sweep = sweep_of()

    assert (sweep.state, sessions_of(sweep)) == (SweepState.RUNNING, [])
    assert results.progress(results.point_rows(sweep))["pending"] == 4


def test_a_workspace_that_may_run_no_hosted_backtest_is_refused_a_sweep(sweep_of, workspace):
    quota(workspace, 0)

    with pytest.raises(ApiError) as refused:
        sweep_of()

    assert (refused.value.error_code, refused.value.status_code) == ("QUOTA_EXCEEDED", 429)
    assert refused.value.details == {"kind": "hosted_backtest", "limit": 0, "running": 0}
    assert Sweep.objects.count() == 0


def test_the_sweep_completes_once_every_point_ended_failed_ones_counted(sweep_of):
    sweep = sweep_of()
    first, *others = sessions_of(sweep)
    end_point(first, state="failed")
    for session in others[:-1]:
        end_point(session, sharpe="1")
    assert advance_sweep(sweep_id=sweep.pk, now=timezone.now()).state == SweepState.RUNNING

    end_point(others[-1], sharpe="2")
    sweep = advance_sweep(sweep_id=sweep.pk, now=timezone.now())

    assert sweep.state == SweepState.COMPLETED and sweep.finished_at is not None
    assert results.progress(results.point_rows(sweep)) == {
        "total": 4, "completed": 3, "failed": 1, "cancelled": 0, "running": 0, "queued": 0,
        "pending": 0}


def test_cancelling_drops_waiting_points_and_cancels_queued_backtests(sweep_of, workspace):
    quota(workspace, 2)
    sweep = sweep_of()

    assert cancel_sweep(sweep=sweep, now=timezone.now()) is True

    assert {s.state for s in sessions_of(sweep)} == {State.CANCELLED}
    rows = results.point_rows(Sweep.objects.get(pk=sweep.pk))
    assert [r["state"] for r in rows] == ["cancelled", "cancelled", "dropped", "dropped"]
    assert cancel_sweep(sweep=sweep, now=timezone.now()) is False
    advance_sweep(sweep_id=sweep.pk, now=timezone.now())
    assert len(sessions_of(sweep)) == 2  # a cancelled sweep starts nothing more


def test_a_walk_forward_runs_the_best_in_sample_points_out_of_sample(sweep_of):
    sweep = sweep_of(metric="total_return", split=Split(fraction=Decimal("0.6"), top=2))

    # 2021-01-01 .. 2021-04-10 (99 days): 60 % is 59.4 days in.
    assert sweep.split_at == datetime(2021, 3, 1, 9, 36, tzinfo=UTC)
    in_sample = sessions_of(sweep)
    assert {(s.start, s.end) for s in in_sample} == {
        (None, datetime(2021, 3, 1, 9, 35, 59, tzinfo=UTC))}
    for session, value in zip(in_sample, ["0.1", "0.4", "-0.2", "0.3"], strict=True):
        end_point(session, total_return=value)
    advance_sweep(sweep_id=sweep.pk, now=timezone.now())

    out = [s for s in sessions_of(sweep) if s not in in_sample]
    assert [(s.params["fast"], s.params["slow"], s.start, s.end) for s in out] == [
        (5, 30, sweep.split_at, None), (10, 30, sweep.split_at, None)]
    end_point(out[0], total_return="-0.05")
    end_point(out[1], total_return="0.02")
    sweep = advance_sweep(sweep_id=sweep.pk, now=timezone.now())

    assert sweep.state == SweepState.COMPLETED
    pairs = results.walk_forward(results.point_rows(sweep), "total_return")
    assert [(p["params"]["fast"], p["in_sample"], p["out_of_sample"]) for p in pairs] == [
        (5, "0.4", "-0.05"), (10, "0.3", "0.02")]


@pytest.mark.parametrize(("options", "field", "message"), [
    ({"metric": "luck"}, "metric", "Unknown metric; one of total_return, sharpe, sortino, "
     "cagr, calmar, max_drawdown, win_rate, profit_factor, expectancy, number_of_trades."),
    ({"symbols": ["QQQ"]}, "symbols", "The dataset has no data for QQQ; it has SPY."),
    ({"start": datetime(2022, 1, 1, tzinfo=UTC)}, "start",
     "The range is empty: from must be before to, within the dataset's data."),
    ({"split": Split(fraction=Decimal("0.99"))}, "split_fraction",
     "The in-sample share is from 0.05 to 0.95."),
    ({"split": Split(at=datetime(2020, 1, 1, tzinfo=UTC))}, "split_at",
     "The split must fall inside the range (2021-01-01 00:00 to 2021-04-10 00:00 UTC)."),
    ({"split": Split(fraction=Decimal("0.5"), top=11)}, "oos_top",
     "1 to 10 best points run out of sample."),
    # Daily bars at midnight: 06:00 to 12:00 holds none, which the out-of-sample stage would
    # only find once the in-sample one ran (and then be refused at every pass).
    ({"end": datetime(2021, 3, 1, 12, tzinfo=UTC),
      "split": Split(at=datetime(2021, 3, 1, 6, tzinfo=UTC))}, "split_at",
     "The out-of-sample range: The date range holds no bars of SPY (the data runs from "
     "2021-01-01 to 2021-04-10, with gaps). Move the split."),
    ({"start": datetime(2021, 1, 1, 6, tzinfo=UTC), "end": datetime(2021, 1, 2, 12, tzinfo=UTC),
      "split": Split(fraction=Decimal("0.5"))}, "split_fraction",
     "The in-sample range: The date range holds no bars of SPY (the data runs from "
     "2021-01-01 to 2021-04-10, with gaps). Move the split."),
])
def test_a_bad_sweep_is_refused_naming_its_field_and_records_nothing(sweep_of, options, field,
                                                                     message):
    with pytest.raises(ApiError) as refused:
        sweep_of(**options)

    assert (refused.value.error_code, refused.value.details) == (
        "VALIDATION_ERROR", {field: [message]})
    assert not Sweep.objects.exists() and not TradingSession.objects.exists()


def test_a_version_of_another_workspace_is_not_found(stranger, stranger_workspace, version,
                                                     daily_dataset):
    with pytest.raises(ApiError) as refused:
        create_sweep(workspace=stranger_workspace, created_by=stranger, version=version,
                     dataset=daily_dataset, name="x", space=GRID)

    assert refused.value.status_code == 404


def test_the_best_points_rank_by_the_metric_lower_drawdown_first(sweep_of):
    sweep = sweep_of()
    for session, (sharpe, drawdown) in zip(sessions_of(sweep), [
            ("1.2", "0.3"), ("0.5", "0.1"), ("2.0", "0.2"), (None, "0.05")], strict=True):
        end_point(session, **({"sharpe": sharpe} if sharpe else {}), max_drawdown=drawdown)
    rows = results.point_rows(sweep)

    assert [r["params"]["fast"] * 100 + r["params"]["slow"] for r in
            results.best_points(rows, "sharpe", count=2)] == [1020, 520]
    assert [r["metrics"]["max_drawdown"] for r in
            results.best_points(rows, "max_drawdown")] == ["0.05", "0.1", "0.2", "0.3"]


def test_a_heatmap_aggregates_the_other_parameters_by_best_or_mean(sweep_of):
    space = parse_space(mode="grid", parameters={"fast": [5, 10], "slow": [20, 30],
                                                 "stop": [1, 2]})
    sweep = sweep_of(space=space)
    values = ["0.1", "0.3", "0.2", "-0.4", "0.5", "0.7", "0.6", "0.0"]
    for session, value in zip(sessions_of(sweep), values, strict=True):
        end_point(session, total_return=value)
    rows = results.point_rows(sweep)

    best = results.heatmap(rows, x="fast", y="slow", metric="total_return")
    assert (best["xs"], best["ys"], best["cells"]) == ([5, 10], [20, 30],
                                                       [["0.3", "0.7"], ["0.2", "0.6"]])
    mean = results.heatmap(rows, x="fast", y="slow", metric="total_return", aggregate="mean")
    assert mean["cells"] == [["0.2", "0.6"], ["-0.1", "0.3"]]
    assert (mean["min"], mean["max"]) == ("-0.1", "0.6")


def test_beats_pass_starts_the_next_point_when_a_queued_one_was_cancelled_without_a_host(
        sweep_of, workspace):
    from runtimes.services import cancel_session
    from runtimes.sweeps.services import advance_running_sweeps

    quota(workspace, 1)
    sweep = sweep_of()
    (first,) = sessions_of(sweep)
    cancel_session(session=first, now=timezone.now())  # queued: no host, nobody tells the sweep

    assert advance_running_sweeps(now=timezone.now()) == 1

    assert [s.state for s in sessions_of(sweep)] == [State.CANCELLED, State.QUEUED]
    assert results.progress(results.point_rows(sweep))["pending"] == 2


def test_the_worker_tells_the_sweep_when_its_point_ends(sweep_of, workspace):
    from runtimes.sweeps.services import session_ended

    quota(workspace, 1)
    sweep = sweep_of()
    (first,) = sessions_of(sweep)
    end_point(first, sharpe="1")

    session_ended(session_id=first.pk, now=timezone.now())

    assert len(sessions_of(sweep)) == 2


def test_the_lists_progress_is_counted_in_one_query_for_every_sweep(
        sweep_of, workspace, django_assert_num_queries):
    quota(workspace, 3)
    waiting, cancelled = sweep_of(), sweep_of()  # the second takes no slot: all 4 wait
    end_point(sessions_of(waiting)[0], sharpe="1")
    end_point(sessions_of(waiting)[1], state="failed")
    cancel_sweep(sweep=cancelled, now=timezone.now())
    sweeps = list(Sweep.objects.order_by("created_at"))

    with django_assert_num_queries(1):
        counted = results.progress_by_sweep(sweeps)

    assert counted == {s.pk: results.progress(results.point_rows(s)) for s in sweeps}
    assert counted[waiting.pk] == {"total": 4, "completed": 1, "failed": 1, "cancelled": 0,
                                   "running": 0, "queued": 1, "pending": 1}
    assert counted[cancelled.pk]["cancelled"] == 4


def test_a_point_whose_backtest_is_refused_fails_with_the_reason_and_the_sweep_ends(
        sweep_of, monkeypatch):
    from runtimes.sweeps import services

    real = services.create_hosted_backtest

    def refuse_fast_10(**kwargs):
        if kwargs["params"]["fast"] == 10:
            raise ApiError("INVALID_VALUE", "The date range holds no bars of SPY.")
        return real(**kwargs)
    monkeypatch.setattr(services, "create_hosted_backtest", refuse_fast_10)

    sweep = sweep_of()
    for session in sessions_of(sweep):
        end_point(session, sharpe="1")
    sweep = advance_sweep(sweep_id=sweep.pk, now=timezone.now())

    assert sweep.state == SweepState.COMPLETED
    rows = results.point_rows(sweep)
    assert [(r["params"]["fast"], r["state"], r["failure_reason"], r["session"] is None)
            for r in rows] == [
        (5, "completed", "", False), (5, "completed", "", False),
        (10, "failed", "The date range holds no bars of SPY.", True),
        (10, "failed", "The date range holds no bars of SPY.", True)]
    assert results.progress_by_sweep([sweep])[sweep.pk] | {"total": 0} == {
        "total": 0, "completed": 2, "failed": 2, "cancelled": 0, "running": 0, "queued": 0,
        "pending": 0}
