"""The fake Binance's control interface: one aiohttp app (REST, market streams and the WebSocket
API) on 127.0.0.1 in a background thread with its own loop, and the methods a test uses to move
the market, script executions and faults, and inspect what the SDK sent.

Control methods run on the caller's thread under the exchange's lock (`State.lock`); stream
messages they cause are handed to the server's loop in order; loop-side changes (connections)
are scheduled with `run_coroutine_threadsafe` and awaited.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Self

from aiohttp import web

from runtimes.core.bars import Bar
from tests.fakes.binance.exchange import Exchange
from tests.fakes.binance.gateway import Fault, Gateway
from tests.fakes.binance.rest import build_app
from tests.fakes.binance.state import Outgoing
from tests.fakes.binance.streams import Hub
from tests.fakes.binance.values import ApiError, amount

KEY_ID = "fakeBinanceKey000000000000000000000000000000000000000000000WXYZ"
SECRET = "fakeBinanceSecret00000000000000000000000000000000000000000000000"
_START_TIMEOUT = 10.0


class FakeBinance:
    """One Binance spot account on 127.0.0.1:<port>, with exchangeInfo for BTCUSDT and ETHUSDT
    (and any `symbols` given: base/quote split on USDT), filters as Binance has them.

    MARKET orders fill at once against the book ticker (buy at the ask, sell at the bid), as
    FULL responses with `fills`; LIMIT (GTC/IOC/FOK), LIMIT_MAKER, STOP_LOSS_LIMIT and
    TAKE_PROFIT_LIMIT rest and fill when a book ticker or kline crosses them; OCO order lists
    (orderList/oco); cancelReplace. Commission `commission_rate` of the received asset (or
    BNB when `pay_fees_in_bnb` and a BNB balance).

    Options beyond the contract: `pay_fees_in_bnb` (BNB commission at the BNBUSDT book),
    `weight_limit` (X-MBX-USED-WEIGHT-1M limit per minute, 6000), `order_limit_10s` (100),
    `strikes_to_ban` (requests sent while told to back off after a 429 before a 418 ban, 3),
    `port` (0: any free port).
    """

    def __init__(
        self,
        *,
        key_id: str = KEY_ID,
        secret: str = SECRET,
        balances: Mapping[str, Decimal] | None = None,  # default {"USDT": 100000}
        symbols: Iterable[str] = ("BTCUSDT", "ETHUSDT"),
        bars: Iterable[Bar] = (),
        withdrawals_enabled: bool = False,  # what GET /sapi/v1/account/apiRestrictions says
        commission_rate: Decimal = Decimal("0.001"),
        pay_fees_in_bnb: bool = False,
        weight_limit: int = 6000,
        order_limit_10s: int = 100,
        strikes_to_ban: int = 3,
        port: int = 0,
    ) -> None:
        self._exchange = Exchange(
            balances=balances,
            symbols=symbols,
            bars=bars,
            commission_rate=commission_rate,
            pay_fees_in_bnb=pay_fees_in_bnb,
        )
        self._gateway = Gateway(
            key_id=key_id,
            secret=secret,
            weight_limit=weight_limit,
            order_limit_10s=order_limit_10s,
            strikes_to_ban=strikes_to_ban,
        )
        self._options: dict[str, Any] = {"withdrawals_enabled": withdrawals_enabled}
        self._hub = Hub(self._exchange, key_id, secret)
        self._exchange.on_change = self._hub.kick
        self._wanted_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Self:
        """Bind 127.0.0.1 (port 0: any) in a thread; return once listening."""
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()
        self._hub.loop = self._loop

        def run() -> None:
            loop = self._loop
            assert loop is not None
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as error:  # reported to start()'s caller
                failure.append(error)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-binance", daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT):
            raise RuntimeError("the fake Binance did not start")
        if failure:
            raise failure[0]
        return self

    async def _serve(self) -> None:
        app = build_app(self._exchange, self._gateway, self._options)
        app.router.add_get("/ws-api/v3", self._hub.ws_api)
        app.router.add_get("/ws/{streams:.+}", self._hub.raw_stream)
        app.router.add_get("/stream", self._hub.combined_stream)
        app.on_shutdown.append(lambda _app: self._hub.close_all())
        self._runner = web.AppRunner(
            app, shutdown_timeout=1.0, handle_signals=False, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._wanted_port)
        await site.start()
        server = site._server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    def stop(self) -> None:
        """Close every socket first (so SDK clients see a drop), then the server."""
        loop, runner = self._loop, self._runner
        if loop is None or runner is None or loop.is_closed():
            return
        self._on_loop(self._hub.close_all())
        self._on_loop(runner.cleanup())
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(_START_TIMEOUT)
        self._runner = None

    def __enter__(self) -> Self:
        return self if self._port is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_loop(self, coroutine: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_START_TIMEOUT)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the fake Binance is not started")
        return self._port

    @property
    def urls(self) -> Mapping[str, str]:
        """{"api": "http://127.0.0.1:P/api", "ws_api": "ws://127.0.0.1:P/ws-api/v3",
        "stream": "ws://127.0.0.1:P/"} (runtimes/core/connection.py BINANCE_URL_KEYS)"""
        base = f"127.0.0.1:{self.port}"
        return {
            "api": f"http://{base}/api",
            "ws_api": f"ws://{base}/ws-api/v3",
            "stream": f"ws://{base}/",
        }

    # -- the market --------------------------------------------------------------------------
    def set_book(
        self,
        symbol: str,
        *,
        bid: Decimal,
        ask: Decimal,
        bid_qty: Decimal = Decimal(10),
        ask_qty: Decimal = Decimal(10),
    ) -> None:
        """The book ticker of `symbol`: pushed to its bookTicker streams; resting orders it
        crosses fill."""
        exchange = self._exchange
        with exchange.lock:
            exchange.set_book(symbol, bid, ask, bid_qty, ask_qty)
            exchange.work_book(symbol.upper())
            exchange.notify()

    def push_kline(self, bar: Bar, *, closed: bool = True) -> None:
        """A kline of `bar.timeframe` pushed to its kline streams (closed: "x": true), kept for
        GET klines; the book moves to its close (bid = ask = close unless a spread was set)
        and resting orders its range crosses fill."""
        exchange = self._exchange
        with exchange.lock:
            kline = exchange.push_kline(bar, closed)
            exchange.work_kline(kline)
            exchange.notify()

    def spread(self, symbol: str, amount: Decimal) -> None:
        """The bid-ask spread around the close of the klines pushed from now on (default 0)."""
        with self._exchange.lock:
            self._exchange.spreads[symbol.upper()] = amount

    # -- executions, scripted ----------------------------------------------------------------
    def hold_fills(self, held: bool = True) -> None:
        """While held, nothing fills by itself (orders stay NEW): fill them with `fill`.
        Releasing works the open orders against the current books."""
        exchange = self._exchange
        with exchange.lock:
            exchange.held = held
            if not held:
                exchange.release_held()
            exchange.notify()

    def fill(
        self, order_id: int, quantity: Decimal | None = None, price: Decimal | None = None
    ) -> None:
        """A TRADE execution of `quantity` (all that is left when None) at `price` (its limit
        price, else the book's ask for a buy or bid for a sell)."""
        self._exchange.fill(order_id, quantity, price)

    def reject_next_order(self, code: int, msg: str, *, status: int = 400) -> None:
        """The next POST order answers `status` with {"code", "msg"}."""
        with self._exchange.lock:
            self._exchange.rejections.append(ApiError(status, code, msg))

    def expire(self, order_id: int) -> None:
        """An EXPIRED execution of an open order (as Binance expires IOC leftovers)."""
        self._exchange.expire(order_id)

    def deposit(self, asset: str, quantity: Decimal) -> None:
        """Money arrives (or leaves, negative): a balanceUpdate and an
        outboundAccountPosition on the user data stream."""
        exchange = self._exchange
        with exchange.lock:
            exchange.ledger.add(asset.upper(), quantity)
            now = exchange.now_ms()
            exchange.emit_user(
                {
                    "e": "balanceUpdate",
                    "E": now,
                    "a": asset.upper(),
                    "d": amount(quantity),
                    "T": now,
                }
            )
            exchange.emit_positions([asset.upper()])
            exchange.notify()

    # -- faults -------------------------------------------------------------------------------
    def fail_next(
        self,
        status: int,
        *,
        count: int = 1,
        retry_after: int | None = None,
        path: str = "/api/v3/",
    ) -> None:
        """The next `count` REST requests under `path` answer `status` (429 with code -1003
        and Retry-After, default 60; 418 an IP ban of `retry_after` s, default 120, answering
        418 to every request until it passes; 5xx a gateway error page)."""
        with self._exchange.lock:
            self._gateway.faults.append(Fault(status, count, retry_after, path))

    def set_clock_offset(self, milliseconds: int) -> None:
        """The server's clock runs this far ahead of the wall clock: signed requests whose
        timestamp falls outside recvWindow get -1021."""
        with self._exchange.lock:
            self._exchange.clock_offset_ms = milliseconds
            self._exchange.notify()

    def set_used_weight(self, weight: int) -> None:
        """The X-MBX-USED-WEIGHT-1M the next responses start counting from (limit 6000); the
        minute window restarts now."""
        with self._exchange.lock:
            self._gateway.window_start_ms = None
            self._gateway.set_used(weight, self._exchange.now_ms())

    def drop_streams(self, *, market: bool = True, ws_api: bool = True) -> None:
        """Close sockets abruptly (the WS API reconnects without re-subscribing: §2.5)."""
        self._on_loop(self._drop(market, ws_api))

    async def _drop(self, market: bool, ws_api: bool) -> None:
        self._hub.drop(market=market, ws_api=ws_api)

    def end_user_stream(self) -> None:
        """An `eventStreamTerminated` event on every user data subscription (which ends)."""
        exchange = self._exchange
        with exchange.lock:
            event = {"e": "eventStreamTerminated", "E": exchange.now_ms()}
            exchange.outbox.append(Outgoing("terminated", event))
            exchange.user_events.append(event)
            exchange.notify()

    def restart(self) -> None:
        """Every connection dropped, state kept; REST 503 while restarting
        (`begin_restart`/`end_restart` hold the outage open)."""
        self.begin_restart()
        self.end_restart()

    def begin_restart(self) -> None:
        with self._exchange.lock:
            self._gateway.down = True
            self._hub.down = True
            self._exchange.notify()
        self._on_loop(self._drop(True, True))

    def end_restart(self) -> None:
        with self._exchange.lock:
            self._gateway.down = False
            self._hub.down = False
            self._exchange.notify()

    # -- inspection ---------------------------------------------------------------------------
    @property
    def requests(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every REST request so far: (method, path, params incl. signature)."""
        with self._exchange.lock:
            return list(self._gateway.requests)

    def orders(self) -> list[dict[str, Any]]:
        """Binance order JSON of every order, oldest first."""
        with self._exchange.lock:
            return [order.json() for order in self._exchange.orders.values()]

    def order(self, order_id: int) -> dict[str, Any]:
        with self._exchange.lock:
            return self._exchange.get(order_id).json()

    def balances(self) -> dict[str, Decimal]:
        """Free balance per asset (locked ones: `locked_balances`)."""
        with self._exchange.lock:
            return dict(self._exchange.ledger.free)

    def locked_balances(self) -> dict[str, Decimal]:
        with self._exchange.lock:
            return {a: v for a, v in self._exchange.ledger.locked.items() if v}

    def user_events(self) -> list[dict[str, Any]]:
        """Every user data event produced so far, in order (sent to the subscriptions of the
        moment, or to none)."""
        with self._exchange.lock:
            return list(self._exchange.user_events)

    def subscriptions(self) -> dict[str, int]:
        """{"market": streams subscribed now, "user": user data subscriptions now}."""
        return self._hub.counts()

    def connections(self) -> dict[str, int]:
        """{"market": open market stream sockets, "ws_api": open WebSocket API sockets}."""
        return self._hub.connection_counts()

    def used_weight(self) -> int:
        with self._exchange.lock:
            return self._gateway.used_weight

    def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until `condition()` holds after some change of the fake's state (a request,
        a connection, a subscription): signalled, not polled on a sleep. AssertionError on
        timeout."""
        with self._exchange.changed:
            if not self._exchange.changed.wait_for(condition, timeout):
                raise AssertionError(
                    f"the fake Binance's state did not reach {condition!r} within {timeout} s"
                )

    def at(self) -> datetime:
        """The server's clock."""
        return self._exchange.now()
