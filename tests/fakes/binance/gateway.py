"""What Binance's gateway does in front of the spot REST API: the request log, scripted faults,
the per-IP request weight (X-MBX-USED-WEIGHT-1M, 429 then a 418 ban), the account's order
counts (X-MBX-ORDER-COUNT-10S/-1D), and the checks of signed requests (key, HMAC-SHA256
signature over the raw query string and body up to `signature`, timestamp within recvWindow).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.binance.values import ApiError, mandatory, parse_int

WEIGHT_LIMIT = 6000
_SIGNATURE = re.compile(r"(?:^|&)signature=([^&]*)")

# (method, path) -> weight, as Binance documents them; the no-symbol variants are in `weight`.
WEIGHTS: dict[tuple[str, str], int] = {
    ("GET", "/api/v3/ping"): 1,
    ("GET", "/api/v3/time"): 1,
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/account"): 20,
    ("POST", "/api/v3/order"): 1,
    ("POST", "/api/v3/order/test"): 1,
    ("GET", "/api/v3/order"): 4,
    ("DELETE", "/api/v3/order"): 1,
    ("GET", "/api/v3/openOrders"): 6,
    ("DELETE", "/api/v3/openOrders"): 1,
    ("GET", "/api/v3/allOrders"): 20,
    ("GET", "/api/v3/myTrades"): 20,
    ("POST", "/api/v3/order/cancelReplace"): 1,
    ("POST", "/api/v3/orderList/oco"): 1,
    ("GET", "/api/v3/klines"): 2,
    ("GET", "/api/v3/ticker/bookTicker"): 2,
    ("GET", "/api/v3/ticker/price"): 2,
    ("GET", "/api/v3/avgPrice"): 2,
    ("GET", "/sapi/v1/account/apiRestrictions"): 1,
}
SIGNED = {
    ("GET", "/api/v3/account"),
    ("POST", "/api/v3/order"),
    ("POST", "/api/v3/order/test"),
    ("GET", "/api/v3/order"),
    ("DELETE", "/api/v3/order"),
    ("GET", "/api/v3/openOrders"),
    ("DELETE", "/api/v3/openOrders"),
    ("GET", "/api/v3/allOrders"),
    ("GET", "/api/v3/myTrades"),
    ("POST", "/api/v3/order/cancelReplace"),
    ("POST", "/api/v3/orderList/oco"),
    ("GET", "/sapi/v1/account/apiRestrictions"),
}
ORDER_PLACING = {
    ("POST", "/api/v3/order"),
    ("POST", "/api/v3/order/cancelReplace"),
    ("POST", "/api/v3/orderList/oco"),
}


def weight(method: str, path: str, params: dict[str, str]) -> int:
    base = WEIGHTS.get((method, path), 1)
    if "symbol" not in params and "symbols" not in params:
        if (method, path) == ("GET", "/api/v3/openOrders"):
            return 80
        if path in ("/api/v3/ticker/bookTicker", "/api/v3/ticker/price"):
            return 4
    if (method, path) == ("GET", "/api/v3/myTrades") and "orderId" in params:
        return 5
    return base


@dataclass
class Fault:
    """A scripted failure of the next `count` requests under `path`."""

    status: int
    count: int
    retry_after: int | None
    path: str


@dataclass
class Gateway:
    key_id: str
    secret: str
    weight_limit: int = WEIGHT_LIMIT
    order_limit_10s: int = 100
    order_limit_day: int = 200_000
    strikes_to_ban: int = 3  # requests while told to back off before a 418 ban
    ban_seconds: int = 120
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    used_weight: int = 0
    window_start_ms: int | None = None
    blocked_until_ms: int = 0  # after a 429: until Retry-After passes
    strikes: int = 0
    banned_until_ms: int = 0
    order_times: list[int] = field(default_factory=list)
    orders_today: int = 0
    down: bool = False

    def take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if path.startswith(fault.path):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    # -- weight ------------------------------------------------------------------------------
    def _window(self, now_ms: int) -> None:
        if self.window_start_ms is None or now_ms >= self.window_start_ms + 60_000:
            self.window_start_ms = now_ms
            self.used_weight = 0

    def set_used(self, used: int, now_ms: int) -> None:
        self._window(now_ms)
        self.used_weight = used
        self.blocked_until_ms, self.strikes = 0, 0

    def ban(self, seconds: int, now_ms: int) -> None:
        self.banned_until_ms = now_ms + seconds * 1000

    def banned(self, now_ms: int) -> ApiError | None:
        if now_ms >= self.banned_until_ms:
            return None
        retry = max(1, math.ceil((self.banned_until_ms - now_ms) / 1000))
        return ApiError(
            418,
            -1003,
            f"Way too many requests; IP(127.0.0.1) banned until {self.banned_until_ms}. "
            "Please use WebSocket Streams for live updates to avoid bans.",
            {"Retry-After": str(retry)},
        )

    def spend(self, cost: int, now_ms: int) -> ApiError | None:
        """Count `cost` against the IP's minute; a 429 when it would go over (and a ban when
        the client keeps coming while told to back off)."""
        self._window(now_ms)
        assert self.window_start_ms is not None
        if now_ms < self.blocked_until_ms:
            # Still told to back off: another 429, and a ban for a client that keeps coming.
            self.strikes += 1
            if self.strikes >= self.strikes_to_ban:
                self.ban(self.ban_seconds, now_ms)
                self.strikes = 0
                return self.banned(now_ms)
            return too_many(math.ceil((self.blocked_until_ms - now_ms) / 1000), self.weight_limit)
        if self.used_weight + cost > self.weight_limit:
            retry = max(1, math.ceil((self.window_start_ms + 60_000 - now_ms) / 1000))
            self.blocked_until_ms = now_ms + retry * 1000
            return too_many(retry, self.weight_limit)
        self.used_weight += cost
        return None

    def weight_headers(self) -> dict[str, str]:
        return {"X-MBX-USED-WEIGHT-1M": str(self.used_weight)}

    # -- orders ------------------------------------------------------------------------------
    def count_order(self, now_ms: int) -> ApiError | None:
        self.order_times = [t for t in self.order_times if t > now_ms - 10_000]
        if len(self.order_times) >= self.order_limit_10s:
            return ApiError(
                429, -1015,
                f"Too many new orders; current limit is {self.order_limit_10s} orders per "
                "TEN_SECONDS.",
            )  # fmt: skip
        self.order_times.append(now_ms)
        self.orders_today += 1
        return None

    def order_headers(self) -> dict[str, str]:
        return {
            "X-MBX-ORDER-COUNT-10S": str(len(self.order_times)),
            "X-MBX-ORDER-COUNT-1D": str(self.orders_today),
        }

    # -- signed requests ---------------------------------------------------------------------
    def check_signed(self, api_key: str | None, query: str, body: str, now_ms: int) -> None:
        """Key, signature, then timestamp, with Binance's codes."""
        if not api_key:
            raise ApiError(401, -2014, "API-key format invalid.")
        if api_key != self.key_id:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        signature = None
        payload = ""
        for raw in (query, body):
            match = _SIGNATURE.search(raw)
            if match is not None:
                signature = match.group(1)
                raw = raw[: match.start()] + raw[match.end() :]
            payload += raw
        if not signature:
            raise mandatory("signature")
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise ApiError(400, -1022, "Signature for this request is not valid.")
        params = dict(_pairs(payload))
        check_timestamp(params.get("timestamp"), params.get("recvWindow"), now_ms)


def check_timestamp(raw_timestamp: Any, raw_window: Any, now_ms: int) -> None:
    """Binance's rule: not more than 1 s ahead of the server, not older than recvWindow."""
    timestamp = parse_int(None if raw_timestamp is None else str(raw_timestamp), "timestamp")
    if timestamp is None:
        raise mandatory("timestamp")
    window = parse_int(None if raw_window is None else str(raw_window), "recvWindow")
    window = 5000 if window is None else window
    if window > 60_000:
        raise ApiError(400, -1131, "recvWindow must be less than 60000")
    if timestamp >= now_ms + 1000:
        raise ApiError(
            400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
        )
    if now_ms - timestamp > window:
        raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")


def too_many(retry_after: int, limit: int = WEIGHT_LIMIT) -> ApiError:
    return ApiError(
        429,
        -1003,
        f"Too many requests; current limit of IP(127.0.0.1) request weight per minute is {limit}. "
        "Please use WebSocket Streams for live updates to avoid polling the API.",
        {"Retry-After": str(retry_after)},
    )


def _pairs(raw: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(raw, keep_blank_values=True)


def parse_params(query: str, body: str) -> dict[str, str]:
    """The request's parameters: query string and form body merged."""
    return dict(_pairs(query) + _pairs(body))
