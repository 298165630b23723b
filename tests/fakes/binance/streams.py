"""The fake Binance's WebSocket endpoints and their connections.

- Market streams: `/ws/<stream>[/<stream>...]` (raw payloads) and `/stream?streams=a/b`
  (combined: {"stream", "data"}), with live SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS requests.
  Streams: `<symbol>@kline_<interval>` and `<symbol>@bookTicker`.
- The WebSocket API `/ws-api/v3`: `userDataStream.subscribe.signature` (apiKey, timestamp and
  an HMAC over the urlencoded sorted params, as python-binance signs them),
  `userDataStream.unsubscribe`, `ping`, `time`; user data events go out as
  {"subscriptionId": N, "event": {...}} on every live subscription. Subscriptions belong to
  their connection: a dropped connection loses them.

Every connection has a queue and a writer task, so messages leave in the order the account
produced them (`State.outbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

from tests.fakes.binance.gateway import check_timestamp
from tests.fakes.binance.state import Outgoing, State
from tests.fakes.binance.values import ApiError


@dataclass(eq=False)
class Connection:
    """One WebSocket client of the fake."""

    kind: str  # "market" | "ws_api"
    ws: web.WebSocketResponse
    request: web.Request
    combined: bool = False
    streams: list[str] = field(default_factory=list)
    subscriptions: set[int] = field(default_factory=set)
    next_subscription: int = 0
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)

    def abort(self) -> None:
        """Drop the socket without a close frame (what a network failure looks like)."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self.queue.put_nowait(None)


class Hub:
    """The open connections, the stream faults, and delivery of the exchange's messages."""

    def __init__(self, state: State, key_id: str, secret: str) -> None:
        self.state = state
        self.key_id = key_id
        self.secret = secret
        self.connections: list[Connection] = []
        self.down = False
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- delivery ----------------------------------------------------------------------------
    def kick(self) -> None:
        """Deliver what the exchange produced (safe from any thread)."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.flush)

    def flush(self) -> None:
        with self.state.lock:
            items = list(self.state.outbox)
            self.state.outbox.clear()
            connections = list(self.connections)
        for item in items:
            for connection in connections:
                self._deliver(connection, item)

    def _deliver(self, connection: Connection, item: Outgoing) -> None:
        if item.kind == "market":
            if connection.kind == "market" and item.stream in connection.streams:
                payload = (
                    {"stream": item.stream, "data": item.payload}
                    if connection.combined
                    else item.payload
                )
                connection.queue.put_nowait(json.dumps(payload))
        elif connection.kind == "ws_api":
            for subscription in sorted(connection.subscriptions):
                connection.queue.put_nowait(
                    json.dumps({"subscriptionId": subscription, "event": item.payload})
                )
            if item.kind == "terminated":
                with self.state.lock:
                    connection.subscriptions.clear()
                    self.state.notify()

    # -- faults ------------------------------------------------------------------------------
    def drop(self, *, market: bool, ws_api: bool) -> None:
        """On the loop: abort the chosen connections."""
        for connection in list(self.connections):
            if (connection.kind == "market" and market) or (connection.kind == "ws_api" and ws_api):
                self._forget(connection)
                connection.abort()

    async def close_all(self) -> None:
        for connection in list(self.connections):
            self._forget(connection)
            connection.abort()

    def _register(self, connection: Connection) -> None:
        with self.state.lock:
            self.connections.append(connection)
            self.state.notify()

    def _forget(self, connection: Connection) -> None:
        with self.state.lock:
            if connection in self.connections:
                self.connections.remove(connection)
            self.state.notify()

    def counts(self) -> dict[str, int]:
        """{"market": stream subscriptions now, "user": user data subscriptions now}."""
        with self.state.lock:
            return {
                "market": sum(len(c.streams) for c in self.connections if c.kind == "market"),
                "user": sum(len(c.subscriptions) for c in self.connections if c.kind == "ws_api"),
            }

    def connection_counts(self) -> dict[str, int]:
        """{"market": open market stream connections, "ws_api": open WS API connections}."""
        with self.state.lock:
            return {
                kind: sum(1 for c in self.connections if c.kind == kind)
                for kind in ("market", "ws_api")
            }

    # -- market streams ----------------------------------------------------------------------
    async def raw_stream(self, request: web.Request) -> web.StreamResponse:
        names = [s for s in request.match_info["streams"].split("/") if s]
        return await self._market(request, names, combined=False)

    async def combined_stream(self, request: web.Request) -> web.StreamResponse:
        names = [s for s in request.query.get("streams", "").split("/") if s]
        return await self._market(request, names, combined=True)

    async def _market(
        self, request: web.Request, names: list[str], *, combined: bool
    ) -> web.StreamResponse:
        if self.down:  # restarting: the handshake fails, as at a closed gateway
            raise web.HTTPServiceUnavailable()
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = Connection("market", ws, request, combined=combined)
        connection.streams = [_stream_name(n) for n in names]
        self._register(connection)
        writer = asyncio.ensure_future(_write(connection))
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    break
                self._on_market_message(connection, message.data)
        finally:
            await self._finish(connection, writer)
        return ws

    def _on_market_message(self, connection: Connection, raw: str) -> None:
        try:
            message = json.loads(raw)
            method, request_id = message["method"], message.get("id")
        except (ValueError, KeyError, TypeError):
            connection.queue.put_nowait(json.dumps({"code": 3, "msg": "Invalid JSON"}))
            return
        params = [_stream_name(str(p)) for p in message.get("params") or []]
        result: Any = None
        with self.state.lock:
            if method == "SUBSCRIBE":
                connection.streams += [p for p in params if p not in connection.streams]
            elif method == "UNSUBSCRIBE":
                connection.streams = [s for s in connection.streams if s not in params]
            elif method == "LIST_SUBSCRIPTIONS":
                result = list(connection.streams)
            else:
                connection.queue.put_nowait(
                    json.dumps(
                        {
                            "code": 2,
                            "msg": f"Invalid request: unknown method {method}",
                            "id": request_id,
                        }
                    )
                )
                return
            self.state.notify()
        connection.queue.put_nowait(json.dumps({"result": result, "id": request_id}))

    # -- WebSocket API -----------------------------------------------------------------------
    async def ws_api(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            raise web.HTTPServiceUnavailable()
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = Connection("ws_api", ws, request)
        self._register(connection)
        writer = asyncio.ensure_future(_write(connection))
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    break
                self._on_api_message(connection, message.data)
        finally:
            await self._finish(connection, writer)
        return ws

    def _on_api_message(self, connection: Connection, raw: str) -> None:
        try:
            message = json.loads(raw)
            request_id, method = message.get("id"), message["method"]
            params = message.get("params") or {}
        except (ValueError, KeyError, TypeError, AttributeError):
            self._answer(connection, None, error=ApiError(400, -1102, "Malformed request."))
            return
        try:
            result = self._api_call(connection, str(method), params)
        except ApiError as error:
            self._answer(connection, request_id, error=error)
            return
        self._answer(connection, request_id, result=result)

    def _api_call(self, connection: Connection, method: str, params: dict[str, Any]) -> Any:
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": self.state.now_ms()}
        if method == "userDataStream.subscribe.signature":
            self._check_ws_signature(params)
            with self.state.lock:
                subscription = connection.next_subscription
                connection.next_subscription += 1
                connection.subscriptions.add(subscription)
                self.state.notify()
            return {"subscriptionId": subscription}
        if method == "userDataStream.unsubscribe":
            with self.state.lock:
                # Binance: "attempt to close the subscription with that id, if it exists": an
                # unknown id (lost with a dropped connection) is not an error.
                chosen = params.get("subscriptionId")
                if chosen is None:
                    connection.subscriptions.clear()
                else:
                    connection.subscriptions.discard(chosen)
                self.state.notify()
            return {}
        raise ApiError(
            400, -1100, f"Illegal characters found in parameter 'method'; unknown method {method}."
        )

    def _check_ws_signature(self, params: dict[str, Any]) -> None:
        signed = dict(params)
        signature = signed.pop("signature", None)
        if signed.get("apiKey") != self.key_id:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if not signature:
            raise ApiError(
                400,
                -1102,
                "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
            )
        payload = urlencode(sorted(signed.items()))
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, str(signature).lower()):
            raise ApiError(400, -1022, "Signature for this request is not valid.")
        check_timestamp(signed.get("timestamp"), signed.get("recvWindow"), self.state.now_ms())

    def _answer(
        self,
        connection: Connection,
        request_id: Any,
        *,
        result: Any = None,
        error: ApiError | None = None,
    ) -> None:
        if error is None:
            body: dict[str, Any] = {"id": request_id, "status": 200, "result": result}
        else:
            body = {"id": request_id, "status": error.status, "error": error.body()}
        connection.queue.put_nowait(json.dumps(body))

    async def _finish(self, connection: Connection, writer: asyncio.Future[None]) -> None:
        self._forget(connection)
        connection.queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await writer


def _stream_name(name: str) -> str:
    """Stream names are lower case except the interval ("btcusdt@kline_1M" stays 1M)."""
    symbol, _, kind = name.partition("@")
    return f"{symbol.lower()}@{kind}"


async def _write(connection: Connection) -> None:
    """Send the connection's queue in order; None closes it (after what came before)."""
    while True:
        item = await connection.queue.get()
        if item is None or connection.ws.closed:
            break
        try:
            await connection.ws.send_str(item)
        except (ConnectionError, RuntimeError):
            break
    with contextlib.suppress(Exception):
        await connection.ws.close()
