"""The embedded topology's in-process Celery worker and beat scheduler, and the session reaper.

With the in-memory broker a worker only sees messages sent from its own process, so `make run`
(and the test suite) run the worker and the scheduler as threads beside the ASGI server. The
reaper of lost sessions (runtimes/leases.py) gets a thread of its own rather than a beat entry:
a task would wait for a worker slot, and every slot may be busy hosting a session.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from celery import Celery
from celery.beat import EmbeddedService
from celery.worker import WorkController
from celery.worker import state as worker_state
from django.db import close_old_connections

logger = logging.getLogger(__name__)


class PeriodicThread:
    """Calls `work` every `interval` seconds on a daemon thread until stopped; a failing call
    is logged and the next one still happens (the database may be away for a while)."""

    def __init__(self, work: Callable[[], object], *, interval: float, name: str) -> None:
        self.work, self.interval = work, interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=name)

    def start(self) -> PeriodicThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self.work()
            except Exception:
                logger.exception("%s failed", self._thread.name)
            finally:
                close_old_connections()


def start_session_reaper(interval: float | None = None) -> PeriodicThread:
    """The thread that reaps lost sessions every SESSION_REAPER_INTERVAL_SECONDS."""
    from django.conf import settings

    from runtimes.hosting.leases import reap_lost_sessions

    every = settings.SESSION_REAPER_INTERVAL_SECONDS if interval is None else interval
    return PeriodicThread(reap_lost_sessions, interval=every, name="session-reaper").start()


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
    reaper: PeriodicThread | None = None

    def stop(self, timeout: float = 10.0) -> None:
        # Wall-clock sessions hosted here go back to the queue at once, their journal and
        # snapshot written (the next start, or another worker, takes them over); backtests run
        # on until the worker's warm shutdown, below, has waited for them.
        from runtimes.hosting.survival import RUNNING_HOSTS

        RUNNING_HOSTS.drain_all("the server is stopping")
        if self.reaper is not None:
            self.reaper.stop(timeout)
        if self.beat is not None:
            self.beat.stop()
        worker_state.should_terminate = 0
        self.worker_thread.join(timeout)
        worker_state.should_terminate = None


def start_embedded_services(
    app: Celery, *, concurrency: int = 4, with_beat: bool = True, ready_timeout: float = 30.0
) -> EmbeddedServices:
    """Start a thread-pool worker (and beat and the session reaper) in this process; returns
    once the worker is ready."""
    from runtimes.hosting.survival import RUNNING_HOSTS

    RUNNING_HOSTS.stopping = None  # a process that stopped its services before may host again
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
    beat = reaper = None
    if with_beat:
        reaper = start_session_reaper()
        # The database scheduler (django-celery-beat), never a schedule file in the work tree.
        beat = EmbeddedService(app, thread=True, scheduler_cls=app.conf.beat_scheduler)
        beat.start()
    logger.info("embedded Celery worker%s started", " and beat" if with_beat else "")
    return EmbeddedServices(worker=worker, worker_thread=thread, beat=beat, reaper=reaper)
