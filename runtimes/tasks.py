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


@shared_task(name="runtimes.run_session")
def run_session(session_id: str) -> str | None:
    """Host one trading session until it ends (a worker thread for the whole run)."""
    from runtimes.bus import get_bus
    from runtimes.host import run_session_host

    return run_session_host(session_id=session_id, bus=get_bus())
