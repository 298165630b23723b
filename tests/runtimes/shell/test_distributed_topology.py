"""The production topology end to end: the same SDK backtest through Redis, with the session host
in a separate Celery worker process and the Trading API in a separate daphne process.

Runs where the suite runs against PostgreSQL and Redis (the second run of .ci/run); the embedded
run covers the in-process topology with tests/runtimes/shell/test_backtest_end_to_end.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from tests.plugins.celery_worker import _test_database_url
from tests.runtimes.conftest import ROWS, _free_port, wait_for_state
from tests.runtimes.shell.test_backtest_end_to_end import _journal, sma_cross

ROOT = Path(__file__).resolve().parents[3]
in_thread = partial(sync_to_async, thread_sensitive=False)

pytestmark = [
    pytest.mark.skipif(
        settings.TOPOLOGY != "distributed",
        reason="needs DATABASE_URL and REDIS_URL (the second run of .ci/run)",
    ),
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(120),
]


@dataclass
class DaphneProcess:
    """A daphne server in its own process, on the test database and the configured Redis."""

    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_daphne() -> DaphneProcess:
    """Start a daphne process on a free loopback port; returns once it accepts connections."""
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": _test_database_url()}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "-v",
            "0",
            "config.asgi:application",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the daphne process did not start") from None
            time.sleep(0.1)
    return DaphneProcess(process, f"http://127.0.0.1:{port}")


@pytest.fixture
def daphne_process_url(django_db_setup: None) -> Iterator[str]:
    """The URL of a daphne process of its own (`start_daphne`), stopped afterwards."""
    daphne = start_daphne()
    yield daphne.url
    daphne.stop()


async def test_sdk_backtest_completes_with_host_and_web_in_separate_processes(
    daphne_process_url, start_backtest, trader_key, celery_worker
):
    assert isinstance(celery_worker, subprocess.Popen), "the host must run in another process"
    session = await in_thread(start_backtest)()
    seen = await sma_cross(f"{daphne_process_url}/sessions/{session.id}", trader_key)

    session = await in_thread(wait_for_state)(session, {"completed", "failed"}, 30)
    assert (session.state, session.failure_reason) == ("completed", "")
    assert (seen["candles"], len(seen["complete"]), session.batches) == (ROWS, 1, ROWS)
    frames = await in_thread(_journal)(session)
    assert len(frames) == session.events_sent == session.events_acked
    assert frames[-1].startswith('{"type":"backtest_complete"')
