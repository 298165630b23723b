"""The host's side of a hosted strategy's local channel (runtimes/sandbox/shim.py): the session
host's own thread serves the sandbox's unix socket, so an event, its ack and a REST command cross
one socket each way, with no web server, relay or bus between the strategy and the engine.

`StrategyChannel` is the host's endpoint (bus.HostEndpoint) for such a session: messages from the
channel's connections (attach, ack, notice, detach, command, in the shapes the web tier posts) and
from the session's bus (cancels, observers, other clients of the session) come out of one
`receive`; frames and replies go back to whichever side the connection or request came from.

Everything that arrives is checked here as the web tier checks it (the shim is not trusted):
bounded frames and connections, the session's own paths only, the Trading API's routes and error
envelopes, JSON bodies of bounded depth. A strategy that stops reading loses its connection once
a bounded outbox is full, never the host's memory or thread.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import select
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from runtimes.core.errors import TradingError
from runtimes.core.json_limits import MAX_JSON_DEPTH, nested_deeper_than
from runtimes.core.wire_parse import (
    EventAck,
    InvalidMessage,
    parse_client_message,
    parse_last_event_id,
)
from runtimes.hosting.bus import DirectHandler, HostEndpoint, JsonDict, Reply
from runtimes.sandbox.relay import path_allowed
from runtimes.sandbox.shim import (
    ACCEPTED,
    CLOSE,
    DENIED,
    MESSAGE,
    OPEN_STREAM,
    REQUEST,
    RESPONSE,
    AdaptiveSpin,
    FrameBuffer,
    frame,
)
from runtimes.transport.routes import HEALTH, command_query, match_route
from runtimes.transport.views import retry_after_of

MAX_CONNECTIONS = 32  # as the relay allows a sandbox
MAX_FRAME_BYTES = 1 << 20  # one request or ack from the strategy (an order body is ~300 bytes)
MAX_OUTBOX_BYTES = 32 << 20  # frames and answers a strategy has not read yet
BUS_POLL_SECONDS = 0.02  # how often a busy channel lets the bus in: bounds a cancel's latency
READ_BYTES = 1 << 18
JSON_HEADERS = {"content-type": "application/json"}

# What the strategy may send on a connection of each role.
STREAM, HTTP = "stream", "http"
# The channel's connection and request ids: never the bus's ("conn-", "obs-", "req-", uuids), so
# an answer for a connection that went away is dropped rather than handed to the bus.
CHANNEL_ID_PREFIX = "chan-"


@dataclass(eq=False)
class _Peer:
    """One unix connection from the sandbox."""

    sock: socket.socket
    name: str
    buffer: FrameBuffer = field(default_factory=lambda: FrameBuffer(MAX_FRAME_BYTES))
    role: str | None = None
    outbox: bytearray = field(default_factory=bytearray)
    closing: bool = False  # close once the outbox is written
    requests: int = 0  # answers owed on an HTTP connection (asked in order, answered in order)


class StrategyChannel:
    """A HostEndpoint over a sandbox's channel and the session's bus (module docstring)."""

    def __init__(
        self,
        bus: HostEndpoint,
        listener: socket.socket,
        *,
        session_prefix: str,
        health: Callable[[], JsonDict],
        monotonic: Callable[[], float] = time.monotonic,
        may_spin: Callable[[], bool] = lambda: False,
    ) -> None:
        self.bus = bus
        self.prefix = session_prefix  # "/sessions/<id>/"
        self.health = health
        self.monotonic = monotonic
        self._listener = listener
        listener.setblocking(False)
        # epoll itself, not `selectors`: its per-call bookkeeping was a visible part of a bar.
        self._poll = select.epoll()
        self._poll.register(listener.fileno(), select.EPOLLIN)
        self._wake_read, self._wake_write = socket.socketpair()
        for end in (self._wake_read, self._wake_write):
            end.setblocking(False)
        self._poll.register(self._wake_read.fileno(), select.EPOLLIN)
        self._by_fd: dict[int, _Peer] = {}
        self._peers: dict[str, _Peer] = {}  # by connection id ("chan-1"), streams and HTTP alike
        self._requests: dict[str, _Peer] = {}  # request id -> the connection that asked
        self._ready: deque[JsonDict] = deque()
        self._ids = itertools.count(1)
        self._bus_due = 0.0
        self._closed = False
        self._spin = AdaptiveSpin()
        self.may_spin = may_spin

    def _poll_now(self) -> list[tuple[int, int]]:
        return self._poll.poll(0)

    # -- HostEndpoint -----------------------------------------------------------------------------

    def receive(self, timeout: float, *, precise: bool = False) -> JsonDict | None:
        deadline = self.monotonic() + timeout
        while True:
            if self._ready:
                return self._ready.popleft()
            now = self.monotonic()
            if now >= self._bus_due:
                self._bus_due = now + BUS_POLL_SECONDS
                message = self.bus.receive(0)
                if message is not None:
                    return message
            if now >= deadline:
                return None
            wait = min(deadline, self._bus_due) - now
            ready = self._spin.spin(self._poll_now, self.monotonic) if self.may_spin() else None
            for fd, events in ready or self._poll.poll(wait):
                self._on_ready(fd, events)

    def send(self, connection_id: str, texts: list[str]) -> None:
        if not connection_id.startswith(CHANNEL_ID_PREFIX):
            self.bus.send(connection_id, texts)
            return
        peer = self._peers.get(connection_id)
        if peer is not None and peer.role == STREAM and texts:
            self._write(peer, b"".join(frame(MESSAGE, text.encode()) for text in texts))

    def send_observed(self, connection_id: str, texts: list[str]) -> None:
        self.bus.send_observed(connection_id, texts)

    def close_connection(self, connection_id: str, code: int) -> None:
        if not connection_id.startswith(CHANNEL_ID_PREFIX):
            self.bus.close_connection(connection_id, code)
            return
        peer = self._peers.get(connection_id)
        if peer is None:
            return
        self._write(peer, frame(CLOSE, str(code).encode()))
        peer.closing = True
        if not peer.outbox:
            self._drop(peer, detach=False)

    def reply(self, request_id: str, reply: Reply) -> None:
        if not request_id.startswith(CHANNEL_ID_PREFIX):
            self.bus.reply(request_id, reply)
            return
        peer = self._requests.pop(request_id, None)
        if peer is None:
            return  # its connection went away while the host worked on it
        headers = {**JSON_HEADERS, **(retry_after_of(reply) or {})}
        self._answer(peer, reply.status, reply.body, headers)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # a full pipe has woken it already
            self._wake_write.send(b"w")

    def serve_directly(self, handler: DirectHandler | None) -> None:
        self.bus.serve_directly(handler)

    def close(self, *, keep_inbox: bool = False) -> None:
        """Close every connection and the listener (the sandbox's socket), then the bus."""
        if not self._closed:
            self._closed = True
            for peer in list(self._peers.values()):
                self._close_socket(peer.sock)
            self._peers.clear()
            self._requests.clear()
            self._by_fd.clear()
            self._poll.close()
            for sock in (self._listener, self._wake_read, self._wake_write):
                sock.close()
        self.bus.close(keep_inbox=keep_inbox)

    # -- events from the selector -----------------------------------------------------------------

    def _on_ready(self, fd: int, events: int) -> None:
        peer = self._by_fd.get(fd)
        if peer is not None:
            if events & select.EPOLLOUT:
                self._flush(peer)
            if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR) and (
                    peer.name in self._peers):
                self._read(peer)
        elif fd == self._listener.fileno():
            self._accept()
        elif fd == self._wake_read.fileno():
            with contextlib.suppress(BlockingIOError, OSError):
                self._wake_read.recv(4096)
            self._bus_due = 0.0  # whoever woke us may have posted on the bus

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(self._peers) >= MAX_CONNECTIONS:
                sock.close()  # the shim sees a closed connection: a clear error, nothing held
                continue
            sock.setblocking(False)
            peer = _Peer(sock, f"{CHANNEL_ID_PREFIX}{next(self._ids)}")
            self._peers[peer.name] = peer
            self._by_fd[sock.fileno()] = peer
            self._poll.register(sock.fileno(), select.EPOLLIN)

    def _read(self, peer: _Peer) -> None:
        try:
            data = peer.sock.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(peer, detach=True)
            return
        try:
            frames = peer.buffer.feed(data)
        except ValueError:  # a frame over the limit: this connection ends, the session goes on
            self._drop(peer, detach=True)
            return
        for kind, payload in frames:
            if peer.name not in self._peers:
                return
            self._on_frame(peer, kind, payload)

    def _on_frame(self, peer: _Peer, kind: int, payload: bytes) -> None:
        if peer.role == STREAM and kind == MESSAGE:
            self._stream_message(peer, payload)
        elif kind == REQUEST and peer.role in (None, HTTP):
            peer.role = HTTP
            self._request(peer, payload)
        elif kind == OPEN_STREAM and peer.role is None:
            self._open_stream(peer, payload)
        else:  # CLOSE, or anything out of place: the connection ends
            self._drop(peer, detach=True)

    # -- the event stream -------------------------------------------------------------------------

    def _open_stream(self, peer: _Peer, payload: bytes) -> None:
        try:
            opening = json.loads(payload)
            target = str(opening["target"])
            header_cursor = opening.get("last_event_id")
        except (ValueError, TypeError, KeyError):
            self._deny(peer, 400, "malformed stream opening")
            return
        path, _, query = target.partition("?")
        if not path_allowed(path, self.prefix) or unquote(path) != self.prefix + "v1/ws":
            self._deny(peer, 403, "this path is outside the strategy's session")
            return
        query_cursor = [value for name, value in parse_qsl(query) if name == "last_event_id"]
        try:
            cursor = parse_last_event_id(
                header_cursor if isinstance(header_cursor, str) and header_cursor
                else (query_cursor[-1] if query_cursor else None))
        except TradingError as refusal:
            self._deny(peer, 403, refusal.message)
            return
        peer.role = STREAM
        self._write(peer, frame(ACCEPTED, b""))
        self._ready.append({"kind": "attach", "connection": peer.name, "last_event_id": cursor})

    def _stream_message(self, peer: _Peer, payload: bytes) -> None:
        try:
            message = parse_client_message(payload.decode())
        except UnicodeDecodeError:
            message = InvalidMessage("Invalid message: not UTF-8 text")
        except InvalidMessage as invalid:
            message = invalid
        if isinstance(message, EventAck):
            self._ready.append({"kind": "ack", "connection": peer.name,
                                "events": list(message.events_processed),
                                "correlation_id": message.correlation_id})
        elif isinstance(message, InvalidMessage):
            self._ready.append({"kind": "notice", "connection": peer.name,
                                "code": message.code, "message": message.message,
                                "details": message.details or None})

    def _deny(self, peer: _Peer, status: int, message: str) -> None:
        self._write(peer, frame(DENIED, json.dumps({"status": status,
                                                   "message": message}).encode()))
        peer.closing = True
        if not peer.outbox:
            self._drop(peer, detach=False)

    # -- REST -------------------------------------------------------------------------------------

    def _request(self, peer: _Peer, payload: bytes) -> None:
        peer.requests += 1
        head, _, body = payload.partition(b"\n")
        try:
            meta = json.loads(head)
            method, target = str(meta["method"]).lower(), str(meta["target"])
        except (ValueError, TypeError, KeyError):
            self._error(peer, 400, "INVALID_REQUEST", "Malformed request.")
            return
        path, _, query = target.partition("?")
        if not path_allowed(path, self.prefix):
            self._error(peer, 403, "FORBIDDEN", "This path is outside the strategy's session.")
            return
        route = match_route(unquote(path)[len(self.prefix):])
        if route is None:
            self._error(peer, 404, "NOT_FOUND", "No such route.")
            return
        op = route.ops.get(method)
        if op is None:
            self._error(peer, 405, "METHOD_NOT_ALLOWED", f'Method "{method.upper()}" not allowed.')
            return
        if op == HEALTH:
            self._answer(peer, 200, self.health(), JSON_HEADERS)
            return
        try:
            data = _json_body(body)
        except ValueError as problem:
            self._error(peer, 400, "INVALID_REQUEST", str(problem))
            return
        request_id = f"{peer.name}-{peer.requests}"
        self._requests[request_id] = peer
        self._ready.append({"kind": "command", "request": request_id, "op": op,
                            "path": route.params, "query": _query(query), "body": data or None})

    def _error(self, peer: _Peer, status: int, code: str, message: str) -> None:
        self._answer(peer, status, {"code": code, "message": message, "details": {}}, JSON_HEADERS)

    def _answer(self, peer: _Peer, status: int, body: Any, headers: dict[str, str]) -> None:
        if peer.name not in self._peers:
            return  # it went away while the host worked on its command
        head = json.dumps({"status": status, "headers": headers}).encode()
        self._write(peer, frame(RESPONSE, head + b"\n" + json.dumps(body).encode()))

    # -- writing ----------------------------------------------------------------------------------

    def _write(self, peer: _Peer, data: bytes) -> None:
        if peer.outbox:
            peer.outbox += data
        else:
            try:
                sent = peer.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._drop(peer, detach=True)
                return
            if sent == len(data):
                return
            peer.outbox += data[sent:]
            self._poll.modify(peer.sock.fileno(), select.EPOLLIN | select.EPOLLOUT)
        if len(peer.outbox) > MAX_OUTBOX_BYTES:  # it stopped reading: it loses the connection
            self._drop(peer, detach=True)

    def _flush(self, peer: _Peer) -> None:
        try:
            sent = peer.sock.send(peer.outbox)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(peer, detach=True)
            return
        del peer.outbox[:sent]
        if peer.outbox:
            return
        if peer.closing:
            self._drop(peer, detach=False)
        else:
            self._poll.modify(peer.sock.fileno(), select.EPOLLIN)

    def _drop(self, peer: _Peer, *, detach: bool) -> None:
        if self._peers.pop(peer.name, None) is None:
            return
        fd = peer.sock.fileno()
        if self._by_fd.pop(fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):
                self._poll.unregister(fd)
        self._close_socket(peer.sock)
        for request_id in [rid for rid, asker in self._requests.items() if asker is peer]:
            del self._requests[request_id]
        if detach and peer.role == STREAM:
            self._ready.append({"kind": "detach", "connection": peer.name})

    @staticmethod
    def _close_socket(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def _json_body(body: bytes) -> Any:
    """A request body as the Trading API's parser reads it (None when empty). Raises ValueError
    with the envelope's message for what is not JSON or nests too deep."""
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except RecursionError:
        data, too_deep = None, True
    except ValueError as error:  # also UnicodeDecodeError
        raise ValueError(f"JSON parse error - {error}") from None
    else:
        too_deep = nested_deeper_than(data)
    if too_deep:
        raise ValueError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def _query(text: str) -> dict[str, str]:
    """Query parameters as the views read them (a QueryDict's lists)."""
    values: dict[str, list[str]] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        values.setdefault(name, []).append(value)
    return command_query(values.items())


def session_prefix(session_id: object) -> str:
    """The base path of a session's Trading API, as the channel's requests carry it."""
    return f"/sessions/{session_id}/"

