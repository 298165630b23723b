"""A real Celery worker for the tests of either topology.

Embedded: the in-process thread worker that `make run` uses, on the in-memory broker.
Distributed: a separate `celery worker` process over Redis, pointed at the test database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED_THREADS = 2
PROCESS_THREADS = 4
WORKER_START_S = 60


def worker_threads() -> int:
    """How many sessions the suite's worker hosts at once (its thread pool)."""
    return EMBEDDED_THREADS if settings.CELERY_EMBEDDED_WORKER else PROCESS_THREADS


def _test_database_url() -> str:
    database = settings.DATABASES["default"]
    user = database.get("USER") or "postgres"
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    host = database.get("HOST") or "127.0.0.1"
    port = database.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{database['NAME']}"


@pytest.fixture(scope="session")
def celery_worker(django_db_setup: None, django_db_blocker: object) -> Iterator[object]:
    """A worker consuming the configured broker for the whole test session."""
    if settings.CELERY_EMBEDDED_WORKER:
        from config.celery import app
        from config.embedded import start_embedded_services

        services = start_embedded_services(app, concurrency=EMBEDDED_THREADS, with_beat=False)
        yield services
        services.stop()
        return
    env = {**os.environ, "DATABASE_URL": _test_database_url()}
    hostname = f"pytest-{os.getpid()}@localhost"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "threads",
         "--concurrency", str(PROCESS_THREADS), "--loglevel", "WARNING", "--without-gossip",
         "--without-mingle", "--hostname", hostname],
        cwd=ROOT, env=env,
    )
    _wait_until_it_answers(process, hostname)
    yield process
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def _wait_until_it_answers(process: subprocess.Popen[bytes], hostname: str) -> None:
    """Until the worker answers a ping (it consumes the broker then); an exit or silence
    within WORKER_START_S fails the suite with what happened."""
    from config.celery import app

    deadline = time.monotonic() + WORKER_START_S
    while not app.control.ping(destination=[hostname], timeout=0.5):
        if process.poll() is not None:
            raise RuntimeError(f"the test Celery worker exited at start with {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the test Celery worker did not answer within {WORKER_START_S} s")
