"""The fake Alpaca's control interface: one aiohttp app (REST, trade_updates and market data
WebSockets) on 127.0.0.1 in a background thread with its own loop, and the methods a test uses
to move the market, script executions and faults, and inspect what the SDK sent.

Control methods run on the caller's thread under the account's lock (`Broker.lock`); stream
messages they cause are handed to the server's loop in order; loop-side changes (connections,
subscriptions) are scheduled with `run_coroutine_threadsafe` and awaited.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Self

from aiohttp import web

from runtimes.core.bars import Bar
from tests.fakes.alpaca.market import Quote
from tests.fakes.alpaca.orders import order_json
from tests.fakes.alpaca.rest import Fault, Gateway, build_app
from tests.fakes.alpaca.state import Broker
from tests.fakes.alpaca.streams import Hub

KEY_ID = "PKFAKE00000000000WXYZ"
SECRET = "fake-alpaca-secret-0000000000000000000000"
_START_TIMEOUT = 10.0


class FakeAlpaca:
    """One Alpaca account (paper or live: the fake does not care) on 127.0.0.1:<port>.

    Market: every symbol given a quote (or bars, or listed in `symbols`) is tradeable; `assets`
    of those symbols are fractionable unless listed in `not_fractionable`. Market orders fill at
    once at the ask (buy) or bid (sell) when the market is open; limit/stop/stop-limit/trailing
    orders rest and fill when a quote or bar crosses them; bracket and OCO legs as Alpaca does
    (legs `held` until the parent fills; one exit filling cancels the other). Orders accepted
    while the market is closed stay `accepted` until `set_market_open(True)`.

    As on the paper API, POST /v2/orders answers the order `accepted`; when the market takes it
    a `new` trade update follows (status new), then any fill. A simple order's `order_class` is
    "" on the wire, as Alpaca sends it.

    Options beyond the contract: `rate_limit` (requests per minute per key and API, default
    200), `bars_page_size` (most bars per page, Alpaca's 10000), `one_data_connection` (406 for
    a second data connection of the key on a feed, default on), `symbols` (tradeable without a
    quote yet), `not_shortable`, `clock` (the account's "now", default the wall clock), `port`
    (0: any free port).
    """

    def __init__(
        self,
        *,
        key_id: str = KEY_ID,
        secret: str = SECRET,
        cash: Decimal = Decimal(100_000),
        market_open: bool = True,
        bars: Iterable[Bar] = (),
        not_fractionable: Iterable[str] = (),
        symbols: Iterable[str] = (),
        not_shortable: Iterable[str] = (),
        rate_limit: int = 200,
        bars_page_size: int = 10000,
        one_data_connection: bool = True,
        clock: Callable[[], datetime] | None = None,
        port: int = 0,
    ) -> None:
        self._broker = Broker(
            cash=cash,
            market_open=market_open,
            bars=bars,
            not_fractionable=not_fractionable,
            symbols=symbols,
            clock=clock,
            not_shortable=not_shortable,
        )
        self._gateway = Gateway(
            key_id=key_id, secret=secret, rate_limit=rate_limit, bars_page_size=bars_page_size
        )
        self._hub = Hub(self._broker, key_id, secret, one_data_connection=one_data_connection)
        self._broker.on_change = self._hub.kick
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

        self._thread = threading.Thread(target=run, name="fake-alpaca", daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT):
            raise RuntimeError("the fake Alpaca did not start")
        if failure:
            raise failure[0]
        return self

    async def _serve(self) -> None:
        app = build_app(self._broker, self._gateway, self._broker.notify)
        app.router.add_get("/stream", self._hub.trading)
        app.router.add_get("/v2/{feed}", self._hub.data)
        app.on_shutdown.append(lambda _app: self._hub.close_all())
        self._runner = web.AppRunner(
            app, shutdown_timeout=1.0, handle_signals=False, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._wanted_port)
        await site.start()
        server = site._server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]

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
            raise RuntimeError("the fake Alpaca is not started")
        return self._port

    @property
    def urls(self) -> Mapping[str, str]:
        """The BrokerConnection.urls: trading, data, trading_stream, data_stream (the feed is
        appended by the client: ws://127.0.0.1:P/v2 + /iex)."""
        base = f"127.0.0.1:{self.port}"
        return {
            "trading": f"http://{base}",
            "data": f"http://{base}",
            "trading_stream": f"ws://{base}/stream",
            "data_stream": f"ws://{base}/v2",
        }

    # -- the market --------------------------------------------------------------------------
    def set_quote(
        self,
        symbol: str,
        *,
        bid: Decimal,
        ask: Decimal,
        at: datetime | None = None,
        bid_size: int = 100,
        ask_size: int = 100,
    ) -> None:
        """Top of book of `symbol`; pushed to data-stream subscribers of its quotes; resting
        orders it crosses fill."""
        moment = at or self._broker.clock()
        self._broker.set_quote(
            Quote(symbol.upper(), bid, ask, moment.astimezone(UTC), bid_size, ask_size)
        )

    def push_bar(self, bar: Bar) -> None:
        """A completed 1m bar: pushed to subscribers of its bars, kept for the historical
        bars endpoint; the quote moves to its close (bid = ask = close unless a spread was set
        with `spread`; no quote message is pushed), and resting orders its range crosses
        fill."""
        self._broker.push_bar(bar)

    def spread(self, symbol: str, amount: Decimal) -> None:
        """The bid-ask spread around the close of the bars pushed from now on (default 0:
        bid = ask = close)."""
        with self._broker.lock:
            self._broker.spreads[symbol.upper()] = amount

    def set_market_open(
        self,
        is_open: bool,
        *,
        next_open: datetime | None = None,
        next_close: datetime | None = None,
    ) -> None:
        """/v2/clock; opening the market fills the market orders accepted meanwhile, closing it
        expires the open DAY orders."""
        self._broker.set_market_open(is_open, next_open, next_close)

    # -- executions, scripted ----------------------------------------------------------------
    def hold_fills(self, held: bool = True) -> None:
        """While held, nothing fills by itself (orders stay `new`): fill them with `fill`.
        Releasing works the resting orders against the current quotes."""
        with self._broker.lock:
            self._broker.held = held
            if not held:
                for symbol in sorted({o.symbol for o in self._broker.orders.values()}):
                    self._broker._work_symbol(symbol, None)
            self._broker.notify()

    def fill(
        self, order_id: str, quantity: Decimal | None = None, price: Decimal | None = None
    ) -> None:
        """Fill `quantity` (all that is left when None) of an order at `price` (its limit, else
        the quote): a partial_fill or fill trade update with a fresh execution_id."""
        self._broker.fill(order_id, quantity, price)

    def reject_next_order(self, message: str, *, status: int = 403, code: int = 40310000) -> None:
        """The next POST /v2/orders answers `status` with {"code", "message"}."""
        from tests.fakes.alpaca.values import ApiError

        with self._broker.lock:
            self._broker.rejections.append(ApiError(status, message, code))

    def reject_order(self, order_id: str, reason: str) -> None:
        """An accepted order rejected later (a `rejected` trade update; `reason` rides along
        in the update's data as "reason")."""
        self._broker.end_order(order_id, "rejected", "rejected", reason=reason)

    def expire(self, order_id: str) -> None:
        self._broker.end_order(order_id, "expired", "expired")

    def done_for_day(self, order_id: str) -> None:
        """A `done_for_day` trade update: no more executions today; the order is still listed
        as open (cancelable) and expires at the close if it is a DAY order."""
        self._broker.end_order(order_id, "done_for_day", "done_for_day")

    def cancel(self, order_id: str) -> None:
        """Cancelled by the broker (not through the API): a `canceled` trade update."""
        self._broker.end_order(order_id, "canceled", "canceled")

    # -- faults -------------------------------------------------------------------------------
    def fail_next(
        self,
        status: int,
        *,
        count: int = 1,
        retry_after: int | None = None,
        path: str = "/v2/",
        processed: bool = False,
    ) -> None:
        """The next `count` REST requests whose path starts with `path` answer `status` (429:
        with Retry-After and Alpaca's 429 body; 5xx: a plain gateway error). `processed`: the
        request is carried out (an order accepted) and only its answer is lost, as when a
        gateway times out in front of a live server."""
        with self._broker.lock:
            self._gateway.faults.append(Fault(status, count, retry_after, path, processed))

    def drop_streams(self, *, trading: bool = True, data: bool = True) -> None:
        """Close the streams' sockets abruptly (the SDK reconnects by itself)."""
        self._on_loop(self._drop(trading, data))

    async def _drop(self, trading: bool, data: bool) -> None:
        self._hub.drop(trading=trading, data=data)

    def refuse_streams(self, refused: bool = True) -> None:
        """While refused, stream connections are closed at once (a long outage)."""
        with self._broker.lock:
            self._hub.refused = refused
            self._broker.notify()

    def restart(self) -> None:
        """Every connection dropped, state kept (the broker is the record); REST answers 503
        until `restart` returns. `begin_restart`/`end_restart` hold the outage open."""
        self.begin_restart()
        self.end_restart()

    def begin_restart(self) -> None:
        with self._broker.lock:
            self._gateway.down = True
            self._hub.down = True
            self._broker.notify()
        self._on_loop(self._drop(True, True))

    def end_restart(self) -> None:
        with self._broker.lock:
            self._gateway.down = False
            self._hub.down = False
            self._broker.notify()

    # -- inspection ---------------------------------------------------------------------------
    @property
    def requests(self) -> list[tuple[str, str, dict[str, Any], Any]]:
        """Every REST request so far: (method, path, query, JSON body)."""
        with self._broker.lock:
            return list(self._gateway.requests)

    def orders(self) -> list[dict[str, Any]]:
        """Alpaca order JSON of every order (legs too, each on its own), oldest first."""
        with self._broker.lock:
            return [order_json(o, self._broker.orders) for o in self._broker.orders.values()]

    def order(self, order_id: str) -> dict[str, Any]:
        with self._broker.lock:
            return order_json(self._broker._get(order_id), self._broker.orders)

    def trade_updates(self) -> list[dict[str, Any]]:
        """The "data" of every trade update the account produced so far, in order (sent to the
        listening trade_updates connections of the moment, or to none)."""
        with self._broker.lock:
            return list(self._broker.trade_updates)

    def positions(self) -> list[dict[str, Any]]:
        with self._broker.lock:
            book = self._broker
            return [book.position_json(p) for _, p in sorted(book.positions.items())]

    def account(self) -> dict[str, Any]:
        with self._broker.lock:
            return self._broker.account_json()

    def stream_clients(self) -> dict[str, int]:
        """{"trading": n, "data": m}: authenticated, listening/subscribed connections now."""
        return self._hub.counts()

    def subscriptions(self) -> dict[str, list[str]]:
        """The data connections' subscriptions, merged: {"bars": [...], "quotes": [...], ...}."""
        with self._broker.lock:
            merged: dict[str, set[str]] = {}
            for connection in self._hub.connections:
                if connection.kind == "data":
                    for channel, symbols in connection.subscriptions.items():
                        merged.setdefault(channel, set()).update(symbols)
            return {channel: sorted(symbols) for channel, symbols in merged.items()}

    def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until `condition()` holds after some change of the fake's state (a request,
        a connection, a subscription): signalled, not polled on a sleep. AssertionError on
        timeout."""
        with self._broker.changed:
            if not self._broker.changed.wait_for(condition, timeout):
                raise AssertionError(
                    f"the fake Alpaca's state did not reach {condition!r} within {timeout} s"
                )
