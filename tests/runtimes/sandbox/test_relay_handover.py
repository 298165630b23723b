"""The relay's two ways in, without a sandbox: a connection handed over by the forwarder (its
descriptor passed over the unix socket) is served like one spoken on the socket itself, with the
same path check; a passed descriptor that is not a TCP socket ends the connection."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runtimes.sandbox.relay import HANDOVER, SessionRelay
from runtimes.sandbox.runner import SessionTarget

SESSION = "/sessions/3f1c2b9e-0000-4000-8000-000000000002/"


class _Platform(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def relay() -> Iterator[SessionRelay]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Platform)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Platform.seen.clear()
    directory = tempfile.mkdtemp(prefix="parity-relay-")
    relay = SessionRelay(socket_path=str(Path(directory) / "relay.sock"), target=SessionTarget(
        host="127.0.0.1", port=server.server_address[1], path_prefix=SESSION))
    relay.start()
    yield relay
    relay.close()
    server.shutdown()


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        near = socket.create_connection(listener.getsockname())
        far, _ = listener.accept()
    return near, far


def _hand_over(relay: SessionRelay, fd: int, marker: bytes = HANDOVER) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as control:
        control.connect(relay.socket_path)
        socket.send_fds(control, [marker], [fd])


def _status_and_body(conn: socket.socket, request_target: str) -> tuple[str, bytes]:
    conn.settimeout(5)
    conn.sendall(f"GET {request_target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += conn.recv(4096)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += conn.recv(4096)
    return head.split(b"\r\n")[0].decode(), body


def test_a_handed_over_connection_is_served_under_the_session_path(relay):
    near, far = _tcp_pair()
    _hand_over(relay, far.fileno())
    far.close()  # the relay holds its own copy
    with near:
        assert _status_and_body(near, f"{SESSION}v1/account") == (
            "HTTP/1.1 200 OK", json.dumps({"path": f"{SESSION}v1/account"}).encode())
        assert _status_and_body(near, "/sessions/another/v1/account")[0] == (
            "HTTP/1.1 403 Forbidden")
    assert _Platform.seen == [f"{SESSION}v1/account"]


def test_a_passed_descriptor_that_is_not_a_tcp_socket_ends_the_connection(relay):
    read_end, write_end = os.pipe()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as control:
            control.connect(relay.socket_path)
            socket.send_fds(control, [HANDOVER], [read_end])
            control.settimeout(5)
            assert control.recv(4096) == b""  # closed without a word
    finally:
        os.close(read_end)
        os.close(write_end)
    assert _Platform.seen == []


def test_http_spoken_on_the_unix_socket_itself_is_served_as_before(relay):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(relay.socket_path)
        assert _status_and_body(conn, f"{SESSION}health")[0] == "HTTP/1.1 200 OK"
    assert _Platform.seen == [f"{SESSION}health"]
