"""Celery tasks of the runtimes app. Tasks take ids, load rows and call one service."""

from __future__ import annotations

import logging
import socket
from typing import Any

from celery import shared_task
from celery.signals import worker_ready, worker_shutting_down
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

HEARTBEAT_TTL_SECONDS = 120


@shared_task(name="runtimes.record_worker_heartbeat")
def record_worker_heartbeat(token: str) -> None:
    """Prove a worker is consuming the broker: leave `token`'s mark in the shared cache."""
    cache.set(f"worker-heartbeat:{token}", socket.gethostname(), HEARTBEAT_TTL_SECONDS)


# The hosting model (docs/session-lifecycle.md, "How workers host sessions"): one task per
# session queued, acknowledged when a worker takes it (never acks_late: Redis' visibility timeout
# would deliver it again while a paper session runs for days), holding one thread of a
# `--pool threads` worker for the session's whole run, so a worker hosts at most --concurrency
# sessions. The thread pool enforces no time limit (CELERY_TASK_TIME_LIMIT kills only in a
# prefork pool), and the session's lease, not the task, says whether its host is alive.
@shared_task(name="runtimes.run_next_session", acks_late=False, reject_on_worker_lost=False)
def run_next_session() -> str | None:
    """Claim the fairest queued session (runtimes/dispatch.py) and host it until it ends, or
    until the host hands it on (a worker told to stop). One such task is sent per session
    queued; a surplus one claims nothing and returns."""
    from django.utils import timezone

    from runtimes.hosting.bus import get_bus
    from runtimes.hosting.dispatch import claim_next_session
    from runtimes.hosting.host import run_session_host
    from runtimes.hosting.survival import RUNNING_HOSTS

    if RUNNING_HOSTS.stopping is not None:
        # This worker drains: a session it handed back must go to another one, so the task
        # goes back to the broker for a worker that is not stopping.
        run_next_session.delay()
        return None
    lease = claim_next_session(now=timezone.now())
    if lease is None:
        return None  # its session was cancelled, or claimed by a worker that freed up first
    try:
        return run_session_host(lease=lease, bus=get_bus())
    finally:
        _tell_sweep(lease.session_id)


def _tell_sweep(session_id: str) -> None:
    """A sweep's point ended here: the sweep starts its next points in the slot it freed
    (runtimes/sweeps/services.py); beat's pass repeats it should this fail."""
    from django.utils import timezone

    from runtimes.sweeps.services import session_ended

    try:
        session_ended(session_id=session_id, now=timezone.now())
    except Exception:
        logger.exception("moving the sweep of session %s on failed", session_id)


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


@worker_shutting_down.connect
def drain_hosts_at_shutdown(sig: str = "", how: str = "", **_: Any) -> None:
    """A worker told to stop (SIGTERM: warm shutdown) hands its wall-clock sessions back to the
    queue at once (runtimes/hosting/host.py `drain`); the warm shutdown then waits for its
    hosts to return, within a poll interval."""
    from runtimes.hosting.survival import RUNNING_HOSTS

    RUNNING_HOSTS.drain_all(f"the worker is stopping ({sig or how or 'shutdown'})")
