"""The host side of the sandbox's only way out: a unix-socket relay that forwards HTTP (and
WebSocket) requests to the platform only under the run's own session path.

A connection arrives in one of two ways: the sandbox's forwarder passes the strategy's own TCP
connection over the unix socket (one byte, HANDOVER, with its descriptor), and the relay serves
that socket directly; or anything in the sandbox speaks HTTP on the unix socket itself. Both are
checked the same way; a passed descriptor must be a TCP stream socket, or the connection ends.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from dataclasses import dataclass
from urllib.parse import unquote

from runtimes.sandbox.spec import SessionTarget


class SessionRelay:
    """Accepts connections on a unix socket (bind-mounted into one sandbox) and forwards each
    HTTP request to the platform's TCP port only if its path is under the session's prefix;
    anything else gets 403 and a closed connection. After a WebSocket upgrade (101) bytes pass
    through untouched."""

    MAX_CONNECTIONS = 32

    def __init__(self, *, socket_path: str, target: SessionTarget) -> None:
        self.socket_path = socket_path
        self.target = target
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False

    def start(self, *, owner: tuple[int, int] | None = None) -> None:
        self._listener.bind(self.socket_path)
        os.chmod(self.socket_path, 0o600)
        if owner is not None:
            os.chown(self.socket_path, *owner)
        self._listener.listen(64)
        threading.Thread(target=self._accept_loop, name="sandbox-relay", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets = [self._listener, *self._sockets]
        for sock in sockets:
            # shutdown wakes threads blocked in accept/recv on it; close alone would not.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._track(client):
                _send_refusal(client, 503, "too many connections from this strategy")
                client.close()
                continue
            connection = _RelayConnection(self, client)
            threading.Thread(target=connection.run, name="sandbox-relay-conn", daemon=True).start()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._closed or len(self._sockets) >= 2 * self.MAX_CONNECTIONS:
                return False
            self._sockets.add(sock)
            return True

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            self._sockets.difference_update(socks)


def path_allowed(request_target: str, prefix: str) -> bool:
    """Whether an HTTP request target stays under `prefix`, raw and percent-decoded, with no
    dot segments ('..' would leave the prefix once a server normalises the path)."""
    if not request_target.startswith("/"):
        return False  # absolute-form ("http://other/"), authority-form, "*"
    path = request_target.split("?", 1)[0]
    if "#" in path or "\\" in path:
        return False
    decoded = unquote(path)
    if not (path.startswith(prefix) and decoded.startswith(prefix)):
        return False
    return not any(segment in (".", "..") for segment in decoded.split("/"))


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _Request:
    target: str
    content_length: int
    upgrade: bool


MAX_HEAD_BYTES = 32768


def parse_request_head(head: bytes) -> _Request:
    """The parts of an HTTP/1.x request head the relay decides on. Refuses anything whose
    framing two parsers could read differently (request smuggling): chunked bodies, repeated
    or malformed Content-Length, folded headers, stray CR/LF."""
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0") or not parts[0].isalpha():
        raise _BadRequest(400, "malformed request line")
    headers: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b"\r" in line or b"\n" in line:
            raise _BadRequest(400, "malformed header")
        headers.setdefault(name.lower(), []).append(value.strip())
    if b"transfer-encoding" in headers:
        raise _BadRequest(501, "chunked request bodies are not supported")
    lengths = headers.get(b"content-length", [b"0"])
    if len(lengths) != 1 or not lengths[0].isdigit():
        raise _BadRequest(400, "bad Content-Length")
    upgrade = b"websocket" in b",".join(headers.get(b"upgrade", [])).lower()
    return _Request(parts[1].decode("latin-1"), int(lengths[0]), upgrade)


HANDOVER = b"F"


class _RelayConnection:
    """One connection from the sandbox: requests are checked one by one (keep-alive), the
    platform's responses stream back on a second thread."""

    def __init__(self, relay: SessionRelay, client: socket.socket) -> None:
        self._relay = relay
        self._client = client
        self._upstream: socket.socket | None = None
        self._buffer = b""

    def run(self) -> None:
        replies = None
        try:
            self._take_handover()
            replies = self._serve()
        except _BadRequest as refusal:
            _send_refusal(self._client, refusal.status, str(refusal))
        except OSError:
            pass
        self._close(replies)

    def _serve(self) -> threading.Thread | None:
        replies = None
        while (head := self._read_head()) is not None:
            request = parse_request_head(head)
            if not path_allowed(request.target, self._relay.target.path_prefix):
                raise _BadRequest(403, "this path is outside the strategy's session")
            if request.upgrade:
                if self._upstream is not None:
                    raise _BadRequest(400, "a WebSocket upgrade must open its own connection")
                self._connect_upstream().sendall(head)
                return self._upgrade()
            if self._upstream is None:
                replies = _start_pump(self._connect_upstream(), self._client)
            self._upstream.sendall(head)
            self._copy_body(request.content_length)
        return replies

    def _take_handover(self) -> None:
        """Swap to the strategy's own connection if the forwarder passed it; else the bytes
        read are the start of the first request."""
        data, fds, _, _ = socket.recv_fds(self._client, 65536, 1)
        if not fds:
            self._buffer = data
            return
        passed = _stream_socket(fds[0])
        if data != HANDOVER or passed is None:
            if passed is not None:
                passed.close()
            raise OSError("not a connection handover")
        self._relay._forget(self._client)
        self._client.close()
        if not self._relay._track(passed):
            passed.close()
            raise OSError("relay closed")
        self._client = passed

    def _read_head(self) -> bytes | None:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise _BadRequest(431, "request head too large")
            chunk = self._client.recv(65536)
            if not chunk:
                return None
            self._buffer += chunk
        head, self._buffer = self._buffer[: end + 4], self._buffer[end + 4 :]
        return head

    def _copy_body(self, length: int) -> None:
        assert self._upstream is not None
        while length > 0:
            chunk = self._buffer[:length] or self._client.recv(min(length, 65536))
            if not chunk:
                raise OSError("client closed inside a request body")
            self._buffer = self._buffer[len(chunk) :]
            self._upstream.sendall(chunk)
            length -= len(chunk)

    def _upgrade(self) -> threading.Thread | None:
        # Bytes pass through only once the platform has agreed to switch protocols.
        assert self._upstream is not None
        response = b""
        while b"\r\n\r\n" not in response and len(response) < MAX_HEAD_BYTES:
            chunk = self._upstream.recv(65536)
            if not chunk:
                break
            response += chunk
        self._client.sendall(response)
        if not response.startswith((b"HTTP/1.1 101", b"HTTP/1.0 101")):
            return None
        replies = _start_pump(self._upstream, self._client)
        if self._buffer:
            self._upstream.sendall(self._buffer)
        _pump(self._client, self._upstream)
        return replies

    def _connect_upstream(self) -> socket.socket:
        target = self._relay.target
        upstream = socket.create_connection((target.host, target.port), timeout=10)
        upstream.settimeout(None)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not self._relay._track(upstream):
            upstream.close()
            raise OSError("relay closed")
        self._upstream = upstream
        return upstream

    def _close(self, replies: threading.Thread | None) -> None:
        if replies is not None and self._upstream is not None:
            # The strategy finished sending; let the last response through before closing.
            with contextlib.suppress(OSError):
                self._upstream.shutdown(socket.SHUT_WR)
            replies.join(timeout=30)
        for sock in (self._client, self._upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                self._relay._forget(sock)


def _stream_socket(fd: int) -> socket.socket | None:
    """The passed descriptor as a TCP socket, or None (closed) when it is anything else."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        os.close(fd)
        return None
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        return sock
    sock.close()
    return None


def _start_pump(source: socket.socket, sink: socket.socket) -> threading.Thread:
    thread = threading.Thread(target=_pump, args=(source, sink), daemon=True)
    thread.start()
    return thread


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    503: "Service Unavailable",
}


def _send_refusal(client: socket.socket, status: int, message: str) -> None:
    body = f"parity sandbox relay: {message}\n".encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with contextlib.suppress(OSError):
        client.sendall(head + body)
