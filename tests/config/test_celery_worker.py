"""A real worker consumes the configured broker (in-process when embedded, Redis in CI)."""

from __future__ import annotations

import time
import uuid

import pytest
from django.core.cache import cache

from runtimes.tasks import record_worker_heartbeat


@pytest.mark.django_db(transaction=True)
def test_a_task_sent_to_the_broker_is_run_by_the_worker(celery_worker: object) -> None:
    token = uuid.uuid4().hex
    record_worker_heartbeat.delay(token)
    deadline = time.monotonic() + 20
    while cache.get(f"worker-heartbeat:{token}") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache.get(f"worker-heartbeat:{token}") is not None
