"""A broker's request budget counted in this process: the embedded platform's, and the tests'.

Every session of one connection shares one budget (runtimes/core/connection.py, RateBudget);
embedded, all of them run in this process, so a dict of budgets keyed by connection id is the
whole truth. Production counts in Redis with the same rules (runtimes/hosting/brokers.py).

Rules: a fixed window of `window_seconds` opened by its first request; at most `limit` requests
in it; what the broker's headers say lowers what is left (it counts requests we did not see:
another tool on the same account); a 429's Retry-After blocks every request until it passes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class LocalBudget:
    """RateBudget in process; thread-safe (sessions' hosts and SDK threads share it)."""

    def __init__(self, limit: int, *, window_seconds: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._window_end = 0.0
        self._used = 0
        self._blocked_until = 0.0

    def acquire(self, cost: int = 1) -> float:
        with self._lock:
            now = self.clock()
            if now < self._blocked_until:
                return self._blocked_until - now
            if now >= self._window_end:
                self._window_end, self._used = now + self.window_seconds, 0
            if self._used + cost > self.limit:
                return self._window_end - now
            self._used += cost
            return 0.0

    def observe(self, *, limit: int | None, remaining: int | None,
                reset_at: float | None) -> None:
        with self._lock:
            now = self.clock()
            if reset_at is not None and reset_at > now:
                self._window_end = reset_at
            if limit is not None:
                self.limit = limit
            if remaining is not None:
                self._used = max(self._used, self.limit - remaining)

    def blocked_for(self, seconds: float) -> None:
        with self._lock:
            self._blocked_until = max(self._blocked_until, self.clock() + seconds)

    def remaining(self) -> int | None:
        with self._lock:
            if self.clock() >= self._window_end:
                return self.limit
            return max(0, self.limit - self._used)

    def reset_at(self) -> float | None:
        with self._lock:
            return self._window_end if self._window_end else None


_BUDGETS: dict[str, LocalBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def local_budget(connection_id: str, *, limit: int,
                 window_seconds: float = 60.0) -> LocalBudget:
    """The one in-process budget of `connection_id` (made on first use)."""
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(connection_id)
        if budget is None:
            budget = _BUDGETS[connection_id] = LocalBudget(limit, window_seconds=window_seconds)
        return budget
