"""The fake Alpaca's REST API (trading /v2 and stock market data /v2/stocks) as aiohttp routes,
behind one middleware that does what Alpaca's gateway does: keys, the per-key rate limit with
its X-RateLimit-* headers and 429, scripted faults, and 503 while restarting."""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiohttp import web

from tests.fakes.alpaca import market
from tests.fakes.alpaca.orders import order_json
from tests.fakes.alpaca.state import Broker
from tests.fakes.alpaca.values import (
    ApiError,
    iso,
    not_found,
    parse_decimal,
    parse_time,
    truthy,
    unprocessable,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BODY = web.RequestKey("body", object)  # the parsed JSON body (None when empty)
_GATEWAY_TEXT = {
    500: "500 Internal Server Error",
    502: "502 Bad Gateway",
    503: "503 Service Unavailable",
    504: "504 Gateway Time-out",
}


@dataclass
class Fault:
    """A scripted failure of the next `count` requests under `path`."""

    status: int
    count: int
    retry_after: int | None
    path: str
    processed: bool = False


@dataclass
class Window:
    """A key's rate-limit window: `used` requests since `start` (epoch seconds)."""

    start: float
    used: int = 0


@dataclass
class Gateway:
    """The gateway's state: keys, limits, faults, the request log."""

    key_id: str
    secret: str
    rate_limit: int
    window_seconds: int = 60
    # Alpaca's most bars per page; smaller makes the SDK's next_page_token loop testable.
    bars_page_size: int = 10000
    faults: list[Fault] = field(default_factory=list)
    windows: dict[tuple[str, str], Window] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any], Any]] = field(default_factory=list)
    down: bool = False

    def take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if path.startswith(fault.path):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def spend(self, api: str) -> tuple[bool, dict[str, str]]:
        """Count one request of this key on `api` ("trading" | "data"): allowed?, headers."""
        now = time.time()
        window = self.windows.get((self.key_id, api))
        if window is None or now >= window.start + self.window_seconds:
            window = self.windows[(self.key_id, api)] = Window(now)
        allowed = window.used < self.rate_limit
        if allowed:
            window.used += 1
        reset = math.ceil(window.start + self.window_seconds)
        headers = {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(0, self.rate_limit - window.used)),
            "X-RateLimit-Reset": str(reset),
        }
        if not allowed:
            left = window.start + self.window_seconds - now
            headers["Retry-After"] = str(max(1, math.ceil(left)))
        return allowed, headers


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body), status=status, content_type="application/json", headers=headers
    )


def _rate_limited(headers: dict[str, str]) -> web.Response:
    return _json({"code": 42910000, "message": "rate limit exceeded"}, 429, headers)


def build_app(broker: Broker, gateway: Gateway, lock_notify: Callable[[], None]) -> web.Application:
    """The REST routes; WebSocket routes are added by the server."""

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        raw = await request.text()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        request[BODY] = body
        with broker.lock:
            gateway.requests.append((request.method, request.path, dict(request.query), body))
            fault = None if gateway.down else gateway.take_fault(request.path)
            lock_notify()
        if gateway.down:
            return web.Response(text=_GATEWAY_TEXT[503], status=503)
        if fault is not None and not fault.processed:
            return _fault_response(fault)
        if (
            request.headers.get("APCA-API-KEY-ID") != gateway.key_id
            or request.headers.get("APCA-API-SECRET-KEY") != gateway.secret
        ):
            return _json({"message": "unauthorized"}, 401)
        api = "data" if request.path.startswith("/v2/stocks") else "trading"
        with broker.lock:
            allowed, headers = gateway.spend(api)
        if not allowed:
            return _rate_limited(headers)
        try:
            response = await handler(request)
        except ApiError as error:
            response = _json(error.body, error.status)
        except web.HTTPNotFound:
            response = _json({"code": 40410000, "message": "endpoint not found"}, 404)
        except web.HTTPMethodNotAllowed:
            response = _json({"code": 40510000, "message": "method not allowed"}, 405)
        if fault is not None:  # processed, and the answer lost on the way back
            return _fault_response(fault)
        response.headers.update(headers)
        return response

    def _fault_response(fault: Fault) -> web.Response:
        if fault.status == 429:
            retry = fault.retry_after if fault.retry_after is not None else 1
            return _rate_limited(
                {
                    "Retry-After": str(retry),
                    "X-RateLimit-Limit": str(gateway.rate_limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(math.ceil(time.time() + retry)),
                }
            )
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else None
        text = _GATEWAY_TEXT.get(fault.status, f"{fault.status} Error")
        return web.Response(
            text=f"<html><body><h1>{text}</h1></body></html>",
            status=fault.status,
            content_type="text/html",
            headers=headers,
        )

    routes = _Routes(broker, gateway)
    app = web.Application(middlewares=[gate])
    app.router.add_get("/v2/account", routes.account)
    app.router.add_get("/v2/account/configurations", routes.configurations)
    app.router.add_get("/v2/account/activities", routes.activities)
    app.router.add_get("/v2/account/activities/{type}", routes.activities)
    app.router.add_get("/v2/clock", routes.clock)
    app.router.add_get("/v2/calendar", routes.calendar)
    app.router.add_get("/v2/assets", routes.assets)
    app.router.add_get("/v2/assets/{symbol}", routes.asset)
    app.router.add_post("/v2/orders", routes.submit)
    app.router.add_get("/v2/orders", routes.list_orders)
    app.router.add_delete("/v2/orders", routes.cancel_all)
    app.router.add_get("/v2/orders:by_client_order_id", routes.by_client_id)
    app.router.add_get("/v2/orders/{id}", routes.get_order)
    app.router.add_patch("/v2/orders/{id}", routes.replace)
    app.router.add_delete("/v2/orders/{id}", routes.cancel)
    app.router.add_get("/v2/positions", routes.positions)
    app.router.add_delete("/v2/positions", routes.close_all)
    app.router.add_get("/v2/positions/{symbol}", routes.position)
    app.router.add_delete("/v2/positions/{symbol}", routes.close)
    app.router.add_get("/v2/stocks/bars", routes.bars)
    app.router.add_get("/v2/stocks/bars/latest", routes.latest_bars)
    app.router.add_get("/v2/stocks/quotes/latest", routes.latest_quotes)
    app.router.add_get("/v2/stocks/trades/latest", routes.latest_trades)
    return app


class _Routes:
    """The handlers; each takes the account's lock for its read or change."""

    def __init__(self, broker: Broker, gateway: Gateway) -> None:
        self.broker = broker
        self.gateway = gateway

    # -- account, clock, assets -------------------------------------------------------------
    async def account(self, request: web.Request) -> web.Response:
        with self.broker.lock:
            return _json(self.broker.account_json())

    async def configurations(self, request: web.Request) -> web.Response:
        return _json(
            {
                "dtbp_check": "entry",
                "trade_confirm_email": "none",
                "suspend_trade": False,
                "no_shorting": False,
                "fractional_trading": True,
                "max_margin_multiplier": "1",
                "pdt_check": "entry",
                "ptp_no_exception_entry": False,
            }
        )

    async def clock(self, request: web.Request) -> web.Response:
        with self.broker.lock:
            return _json(self.broker.clock_json())

    async def calendar(self, request: web.Request) -> web.Response:
        today = self.broker.clock().astimezone(market.NEW_YORK).date()
        start = (
            parse_time(request.query["start"], "start").date()
            if "start" in request.query
            else today
        )
        end = (
            parse_time(request.query["end"], "end").date()
            if "end" in request.query
            else start + timedelta(days=30)
        )
        return _json(market.calendar(start, end))

    async def assets(self, request: web.Request) -> web.Response:
        with self.broker.lock:
            rows = [self.broker.asset_json(s) for s in self.broker.all_symbols()]
        status = request.query.get("status")
        if status and status != "active":
            rows = []
        return _json(rows)

    async def asset(self, request: web.Request) -> web.Response:
        wanted = request.match_info["symbol"]
        with self.broker.lock:
            for symbol in self.broker.all_symbols():
                row = self.broker.asset_json(symbol)
                if wanted.upper() == symbol or wanted == row["id"]:
                    return _json(row)
        raise not_found("asset not found")

    # -- orders ------------------------------------------------------------------------------
    async def submit(self, request: web.Request) -> web.Response:
        return _json(self.broker.submit(request[BODY]))

    async def get_order(self, request: web.Request) -> web.Response:
        nested = truthy(request.query.get("nested"))
        with self.broker.lock:
            order = self.broker._get(request.match_info["id"])
            return _json(order_json(order, self.broker.orders, nested=nested or bool(order.legs)))

    async def by_client_id(self, request: web.Request) -> web.Response:
        client_order_id = request.query.get("client_order_id", "")
        with self.broker.lock:
            order_id = self.broker.client_ids.get(client_order_id)
            if order_id is None:
                raise not_found(f"order not found for {client_order_id}")
            order = self.broker.orders[order_id]
            return _json(order_json(order, self.broker.orders))

    async def list_orders(self, request: web.Request) -> web.Response:
        query = request.query
        status = query.get("status", "open")
        if status not in ("open", "closed", "all"):
            raise unprocessable(f"invalid status: {status}", 40010001)
        limit = min(int(query.get("limit", "50")), 500)
        nested = truthy(query.get("nested"))
        after = parse_time(query["after"], "after") if "after" in query else None
        until = parse_time(query["until"], "until") if "until" in query else None
        symbols = {s.strip().upper() for s in query.get("symbols", "").split(",") if s.strip()}
        side = query.get("side")
        with self.broker.lock:
            rows = []
            for order in self.broker.orders.values():
                if nested and order.parent_id is not None:
                    continue
                if status != "all" and order.is_open != (status == "open"):
                    continue
                if (after and order.created_at <= after) or (until and order.created_at >= until):
                    continue
                if (symbols and order.symbol not in symbols) or (side and order.side != side):
                    continue
                rows.append(order)
            rows.sort(key=lambda o: o.created_at, reverse=query.get("direction", "desc") == "desc")
            return _json([order_json(o, self.broker.orders, nested=nested) for o in rows[:limit]])

    async def replace(self, request: web.Request) -> web.Response:
        return _json(self.broker.replace(request.match_info["id"], request[BODY]))

    async def cancel(self, request: web.Request) -> web.Response:
        self.broker.cancel_by_api(request.match_info["id"])
        return web.Response(status=204)

    async def cancel_all(self, request: web.Request) -> web.Response:
        return _json(self.broker.cancel_all(), 207)

    # -- positions ---------------------------------------------------------------------------
    async def positions(self, request: web.Request) -> web.Response:
        with self.broker.lock:
            return _json(
                [self.broker.position_json(p) for _, p in sorted(self.broker.positions.items())]
            )

    async def position(self, request: web.Request) -> web.Response:
        with self.broker.lock:
            found = self.broker._find_position(request.match_info["symbol"])
            return _json(self.broker.position_json(found))

    async def close(self, request: web.Request) -> web.Response:
        qty = parse_decimal(request.query.get("qty"), "qty")
        percentage = parse_decimal(request.query.get("percentage"), "percentage")
        return _json(self.broker.close_position(request.match_info["symbol"], qty, percentage))

    async def close_all(self, request: web.Request) -> web.Response:
        cancel = truthy(request.query.get("cancel_orders"))
        return _json(self.broker.close_all_positions(cancel), 207)

    # -- activities --------------------------------------------------------------------------
    async def activities(self, request: web.Request) -> web.Response:
        query = request.query
        kinds = {request.match_info.get("type", "")} | {
            k.strip() for k in query.get("activity_types", "").split(",") if k.strip()
        }
        kinds.discard("")
        with self.broker.lock:
            rows = list(self.broker.activities) if not kinds or "FILL" in kinds else []
        after = parse_time(query["after"], "after") if "after" in query else None
        until = parse_time(query["until"], "until") if "until" in query else None
        rows = [
            r
            for r in rows
            if (after is None or r["transaction_time"] > iso(after))
            and (until is None or r["transaction_time"] < iso(until))
        ]
        if "date" in query:
            rows = [r for r in rows if r["transaction_time"].startswith(query["date"][:10])]
        if query.get("direction", "desc") == "desc":
            rows.reverse()
        token = query.get("page_token")
        if token:
            ids = [r["id"] for r in rows]
            rows = rows[ids.index(token) + 1 :] if token in ids else []
        size = min(int(query.get("page_size", "100")), 100)
        return _json(rows[:size])

    # -- market data -------------------------------------------------------------------------
    def _symbols(self, request: web.Request) -> list[str]:
        raw = request.query.get("symbols", "")
        symbols = [s.strip().upper() for s in raw.split(",") if s.strip()]
        if not symbols:
            raise ApiError(400, "symbols is required", 40010001)
        return symbols

    async def bars(self, request: web.Request) -> web.Response:
        query = request.query
        symbols = sorted(self._symbols(request))
        timeframe = query.get("timeframe")
        if not timeframe:
            raise ApiError(400, "timeframe is required", 40010001)
        now = self.broker.clock()
        start = parse_time(query["start"], "start") if "start" in query else datetime_midnight(now)
        end = parse_time(query["end"], "end") if "end" in query else now
        limit = min(int(query.get("limit", "1000")), self.gateway.bars_page_size)
        offset = _read_token(query.get("page_token"))
        rows: list[tuple[str, dict[str, Any]]] = []
        with self.broker.lock:
            series = {s: list(self.broker.bars.get(s, [])) for s in symbols}
        for symbol in symbols:
            aggs = [
                a for a in market.aggregate(series[symbol], timeframe) if start <= a.start <= end
            ]
            if query.get("sort", "asc") == "desc":
                aggs.reverse()
            rows.extend((symbol, a.json()) for a in aggs)
        page = rows[offset : offset + limit]
        out: dict[str, list[dict[str, Any]]] = {}
        for symbol, bar in page:
            out.setdefault(symbol, []).append(bar)
        more = offset + limit < len(rows)
        return _json(
            {"bars": out, "next_page_token": _write_token(offset + limit) if more else None}
        )

    async def latest_quotes(self, request: web.Request) -> web.Response:
        symbols = self._symbols(request)
        out = {}
        with self.broker.lock:
            for symbol in symbols:
                quote = self.broker.quotes.get(symbol)
                if quote is not None:
                    out[symbol] = {
                        "t": iso(quote.at),
                        "ax": "V",
                        "ap": float(quote.ask),
                        "as": quote.ask_size,
                        "bx": "V",
                        "bp": float(quote.bid),
                        "bs": quote.bid_size,
                        "c": ["R"],
                        "z": "C",
                    }
        return _json({"quotes": out})

    async def latest_bars(self, request: web.Request) -> web.Response:
        symbols = self._symbols(request)
        out = {}
        with self.broker.lock:
            for symbol in symbols:
                series = self.broker.bars.get(symbol)
                if series:
                    out[symbol] = market.aggregate(series[-1:], "1Min")[0].json()
        return _json({"bars": out})

    async def latest_trades(self, request: web.Request) -> web.Response:
        symbols = self._symbols(request)
        out = {}
        with self.broker.lock:
            for symbol in symbols:
                if symbol in self.broker.last_trade:
                    price, at = self.broker.last_trade[symbol]
                    out[symbol] = {
                        "t": iso(at),
                        "x": "V",
                        "p": float(price),
                        "s": 100,
                        "c": ["@"],
                        "i": 1,
                        "z": "C",
                    }
        return _json({"trades": out})


def datetime_midnight(now: Any) -> Any:
    """Alpaca's default `start`: the beginning of the current day (New York)."""
    local = now.astimezone(market.NEW_YORK)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def _write_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _read_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token.encode()).decode()
        return int(raw.removeprefix("o:"))
    except ValueError:
        raise ApiError(400, "invalid page_token", 40010001) from None


__all__ = ["Fault", "Gateway", "build_app"]
