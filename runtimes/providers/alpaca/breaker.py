"""A circuit breaker over broker calls: three failures (5xx, timeouts, no connection) within
five minutes open it; while open, calls are refused at once (BrokerUnavailable, with how long
to wait) instead of piling onto a broker that is down; after the cooldown one trial call goes
through, and its outcome closes the breaker or opens it again.

Thread-safe: the host's thread and the SDK's threads both call the broker.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half_open"


class CircuitBreaker:
    def __init__(self, *, threshold: int = 3, window_seconds: float = 300.0,
                 cooldown_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 ) -> None:
        self.threshold = threshold
        self.window_seconds = window_seconds
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: deque[float] = deque()
        self._state = CLOSED
        self._opened_at = 0.0
        self._trial_running = False

    def admit(self) -> float:
        """0.0 when a call may go ahead now; else the seconds until one may."""
        with self._lock:
            if self._state == CLOSED:
                return 0.0
            now = self._clock()
            left = self._opened_at + self.cooldown_seconds - now
            if left > 0:
                return left
            if self._trial_running:  # one trial at a time; the others wait for its outcome
                return 1.0
            self._state, self._trial_running = HALF_OPEN, True
            return 0.0

    def succeeded(self) -> bool:
        """Record a call that worked; True when this closed an open breaker."""
        with self._lock:
            was_open = self._state != CLOSED
            self._state, self._trial_running = CLOSED, False
            self._failures.clear()
            return was_open

    def failed(self) -> bool:
        """Record a broker failure; True when this opened the breaker."""
        with self._lock:
            now = self._clock()
            self._trial_running = False
            self._failures.append(now)
            while self._failures and self._failures[0] < now - self.window_seconds:
                self._failures.popleft()
            if self._state == HALF_OPEN or (
                self._state == CLOSED and len(self._failures) >= self.threshold
            ):
                self._state, self._opened_at = OPEN, now
                return True
            return False

    def ended(self) -> None:
        """A call that neither worked nor failed at the broker (a 4xx): a trial is over."""
        with self._lock:
            if self._state == HALF_OPEN:
                self._state, self._trial_running = CLOSED, False
                self._failures.clear()

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            return {"state": self._state, "failure_count": len(self._failures)}

    def reset(self) -> None:
        with self._lock:
            self._state, self._trial_running = CLOSED, False
            self._failures.clear()
