"""The embedded topology's in-process Celery worker and beat scheduler.

With the in-memory broker a worker only sees messages sent from its own process, so `make run`
(and the test suite) run the worker and the scheduler as threads beside the ASGI server.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from celery import Celery
from celery.beat import EmbeddedService
from celery.worker import WorkController
from celery.worker import state as worker_state

logger = logging.getLogger(__name__)


class _ReadyWorkController(WorkController):
    """A worker that signals when its consumer is ready to take tasks."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: object) -> None:
        self.ready.set()


@dataclass
class EmbeddedServices:
    worker: _ReadyWorkController
    worker_thread: threading.Thread
    beat: EmbeddedService | None

    def stop(self, timeout: float = 10.0) -> None:
        if self.beat is not None:
            self.beat.stop()
        worker_state.should_terminate = 0
        self.worker_thread.join(timeout)
        worker_state.should_terminate = None


def start_embedded_services(
    app: Celery, *, concurrency: int = 4, with_beat: bool = True, ready_timeout: float = 30.0
) -> EmbeddedServices:
    """Start a thread-pool worker (and beat) in this process; returns once the worker is ready."""
    worker = _ReadyWorkController(
        app=app,
        concurrency=concurrency,
        pool="threads",
        hostname=f"embedded-{threading.get_native_id()}@localhost",
        loglevel=logging.INFO,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
    )
    thread = threading.Thread(target=worker.start, daemon=True, name="celery-embedded-worker")
    thread.start()
    if not worker.ready.wait(ready_timeout):
        raise RuntimeError(f"the embedded Celery worker did not start within {ready_timeout:.0f} s")
    beat = None
    if with_beat:
        # The database scheduler (django-celery-beat), never a schedule file in the work tree.
        beat = EmbeddedService(app, thread=True, scheduler_cls=app.conf.beat_scheduler)
        beat.start()
    logger.info("embedded Celery worker%s started", " and beat" if with_beat else "")
    return EmbeddedServices(worker=worker, worker_thread=thread, beat=beat)
