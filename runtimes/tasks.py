"""Celery tasks of the runtimes app. Tasks take ids, load rows and call one service."""

from __future__ import annotations

import socket

from celery import shared_task
from django.core.cache import cache

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

    from runtimes.bus import get_bus
    from runtimes.dispatch import claim_next_session
    from runtimes.host import run_session_host

    session = claim_next_session(now=timezone.now())
    if session is None:
        return None  # its session was cancelled, or claimed by a worker that freed up first
    return run_session_host(session_id=str(session.pk), bus=get_bus())


@shared_task(name="runtimes.run_session")
def run_session(session_id: str) -> str | None:
    """Messages sent before fair dispatch named their session: they now dispatch fairly."""
    return run_next_session()


@shared_task(name="runtimes.sweep_sessions")
def sweep_sessions() -> int:
    """Beat: fail remote sessions no strategy contacted in time; nudge the queue."""
    from django.utils import timezone

    from runtimes import dispatch

    return dispatch.sweep_sessions(now=timezone.now())
