"""Binance's spot REST API through python-binance's synchronous Client, with our own budgets,
clock offset and circuit breaker.

The SDK signs and sends (HMAC, sorted parameters, form bodies); around each call:

- a ban (418) holding on the IP's SharedBudget refuses at once (BrokerUnavailable), without
  calling Binance;
- the call's request weight is spent from `shared` (the IP's budget, every tenant of the
  worker); an order also spends 1 from `budget` (the account's 100 orders / 10 s). A refusal is
  RateLimited (429, retry_after) and a RATE_LIMIT_HIT event; Binance is not called;
- X-MBX-USED-WEIGHT-1M (of 6000 a minute) and X-MBX-ORDER-COUNT-10S (of 100) of each response
  (the SDK keeps the last one on `client.response`) are observed: Binance counts every tool on
  the IP and the account;
- 429 blocks the IP's budget for Retry-After (`blocked_for`); 418 bans it (`ban`): every session
  on it stops calling, and the provider tells its strategy. Nothing is retried automatically
  (python-binance does not retry either, §4.3);
- -1021 (timestamp outside recvWindow): the server offset is measured again and the call
  retried once;
- 5xx, timeouts and refused connections count in the circuit breaker.

No message or log line here carries the keys: errors are built from Binance's codes and
messages, never from the request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import requests
from binance.exceptions import BinanceAPIException, BinanceRequestException

from runtimes.core.connection import BrokerConnection, RateBudget, SharedBudget
from runtimes.core.errors import BrokerUnavailable, RateLimited
from runtimes.core.events import Event, RateLimitEvent
from runtimes.providers.alpaca.breaker import CircuitBreaker
from runtimes.providers.binance.sdk import rest_client_class, signing_arguments
from runtimes.providers.broker_common import int_or_none, retry_after_seconds

log = logging.getLogger(__name__)

BROKER: Final = "binance"
RECV_WINDOW_MS: Final = 5000
TIMEOUT_SECONDS: Final = 10
WEIGHT_LIMIT: Final = 6000  # REQUEST_WEIGHT per minute per IP
ORDER_LIMIT: Final = 100  # ORDERS per 10 s per account
ORDER_WINDOW_SECONDS: Final = 10
WARNING_SHARE: Final = 0.10
CLOCK_SKEW: Final = -1021
HIT: Final = "RATE_LIMIT_HIT"
WARNING: Final = "RATE_LIMIT_WARNING"

# Request weights (Binance's docs, spot)
WEIGHTS: Final[dict[str, int]] = {
    "time": 1, "exchangeInfo": 20, "account": 20, "order": 1, "getOrder": 4,
    "cancel": 1, "cancelReplace": 1, "oco": 1, "openOrders": 6, "allOrders": 20,
    "myTrades": 20, "ticker": 2, "bookTicker": 2, "cancelOrderList": 1,
}
ORDER_CALLS: Final = frozenset({"order", "cancelReplace", "oco"})


class BinanceError(Exception):
    """Binance answered a 4xx other than a rate limit: `status`, Binance's `code` and `message`
    (passed on to the strategy)."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"Binance answered {status} ({code}): {message}")
        self.status = status
        self.code = code
        self.message = message


class BinanceRest:
    """One session's REST client of one connection (the budgets are shared)."""

    def __init__(self, connection: BrokerConnection, budget: RateBudget, shared: SharedBudget,
                 *, breaker: CircuitBreaker | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.budget = budget
        self.shared = shared
        self.breaker = breaker or CircuitBreaker()
        self.emit: Callable[[Event], None] = lambda event: None
        self.changed: Callable[[], None] = lambda: None
        self.banned: Callable[[str], None] = lambda sentence: None  # the provider's
        self._now = now
        self._lock = threading.Lock()
        self._hit_until: float | None = None
        self._warned_window: float | None = None
        self.last_success_at: datetime | None = None
        self.last_error: str | None = None
        self.latency_ms: int | None = None
        self.clock_offset_ms: int | None = None
        self.used_weight: int | None = None
        self.order_count: int | None = None
        # Client() sets an asyncio loop in this thread if it has none (§2.7): harmless here,
        # the host's thread runs no loop of its own
        cls = rest_client_class(connection)
        self.client = cls(connection.key_id, ping=False, **signing_arguments(connection))
        self.client.REQUEST_RECVWINDOW = RECV_WINDOW_MS
        self.client.REQUEST_TIMEOUT = TIMEOUT_SECONDS

    # -- calls --------------------------------------------------------------------------------

    def call(self, name: str, method: Callable[..., Any], /, **params: Any) -> Any:
        """One request: `name` is its WEIGHTS key, `method` the SDK's bound method. Raises
        RateLimited, BrokerUnavailable or BinanceError."""
        try:
            return self._once(name, method, params)
        except BinanceError as error:
            if error.code != CLOCK_SKEW:
                raise
        log.warning("binance: timestamp outside recvWindow; measuring the clock again")
        self.measure_clock()
        return self._once(name, method, params)

    def _once(self, name: str, method: Callable[..., Any], params: dict[str, Any]) -> Any:
        self._admit(name)
        started = time.monotonic()
        try:
            result = method(**dict(params))
        except BinanceAPIException as exc:
            self._observe()
            return self._api_error(exc)
        except (requests.ConnectionError, requests.Timeout, BinanceRequestException) as exc:
            self._broker_failed(f"Binance could not be reached ({type(exc).__name__})")
            raise BrokerUnavailable("Binance could not be reached", broker=BROKER) from None
        self._observe()
        self.latency_ms = int((time.monotonic() - started) * 1000)
        reopened = self.breaker.succeeded()
        self.last_success_at = self._now()
        if reopened or self.last_error is not None:
            self.last_error = None
        self.changed()
        return result

    def _admit(self, name: str) -> None:
        until = self.shared.banned_until()
        now = time.time()
        if until is not None and until > now:
            raise BrokerUnavailable(ban_sentence(until), broker=BROKER,
                                    retry_after_seconds=max(1, math.ceil(until - now)))
        wait = self.breaker.admit()
        if wait > 0:
            raise BrokerUnavailable("Binance failed repeatedly; calls are paused for a short "
                                    "while", broker=BROKER,
                                    retry_after_seconds=max(1, math.ceil(wait)))
        wait = self.shared.acquire(WEIGHTS[name])
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            self._hit(seconds)
            raise RateLimited("Binance's request weight of this server is spent",
                              retry_after_seconds=seconds)
        if name in ORDER_CALLS:
            wait = self.budget.acquire(1)
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                self._hit(seconds)
                raise RateLimited("Binance's order rate of this account is spent "
                                  "(100 orders / 10 s)", retry_after_seconds=seconds)

    def _api_error(self, exc: BinanceAPIException) -> Any:
        status = int(exc.status_code or 500)
        code = int(exc.code or 0)
        message = str(exc.message or "no reason given")[:300]
        if status in (418, 429):
            self.breaker.ended()
            seconds = retry_after_seconds(exc.response)
            if status == 418:
                until = time.time() + seconds
                sentence = ban_sentence(until)
                self.shared.ban(seconds, sentence)
                self.last_error = sentence
                self.banned(sentence)
                self.changed()
                raise BrokerUnavailable(sentence, broker=BROKER, retry_after_seconds=seconds)
            self.shared.blocked_for(seconds)
            self._hit(seconds)
            raise RateLimited(f"Binance rate limit: {message}", retry_after_seconds=seconds)
        if status >= 500:
            self._broker_failed(f"Binance answered {status}")
            raise BrokerUnavailable(f"Binance answered {status}: {message}", broker=BROKER)
        self.breaker.ended()
        raise BinanceError(status, code, message)

    def _broker_failed(self, sentence: str) -> None:
        if self.breaker.failed():
            log.warning("binance circuit breaker opened after repeated failures: %s", sentence)
        self.last_error = sentence
        self.changed()

    # -- the clock ------------------------------------------------------------------------------

    def measure_clock(self) -> int:
        """GET time (weight 1): Binance's clock minus ours, at the request's midpoint, applied
        to every signed call (the SDK adds `timestamp_offset` to its timestamps)."""
        before = time.time() * 1000
        raw = self._once("time", self.client.get_server_time, {})
        after = time.time() * 1000
        offset = int(int(raw["serverTime"]) - (before + after) / 2)
        self.client.timestamp_offset = offset
        self.clock_offset_ms = offset
        self.changed()
        return offset

    # -- rate limits ----------------------------------------------------------------------------

    def _observe(self) -> None:
        response = getattr(self.client, "response", None)
        headers = getattr(response, "headers", None)
        if headers is None:
            return
        now = time.time()
        used = int_or_none(headers.get("X-MBX-USED-WEIGHT-1M"))
        if used is not None:
            self.used_weight = used
            reset = (math.floor(now / 60) + 1) * 60.0
            self.shared.observe(limit=WEIGHT_LIMIT, remaining=max(0, WEIGHT_LIMIT - used),
                                reset_at=reset)
            if used > WEIGHT_LIMIT * (1 - WARNING_SHARE) and response is not None and \
                    response.status_code not in (418, 429):
                self._warn(WEIGHT_LIMIT - used, reset)
        orders = int_or_none(headers.get("X-MBX-ORDER-COUNT-10S"))
        if orders is not None:
            self.order_count = orders
            reset = (math.floor(now / ORDER_WINDOW_SECONDS) + 1) * float(ORDER_WINDOW_SECONDS)
            self.budget.observe(limit=ORDER_LIMIT, remaining=max(0, ORDER_LIMIT - orders),
                                reset_at=reset)

    def _warn(self, remaining: int, reset: float) -> None:
        with self._lock:
            if self._warned_window == reset:
                return
            self._warned_window = reset
        self.emit(RateLimitEvent(WARNING, max(0, remaining), datetime.fromtimestamp(reset, UTC),
                                 self._now()))

    def _hit(self, seconds: int) -> None:
        """RATE_LIMIT_HIT once per blocked stretch, with when requests can go again."""
        now = self._now()
        until = now.timestamp() + seconds
        with self._lock:
            if self._hit_until is not None and until <= self._hit_until + 1:
                return
            self._hit_until = until
        self.emit(RateLimitEvent(HIT, 0, datetime.fromtimestamp(until, tz=UTC), now))
        self.changed()


def ban_sentence(until: float) -> str:
    moment = datetime.fromtimestamp(until, UTC).replace(microsecond=0)
    return (f"Binance banned this server's IP until {moment.isoformat().replace('+00:00', 'Z')}"
            " (too many requests); every session on it waits")


