"""Alpaca's trading REST API through alpaca-py's TradingClient, with our own budget, retries and
circuit breaker.

The SDK's client sends the requests (auth headers, URLs, error bodies) with `raw_data=True`; its
own retry loop is switched off (`_retry = 0`: it would sleep 3 s on a 429 while the strategy
waits). Around each call:

- the connection's shared RateBudget is spent first; when it refuses, Alpaca is not called and
  the caller gets RateLimited (429, retry_after) and a RATE_LIMIT_HIT event;
- X-RateLimit-Limit/Remaining/Reset of every response (a `requests` response hook on the
  client's session) go to `budget.observe`; RATE_LIMIT_WARNING once per window under 10 % left;
- Alpaca's 429 blocks the whole connection for Retry-After (`budget.blocked_for`);
- 5xx, timeouts and refused connections count in the adapter circuit breaker (breaker.py);
- 4xx become AlpacaError carrying Alpaca's status, code and message, read defensively (a 401
  body has no code), which the provider turns into the protocol's errors per operation.

No message or log line here carries the keys: errors are built from status codes and Alpaca's
own bodies, never from the request.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient

from runtimes.core.connection import BrokerConnection, RateBudget
from runtimes.core.errors import BrokerUnavailable, RateLimited
from runtimes.core.events import Event, RateLimitEvent
from runtimes.providers.alpaca.breaker import CircuitBreaker
from runtimes.providers.broker_common import int_or_none, retry_after_seconds

log = logging.getLogger(__name__)

TIMEOUT_SECONDS: Final = 10.0
WARNING_SHARE: Final = 0.10  # warn when less than this share of the window's budget is left
HIT: Final = "RATE_LIMIT_HIT"
WARNING: Final = "RATE_LIMIT_WARNING"


class AlpacaError(Exception):
    """Alpaca answered a 4xx: `status`, Alpaca's `code` (None when the body has none) and its
    `message` (the reason, passed on to the strategy)."""

    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(f"Alpaca answered {status}: {message}")
        self.status = status
        self.code = code
        self.message = message


class _TimeoutSession(requests.Session):
    """The SDK's session never sets a timeout; a broker that hangs must not hang the host."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", TIMEOUT_SECONDS)
        return super().request(*args, **kwargs)


class AlpacaRest:
    """One session's REST client of one connection (the budget is the connection's)."""

    def __init__(self, connection: BrokerConnection, budget: RateBudget, *, broker: str,
                 breaker: CircuitBreaker | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.broker = broker
        self.budget = budget
        self.breaker = breaker or CircuitBreaker()
        # set by the provider: where rate-limit events go, and who reports health changes
        self.emit: Callable[[Event], None] = lambda event: None
        self.changed: Callable[[], None] = lambda: None
        self._now = now
        self._lock = threading.Lock()
        self._warned_window: float | None = None
        self._hit_until: float | None = None
        self.last_success_at: datetime | None = None
        self.last_error: str | None = None
        self.latency_ms: int | None = None
        self.client = TradingClient(connection.key_id, connection.secret, raw_data=True,
                                    url_override=connection.urls["trading"])
        self.client._retry = 0  # we own retries and 429s
        session = _TimeoutSession()
        session.hooks["response"].append(self._observe)
        self.client._session = session

    # -- calls --------------------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.call("GET", path, params)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.call("POST", path, body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.call("PATCH", path, body)

    def delete(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.call("DELETE", path, params)

    def call(self, method: str, path: str, data: dict[str, Any] | None = None,
             *, breaker: CircuitBreaker | None = None) -> Any:
        """One request to Alpaca (path under /v2). Raises RateLimited, BrokerUnavailable or
        AlpacaError; returns the decoded JSON (None for an empty body)."""
        breakers = [self.breaker] + ([breaker] if breaker is not None else [])
        for each in breakers:
            wait = each.admit()
            if wait > 0:
                raise BrokerUnavailable(
                    "Alpaca failed repeatedly; calls are paused for a short while",
                    broker=self.broker, retry_after_seconds=max(1, math.ceil(wait)))
        self._spend()
        started = time.monotonic()
        try:
            result = self.client._request(method, path, data)
        except APIError as exc:
            return self._api_error(exc, breakers)
        except (requests.ConnectionError, requests.Timeout) as exc:
            self._broker_failed(breakers, f"Alpaca could not be reached ({type(exc).__name__})")
            raise BrokerUnavailable("Alpaca could not be reached", broker=self.broker) from None
        self.latency_ms = int((time.monotonic() - started) * 1000)
        reopened = any(each.succeeded() for each in breakers)
        self.last_success_at = self._now()
        if reopened or self.last_error is not None:
            self.last_error = None
        self.changed()
        return result

    def _spend(self) -> None:
        wait = self.budget.acquire()
        if wait <= 0:
            return
        seconds = max(1, math.ceil(wait))
        self._hit(seconds)
        raise RateLimited("Alpaca's request budget of this connection is spent",
                          retry_after_seconds=seconds)

    def _api_error(self, exc: APIError, breakers: list[CircuitBreaker]) -> Any:
        status = exc.status_code or 500
        code, message = read_error(exc)
        if status == 429:
            for each in breakers:
                each.ended()
            seconds = retry_after_seconds(exc.response)
            self.budget.blocked_for(seconds)
            self._hit(seconds)
            raise RateLimited(f"Alpaca rate limit: {message}", retry_after_seconds=seconds)
        if status >= 500:
            self._broker_failed(breakers, f"Alpaca answered {status}")
            raise BrokerUnavailable(f"Alpaca answered {status}: {message}", broker=self.broker)
        for each in breakers:
            each.ended()
        raise AlpacaError(status, code, message)

    def _broker_failed(self, breakers: list[CircuitBreaker], sentence: str) -> None:
        opened = [each.failed() for each in breakers]
        self.last_error = sentence
        if any(opened):
            log.warning("alpaca circuit breaker opened after repeated failures: %s", sentence)
        self.changed()

    # -- rate limits ----------------------------------------------------------------------------

    def _observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """The response hook: what Alpaca says of the budget is the truth (another tool on the
        same account spends it too)."""
        headers = response.headers
        limit = int_or_none(headers.get("X-RateLimit-Limit"))
        remaining = int_or_none(headers.get("X-RateLimit-Remaining"))
        reset = int_or_none(headers.get("X-RateLimit-Reset"))
        if limit is None and remaining is None and reset is None:
            return
        self.budget.observe(limit=limit, remaining=remaining,
                            reset_at=None if reset is None else float(reset))
        # a 429 is a RATE_LIMIT_HIT (below), not also a warning
        if (limit and remaining is not None and remaining < limit * WARNING_SHARE
                and response.status_code != 429):
            self._warn(remaining)

    def _warn(self, remaining: int) -> None:
        window = self.budget.reset_at()
        with self._lock:
            if self._warned_window == window:
                return
            self._warned_window = window
        reset = self.budget.reset_at()
        now = self._now()
        at = now if reset is None else datetime.fromtimestamp(reset, tz=UTC)
        self.emit(RateLimitEvent(WARNING, remaining, at, now))

    def _hit(self, seconds: int) -> None:
        """RATE_LIMIT_HIT, once per blocked stretch (a strategy that retries in a loop gets the
        429 each time but one event), with when requests can go again."""
        now = self._now()
        until = now.timestamp() + seconds
        with self._lock:
            if self._hit_until is not None and until <= self._hit_until + 1:
                return
            self._hit_until = until
        self.emit(RateLimitEvent(HIT, 0, datetime.fromtimestamp(until, tz=UTC), now))
        self.changed()


def read_error(exc: APIError) -> tuple[int | None, str]:
    """Alpaca's code and message, whatever the body is (JSON without a code, plain text)."""
    text = str(exc)
    try:
        body = json.loads(text)
    except ValueError:
        return None, text.strip()[:200] or "no reason given"
    if not isinstance(body, dict):
        return None, text.strip()[:200]
    code = body.get("code")
    message = body.get("message") or body.get("error") or "no reason given"
    return (code if isinstance(code, int) else int_or_none(code)), str(message)


