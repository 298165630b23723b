"""The fake Binance's REST API (/api/v3 and the one /sapi endpoint the key check uses) as aiohttp
routes, behind one middleware doing the gateway's work (tests/fakes/binance/gateway.py)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from tests.fakes.binance.exchange import Exchange
from tests.fakes.binance.gateway import (
    ORDER_PLACING,
    SIGNED,
    Gateway,
    parse_params,
    too_many,
    weight,
)
from tests.fakes.binance.symbols import symbol_json
from tests.fakes.binance.values import (
    INTERVALS,
    ApiError,
    amount,
    bad_request,
    mandatory,
    parse_int,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PARAMS = web.RequestKey("params", dict)
_GATEWAY_TEXT = {
    500: "<html><body><h1>500 Internal Server Error</h1></body></html>",
    502: "<html><body><h1>502 Bad Gateway</h1></body></html>",
    503: "<html><body><h1>503 Service Unavailable</h1></body></html>",
    504: "<html><body><h1>504 Gateway Time-out</h1></body></html>",
}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body), status=status, content_type="application/json", headers=headers
    )


def _error(error: ApiError, headers: dict[str, str]) -> web.Response:
    return _json(error.body(), error.status, {**headers, **error.headers})


def build_app(exchange: Exchange, gateway: Gateway, options: dict[str, Any]) -> web.Application:
    """The REST routes; the WebSocket routes are added by the server."""

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        body = await request.text()
        query = request.query_string
        params = parse_params(query, body)
        request[PARAMS] = params
        key = (request.method, request.path)
        with exchange.lock:
            now = exchange.now_ms()
            gateway.requests.append((request.method, request.path, dict(params)))
            fault = None if gateway.down else gateway.take_fault(request.path)
            exchange.notify()
            if gateway.down:
                return web.Response(text=_GATEWAY_TEXT[503], status=503, content_type="text/html")
            if fault is not None:
                response = _fault(fault, gateway, now)
                if response is not None:
                    return response
            refused = gateway.banned(now) or gateway.spend(weight(*key, params), now)
            headers = gateway.weight_headers()
            if refused is not None:
                return _error(refused, headers)
            try:
                if key in SIGNED:
                    gateway.check_signed(request.headers.get("X-MBX-APIKEY"), query, body, now)
                if key in ORDER_PLACING:
                    limited = gateway.count_order(now)
                    headers.update(gateway.order_headers())
                    if limited is not None:
                        raise limited
            except ApiError as error:
                return _error(error, headers)
        try:
            answer = await handler(request)
        except ApiError as error:
            return _error(error, headers)
        answer.headers.update(headers)
        return answer

    async def ping(request: web.Request) -> web.Response:
        return _json({})

    async def server_time(request: web.Request) -> web.Response:
        return _json({"serverTime": exchange.now_ms()})

    async def exchange_info(request: web.Request) -> web.Response:
        params = request[PARAMS]
        with exchange.lock:
            names = list(exchange.specs)
            if params.get("symbol"):
                names = [params["symbol"]]
            elif params.get("symbols"):
                try:
                    names = [str(s) for s in json.loads(params["symbols"])]
                except ValueError:
                    raise bad_request(
                        -1100, "Illegal characters found in parameter 'symbols'."
                    ) from None
            symbols = [symbol_json(exchange.spec(name)) for name in names]
            return _json(
                {
                    "timezone": "UTC",
                    "serverTime": exchange.now_ms(),
                    "rateLimits": [
                        {
                            "rateLimitType": "REQUEST_WEIGHT",
                            "interval": "MINUTE",
                            "intervalNum": 1,
                            "limit": gateway.weight_limit,
                        },
                        {
                            "rateLimitType": "ORDERS",
                            "interval": "SECOND",
                            "intervalNum": 10,
                            "limit": gateway.order_limit_10s,
                        },
                        {
                            "rateLimitType": "ORDERS",
                            "interval": "DAY",
                            "intervalNum": 1,
                            "limit": gateway.order_limit_day,
                        },
                        {
                            "rateLimitType": "RAW_REQUESTS",
                            "interval": "MINUTE",
                            "intervalNum": 5,
                            "limit": 61000,
                        },
                    ],
                    "exchangeFilters": [],
                    "symbols": symbols,
                }
            )

    async def account(request: web.Request) -> web.Response:
        with exchange.lock:
            return _json(exchange.account_json())

    async def api_restrictions(request: web.Request) -> web.Response:
        return _json(
            {
                "ipRestrict": False,
                "createTime": 1_700_000_000_000,
                "enableReading": True,
                "enableSpotAndMarginTrading": True,
                "enableWithdrawals": bool(options.get("withdrawals_enabled")),
                "enableInternalTransfer": False,
                "enableMargin": False,
                "enableFutures": False,
                "permitsUniversalTransfer": False,
                "enableVanillaOptions": False,
                "enableFixApiTrade": False,
                "enableFixReadOnly": False,
                "enablePortfolioMarginTrading": False,
            }
        )

    async def new_order(request: web.Request) -> web.Response:
        return _json(exchange.new_order(request[PARAMS]))

    async def test_order(request: web.Request) -> web.Response:
        return _json(exchange.new_order(request[PARAMS], test=True))

    async def get_order(request: web.Request) -> web.Response:
        with exchange.lock:
            order = exchange.find(
                request[PARAMS], missing=bad_request(-2013, "Order does not exist.")
            )
            return _json(order.json())

    async def cancel_order(request: web.Request) -> web.Response:
        return _json(exchange.cancel(request[PARAMS]))

    async def open_orders(request: web.Request) -> web.Response:
        return _json(exchange.open_orders(request[PARAMS].get("symbol")))

    async def cancel_open_orders(request: web.Request) -> web.Response:
        return _json(exchange.cancel_all(request[PARAMS]))

    async def all_orders(request: web.Request) -> web.Response:
        return _json(exchange.all_orders(request[PARAMS]))

    async def my_trades(request: web.Request) -> web.Response:
        return _json(exchange.my_trades(request[PARAMS]))

    async def cancel_replace(request: web.Request) -> web.Response:
        return _json(exchange.cancel_replace(request[PARAMS]))

    async def oco(request: web.Request) -> web.Response:
        return _json(exchange.new_oco(request[PARAMS]))

    async def klines(request: web.Request) -> web.Response:
        params = request[PARAMS]
        interval = params.get("interval")
        if not interval:
            raise mandatory("interval")
        if interval not in INTERVALS:
            raise bad_request(-1120, "Invalid interval.")
        limit = parse_int(params.get("limit"), "limit")
        limit = 500 if limit is None else limit
        if limit < 1 or limit > 1000:
            raise bad_request(-1130, "Data sent for parameter 'limit' is not valid.")
        with exchange.lock:
            spec = exchange.spec(params.get("symbol"))
            rows = exchange.kline_rows(
                spec.symbol,
                interval,
                parse_int(params.get("startTime"), "startTime"),
                parse_int(params.get("endTime"), "endTime"),
                limit,
            )
        return _json(rows)

    def _per_symbol(request: web.Request, one: Callable[[str], dict[str, Any]]) -> web.Response:
        params = request[PARAMS]
        with exchange.lock:
            if params.get("symbol"):
                return _json(one(exchange.spec(params["symbol"]).symbol))
            if params.get("symbols"):
                names = [str(s) for s in json.loads(params["symbols"])]
                return _json([one(exchange.spec(n).symbol) for n in names])
            return _json([one(n) for n in exchange.specs])

    async def book_ticker(request: web.Request) -> web.Response:
        return _per_symbol(request, exchange.book_ticker_json)

    async def ticker_price(request: web.Request) -> web.Response:
        def one(symbol: str) -> dict[str, Any]:
            price = exchange.last_price.get(symbol) or exchange.average_price(symbol)
            return {"symbol": symbol, "price": amount(price or Decimal(0))}

        return _per_symbol(request, one)

    async def avg_price(request: web.Request) -> web.Response:
        with exchange.lock:
            spec = exchange.spec(request[PARAMS].get("symbol"))
            price = exchange.average_price(spec.symbol) or Decimal(0)
            return _json({"mins": 5, "price": amount(price), "closeTime": exchange.now_ms()})

    app = web.Application(middlewares=[gate])
    routes = [
        ("GET", "/api/v3/ping", ping),
        ("GET", "/api/v3/time", server_time),
        ("GET", "/api/v3/exchangeInfo", exchange_info),
        ("GET", "/api/v3/account", account),
        ("POST", "/api/v3/order", new_order),
        ("POST", "/api/v3/order/test", test_order),
        ("GET", "/api/v3/order", get_order),
        ("DELETE", "/api/v3/order", cancel_order),
        ("GET", "/api/v3/openOrders", open_orders),
        ("DELETE", "/api/v3/openOrders", cancel_open_orders),
        ("GET", "/api/v3/allOrders", all_orders),
        ("GET", "/api/v3/myTrades", my_trades),
        ("POST", "/api/v3/order/cancelReplace", cancel_replace),
        ("POST", "/api/v3/orderList/oco", oco),
        ("GET", "/api/v3/klines", klines),
        ("GET", "/api/v3/ticker/bookTicker", book_ticker),
        ("GET", "/api/v3/ticker/price", ticker_price),
        ("GET", "/api/v3/avgPrice", avg_price),
        ("GET", "/sapi/v1/account/apiRestrictions", api_restrictions),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    return app


def _fault(fault: Any, gateway: Gateway, now: int) -> web.Response | None:
    """The scripted answer: 429 (-1003, Retry-After), 418 (a ban that lasts), or a gateway
    error page."""
    headers = gateway.weight_headers()
    if fault.status == 429:
        retry = fault.retry_after if fault.retry_after is not None else 60
        gateway.blocked_until_ms = now + retry * 1000
        return _error(too_many(retry, gateway.weight_limit), headers)
    if fault.status == 418:
        gateway.ban(
            fault.retry_after if fault.retry_after is not None else gateway.ban_seconds, now
        )
        banned = gateway.banned(now)
        assert banned is not None
        return _error(banned, headers)
    text = _GATEWAY_TEXT.get(fault.status, f"<html><body><h1>{fault.status}</h1></body></html>")
    return web.Response(text=text, status=fault.status, content_type="text/html")
