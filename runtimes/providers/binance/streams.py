"""A Binance session's two streams: the market streams (one multiplex socket of its klines and
book tickers) and the user data stream (a subscription over the WebSocket API), both driven by
python-binance on one asyncio loop on a thread of their own.

python-binance reconnects its sockets by itself a few times, then stops silently; its user
socket is not re-subscribed when the WebSocket API reconnects (reference §2.5), and its
`recv()` waits for ever. So its own reconnecting is switched off, and a supervisor per stream
sees every drop: an {"e": "error"} message, an `eventStreamTerminated`, an exception, silence
on the market socket (`Backoff.market_silence`), or a WebSocket API connection found closed or
not answering a `ping` when checked (after `Backoff.user_check` of quiet; websockets' own pings
find a dead socket too). A drop is reported
(RECONNECTING, once per outage), the socket is rebuilt (a new `user_socket()` subscribes anew)
after a backoff of 1-30 s with jitter, then CONNECTED. Refused keys (-2014, -2015, -1022 on the
subscription) are FAILED at once. `close()` cancels the loop's tasks and returns within about a
second.

States reach the UserListener on the stream thread: CONNECTED once the market socket is open and
gave a message or did not drop within `Backoff.settle`, or once the subscription was answered
200 (user data), on the first connect and every reconnect;
RECONNECTING when a connection dropped or could not be made; FAILED when the keys were refused
or after `Backoff.max_attempts` failures in a row; STOPPED on close. When the market stream is
back after a drop, the session's market data is told first (`on_stream_reconnected`: it fetches
the klines missed), then the listener.

No log line or error carries the keys: python-binance's loggers (they log every message at
DEBUG, the WebSocket API's signed frames among them) and the websockets library's (frames) are
pinned at INFO here; error sentences are built from exception types and Binance's codes, and
scrubbed of the keys besides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from binance.exceptions import BinanceAPIException, BinanceWebsocketUnableToConnect

from runtimes.core.connection import (
    STREAM_CONNECTED,
    STREAM_FAILED,
    STREAM_RECONNECTING,
    STREAM_STOPPED,
    BrokerConnection,
)
from runtimes.providers.binance.market_data import BinanceMarketData, stream_names
from runtimes.providers.binance.sdk import (
    client_class,
    signing_arguments,
    socket_manager_class,
)

log = logging.getLogger(__name__)

USER_DATA: Final = "user_data"
MARKET_DATA: Final = "market_data"
STOP_JOIN_SECONDS: Final = 0.9  # close() returns within about a second
SHUT_SECONDS: Final = 0.25  # each socket's and the client's goodbye, at most
SOCKET_QUEUE: Final = 1_000  # python-binance's queue per socket (its default 100 overflows)

# python-binance logs every message it receives (the WebSocket API's answers to signed requests
# among them) at DEBUG, and websockets every frame: these loggers never log below INFO,
# whatever the root logger says. Its sockets' logger (one for all of them) logs every drop as
# an ERROR, and a drop that is the supervisor's to handle as an "Unknown exception": each one
# reaches the supervisor as an {"e": "error"} message and is logged there, so it says nothing.
for _name in ("binance", "binance.ws", "binance.ws.websocket_api",
              "binance.ws.keepalive_websocket", "binance.base_client", "binance.async_client"):
    logging.getLogger(_name).setLevel(logging.INFO)
logging.getLogger("binance.ws.reconnecting_websocket").setLevel(logging.CRITICAL)
_WS_LOGGER = logging.getLogger(f"{__name__}.websockets")
_WS_LOGGER.setLevel(logging.INFO)
# Given to websockets' connect: pings every 10 s and a dead socket seen after 20 more.
WEBSOCKET_PARAMS: Final[dict[str, Any]] = {
    "ping_interval": 10, "ping_timeout": 20, "open_timeout": 10, "logger": _WS_LOGGER,
}
OUTSIDE_RECV_WINDOW: Final = -1021  # the request's timestamp is too far from Binance's clock
# Binance's codes for keys that retrying cannot cure.
REFUSED_KEY_CODES: Final = {
    -2014: "Binance refused the connection's API key (its format is invalid)",
    -2015: "Binance refused the connection's API key (invalid key, IP or permissions)",
    -1022: "Binance refused the signature of the connection's secret",
}


class UserListener(Protocol):
    def on_user_event(self, event: dict[str, Any]) -> None:
        """One user data event as Binance sends it: executionReport, outboundAccountPosition,
        balanceUpdate, listStatus. Called on the stream thread."""

    def on_stream_state(self, stream: str, state: str, error: str | None) -> None:
        """stream: "user_data" | "market_data"; state: a connection.STREAM_* value; error: a
        plain sentence, no secret. Called on the stream thread."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect timing: attempt n waits between half and all of min(cap, initial * 2**(n-1))
    seconds (jitter, so that sessions do not reconnect in step); and how silence is judged."""

    initial: float = 1.0
    cap: float = 30.0
    max_attempts: int | None = 40  # failures in a row before FAILED (None: never give up)
    stable_seconds: float = 30.0  # a connection that lasted this long starts the count anew
    market_silence: float = 60.0  # no market message for this long: the socket is dead
    settle: float = 1.0  # an open market socket not dropped within this long is connected
    user_check: float = 10.0  # how often the WebSocket API connection is checked

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.cap, self.initial * float(2 ** max(0, attempt - 1)))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


class StreamRefused(Exception):
    """Binance refused what retrying cannot change (the keys). `str()` is a plain sentence
    without any part of the keys."""


class _Dropped(Exception):
    """The stream dropped; `str()` says how."""


def _supervised(socket: Any) -> Any:
    """A python-binance socket (or the WebSocket API) that does not reconnect by itself: its
    read loop ends at the first drop (the error reaches its queue), and the supervisor here
    reconnects. Otherwise its reconnect races ours, and closing it can wait for ever."""

    async def refuse() -> None:
        await socket.before_reconnect()
        # The WebSocket API's requests still waiting for an answer fail now, not after its
        # 10 s timeout: the connection that would have carried the answer is gone.
        for waiting in list(getattr(socket, "_responses", {}).values()):
            if not waiting.done():
                waiting.set_exception(BinanceWebsocketUnableToConnect("the connection dropped"))
        raise BinanceWebsocketUnableToConnect("reconnects are the supervisor's")

    socket._run_reconnect = refuse
    socket._ws_kwargs = {**socket._ws_kwargs, **WEBSOCKET_PARAMS}
    return socket


async def _shut_socket(socket: Any) -> None:
    """Close one python-binance socket without waiting on it for long (its goodbye may need a
    connection that is gone)."""
    ws = getattr(socket, "ws", None)
    with contextlib.suppress(Exception):
        if ws is not None:
            await asyncio.wait_for(ws.close(), SHUT_SECONDS)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(socket.__aexit__(None, None, None), SHUT_SECONDS)


class BinanceStreams:
    """A session's market and user data streams, reporting to `listener` and `market`. States
    before `start()`: STOPPED; from `start()` until the first connect: RECONNECTING."""

    def __init__(self, connection: BrokerConnection, listener: UserListener,
                 market: BinanceMarketData, *, symbols: tuple[str, ...],
                 timeframes: tuple[str, ...], rng: random.Random | None = None,
                 backoff: Backoff | None = None) -> None:
        self.connection = connection
        self.listener = listener
        self.market = market
        self.streams = stream_names(symbols, timeframes)
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self._secrets = tuple(s for s in (connection.key_id, connection.secret) if s)
        self._lock = threading.Lock()
        self._states = {USER_DATA: STREAM_STOPPED, MARKET_DATA: STREAM_STOPPED}
        self._reported: dict[str, str | None] = {USER_DATA: None, MARKET_DATA: None}
        self._started = self._closed = False
        self._market_was_up = False
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: Any = None
        self._client_lock: asyncio.Lock | None = None
        self._thread = threading.Thread(target=self._run, name="binance-streams", daemon=True)

    # -- any thread ----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect both streams on the streams' thread; returns at once."""
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
            self._states = {USER_DATA: STREAM_RECONNECTING, MARKET_DATA: STREAM_RECONNECTING}
        self._thread.start()

    def close(self) -> None:
        """Stop both streams; idempotent; returns within about a second (the thread is a
        daemon and finishes on its own). STOPPED reaches the listener from the streams' thread;
        nothing else does after this call."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._states = {USER_DATA: STREAM_STOPPED, MARKET_DATA: STREAM_STOPPED}
            started = self._started
        self._stopping.set()
        if not started:
            return
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to cancel
                loop.call_soon_threadsafe(self._cancel)
        if threading.current_thread() is not self._thread:
            self._thread.join(STOP_JOIN_SECONDS)

    def states(self) -> dict[str, str]:
        """{"user_data": state, "market_data": state} (connection.STREAM_* values)."""
        with self._lock:
            return dict(self._states)

    # -- the streams' thread ---------------------------------------------------------------------

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:  # a bug here must still end in a state the session can see
            log.exception("binance streams of %r stopped on an error", self.connection)
        finally:
            for stream in (USER_DATA, MARKET_DATA):
                if self._stopping.is_set():
                    self._report(stream, STREAM_STOPPED, None)
                elif self._reported[stream] != STREAM_FAILED:
                    self._report(stream, STREAM_FAILED, f"the {stream} stream stopped "
                                 "unexpectedly")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client_lock = asyncio.Lock()
        self._task = asyncio.ensure_future(self._both())
        if self._stopping.is_set():  # close() came before the task existed
            self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        finally:
            await self._shut_client()

    async def _both(self) -> None:
        await asyncio.gather(self._supervise(MARKET_DATA, self._market_session),
                             self._supervise(USER_DATA, self._user_session))

    async def _supervise(self, stream: str,
                         session: Callable[[Callable[[], None]], Awaitable[None]]) -> None:
        """Run `session` (one connection of `stream`, until it drops) again and again, with
        backoff between attempts, until refused, given up, or cancelled."""
        loop = asyncio.get_running_loop()
        attempt = 0
        while not self._stopping.is_set():
            began = loop.time()
            connected = False

            def up() -> None:
                nonlocal connected
                connected = True
                self._report(stream, STREAM_CONNECTED, None)

            try:
                await session(up)
                reason = f"the {stream} stream ended by itself"
            except StreamRefused as exc:
                self._report(stream, STREAM_FAILED, self._scrub(str(exc)))
                return
            except _Dropped as exc:
                reason = self._scrub(str(exc))
            except Exception as exc:
                verb = "failed" if connected else "could not connect"
                reason = self._scrub(f"the {stream} stream {verb} ({_describe(exc)})")
            if self._stopping.is_set():
                return
            if connected and loop.time() - began >= self.backoff.stable_seconds:
                attempt = 0
            attempt += 1
            if self.backoff.max_attempts is not None and attempt >= self.backoff.max_attempts:
                self._report(stream, STREAM_FAILED, f"gave up after {attempt} attempts: {reason}")
                return
            self._report(stream, STREAM_RECONNECTING, reason)
            if stream == USER_DATA:
                await self._renew_ws_api()
            await asyncio.sleep(self.backoff.delay(attempt, self.rng))

    async def _client_now(self) -> Any:
        """The AsyncClient of both streams (made on first use: create() asks Binance's time for
        the signatures' clock offset)."""
        assert self._client_lock is not None
        async with self._client_lock:
            if self._client is None:
                cls = client_class(self.connection)
                client = await cls.create(self.connection.key_id,
                                          **signing_arguments(self.connection))
                _supervised(client.ws_api)
                self._client = client
            return self._client

    async def _renew_ws_api(self) -> None:
        """After a user data drop: the WebSocket API's socket is closed if it is still open, so
        that the next subscription is made on a connection of its own (a half-dead one would
        take it and lose its events)."""
        client = self._client
        if client is not None and getattr(client.ws_api, "ws", None) is not None:
            await _shut_socket(client.ws_api)

    async def _shut_client(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        await _shut_socket(client.ws_api)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.session.close(), SHUT_SECONDS)

    # -- market data -------------------------------------------------------------------------

    async def _market_session(self, up: Callable[[], None]) -> None:
        client = await self._client_now()
        manager = socket_manager_class(self.connection)(client, max_queue_size=SOCKET_QUEUE)
        manager.ws_kwargs = dict(WEBSOCKET_PARAMS)
        socket = _supervised(manager.multiplex_socket(self.streams))
        try:
            await socket.__aenter__()
            # Open is not yet up: a server that accepts and drops at once (a restart) would
            # make every attempt a CONNECTED. Up is a first message, or `settle` s without a drop.
            with contextlib.suppress(TimeoutError):
                self._route(await asyncio.wait_for(socket.recv(), self.backoff.settle))
            up()
            while True:
                try:
                    message = await asyncio.wait_for(socket.recv(),
                                                     self.backoff.market_silence)
                except TimeoutError:
                    raise _Dropped(f"the {MARKET_DATA} stream went silent for "
                                   f"{self.backoff.market_silence:g} s") from None
                self._route(message)
        finally:
            await _shut_socket(socket)

    def _route(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        if message.get("e") == "error":
            raise _Dropped(f"the {MARKET_DATA} stream dropped ({message.get('type')})")
        data = message.get("data")
        name = str(message.get("stream", ""))
        if not isinstance(data, dict):
            return
        try:
            if data.get("e") == "kline":
                self.market.on_kline(data)
            elif name.endswith("@bookTicker"):
                self.market.on_book_ticker(data)
        except Exception:  # the market data's bug must not drop the stream
            log.exception("binance market_data: taking a message failed")

    # -- user data ---------------------------------------------------------------------------

    async def _user_session(self, up: Callable[[], None]) -> None:
        client = await self._client_now()
        # A socket manager of its own each time: python-binance keeps a user socket it has
        # made, and an old one's queue may still hold the errors of its drop.
        manager = socket_manager_class(self.connection)(client, max_queue_size=SOCKET_QUEUE)
        socket = manager.user_socket()
        try:
            try:
                await socket.__aenter__()
            except BinanceAPIException as exc:
                refused = REFUSED_KEY_CODES.get(exc.code)
                if refused is not None:
                    raise StreamRefused(refused) from None
                if exc.code == OUTSIDE_RECV_WINDOW:  # our clock drifted: measured again
                    await self._measure_clock(client)
                raise _Dropped(f"Binance refused the {USER_DATA} subscription "
                               f"(code {exc.code})") from None
            up()
            while True:
                try:
                    event = await asyncio.wait_for(socket.recv(), self.backoff.user_check)
                except TimeoutError:
                    await self._check_ws_api(client)
                    continue
                self._deliver(event)
        finally:
            if getattr(client.ws_api, "ws", None) is None:
                # The subscription ended with its connection: asking Binance to end it would
                # only open a connection to be refused.
                client.ws_api.unregister_subscription_queue(socket._subscription_id)
                socket._subscription_id = None
            await _shut_socket(socket)

    async def _measure_clock(self, client: Any) -> None:
        """The signatures' clock offset measured again (AsyncClient.create measured it once)."""
        with contextlib.suppress(Exception):  # the next attempt tries again
            answer = await client.get_server_time()
            client.timestamp_offset = int(answer["serverTime"]) - int(time.time() * 1000)

    async def _check_ws_api(self, client: Any) -> None:
        """Quiet is normal for user data: the WebSocket API connection must still be up, and
        answer a `ping` (weight 1). It is looked at first: python-binance would open a new
        connection for the ping, one without the subscription."""
        ws_api = client.ws_api
        if getattr(ws_api, "ws", None) is None or ws_api._handle_read_loop is None:
            raise _Dropped(f"the {USER_DATA} stream's WebSocket API connection is gone")
        try:
            await asyncio.wait_for(client._ws_api_request("ping", False, {}),
                                   self.backoff.user_check)
        except Exception as exc:
            raise _Dropped(f"the {USER_DATA} stream's WebSocket API did not answer a ping "
                           f"({_describe(exc)})") from None

    def _deliver(self, event: Any) -> None:
        if not isinstance(event, dict):
            return
        kind = event.get("e")
        if kind == "error":
            raise _Dropped(f"the {USER_DATA} stream dropped ({event.get('type')})")
        if kind == "eventStreamTerminated":
            raise _Dropped(f"Binance ended the {USER_DATA} subscription")
        if self._closed:
            return  # after close() the session hears nothing but STOPPED
        try:
            self.listener.on_user_event(event)
        except Exception:  # the listener's bug must not drop the stream
            log.exception("binance user_data: the listener failed on an event")

    # -- states ------------------------------------------------------------------------------

    def _report(self, stream: str, state: str, error: str | None) -> None:
        if state == self._reported[stream] and state != STREAM_CONNECTED:
            return  # one RECONNECTING for a whole outage, not one per attempt
        self._reported[stream] = state
        level = logging.INFO if state in (STREAM_CONNECTED, STREAM_STOPPED) else logging.WARNING
        log.log(level, "binance %s stream of %r: %s%s", stream, self.connection, state,
                f" ({error})" if error else "")
        with self._lock:
            if self._closed and state != STREAM_STOPPED:
                return
            if not self._closed:
                self._states[stream] = state
            was_up = self._market_was_up
            market = stream == MARKET_DATA
            dropped = market and was_up and state in (STREAM_RECONNECTING, STREAM_FAILED)
            back = market and was_up and state == STREAM_CONNECTED
            if market and state == STREAM_CONNECTED:
                self._market_was_up = True
        try:
            if dropped:
                self.market.on_stream_dropped()
            if back:
                self.market.on_stream_reconnected()  # the klines of the gap are fetched
            self.listener.on_stream_state(stream, state, error)
        except Exception:
            log.exception("binance %s stream: the state listener failed", stream)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "…")
        return text


def _describe(exc: BaseException) -> str:
    """An exception as a short phrase: Binance's code, or its type."""
    if isinstance(exc, BinanceAPIException):
        return f"Binance answered HTTP {exc.status_code}, code {exc.code}"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return type(exc).__name__
