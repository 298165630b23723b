"""Migrations strategies 0004 and runtimes 0008 hand the schedules' models to runtimes over the
same tables: an existing schedule, its run and its beat entry survive the move both ways, the
beat entry's task follows the task's new name, and the content types follow the models."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("runtimes", "0007_session_leases"), ("strategies", "0003_backtest_schedules")]
AFTER = [("runtimes", "0008_backtest_schedules_from_strategies")]
WHEN = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _old_schedule(apps, owner_id, workspace_id, version_id, dataset_id):
    """A schedule with a run and its beat entry, written through strategies' models of before."""
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    every = IntervalSchedule.objects.create(every=60, period="minutes")
    schedule_id = "6f1c1f4e-58a2-4c1e-9d53-2f0f1b2c3d4e"
    task = PeriodicTask.objects.create(name=f"strategies.run_schedule:{schedule_id}",
                                       task="strategies.run_schedule", interval=every,
                                       kwargs=f'{{"schedule_id": "{schedule_id}"}}')
    Schedule = apps.get_model("strategies", "BacktestSchedule")
    schedule = Schedule.objects.create(
        id=schedule_id, workspace_id=workspace_id, created_by_id=owner_id, name="hourly",
        version_id=version_id, dataset_id=dataset_id, interval_minutes=60, rolling_days=7,
        periodic_task=task)
    apps.get_model("strategies", "ScheduleRun").objects.create(
        schedule=schedule, started_at=WHEN, status="failed", error="no sandbox")
    return schedule_id


def test_a_schedule_of_before_survives_the_move_and_the_move_back(owner, workspace, version,
                                                                 daily_dataset):
    from django.contrib.contenttypes.models import ContentType

    types = ContentType.objects.filter(model__in=["backtestschedule", "schedulerun"])
    try:
        old = _migrate(BEFORE)
        types.update(app_label="strategies")  # as a database of before has them
        schedule_id = _old_schedule(old, owner.pk, workspace.pk, version.pk, daily_dataset.pk)

        new = _migrate(AFTER)
        schedule = new.get_model("runtimes", "BacktestSchedule").objects.get(pk=schedule_id)
        assert (schedule.name, schedule.interval_minutes) == ("hourly", 60)
        assert list(schedule.runs.values_list("status", "error")) == [("failed", "no sandbox")]
        assert (schedule.periodic_task.name, schedule.periodic_task.task) == (
            f"runtimes.run_schedule:{schedule_id}", "runtimes.run_schedule")
        assert sorted(types.values_list("app_label", "model")) == [
            ("runtimes", "backtestschedule"), ("runtimes", "schedulerun")]

        back = _migrate(BEFORE)
        task = back.get_model("django_celery_beat", "PeriodicTask").objects.get()
        assert (task.name, task.task) == (f"strategies.run_schedule:{schedule_id}",
                                          "strategies.run_schedule")
        assert back.get_model("strategies", "ScheduleRun").objects.count() == 1
        assert sorted(types.values_list("app_label", "model")) == [
            ("strategies", "backtestschedule"), ("strategies", "schedulerun")]
    finally:
        _migrate(_latest())


def _latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()
