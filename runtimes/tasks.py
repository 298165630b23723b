"""Celery tasks of the runtimes app. Tasks take ids, load rows and call one service."""

from __future__ import annotations

import logging
import socket
from typing import Any

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

HEARTBEAT_TTL_SECONDS = 120


@shared_task(name="runtimes.record_worker_heartbeat")
def record_worker_heartbeat(token: str) -> None:
    """Prove a worker is consuming the broker: leave `token`'s mark in the shared cache."""
    cache.set(f"worker-heartbeat:{token}", socket.gethostname(), HEARTBEAT_TTL_SECONDS)


@shared_task(name="runtimes.run_next_session")
def run_next_session() -> str | None:
    """Claim the fairest queued session (runtimes/dispatch.py) and host it until it ends (a
    worker thread for the whole run). One such task is sent per session queued."""
    from django.utils import timezone

    from runtimes.hosting.bus import get_bus
    from runtimes.hosting.dispatch import claim_next_session
    from runtimes.hosting.host import run_session_host

    lease = claim_next_session(now=timezone.now())
    if lease is None:
        return None  # its session was cancelled, or claimed by a worker that freed up first
    return run_session_host(lease=lease, bus=get_bus())


@shared_task(name="runtimes.run_session")
def run_session(session_id: str) -> str | None:
    """Messages sent before fair dispatch named their session: they now dispatch fairly."""
    return run_next_session()


@shared_task(name="runtimes.sweep_sessions")
def sweep_sessions() -> int:
    """Beat: fail remote sessions no strategy contacted in time; nudge the queue."""
    from django.utils import timezone

    from runtimes.hosting import dispatch

    return dispatch.sweep_sessions(now=timezone.now())


@shared_task(name="runtimes.reap_lost_sessions")
def reap_lost_sessions() -> list[str]:
    """Fail the sessions whose host stopped renewing its lease (beat, every few seconds)."""
    from runtimes.hosting.leases import reap_lost_sessions as reap

    return reap()


@worker_ready.connect
def reap_at_start_up(**_: Any) -> None:
    """A worker process starting reaps once (it may be the restart of the one that died).
    Embedded, the serve command does it and a thread of its own repeats it."""
    if settings.CELERY_EMBEDDED_WORKER:
        return
    try:
        reap_lost_sessions()
    except Exception:  # a worker must start even when the database is not there yet
        logger.exception("reaping lost sessions at start-up failed")
