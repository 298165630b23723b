"""Celery beat's task for parameter sweeps: move every running sweep on (one service)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

TASK_NAME = "runtimes.advance_sweeps"


@shared_task(name=TASK_NAME)
def advance_sweeps() -> int:
    """Beat: start waiting points where slots freed without a host telling (a queued point
    cancelled, a lost host reaped), start walk-forward stages, end finished sweeps."""
    from runtimes.sweeps.services import advance_running_sweeps

    return advance_running_sweeps(now=timezone.now())
