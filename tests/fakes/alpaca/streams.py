"""The fake Alpaca's two WebSocket endpoints and their connections.

- `/stream`: trade_updates, JSON in binary frames (authenticate, listen, then the account's
  trade updates), as the paper endpoint does.
- `/v2/{feed}` (iex, sip...): stock market data, msgpack both ways, every frame an array of
  messages; connected, auth, subscribe (the SDK sends its full set each time), then bars and
  quotes with msgpack Timestamps in "t". One connection per key and feed (406), as Alpaca.

Every connection has a queue and a writer task, so messages leave in the order the account
produced them (`Broker.outbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgpack
from aiohttp import WSMsgType, web

from tests.fakes.alpaca.state import Broker, Outgoing

FEEDS = ("iex", "sip", "delayed_sip", "otc", "boats", "overnight", "test")
CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")


@dataclass(eq=False)
class Connection:
    """One WebSocket client of the fake."""

    kind: str  # "trading" | "data"
    ws: web.WebSocketResponse
    request: web.Request
    feed: str = ""
    msgpack: bool = True
    authenticated: bool = False
    listening: bool = False
    subscriptions: dict[str, set[str]] = field(
        default_factory=lambda: {channel: set() for channel in CHANNELS}
    )
    queue: asyncio.Queue[bytes | str | None] = field(default_factory=asyncio.Queue)

    @property
    def counted(self) -> bool:
        if self.kind == "trading":
            return self.authenticated and self.listening
        return self.authenticated and any(self.subscriptions.values())

    def wants(self, channel: str, symbol: str) -> bool:
        chosen = self.subscriptions.get(channel, set())
        return symbol in chosen or "*" in chosen

    def abort(self) -> None:
        """Drop the socket without a close frame (what a network failure looks like)."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self.queue.put_nowait(None)


class Hub:
    """The open connections, the stream faults, and delivery of the account's messages."""

    def __init__(
        self, broker: Broker, key_id: str, secret: str, *, one_data_connection: bool = True
    ) -> None:
        self.broker = broker
        self.key_id = key_id
        self.secret = secret
        self.one_data_connection = one_data_connection
        self.connections: list[Connection] = []
        self.refused = False
        self.down = False
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- delivery ----------------------------------------------------------------------------
    def kick(self) -> None:
        """Deliver what the account produced (safe from any thread)."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.flush)

    def flush(self) -> None:
        with self.broker.lock:
            items = list(self.broker.outbox)
            self.broker.outbox.clear()
            connections = list(self.connections)
        for item in items:
            for connection in connections:
                self._deliver(connection, item)

    def _deliver(self, connection: Connection, item: Outgoing) -> None:
        if item.kind == "trade":
            if connection.kind == "trading" and connection.listening:
                connection.queue.put_nowait(json.dumps(item.payload).encode())
        elif (
            connection.kind == "data"
            and connection.authenticated
            and connection.wants(item.channel, item.symbol)
        ):
            connection.queue.put_nowait(_encode(connection, [item.payload]))

    # -- faults ------------------------------------------------------------------------------
    def drop(self, *, trading: bool, data: bool) -> None:
        """On the loop: abort the chosen connections."""
        for connection in list(self.connections):
            if (connection.kind == "trading" and trading) or (connection.kind == "data" and data):
                self._forget(connection)
                connection.abort()

    async def close_all(self) -> None:
        for connection in list(self.connections):
            self._forget(connection)
            connection.abort()

    def _register(self, connection: Connection) -> None:
        with self.broker.lock:
            self.connections.append(connection)
            self.broker.notify()

    def _forget(self, connection: Connection) -> None:
        with self.broker.lock:
            if connection in self.connections:
                self.connections.remove(connection)
            self.broker.notify()

    def counts(self) -> dict[str, int]:
        with self.broker.lock:
            return {
                "trading": sum(1 for c in self.connections if c.kind == "trading" and c.counted),
                "data": sum(1 for c in self.connections if c.kind == "data" and c.counted),
            }

    # -- handlers ----------------------------------------------------------------------------
    async def trading(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = Connection("trading", ws, request)
        if self.refused or self.down:
            connection.abort()
            return ws
        self._register(connection)
        writer = asyncio.ensure_future(_write(connection))
        try:
            async for message in ws:
                if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                await self._on_trading_message(connection, message.data)
        finally:
            await self._finish(connection, writer)
        return ws

    async def _on_trading_message(self, connection: Connection, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            _send_json(connection, {"stream": "listening", "data": {"error": "invalid syntax"}})
            return
        action = message.get("action") if isinstance(message, dict) else None
        data = message.get("data") or {} if isinstance(message, dict) else {}
        if action in ("authenticate", "auth"):
            key = data.get("key_id", message.get("key"))
            secret = data.get("secret_key", message.get("secret"))
            ok = key == self.key_id and secret == self.secret
            _send_json(
                connection,
                {
                    "stream": "authorization",
                    "data": {
                        "action": "authenticate",
                        "status": "authorized" if ok else "unauthorized",
                    },
                },
            )
            if not ok:
                connection.queue.put_nowait(None)
                return
            with self.broker.lock:
                connection.authenticated = True
                self.broker.notify()
        elif action == "listen":
            if not connection.authenticated:
                _send_json(
                    connection,
                    {"stream": "listening", "data": {"error": "access key verification failed"}},
                )
                return
            streams = [s for s in data.get("streams", []) if s == "trade_updates"]
            with self.broker.lock:
                connection.listening = bool(streams)
                self.broker.notify()
            _send_json(connection, {"stream": "listening", "data": {"streams": streams}})

    async def data(self, request: web.Request) -> web.StreamResponse:
        feed = request.match_info["feed"]
        if feed not in FEEDS:
            raise web.HTTPNotFound()
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = Connection(
            "data",
            ws,
            request,
            feed=feed,
            msgpack="msgpack" in (request.headers.get("Content-Type", "")),
        )
        if self.refused or self.down:
            connection.abort()
            return ws
        self._register(connection)
        writer = asyncio.ensure_future(_write(connection))
        connection.queue.put_nowait(_encode(connection, [{"T": "success", "msg": "connected"}]))
        try:
            async for message in ws:
                if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                self._on_data_message(connection, message.data)
        finally:
            await self._finish(connection, writer)
        return ws

    def _on_data_message(self, connection: Connection, raw: str | bytes) -> None:
        try:
            message = msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
        except ValueError:
            self._error(connection, 400, "invalid syntax")
            return
        action = message.get("action") if isinstance(message, dict) else None
        if action == "auth":
            self._data_auth(connection, message)
        elif action in ("subscribe", "unsubscribe"):
            if not connection.authenticated:
                self._error(connection, 401, "not authenticated")
                return
            with self.broker.lock:
                for channel in CHANNELS:
                    symbols = {str(s).upper() if s != "*" else s for s in message.get(channel, [])}
                    if action == "subscribe":
                        connection.subscriptions[channel] |= symbols
                    else:
                        connection.subscriptions[channel] -= symbols
                self.broker.notify()
            connection.queue.put_nowait(_encode(connection, [self._ack(connection)]))
        else:
            self._error(connection, 400, "invalid syntax")

    def _data_auth(self, connection: Connection, message: dict[str, Any]) -> None:
        if connection.authenticated:
            self._error(connection, 403, "already authenticated")
            return
        if message.get("key") != self.key_id or message.get("secret") != self.secret:
            self._error(connection, 402, "auth failed")
            connection.queue.put_nowait(None)
            return
        with self.broker.lock:
            busy = self.one_data_connection and any(
                c.kind == "data" and c.feed == connection.feed and c.authenticated
                for c in self.connections
                if c is not connection
            )
            if not busy:
                connection.authenticated = True
                self.broker.notify()
        if busy:
            self._error(connection, 406, "connection limit exceeded")
            connection.queue.put_nowait(None)
            return
        connection.queue.put_nowait(_encode(connection, [{"T": "success", "msg": "authenticated"}]))

    def _ack(self, connection: Connection) -> dict[str, Any]:
        lists = {channel: sorted(connection.subscriptions[channel]) for channel in CHANNELS}
        return {
            "T": "subscription",
            **lists,
            "corrections": lists["trades"],
            "cancelErrors": lists["trades"],
        }

    def _error(self, connection: Connection, code: int, text: str) -> None:
        connection.queue.put_nowait(
            _encode(connection, [{"T": "error", "code": code, "msg": text}])
        )

    async def _finish(self, connection: Connection, writer: asyncio.Future[None]) -> None:
        self._forget(connection)
        connection.queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await writer


async def _write(connection: Connection) -> None:
    """Send the connection's queue in order; None closes it (after what came before)."""
    while True:
        item = await connection.queue.get()
        if item is None or connection.ws.closed:
            break
        try:
            if isinstance(item, bytes):
                await connection.ws.send_bytes(item)
            else:
                await connection.ws.send_str(item)
        except (ConnectionError, RuntimeError):
            break
    with contextlib.suppress(Exception):
        await connection.ws.close()


def _send_json(connection: Connection, message: dict[str, Any]) -> None:
    """trade_updates messages go as binary frames, as the paper endpoint sends them."""
    connection.queue.put_nowait(json.dumps(message).encode())


def _encode(connection: Connection, messages: list[dict[str, Any]]) -> bytes | str:
    if connection.msgpack:
        return msgpack.packb(messages, default=_msgpack_default, datetime=False)
    return json.dumps(messages, default=_json_default)


def _msgpack_default(value: object) -> object:
    if isinstance(value, datetime):
        return msgpack.Timestamp.from_datetime(value)
    raise TypeError(f"cannot pack {type(value).__name__}")


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"cannot encode {type(value).__name__}")
