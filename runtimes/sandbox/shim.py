"""Runs a hosted strategy inside its sandbox with the Trading API served over a local channel
instead of HTTP and a WebSocket: the unmodified `tektii` SDK's two transports (its
`httpx.AsyncClient` and `websockets.asyncio.client.connect`) are replaced, before the strategy's
file runs, by ones that speak a simple framing over a unix socket to the session's host.

Standard library at import (the platform imports this module for the framing); httpx, websockets
and tektii only once `install` runs, in the sandbox. Usage inside the sandbox:
    python -s shim.py SOCKET_PATH -- STRATEGY_FILE

The channel: each unix connection carries frames of a 4-byte big-endian payload length, one kind
byte and the payload. A connection's first frame says what it is: OPEN_STREAM (the event stream:
MESSAGE frames both ways, CLOSE from either side) or REQUEST (HTTP requests answered in order by
RESPONSE). Everything a strategy sends is checked by the host (runtimes/hosting/channel.py), as the
relay and the web tier check it on the WebSocket path: this side is a convenience, not a boundary.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

HEADER = struct.Struct("!IB")  # payload length, kind
OPEN_STREAM = ord("S")  # -> host: {"target": "/sessions/<id>/v1/ws?...", "last_event_id": ...}
ACCEPTED = ord("A")  # <- host: the stream is open
DENIED = ord("D")  # <- host: {"status": 403, "message": ...}, then the connection closes
MESSAGE = ord("M")  # both ways on a stream: one text frame (UTF-8)
CLOSE = ord("X")  # both ways on a stream: the close code as ASCII digits
REQUEST = ord("Q")  # -> host: JSON head {"method", "target"}, a newline, the body's bytes
RESPONSE = ord("P")  # <- host: JSON head {"status", "headers"}, a newline, the body's bytes

# The tektii versions whose transports this shim has been tested against (tests/runtimes/sandbox/
# test_shim.py). Another version fails at start with a sentence saying so, never silently wrong.
SUPPORTED_SDK_VERSIONS = frozenset({"1.9.1"})
FAILURE_PREFIX = "parity runtime: "  # how the runner recognises this shim's own refusal
SETUP_FAILED = 125


class AdaptiveSpin:
    """How long to busy-wait for the other side before blocking. A lock-step bar is a message
    each way; blocking on every one put the waiting process (or this VM's vCPU) to sleep and woke
    it on cold caches: both sides' Python ran at about half speed (measured: a hosted bar cost the
    host thread ~165 us where the same work in a loop took ~35). The budget doubles while spins
    catch the answer and halves when they do not; at nothing, it rests for RETRY_AFTER waits, so
    a loaded machine (answers slower than any budget) soon spins no more."""

    MAX_SECONDS = 0.0005
    START_SECONDS = 0.00005
    RETRY_AFTER = 256

    __slots__ = ("budget", "resting")

    def __init__(self) -> None:
        self.budget = self.START_SECONDS
        self.resting = 0

    def spin(self, attempt: Callable[[], Any], clock: Callable[[], float]) -> Any:
        """`attempt()` until it returns something truthy or the budget is spent (then None)."""
        if self.budget <= 0.0:
            self.resting -= 1
            if self.resting > 0:
                return None
            self.budget = self.START_SECONDS
        until = clock() + self.budget
        while True:
            found = attempt()
            if found:
                self.budget = min(self.MAX_SECONDS, self.budget * 2)
                return found
            if clock() >= until:
                break
        self.budget /= 2
        if self.budget < self.START_SECONDS / 4:
            self.budget, self.resting = 0.0, self.RETRY_AFTER
        return None


def frame(kind: int, payload: bytes) -> bytes:
    """One frame on the wire."""
    return HEADER.pack(len(payload), kind) + payload


class FrameBuffer:
    """Bytes in, whole frames out. `limit` bounds one payload: a larger announced length raises
    ValueError before anything is buffered for it."""

    __slots__ = ("_data", "limit")

    def __init__(self, limit: int) -> None:
        self._data = bytearray()
        self.limit = limit

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self._data
        buffer += data
        frames: list[tuple[int, bytes]] = []
        start, size = 0, len(buffer)
        while size - start >= HEADER.size:
            length, kind = HEADER.unpack_from(buffer, start)
            if length > self.limit:
                raise ValueError(f"a frame of {length} bytes is over the limit of {self.limit}")
            end = start + HEADER.size + length
            if end > size:
                break
            frames.append((kind, bytes(buffer[start + HEADER.size:end])))
            start = end
        if start:
            del buffer[:start]
        return frames

    @property
    def pending(self) -> int:
        return len(self._data)


# -- the sandbox side ---------------------------------------------------------------------------

MAX_INBOUND_FRAME = 64 << 20  # the host's answers: a bar history is the largest
READ_BYTES = 1 << 18


def install(socket_path: str) -> None:
    """Route the SDK's HTTP and WebSocket through the channel at `socket_path`. Exits the process
    with a FAILURE_PREFIX sentence when the SDK is not a version this shim knows."""
    import asyncio

    import httpx
    import tektii
    import websockets.asyncio.client
    import websockets.exceptions
    from websockets.datastructures import Headers
    from websockets.frames import Close
    from websockets.http11 import Response

    version = getattr(tektii, "__version__", "unknown")
    if version not in SUPPORTED_SDK_VERSIONS:
        known = ", ".join(sorted(SUPPORTED_SDK_VERSIONS))
        _refuse(f"the hosted runtime serves the tektii SDK {known} over its local channel; this "
                f"runtime has tektii {version}, which it has not been tested with")

    class Link:
        """One unix connection to the host (the event stream, or HTTP requests), read by the
        waiting coroutine itself rather than by a transport, so that it can busy-wait briefly
        for the next frame (AdaptiveSpin) before it yields to the loop."""

        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock
            self.frames: deque[tuple[int, bytes]] = deque()
            self.buffer = FrameBuffer(MAX_INBOUND_FRAME)
            self.lost = False
            self.waiting = AdaptiveSpin()

        def _read_now(self) -> bool:
            """Whatever the socket holds now, as frames; True once a frame or the end came."""
            try:
                data = self.sock.recv(READ_BYTES)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                data = b""
            self._take(data)
            return bool(self.frames) or self.lost

        def _take(self, data: bytes) -> None:
            if not data:
                self.lost = True
                return
            try:
                self.frames.extend(self.buffer.feed(data))
            except ValueError:
                self.close()

        async def next_frame(self) -> tuple[int, bytes] | None:
            while not self.frames:
                if self.lost:
                    return None
                if self._read_now() or self.waiting.spin(self._read_now, time.perf_counter):
                    continue
                self._take(await asyncio.get_running_loop().sock_recv(self.sock, READ_BYTES))
            return self.frames.popleft()

        async def send(self, kind: int, payload: bytes) -> None:
            if self.lost:
                raise ConnectionResetError("the channel to the platform is closed")
            data = frame(kind, payload)
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent < len(data):
                await asyncio.get_running_loop().sock_sendall(self.sock, data[sent:])

        def close(self) -> None:
            self.lost = True
            self.sock.close()

    async def open_link() -> Link:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, socket_path)
        except BaseException:
            sock.close()
            raise
        return Link(sock)

    def refused(status: int, message: str) -> Exception:
        # What a refused WebSocket handshake raises: the SDK stops retrying on 401/403.
        body = message.encode()
        return websockets.exceptions.InvalidStatus(
            Response(status, "Forbidden" if status == 403 else "Refused", Headers(), body))

    class ChannelWebSocket:
        """The event stream as the SDK uses a websockets ClientConnection."""

        def __init__(self, link: Link) -> None:
            self.link = link
            self.close_code: int | None = None

        def __aiter__(self) -> ChannelWebSocket:
            return self

        async def __anext__(self) -> str:
            try:
                return await self.recv()
            except websockets.exceptions.ConnectionClosedOK:
                raise StopAsyncIteration from None

        async def recv(self) -> str:
            found = await self.link.next_frame()
            if found is not None and found[0] == MESSAGE:
                return found[1].decode()
            if found is not None and found[0] == CLOSE:
                self.close_code = int(found[1] or b"1000")
                self.link.close()
                received = Close(self.close_code, "")
                if self.close_code == 1000:
                    raise websockets.exceptions.ConnectionClosedOK(received, None)
                raise websockets.exceptions.ConnectionClosedError(received, None)
            self.link.close()
            raise websockets.exceptions.ConnectionClosedError(None, None)

        async def send(self, message: str | bytes) -> None:
            try:
                await self.link.send(MESSAGE,
                                     message.encode() if isinstance(message, str) else message)
            except OSError:
                raise websockets.exceptions.ConnectionClosedError(None, None) from None

        async def close(self, code: int = 1000, reason: str = "") -> None:
            if not self.link.lost:
                with contextlib.suppress(OSError):
                    await self.link.send(CLOSE, str(code).encode())
            self.link.close()

    async def connect_stream(uri: str, additional_headers: Any = None) -> ChannelWebSocket:
        headers = {str(k).lower(): str(v) for k, v in dict(additional_headers or {}).items()}
        try:
            link = await open_link()
            opening = {"target": _target_of(uri), "last_event_id": headers.get("last-event-id")}
            await link.send(OPEN_STREAM, json.dumps(opening).encode())
        except OSError:
            # The host is gone (the session ended): as the platform refuses a reconnect then.
            raise refused(403, "the session has ended") from None
        answer = await link.next_frame()
        if answer is None or answer[0] != ACCEPTED:
            link.close()
            denial = json.loads(answer[1]) if answer is not None and answer[0] == DENIED else {}
            raise refused(int(denial.get("status", 403)), str(denial.get("message", "refused")))
        return ChannelWebSocket(link)

    class Connect:
        """`websockets.asyncio.client.connect(uri, ...)`: awaited, or used with `async with`."""

        def __init__(self, uri: str, *, additional_headers: Any = None, **_: Any) -> None:
            self.uri, self.headers = uri, additional_headers
            self.socket: ChannelWebSocket | None = None

        def __await__(self) -> Any:
            return connect_stream(self.uri, self.headers).__await__()

        async def __aenter__(self) -> ChannelWebSocket:
            self.socket = await connect_stream(self.uri, self.headers)
            return self.socket

        async def __aexit__(self, *exc: object) -> None:
            if self.socket is not None:
                await self.socket.close()

    class ChannelTransport(httpx.AsyncBaseTransport):
        """HTTP requests over the channel: one request at a time per connection, connections
        kept for the next request (concurrent requests open more, up to the host's limit)."""

        def __init__(self) -> None:
            self.idle: list[Link] = []

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            body = await request.aread()
            link = self.idle.pop() if self.idle else await self._open()
            head = {"method": request.method, "target": request.url.raw_path.decode("ascii")}
            try:
                await link.send(REQUEST, json.dumps(head).encode() + b"\n" + body)
            except OSError as error:
                raise httpx.ReadError(str(error), request=request) from None
            answer = await link.next_frame()
            if answer is None or answer[0] != RESPONSE:
                link.close()
                raise httpx.RemoteProtocolError("the platform closed the channel",
                                                request=request)
            self.idle.append(link)
            meta, _, content = answer[1].partition(b"\n")
            parsed = json.loads(meta)
            return httpx.Response(parsed["status"], headers=parsed["headers"], content=content,
                                  request=request)

        async def _open(self) -> Link:
            try:
                return await open_link()
            except OSError as error:
                raise httpx.ConnectError(f"the session's channel is closed: {error}") from None

        async def aclose(self) -> None:
            for link in self.idle:
                link.close()
            self.idle.clear()

    original_init = httpx.AsyncClient.__init__

    def client_init(self: httpx.AsyncClient, *args: Any, transport: Any = None,
                    **kwargs: Any) -> None:
        original_init(self, *args, transport=transport or ChannelTransport(), **kwargs)

    httpx.AsyncClient.__init__ = client_init  # type: ignore[method-assign]
    websockets.asyncio.client.connect = Connect  # type: ignore[assignment,misc]


def _target_of(uri: str) -> str:
    """The path and query of a ws:// URL, as a request line carries them."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _refuse(sentence: str) -> None:
    print(FAILURE_PREFIX + sentence, file=sys.stderr, flush=True)
    raise SystemExit(SETUP_FAILED)


def run(argv: list[str]) -> None:
    """Install the channel, then run the strategy's file as `python FILE` would."""
    if len(argv) != 3 or argv[1] != "--":
        _refuse("usage: shim.py SOCKET_PATH -- STRATEGY_FILE")
    socket_path, entry = argv[0], argv[2]
    if not os.path.exists(socket_path):
        _refuse(f"the channel {socket_path} is missing")
    install(socket_path)
    sys.argv = [entry]
    sys.path[0] = os.path.dirname(entry)
    runpy.run_path(entry, run_name="__main__")


if __name__ == "__main__":
    run(sys.argv[1:])

