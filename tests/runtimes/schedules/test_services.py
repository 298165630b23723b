"""Scheduled backtests: validation of cadence and window, the django-celery-beat entry kept in step
with the schedule (created, paused, resumed, changed, deleted), and each run: the exact window,
the hosted backtest it asks for (a recording fake here; one test uses the real service), the run
history with failures recorded rather than raised."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

import runtimes.services
from config.errors import ApiError
from runtimes.models import TradingSession
from runtimes.schedules import services as schedules
from runtimes.schedules.models import BacktestSchedule, ScheduleRun
from runtimes.schedules.tasks import run_schedule
from tests.runtimes.schedules.conftest import DAYS, FIRST_DAY

LAST_DAY = FIRST_DAY + timedelta(days=DAYS - 1)
NOW = datetime(2026, 3, 2, 6, 30, tzinfo=UTC)  # a Monday


@pytest.fixture
def make_schedule(owner, workspace, version, daily_dataset):
    def make(**settings):
        fields = {"name": "nightly", "cron_expression": "0 6 * * 1-5", "rolling_days": 90,
                  **settings}
        if "interval_minutes" in settings:
            fields.pop("cron_expression")
        if "start" in settings:
            fields.pop("rolling_days")
        return schedules.create_schedule(workspace=workspace, created_by=owner, version=version,
                                         dataset=daily_dataset, **fields)

    return make


def _invalid(excinfo) -> tuple[str, str]:
    error = excinfo.value
    return error.error_code, error.details["field"]


# -- creating and validating ---------------------------------------------------------------------


def test_a_cron_schedule_gets_an_enabled_beat_entry_calling_run_schedule_with_its_id(
        make_schedule):
    schedule = make_schedule(cron_expression="  15 6  * * 1-5 ")

    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert schedule.cron_expression == "15 6 * * 1-5"
    assert (task.name, task.task, json.loads(task.kwargs), task.enabled) == (
        f"runtimes.run_schedule:{schedule.pk}", "runtimes.run_schedule",
        {"schedule_id": str(schedule.pk)}, True)
    crontab = task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year,
            crontab.day_of_week, str(crontab.timezone)) == ("15", "6", "*", "*", "1-5", "UTC")
    assert task.interval is None


def test_an_interval_schedule_gets_an_interval_beat_entry(make_schedule):
    schedule = make_schedule(interval_minutes=30)

    task = schedule.periodic_task
    assert (task.interval.every, task.interval.period, task.crontab) == (
        30, IntervalSchedule.MINUTES, None)


def test_the_beat_entry_is_what_the_database_scheduler_loads(make_schedule):
    from celery.beat import ScheduleEntry
    from django_celery_beat.schedulers import DatabaseScheduler

    from config.celery import app

    schedule = make_schedule(interval_minutes=30)
    scheduler = DatabaseScheduler(app=app, lazy=True)

    entries = scheduler.all_as_schedule()
    entry = entries[f"runtimes.run_schedule:{schedule.pk}"]
    assert isinstance(entry, ScheduleEntry)
    assert (entry.task, entry.kwargs) == ("runtimes.run_schedule",
                                          {"schedule_id": str(schedule.pk)})
    assert entry.schedule.run_every == timedelta(minutes=30)


def test_a_paused_schedule_starts_with_a_disabled_beat_entry(make_schedule):
    schedule = make_schedule(paused=True)

    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled is False
    assert schedule.next_run_at(now=NOW) is None


@pytest.mark.parametrize("cron,field,fragment", [
    ("0 6 * *", None, "has 5 fields (minute hour day-of-month month day-of-week); got 4"),
    ("61 6 * * *", "minute", "minute field '61'"),
    ("0 25 * * *", "hour", "hour field '25'"),
    ("0 6 32 * *", "day_of_month", "day of month field '32'"),
    ("0 6 * 13 *", "month_of_year", "month of year field '13'"),
    ("0 6 * * funday", "day_of_week", "day of week field 'funday'"),
])
def test_a_bad_cron_expression_is_a_validation_error_naming_the_cron_field(
        make_schedule, cron, field, fragment):
    with pytest.raises(ApiError) as excinfo:
        make_schedule(cron_expression=cron)

    assert _invalid(excinfo) == ("VALIDATION_ERROR", "cron_expression")
    assert excinfo.value.details.get("cron_field") == field
    assert fragment in excinfo.value.message
    assert not BacktestSchedule.objects.exists() and not PeriodicTask.objects.exists()


def test_an_interval_under_five_minutes_is_refused(make_schedule):
    with pytest.raises(ApiError) as excinfo:
        make_schedule(interval_minutes=4)

    assert _invalid(excinfo) == ("VALIDATION_ERROR", "interval_minutes")
    assert excinfo.value.message == "The interval must be at least 5 minutes."


def test_an_interval_over_a_year_is_refused(make_schedule):
    with pytest.raises(ApiError) as excinfo:
        make_schedule(interval_minutes=366 * 24 * 60 + 1)

    assert _invalid(excinfo) == ("VALIDATION_ERROR", "interval_minutes")
    assert excinfo.value.message == "The interval must be at most 527040 minutes (366 days)."


def test_an_interval_of_exactly_five_minutes_is_accepted(make_schedule):
    assert make_schedule(interval_minutes=5).interval_minutes == 5


def test_both_or_neither_cadence_is_refused(owner, workspace, version, daily_dataset):
    for cadence in ({"cron_expression": "0 6 * * *", "interval_minutes": 60}, {}):
        with pytest.raises(ApiError) as excinfo:
            schedules.create_schedule(workspace=workspace, created_by=owner, name="x",
                                      version=version, dataset=daily_dataset, rolling_days=5,
                                      **cadence)
        assert _invalid(excinfo) == ("VALIDATION_ERROR", "cron_expression")


def test_a_rolling_window_longer_than_the_dataset_is_refused(make_schedule):
    make_schedule(name="fits", rolling_days=DAYS - 1)

    with pytest.raises(ApiError) as excinfo:
        make_schedule(name="too long", rolling_days=DAYS)

    assert _invalid(excinfo) == ("VALIDATION_ERROR", "rolling_days")
    assert excinfo.value.message == ("The dataset covers 99 days (2021-01-01 to 2021-04-10); "
                                     "the window must fit in it.")


@pytest.mark.parametrize("days", [36_601, 10**6, 10**10])
def test_a_rolling_window_beyond_a_century_is_refused_not_an_overflow(make_schedule, days):
    with pytest.raises(ApiError) as excinfo:
        make_schedule(name="forever", rolling_days=days)

    assert _invalid(excinfo) == ("VALIDATION_ERROR", "rolling_days")
    assert excinfo.value.message == "The rolling window must be at most 36600 days."


@pytest.mark.parametrize("start,end,field", [
    (FIRST_DAY - timedelta(days=1), LAST_DAY, "start"),
    (FIRST_DAY, LAST_DAY + timedelta(days=1), "end"),
    (FIRST_DAY + timedelta(days=10), FIRST_DAY + timedelta(days=10), "end"),
])
def test_fixed_dates_must_lie_inside_the_dataset_and_in_order(make_schedule, start, end, field):
    with pytest.raises(ApiError) as excinfo:
        make_schedule(start=start, end=end)

    assert _invalid(excinfo) == ("VALIDATION_ERROR", field)


def test_symbols_the_dataset_lacks_and_a_taken_name_are_refused(make_schedule):
    make_schedule()

    with pytest.raises(ApiError) as missing:
        make_schedule(name="other", symbols=["QQQ"])
    with pytest.raises(ApiError) as taken:
        make_schedule()

    assert _invalid(missing) == ("VALIDATION_ERROR", "symbols")
    assert _invalid(taken) == ("VALIDATION_ERROR", "name")
    assert PeriodicTask.objects.count() == 1


# -- changing, pausing, deleting -----------------------------------------------------------------


def test_pause_and_resume_flip_the_beat_entry(make_schedule):
    schedule = make_schedule()

    assert schedules.set_paused(schedule=schedule, paused=True) is True
    assert schedules.set_paused(schedule=schedule, paused=True) is False
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled is False
    assert BacktestSchedule.objects.get(pk=schedule.pk).paused is True

    assert schedules.set_paused(schedule=schedule, paused=False) is True
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled is True
    assert BacktestSchedule.objects.get(pk=schedule.pk).paused is False


def test_changing_cron_to_an_interval_moves_the_beat_entry_and_clears_the_cron(make_schedule):
    schedule = make_schedule()

    schedules.update_schedule(schedule=schedule, changes={"interval_minutes": 15})

    stored = BacktestSchedule.objects.select_related("periodic_task__interval").get(
        pk=schedule.pk)
    assert (stored.cron_expression, stored.interval_minutes) == ("", 15)
    assert stored.periodic_task.crontab is None
    assert stored.periodic_task.interval.every == 15


def test_fixed_dates_replace_a_rolling_window(make_schedule):
    schedule = make_schedule()
    start, end = FIRST_DAY + timedelta(days=5), FIRST_DAY + timedelta(days=50)

    schedules.update_schedule(schedule=schedule, changes={"start": start, "end": end})

    stored = BacktestSchedule.objects.get(pk=schedule.pk)
    assert (stored.rolling_days, stored.start, stored.end) == (None, start, end)


def test_a_bad_change_keeps_the_stored_schedule(make_schedule):
    schedule = make_schedule()

    with pytest.raises(ApiError) as excinfo:
        schedules.update_schedule(schedule=schedule, changes={"cron_expression": "0 6 * * 9"})

    assert _invalid(excinfo) == ("VALIDATION_ERROR", "cron_expression")
    stored = BacktestSchedule.objects.select_related("periodic_task__crontab").get(
        pk=schedule.pk)
    assert stored.cron_expression == "0 6 * * 1-5"
    assert stored.periodic_task.crontab.day_of_week == "1-5"


def test_deleting_a_schedule_deletes_its_beat_entry_and_history_but_not_its_backtests(
        make_schedule, hosted_calls):
    schedule = make_schedule()
    run = schedules.run_schedule_now(schedule=schedule, now=NOW)

    schedules.delete_schedule(schedule=schedule)

    assert not PeriodicTask.objects.filter(name__startswith="runtimes.run_schedule").exists()
    assert not ScheduleRun.objects.exists()
    assert TradingSession.objects.filter(pk=run.session_id).exists()


def test_deleting_the_version_takes_the_schedule_and_its_beat_entry_along(make_schedule,
                                                                          version):
    make_schedule()

    version.strategy.delete()

    assert not BacktestSchedule.objects.exists()
    assert not PeriodicTask.objects.filter(task="runtimes.run_schedule").exists()


# -- next run ------------------------------------------------------------------------------------


def test_next_run_of_a_cron_schedule_is_the_next_matching_minute_in_utc(make_schedule):
    schedule = make_schedule(cron_expression="0 6 * * 1-5")

    assert schedule.next_run_at(now=NOW) == datetime(2026, 3, 3, 6, 0, tzinfo=UTC)
    friday_evening = datetime(2026, 3, 6, 18, 0, tzinfo=UTC)
    assert schedule.next_run_at(now=friday_evening) == datetime(2026, 3, 9, 6, 0, tzinfo=UTC)


def test_next_run_of_an_interval_schedule_counts_from_its_last_run(make_schedule):
    schedule = make_schedule(interval_minutes=60)
    PeriodicTask.objects.filter(pk=schedule.periodic_task_id).update(last_run_at=NOW)
    schedule.periodic_task.refresh_from_db()

    assert schedule.next_run_at(now=NOW) == NOW + timedelta(hours=1)


# -- running -------------------------------------------------------------------------------------


def test_a_run_asks_for_the_last_n_days_ending_at_the_datasets_last_bar(
        make_schedule, hosted_calls, owner, workspace, version, daily_dataset):
    schedule = make_schedule(rolling_days=90, symbols=["SPY"], initial_cash=Decimal(25_000),
                             commission={"percent": "0.1"}, slippage_bps=Decimal(2),
                             params={"fast": 10})

    run = schedules.run_schedule_now(schedule=schedule, now=NOW)

    assert hosted_calls == [{
        "workspace": workspace, "created_by": owner, "version": version,
        "dataset": daily_dataset,
        "symbols": ["SPY"], "timeframe": None,
        "start": datetime(2021, 1, 10, tzinfo=UTC), "end": datetime(2021, 4, 10, tzinfo=UTC),
        "initial_cash": Decimal(25_000), "commission": {"percent": Decimal("0.1")},
        "slippage_bps": Decimal(2), "params": {"fast": 10},
    }]
    stored = ScheduleRun.objects.get()
    assert stored == run
    assert (stored.status, stored.error, stored.started_at, stored.session_id) == (
        "started", "", NOW, TradingSession.objects.get().pk)
    assert (stored.window_start, stored.window_end) == (datetime(2021, 1, 10, tzinfo=UTC),
                                                        datetime(2021, 4, 10, tzinfo=UTC))


def test_a_fixed_window_run_asks_for_exactly_its_dates(make_schedule, hosted_calls):
    start, end = FIRST_DAY + timedelta(days=3), FIRST_DAY + timedelta(days=33)
    schedule = make_schedule(start=start, end=end, interval_minutes=60)

    schedules.run_schedule_now(schedule=schedule, now=NOW)

    assert (hosted_calls[0]["start"], hosted_calls[0]["end"], hosted_calls[0]["symbols"]) == (
        start, end, None)


def test_a_refused_backtest_is_recorded_as_a_failed_run_with_its_message(
        make_schedule, monkeypatch):
    def refuse(**kwargs):
        raise ApiError("SANDBOX_UNAVAILABLE", "Hosted runs are refused here: no bubblewrap.")

    monkeypatch.setattr(runtimes.services, "create_hosted_backtest", refuse)
    schedule = make_schedule()

    run = schedules.run_schedule_now(schedule=schedule, now=NOW)

    assert (run.status, run.error, run.session) == (
        "failed", "Hosted runs are refused here: no bubblewrap.", None)
    assert ScheduleRun.objects.get().is_failure


def test_an_unexpected_error_is_recorded_as_a_failed_run_not_raised(make_schedule, monkeypatch):
    def crash(**kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(runtimes.services, "create_hosted_backtest", crash)

    run = schedules.run_schedule_now(schedule=make_schedule(), now=NOW)

    assert (run.status, run.error) == ("failed", "RuntimeError: the disk is full")


def test_the_task_skips_a_paused_schedule(make_schedule, hosted_calls):
    schedule = make_schedule(paused=True)

    assert run_schedule.run(schedule_id=str(schedule.pk)) is None
    assert hosted_calls == [] and not ScheduleRun.objects.exists()


def test_the_task_runs_an_active_schedule_and_ignores_a_deleted_one(make_schedule,
                                                                     hosted_calls):
    schedule = make_schedule()
    schedule_id = str(schedule.pk)

    assert run_schedule.run(schedule_id=schedule_id) == "started"
    assert ScheduleRun.objects.filter(schedule=schedule, status="started").count() == 1
    schedules.delete_schedule(schedule=schedule)
    assert run_schedule.run(schedule_id=schedule_id) is None
    assert len(hosted_calls) == 1


def test_run_now_runs_a_paused_schedule_when_a_person_asks(make_schedule, hosted_calls):
    schedule = make_schedule(paused=True)

    assert schedules.run_schedule_now(schedule=schedule, now=NOW) is None
    run = schedules.run_schedule_now(schedule=schedule, now=NOW, even_if_paused=True)

    assert run.status == "started" and len(hosted_calls) == 1


def test_a_run_starts_a_real_hosted_backtest_of_the_version_over_the_window(
        make_schedule, version, settings):
    if not hasattr(runtimes.services, "create_hosted_backtest"):
        pytest.skip("runtimes.services has no create_hosted_backtest yet (hosted backtests are "
                    "being added beside schedules)")
    settings.SANDBOX_ALLOW_UNSANDBOXED = True  # this machine may lack bubblewrap; no run starts
    schedule = make_schedule(rolling_days=30, params={"fast": 5})

    run = schedules.run_schedule_now(schedule=schedule, now=NOW)

    assert (run.status, run.error) == ("started", "")
    session = run.session
    assert (session.source, session.start, session.end, session.symbols) == (
        "hosted", datetime(2021, 3, 11, tzinfo=UTC), datetime(2021, 4, 10, tzinfo=UTC), ["SPY"])
    assert getattr(session, "strategy_version_id", version.pk) == version.pk
    assert getattr(session, "params", {"fast": 5}) == {"fast": 5}


def test_crontab_rows_are_shared_between_schedules_with_the_same_expression(make_schedule):
    make_schedule(name="a")
    make_schedule(name="b")

    assert CrontabSchedule.objects.filter(minute="0", hour="6", day_of_week="1-5").count() == 1
