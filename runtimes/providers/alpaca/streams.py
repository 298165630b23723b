"""Alpaca's two WebSocket streams for a session: `trade_updates` (alpaca-py's TradingStream, JSON)
and the stock data stream (StockDataStream, msgpack), each on its own thread and event loop.

alpaca-py reconnects by itself on some errors and hides it, retries refused keys for ever, and
takes 4-5 s to stop. So its streams are driven here, not through their `run()`: the SDK's own
connect, consume and dispatch are called by a supervisor that sees every drop (an error, a close,
a stream that ends by itself, a socket whose pings go unanswered), reports it, and reconnects
with exponential backoff and jitter; refused keys fail at once; stopping cancels the loop's task,
so `close()` returns within about a second.

States reach the StreamListener on the stream's thread: CONNECTED once authenticated and
listening/subscribed (acknowledged by Alpaca), on the first connect and every reconnect;
RECONNECTING when a connection dropped or could not be made; FAILED when the keys (or the feed's
subscription) were refused, or after `Backoff.max_attempts` failures in a row; STOPPED on close.
When the data stream is back after a drop, the session's market data is told first
(`on_stream_reconnected`: it fetches the minutes missed), then the listener.

Alpaca allows one data-stream connection per key and endpoint (406 beyond it), so the data
stream is shared: one SharedDataStream per connection in this process, refcounted by the
sessions attached to it, subscribed to the union of their symbols, each message routed to the
sessions that have its symbol. Each worker process holds its own, so a connection's sessions
must be hosted in one process to stay within Alpaca's limit (known limit: a second process
would be refused with 406 and keep reconnecting).

No log line or error sentence carries the keys: the SDK's auth frames are sent by the code
here, the websockets library logs through a logger that never logs frames, and error sentences
are built from exception types and codes, scrubbed of the keys besides.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol

import msgpack
import websockets
from alpaca.data.live.stock import StockDataStream
from alpaca.trading.stream import TradingStream

from runtimes.core.connection import (
    STREAM_CONNECTED,
    STREAM_FAILED,
    STREAM_RECONNECTING,
    STREAM_STOPPED,
    BrokerConnection,
)
from runtimes.providers.alpaca.market_data import AlpacaMarketData, normalise_symbol

log = logging.getLogger(__name__)

TRADE_UPDATES: Final = "trade_updates"
MARKET_DATA: Final = "market_data"
STOP_JOIN_SECONDS: Final = 0.45  # each of the two streams: close() stays under about a second

# The websockets library logs every frame at DEBUG, the auth frame with the secret included:
# its logger here never logs below INFO, whatever the root logger says.
_WS_LOGGER = logging.getLogger(f"{__name__}.websockets")
_WS_LOGGER.setLevel(logging.INFO)
# Replaces alpaca-py's defaults: pings every 10 s and a dead socket seen after 20 more (the SDK
# waits 180 s), a close that gives up after 1 s.
WEBSOCKET_PARAMS: Final[dict[str, Any]] = {
    "ping_interval": 10, "ping_timeout": 20, "max_queue": 1024, "close_timeout": 1,
    "open_timeout": 10, "logger": _WS_LOGGER,
}
# Alpaca's data-stream error codes that retrying cannot cure.
_REFUSED_DATA_CODES: Final = {
    401: "Alpaca's data stream did not accept the authentication",
    402: "Alpaca refused the connection's keys on the data stream",
    405: "Alpaca refused the subscription: too many symbols for the plan",
    409: "Alpaca refused the feed: the account has no subscription to it",
}


class StreamListener(Protocol):
    def on_trade_update(self, update: dict[str, Any]) -> None:
        """One trade_updates message's "data" dict as Alpaca sends it. Called on an SDK
        thread."""

    def on_stream_state(self, stream: str, state: str, error: str | None) -> None:
        """stream: "trade_updates" | "market_data"; state: a connection.STREAM_* value;
        error: a plain sentence, no secret. Called on an SDK thread."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect timing: attempt n waits between half and all of min(cap, initial * 2**(n-1))
    seconds (jitter, so that sessions do not reconnect in step)."""

    initial: float = 1.0
    cap: float = 30.0
    max_attempts: int | None = 40  # failures in a row before FAILED (None: never give up)
    stable_seconds: float = 30.0  # a connection that lasted this long starts the count anew
    ack_timeout: float = 10.0  # for Alpaca's answers to auth and listen/subscribe

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.cap, self.initial * float(2 ** max(0, attempt - 1)))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


class StreamRefused(Exception):
    """Alpaca refused what retrying cannot change (the keys, the feed). `str()` is a plain
    sentence without any part of the keys."""


Report = Callable[[str, str | None], None]


class _SupervisedStream(Protocol):
    async def open(self) -> None: ...

    async def consume(self) -> None: ...

    async def shut(self) -> None: ...


class _Supervisor:
    """Runs one stream on its own daemon thread and event loop (see the module doc)."""

    def __init__(self, name: str, stream: _SupervisedStream, report: Report, *,
                 backoff: Backoff, rng: random.Random, secrets: tuple[str, ...],
                 label: str) -> None:
        self.name = name
        self.stream = stream
        self.backoff = backoff
        self.rng = rng
        self.state: str | None = None
        self._report_to = report
        self._secrets = tuple(s for s in secrets if s)
        self._label = label  # the connection's repr: its id and key hint, for log lines
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name=f"alpaca-{name}", daemon=True)

    # -- any thread ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    @property
    def done(self) -> bool:
        """It will not connect again: FAILED, stopping, or its thread has ended."""
        ended = self._thread.ident is not None and not self._thread.is_alive()
        return ended or self.state == STREAM_FAILED or self._stopping.is_set()

    def stop(self, join_seconds: float = STOP_JOIN_SECONDS) -> None:
        """Cancel the stream's task (its socket is closed on its loop); wait for the thread at
        most `join_seconds`: it is a daemon, and reports STOPPED when it ends."""
        self._stopping.set()
        self.on_loop(self._cancel)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(join_seconds)

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the stream's loop, or on a thread of its own when none runs."""
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(callback)
                return
            except RuntimeError:  # the loop has closed
                pass
        threading.Thread(target=callback, name=f"alpaca-{self.name}-report", daemon=True).start()

    def on_loop(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the stream's loop if one runs (else there is nothing to do)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to do
                loop.call_soon_threadsafe(callback)

    # -- the stream's thread ---------------------------------------------------------------------

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:  # a bug here must still end in a state the session can see
            log.exception("alpaca %s stream of %r stopped on an error", self.name, self._label)
        finally:
            if self._stopping.is_set():
                self._report(STREAM_STOPPED, None)
            elif self.state != STREAM_FAILED:
                self._report(STREAM_FAILED, f"the {self.name} stream stopped unexpectedly")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.ensure_future(self._supervise())
        if self._stopping.is_set():  # stop() came before the task existed
            self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        finally:
            await self._shut()

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        while not self._stopping.is_set():
            began = loop.time()
            try:
                await self.stream.open()
            except StreamRefused as exc:
                self._report(STREAM_FAILED, self._scrub(str(exc)))
                return
            except Exception as exc:
                reason = self._scrub(f"could not connect the {self.name} stream "
                                     f"({_describe(exc)})")
            else:
                self._report(STREAM_CONNECTED, None)
                reason = await self._consume()
                if loop.time() - began >= self.backoff.stable_seconds:
                    attempt = 0
            await self._shut()
            if self._stopping.is_set():
                return
            attempt += 1
            if self.backoff.max_attempts is not None and attempt >= self.backoff.max_attempts:
                self._report(STREAM_FAILED, f"gave up after {attempt} attempts: {reason}")
                return
            self._report(STREAM_RECONNECTING, reason)
            await asyncio.sleep(self.backoff.delay(attempt, self.rng))

    async def _consume(self) -> str:
        """Until the connection drops: a sentence saying how it did."""
        try:
            await self.stream.consume()
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            return f"the {self.name} stream dropped (close code {code})"
        except Exception as exc:
            return self._scrub(f"the {self.name} stream failed ({_describe(exc)})")
        return f"the {self.name} stream ended by itself"

    async def _shut(self) -> None:
        try:
            await asyncio.wait_for(self.stream.shut(), 1.0)
        except Exception as exc:  # closing a broken socket may fail: it is gone either way
            log.debug("alpaca %s stream: close failed (%s)", self.name, type(exc).__name__)

    def _report(self, state: str, error: str | None) -> None:
        if state == self.state and state != STREAM_CONNECTED:
            return  # one RECONNECTING for a whole outage, not one per attempt
        self.state = state
        level = logging.INFO if state in (STREAM_CONNECTED, STREAM_STOPPED) else logging.WARNING
        log.log(level, "alpaca %s stream of %r: %s%s", self.name, self._label, state,
                f" ({error})" if error else "")
        try:
            self._report_to(state, error)
        except Exception:
            log.exception("alpaca %s stream: the state listener failed", self.name)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "…")
        return text


def _socket(stream: Any) -> Any:
    """The SDK stream's open websocket (alpaca-py types it as None)."""
    return stream._ws


def _describe(exc: BaseException) -> str:
    """An exception as a short phrase: its type, and the message of our own ValueErrors."""
    if isinstance(exc, ValueError | StreamRefused) and str(exc):
        return str(exc)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "no answer in time"
    return type(exc).__name__


# -- trade_updates ------------------------------------------------------------------------------


class _TradeUpdates(TradingStream):
    """alpaca-py's TradingStream, opened and consumed by a _Supervisor."""

    def __init__(self, connection: BrokerConnection, on_update: Callable[[dict[str, Any]], None],
                 ack_timeout: float) -> None:
        super().__init__(connection.key_id, connection.secret, raw_data=True,
                         url_override=connection.urls["trading_stream"],
                         websocket_params=dict(WEBSOCKET_PARAMS))
        self._on_update = on_update
        self._ack_timeout = ack_timeout
        self.subscribe_trade_updates(self._handle)

    async def _handle(self, message: dict[str, Any]) -> None:
        data = message.get("data")
        if not isinstance(data, dict):
            return
        try:
            self._on_update(data)
        except Exception:  # the listener's bug must not drop the stream
            log.exception("alpaca trade_updates: the listener failed on an update")

    async def open(self) -> None:
        await self._connect()  # type: ignore[no-untyped-call]
        await self._authenticate()
        await self._subscribe_trade_updates()
        await self._until_listening()

    async def _authenticate(self) -> None:
        """Alpaca's handshake, sent here so that a refusal is told apart from a drop."""
        frame = {"action": "authenticate",
                 "data": {"key_id": self._api_key, "secret_key": self._secret_key}}
        await _socket(self).send(json.dumps(frame))
        answer = json.loads(await asyncio.wait_for(_socket(self).recv(), self._ack_timeout))
        data = answer.get("data") if isinstance(answer, dict) else None
        status = data.get("status") if isinstance(data, dict) else None
        if status != "authorized":
            raise StreamRefused("Alpaca refused the connection's keys on the trade_updates "
                                "stream")

    async def _until_listening(self) -> None:
        """Alpaca acknowledges `listen` with {"stream": "listening"}; updates sent before it
        are dispatched as usual."""
        async with asyncio.timeout(self._ack_timeout):
            while True:
                message = json.loads(await _socket(self).recv())
                if message.get("stream") != "listening":
                    await self._dispatch(message)
                    continue
                data = message.get("data")
                if not isinstance(data, dict) or TRADE_UPDATES not in data.get("streams", []):
                    raise ValueError("Alpaca did not confirm listening to trade_updates")
                return

    async def consume(self) -> None:
        await self._consume()  # type: ignore[no-untyped-call]

    async def shut(self) -> None:
        await self.close()


# -- the stock data stream ----------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class DataSubscriber:
    """One session on a shared data stream: its market data, its symbols, where its states go."""

    market: AlpacaMarketData
    symbols: frozenset[str]
    report: Report
    told: bool = False  # a state reached it (set on the stream's thread)


class _StockData(StockDataStream):
    """alpaca-py's StockDataStream, opened and consumed by a _Supervisor; bars and quotes of the
    symbols `wanted()` returns go to `route`."""

    def __init__(self, connection: BrokerConnection, endpoint: str,
                 route: Callable[[dict[str, Any]], None], wanted: Callable[[], frozenset[str]],
                 ack_timeout: float) -> None:
        super().__init__(connection.key_id, connection.secret, raw_data=True,
                         url_override=endpoint, websocket_params=dict(WEBSOCKET_PARAMS))
        self._route = route
        self._wanted = wanted
        self._ack_timeout = ack_timeout
        self.live = False  # subscribed on an open connection
        self._subscribed: frozenset[str] = frozenset()  # what Alpaca was last asked for

    async def _deliver(self, message: dict[str, Any]) -> None:
        try:
            self._route(message)
        except Exception:  # a session's bug must not drop everyone's stream
            log.exception("alpaca market_data: routing a message failed")

    async def open(self) -> None:
        self.live = False
        await asyncio.wait_for(self._connect(), self._ack_timeout)
        await self._authenticate()
        wanted = self._wanted()
        self._set_handlers(wanted)
        await self._send_subscribe_msg()
        await self._until_subscribed()
        self._subscribed, self.live = wanted, True
        await self.sync_subscriptions()  # sessions that came or left while this connected

    async def _authenticate(self) -> None:
        """Alpaca's handshake, sent here so that refused keys are told apart from a drop."""
        await _socket(self).send(msgpack.packb(
            {"action": "auth", "key": self._api_key, "secret": self._secret_key}))
        answer = msgpack.unpackb(await asyncio.wait_for(_socket(self).recv(), self._ack_timeout))
        first = answer[0] if isinstance(answer, list) and answer else {}
        if first.get("T") == "error":
            _raise_data_error(first)
        if first.get("T") != "success" or first.get("msg") != "authenticated":
            raise ValueError("the data stream did not confirm the authentication")

    async def _until_subscribed(self) -> None:
        async with asyncio.timeout(self._ack_timeout):
            while True:
                for message in msgpack.unpackb(await _socket(self).recv()):
                    kind = message.get("T")
                    if kind == "subscription":
                        return
                    if kind == "error":
                        _raise_data_error(message)
                    await self._dispatch(message)

    def _set_handlers(self, symbols: frozenset[str]) -> None:
        """Bars and quotes of `symbols` go to `route` (and into the next subscribe message,
        which alpaca-py builds from its handlers)."""
        for channel in ("bars", "quotes"):
            handlers = self._handlers[channel]
            handlers.clear()
            handlers.update(dict.fromkeys(sorted(symbols), self._deliver))

    async def sync_subscriptions(self) -> None:
        """Subscribe the symbols sessions want and the stream has not, unsubscribe the ones no
        session wants any more (on the stream's loop; while not connected, the next open
        subscribes the current set)."""
        wanted = self._wanted()
        self._set_handlers(wanted)
        if not self.live or self._ws is None:
            return
        added, removed = wanted - self._subscribed, sorted(self._subscribed - wanted)
        try:
            if added:
                await self._send_subscribe_msg()
            if removed:
                await _socket(self).send(msgpack.packb(
                    {"action": "unsubscribe", "bars": removed, "quotes": removed}))
        except websockets.ConnectionClosed:
            return  # the drop is seen by consume()
        self._subscribed = wanted

    async def consume(self) -> None:
        await self._consume()

    async def shut(self) -> None:
        self.live = False
        await self.close()


def _raise_data_error(message: dict[str, Any]) -> None:
    code = message.get("code")
    refused = _REFUSED_DATA_CODES.get(code) if isinstance(code, int) else None
    if refused is not None:
        raise StreamRefused(refused)
    raise ValueError(f"Alpaca's data stream answered error {code}")


class SharedDataStream:
    """The one stock data stream of a connection (key id and endpoint) in this process, shared
    by its sessions (see the module doc). Use `attach` and `detach`, never the constructor."""

    _streams: ClassVar[dict[tuple[str, str, str], SharedDataStream]] = {}
    _streams_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, key: tuple[str, str, str], connection: BrokerConnection, endpoint: str,
                 *, backoff: Backoff, rng: random.Random) -> None:
        self.key = key
        self._lock = threading.Lock()
        self._subscribers: list[DataSubscriber] = []
        self._syncing: asyncio.Future[None] | None = None  # the newest resubscription
        self.stream = _StockData(connection, endpoint, self._route, self.wanted,
                                 backoff.ack_timeout)
        self.supervisor = _Supervisor(MARKET_DATA, self.stream, self._report, backoff=backoff,
                                      rng=rng, secrets=(connection.key_id, connection.secret),
                                      label=repr(connection))

    @classmethod
    def attach(cls, connection: BrokerConnection, subscriber: DataSubscriber, *,
               backoff: Backoff, rng: random.Random) -> SharedDataStream:
        """The connection's stream with `subscriber` on it (started by its first session). A
        session joining a running stream is told its current state."""
        endpoint = f"{connection.urls['data_stream']}/{_feed(connection)}"
        key = (connection.id, connection.key_id, endpoint)
        with cls._streams_lock:
            shared = cls._streams.get(key)
            fresh = shared is None or shared.supervisor.done  # a failed one is tried anew
            if shared is None or fresh:
                shared = cls._streams[key] = cls(key, connection, endpoint, backoff=backoff,
                                                 rng=rng)
            with shared._lock:
                shared._subscribers.append(subscriber)
            if fresh:
                shared.supervisor.start()
            else:
                shared.supervisor.on_loop(shared._resubscribe)
                shared.supervisor.call_soon(lambda: shared._tell_joined(subscriber))
        return shared

    def _tell_joined(self, subscriber: DataSubscriber) -> None:
        """On the stream's thread, so that it cannot overtake a newer state: a session that
        joined a running stream learns its state, unless a change told it already."""
        state = self.supervisor.state
        if state is not None and not subscriber.told:
            subscriber.told = True
            subscriber.report(state, None)

    def detach(self, subscriber: DataSubscriber) -> None:
        """`subscriber` leaves (told STOPPED); the last one to leave stops the stream."""
        cls = type(self)
        with cls._streams_lock:
            with self._lock:
                if subscriber not in self._subscribers:
                    return
                self._subscribers.remove(subscriber)
                last = not self._subscribers
            if last and cls._streams.get(self.key) is self:
                del cls._streams[self.key]
        self.supervisor.call_soon(lambda: subscriber.report(STREAM_STOPPED, None))
        if last:
            self.supervisor.stop()
        else:
            self.supervisor.on_loop(self._resubscribe)

    def wanted(self) -> frozenset[str]:
        with self._lock:
            return frozenset().union(*(s.symbols for s in self._subscribers))

    @classmethod
    def count(cls) -> int:
        """How many data streams this process holds (for tests and diagnostics)."""
        with cls._streams_lock:
            return len(cls._streams)

    def _resubscribe(self) -> None:
        self._syncing = asyncio.ensure_future(self.stream.sync_subscriptions())

    def _route(self, message: dict[str, Any]) -> None:
        symbol = normalise_symbol(str(message.get("S", "")))
        kind = message.get("T")
        with self._lock:
            targets = [s.market for s in self._subscribers if symbol in s.symbols]
        for market in targets:
            if kind == "b":
                market.on_bar(message)
            elif kind == "q":
                market.on_quote(message)

    def _report(self, state: str, error: str | None) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.told = True
            subscriber.report(state, error)


def _feed(connection: BrokerConnection) -> str:
    return str(connection.options.get("feed", "iex")).lower()


# -- one session's streams ----------------------------------------------------------------------


class AlpacaStreams:
    """A session's trade_updates stream (its own) and market data (the connection's shared data
    stream), reporting to `listener`. States before `start()`: STOPPED; from `start()` until the
    first connect: RECONNECTING."""

    def __init__(self, connection: BrokerConnection, listener: StreamListener,
                 market: AlpacaMarketData, *, symbols: tuple[str, ...],
                 rng: random.Random | None = None, backoff: Backoff | None = None) -> None:
        self.connection = connection
        self.listener = listener
        self.market = market
        self.symbols = tuple(dict.fromkeys(normalise_symbol(s) for s in symbols))
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self._lock = threading.Lock()
        self._states = {TRADE_UPDATES: STREAM_STOPPED, MARKET_DATA: STREAM_STOPPED}
        self._started = self._closed = False
        self._data_was_up = False  # the data stream was connected once: a CONNECTED is a return
        self._trading = _Supervisor(
            TRADE_UPDATES,
            _TradeUpdates(connection, self._on_trade_update, self.backoff.ack_timeout),
            lambda state, error: self._on_state(TRADE_UPDATES, state, error),
            backoff=self.backoff, rng=self.rng, secrets=(connection.key_id, connection.secret),
            label=repr(connection))
        self._subscriber = DataSubscriber(
            market, frozenset(self.symbols),
            lambda state, error: self._on_state(MARKET_DATA, state, error))
        self._shared: SharedDataStream | None = None

    def start(self) -> None:
        """Connect both streams on their own threads; returns at once."""
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
            self._states = {TRADE_UPDATES: STREAM_RECONNECTING, MARKET_DATA: STREAM_RECONNECTING}
        self._trading.start()
        self._shared = SharedDataStream.attach(self.connection, self._subscriber,
                                               backoff=self.backoff, rng=self.rng)

    def close(self) -> None:
        """Stop both streams; idempotent; returns within about a second (the threads are
        daemons and finish on their own). STOPPED reaches the listener from the streams'
        threads; nothing else does after this call."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._states = {TRADE_UPDATES: STREAM_STOPPED, MARKET_DATA: STREAM_STOPPED}
            started = self._started
        if not started:
            return
        self._trading.stop()
        if self._shared is not None:
            self._shared.detach(self._subscriber)

    def states(self) -> dict[str, str]:
        """{"trade_updates": state, "market_data": state} (connection.STREAM_* values)."""
        with self._lock:
            return dict(self._states)

    def _on_trade_update(self, update: dict[str, Any]) -> None:
        if not self._closed:  # after close() the session hears nothing but STOPPED
            self.listener.on_trade_update(update)

    def _on_state(self, stream: str, state: str, error: str | None) -> None:
        with self._lock:
            if self._closed and state != STREAM_STOPPED:
                return
            if not self._closed:
                self._states[stream] = state
            was_up = self._data_was_up  # a drop and a return only after a first connect
            back = stream == MARKET_DATA and state == STREAM_CONNECTED and was_up
            dropped = stream == MARKET_DATA and was_up and state in (STREAM_RECONNECTING,
                                                                     STREAM_FAILED)
            if stream == MARKET_DATA and state == STREAM_CONNECTED:
                self._data_was_up = True
        if dropped:
            self.market.on_stream_dropped()
        if back:
            self.market.on_stream_reconnected()  # the minutes of the gap are fetched
        self.listener.on_stream_state(stream, state, error)
