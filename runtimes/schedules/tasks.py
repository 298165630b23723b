"""Celery beat's task for backtest schedules: takes an id, loads the row, calls one service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from runtimes.schedules.models import BacktestSchedule
from runtimes.schedules.services import TASK_NAME, run_schedule_now

logger = logging.getLogger(__name__)


@shared_task(name=TASK_NAME)
def run_schedule(schedule_id: str) -> str | None:
    """Beat's entry point for a backtest schedule: start one run (skipped while paused).
    Returns the run's status, or None when skipped or the schedule is gone."""
    schedule = (BacktestSchedule.objects
                .select_related("workspace", "created_by", "version", "dataset")
                .filter(pk=schedule_id).first())
    if schedule is None:  # deleted between beat's tick and this task
        logger.warning("backtest schedule %s no longer exists", schedule_id)
        return None
    run = run_schedule_now(schedule=schedule, now=timezone.now())
    return None if run is None else run.status
