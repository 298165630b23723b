"""The embedded topology's broker: kombu's in-memory transport, whose idle consumers wait for the
next message sent instead of polling. Polled (every 50 ms), a queued session's dispatch task
waited 25 ms on average for a free worker thread to see it; now it is taken at once.
"""

from __future__ import annotations

import threading
from queue import Empty
from time import monotonic
from typing import Any

from kombu.transport import memory


class _Arrivals:
    """How many messages were sent in this process; a consumer waits for it to change."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.count = 0

    def mark(self) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait_past(self, seen: int, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self.count != seen, timeout)


ARRIVALS = _Arrivals()  # the memory transport's queues are per process, and so is this


class Channel(memory.Channel):
    """The in-memory channel, telling waiting consumers of each message it queues."""

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        super()._put(queue, message, **kwargs)
        ARRIVALS.mark()

    def _put_fanout(self, exchange: str, message: Any, routing_key: str | None = None,
                    **kwargs: Any) -> None:
        super()._put_fanout(exchange, message, routing_key, **kwargs)
        ARRIVALS.mark()


class Transport(memory.Transport):
    """The in-memory transport (CELERY_BROKER_TRANSPORT when the broker is memory://)."""

    Channel = Channel

    def drain_events(self, connection: Any, timeout: float | None = None) -> None:
        """Deliver one message. None queued: wait until one is sent, looking again at least
        every `polling_interval`; TimeoutError after `timeout` seconds, as kombu's own."""
        started = monotonic()
        while True:
            seen = ARRIVALS.count  # read before looking: a message sent after it ends the wait
            try:
                self.cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                pass
            wait = self.polling_interval or 1.0
            if timeout is not None:
                left = timeout - (monotonic() - started)
                if left <= 0:
                    raise TimeoutError  # socket.timeout, which the worker loop expects
                wait = min(wait, left)
            ARRIVALS.wait_past(seen, wait)
