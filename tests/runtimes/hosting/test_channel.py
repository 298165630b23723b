"""The host's side of the local channel (runtimes/hosting/channel.py) against raw sockets that
speak its framing, honest and hostile: streams, acks, REST routes and their envelopes, the
session's own paths only, bounded frames, connections and outboxes, and the bus beside it."""

from __future__ import annotations

import json
import socket
import struct
import threading
from pathlib import Path

import pytest

from runtimes.hosting import channel as channel_module
from runtimes.hosting.bus import Reply
from runtimes.hosting.channel import MAX_CONNECTIONS, StrategyChannel
from runtimes.sandbox.shim import (
    ACCEPTED,
    CLOSE,
    DENIED,
    HEADER,
    MESSAGE,
    OPEN_STREAM,
    REQUEST,
    RESPONSE,
    FrameBuffer,
    frame,
)

PREFIX = "/sessions/3f0c1a52-0000-4000-8000-000000000001/"
HEALTH = {"status": "connected", "version": "test", "git_sha": "x", "providers": []}
ACK = {"type": "event_ack", "correlation_id": "c-1", "events_processed": ["evt-1"],
       "timestamp": 1}


class FakeBus:
    """The session's bus endpoint as the channel sees it: a list of messages to hand out, and a
    record of what was delegated to it."""

    def __init__(self) -> None:
        self.inbox: list[dict] = []
        self.calls: list[tuple] = []

    def receive(self, timeout: float, *, precise: bool = False):
        return self.inbox.pop(0) if self.inbox else None

    def send(self, connection_id, texts):
        self.calls.append(("send", connection_id, texts))

    def send_observed(self, connection_id, texts):
        self.calls.append(("send_observed", connection_id, texts))

    def close_connection(self, connection_id, code):
        self.calls.append(("close_connection", connection_id, code))

    def reply(self, request_id, reply):
        self.calls.append(("reply", request_id, reply))

    def wake(self):
        self.calls.append(("wake",))

    def serve_directly(self, handler):
        self.calls.append(("serve_directly", handler))

    def close(self, *, keep_inbox=False):
        self.calls.append(("close", keep_inbox))


@pytest.fixture(autouse=True)
def _forget_received():
    yield
    RECEIVED.clear()


@pytest.fixture
def bus() -> FakeBus:
    return FakeBus()


@pytest.fixture
def socket_path(tmp_path: Path) -> str:
    return str(tmp_path / "platform.sock")


@pytest.fixture
def channel(bus, socket_path):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    served = StrategyChannel(bus, listener, session_prefix=PREFIX, health=lambda: HEALTH)
    yield served
    served.close()


class Client:
    """The sandbox's end of one connection, blocking, speaking the framing."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.settimeout(5)
        self.buffer = FrameBuffer(64 << 20)
        self.frames: list[tuple[int, bytes]] = []

    def send(self, kind: int, payload: bytes) -> None:
        self.sock.sendall(frame(kind, payload))

    def next(self, channel: StrategyChannel) -> tuple[int, bytes] | None:
        """The next frame, letting the channel work meanwhile (what it hands the host waits in
        RECEIVED); None once the host closed."""
        while not self.frames:
            message = channel.receive(0.05)
            if message is not None:
                RECEIVED.setdefault(id(channel), []).append(message)
            self.sock.settimeout(0.05)
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                continue
            if not data:
                return None
            self.frames.extend(self.buffer.feed(data))
        return self.frames.pop(0)

    def request(self, channel, method: str, target: str, body: bytes = b""):
        self.send(REQUEST, json.dumps({"method": method, "target": target}).encode() + b"\n"
                  + body)

    def answer(self, channel) -> tuple[int, dict, object]:
        kind, payload = self.next(channel)
        assert kind == RESPONSE
        head, _, body = payload.partition(b"\n")
        meta = json.loads(head)
        return meta["status"], meta["headers"], json.loads(body)


RECEIVED: dict[int, list[dict]] = {}  # what the channel handed the host while a client waited


def messages(channel: StrategyChannel, count: int) -> list[dict]:
    """Up to `count` messages for the host (waiting a moment for each, so that an expected
    absence is seen as one)."""
    found = RECEIVED.pop(id(channel), [])
    idle = 0
    while len(found) < count and idle < 30:
        message = channel.receive(0.01)
        idle = 0 if message is not None else idle + 1
        if message is not None:
            found.append(message)
    return found


def open_stream(channel, socket_path, *, target=PREFIX + "v1/ws", cursor=None) -> Client:
    client = Client(socket_path)
    client.send(OPEN_STREAM, json.dumps({"target": target, "last_event_id": cursor}).encode())
    return client


# -- the event stream -----------------------------------------------------------------------------


def test_a_stream_attaches_with_its_cursor_acks_reach_the_host_and_frames_come_back(
        channel, socket_path):
    client = open_stream(channel, socket_path, cursor="evt-7")

    assert client.next(channel) == (ACCEPTED, b"")
    [attach] = messages(channel, 1)
    assert attach == {"kind": "attach", "connection": "chan-1", "last_event_id": "evt-7"}
    client.send(MESSAGE, json.dumps(ACK).encode())
    client.send(MESSAGE, b'{"type":"pong"}')
    client.send(MESSAGE, b"not json")
    assert messages(channel, 2) == [
        {"kind": "ack", "connection": "chan-1", "events": ["evt-1"], "correlation_id": "c-1"},
        {"kind": "notice", "connection": "chan-1", "code": "INVALID_MESSAGE",
         "message": "message is not valid JSON", "details": None},
    ]
    channel.send("chan-1", ['{"a":1}', '{"b":2}'])
    assert [client.next(channel), client.next(channel)] == [(MESSAGE, b'{"a":1}'),
                                                             (MESSAGE, b'{"b":2}')]
    channel.close_connection("chan-1", 1000)
    assert client.next(channel) == (CLOSE, b"1000")
    assert client.next(channel) is None


def test_a_stream_that_ends_detaches_and_the_cursor_may_come_in_the_query(channel, socket_path):
    client = open_stream(channel, socket_path, target=PREFIX + "v1/ws?last_event_id=evt-3")
    assert client.next(channel) == (ACCEPTED, b"")
    client.sock.close()

    assert messages(channel, 2) == [
        {"kind": "attach", "connection": "chan-1", "last_event_id": "evt-3"},
        {"kind": "detach", "connection": "chan-1"},
    ]


@pytest.mark.parametrize(("target", "cursor", "status"), [
    ("/sessions/another/v1/ws", None, 403),
    (PREFIX + "v1/account", None, 403),
    (PREFIX + "v1/../v1/ws", None, 403),
    (PREFIX + "v1/ws", "not-an-id", 403),
])
def test_a_stream_outside_the_session_or_with_a_bad_cursor_is_denied(
        channel, socket_path, target, cursor, status):
    client = open_stream(channel, socket_path, target=target, cursor=cursor)

    kind, payload = client.next(channel)
    assert (kind, json.loads(payload)["status"]) == (DENIED, status)
    assert client.next(channel) is None
    assert messages(channel, 1) == []


# -- REST -----------------------------------------------------------------------------------------


def test_a_request_becomes_the_command_the_web_tier_would_post_and_its_reply_comes_back(
        channel, socket_path):
    client = Client(socket_path)
    body = b'{"symbol":"BTCUSDT","side":"buy","order_type":"market","quantity":"1"}'
    client.request(channel, "POST", PREFIX + "v1/orders", body)
    [command] = messages(channel, 1)
    assert command == {"kind": "command", "request": "chan-1-1", "op": "submit_order", "path": {},
                       "query": {}, "body": json.loads(body)}

    channel.reply("chan-1-1", Reply(429, {"code": "RATE_LIMITED", "message": "slow down",
                                        "details": {"retry_after_seconds": 3}}))
    status, headers, answer = client.answer(channel)
    assert (status, headers) == (429, {"content-type": "application/json", "Retry-After": "3"})
    assert answer["code"] == "RATE_LIMITED"


def test_path_and_query_parameters_are_read_as_the_views_read_them(channel, socket_path):
    client = Client(socket_path)
    client.request(channel, "GET",
                   PREFIX + "v1/orders/abc%2Fdef?status=OPEN&status=FILLED&symbol=A&symbol=B")
    client.request(channel, "DELETE", PREFIX + "v1/positions?symbol=BTCUSDT")

    first, second = messages(channel, 2)
    assert (first["op"], first["path"], first["query"]) == (
        "get_order", {"order_id": "abc/def"}, {"status": "OPEN,FILLED", "symbol": "B"})
    assert (second["op"], second["query"], second["body"]) == (
        "close_all_positions", {"symbol": "BTCUSDT"}, None)


@pytest.mark.parametrize(("method", "target", "body", "status", "code"), [
    ("GET", "/sessions/another/v1/account", b"", 403, "FORBIDDEN"),
    ("GET", PREFIX + "v1/%2e%2e/%2e%2e/other/v1/account", b"", 403, "FORBIDDEN"),
    ("GET", "http://elsewhere" + PREFIX + "v1/account", b"", 403, "FORBIDDEN"),
    ("GET", PREFIX + "v1/nothing", b"", 404, "NOT_FOUND"),
    ("PUT", PREFIX + "v1/account", b"", 405, "METHOD_NOT_ALLOWED"),
    ("POST", PREFIX + "v1/orders", b"{not json", 400, "INVALID_REQUEST"),
    ("POST", PREFIX + "v1/orders", b"[" * 40 + b"]" * 40, 400, "INVALID_REQUEST"),
    ("POST", PREFIX + "v1/orders", b"[" * 100_000, 400, "INVALID_REQUEST"),
])
def test_what_the_web_tier_refuses_the_channel_refuses_with_the_same_envelope(
        channel, socket_path, method, target, body, status, code):
    client = Client(socket_path)
    client.request(channel, method, target, body)

    answer_status, _, answer = client.answer(channel)
    assert (answer_status, answer["code"]) == (status, code)
    assert messages(channel, 1) == []  # nothing reached the host


def test_health_is_answered_by_the_channel_and_a_malformed_head_is_a_400(channel, socket_path):
    client = Client(socket_path)
    client.request(channel, "GET", PREFIX + "health")
    assert client.answer(channel) == (200, {"content-type": "application/json"}, HEALTH)

    client.send(REQUEST, b"no head at all")
    status, _, answer = client.answer(channel)
    assert (status, answer["code"]) == (400, "INVALID_REQUEST")


def test_a_reply_for_a_connection_that_went_away_is_dropped(channel, socket_path):
    client = Client(socket_path)
    client.request(channel, "GET", PREFIX + "v1/account")
    [command] = messages(channel, 1)
    client.sock.close()
    messages(channel, 1)  # the channel sees the close

    channel.reply(command["request"], Reply(200, {}))  # neither raises nor reaches the bus
    assert [call for call in channel.bus.calls if call[0] == "reply"] == []


# -- bounds ---------------------------------------------------------------------------------------


def test_a_frame_over_the_limit_ends_that_connection_only(channel, socket_path):
    client = open_stream(channel, socket_path)
    assert client.next(channel) == (ACCEPTED, b"")
    client.sock.sendall(HEADER.pack(channel_module.MAX_FRAME_BYTES + 1, MESSAGE))

    assert messages(channel, 2)[-1] == {"kind": "detach", "connection": "chan-1"}
    assert client.next(channel) is None
    other = Client(socket_path)
    other.request(channel, "GET", PREFIX + "health")
    assert other.answer(channel)[0] == 200


def test_connections_past_the_limit_are_closed_at_once(channel, socket_path):
    clients = [Client(socket_path) for _ in range(MAX_CONNECTIONS)]
    messages(channel, 1)  # accepts them all
    extra = Client(socket_path)

    assert extra.next(channel) is None
    clients[0].request(channel, "GET", PREFIX + "health")
    assert clients[0].answer(channel)[0] == 200


def test_a_strategy_that_stops_reading_loses_its_stream_not_the_hosts_memory(
        channel, socket_path, monkeypatch):
    monkeypatch.setattr(channel_module, "MAX_OUTBOX_BYTES", 1 << 20)
    client = open_stream(channel, socket_path)
    assert client.next(channel) == (ACCEPTED, b"")
    messages(channel, 1)
    text = "x" * 60_000

    for _ in range(200):  # 12 MB, never read
        channel.send("chan-1", [text])
        if "chan-1" not in channel._peers:
            break
    assert "chan-1" not in channel._peers
    assert messages(channel, 1) == [{"kind": "detach", "connection": "chan-1"}]


# -- beside the bus -------------------------------------------------------------------------------


def test_the_bus_brings_what_the_channel_does_not_and_gets_what_is_not_the_channels(
        channel, bus):
    bus.inbox.append({"kind": "cancel", "reason": "changed my mind"})

    assert channel.receive(0.05) == {"kind": "cancel", "reason": "changed my mind"}
    channel.send("conn-9", ["frame"])
    channel.send_observed("obs-1", ["frame"])
    channel.reply("req-1", Reply(200, {}))
    channel.close_connection("conn-9", 1000)
    assert bus.calls == [("send", "conn-9", ["frame"]), ("send_observed", "obs-1", ["frame"]),
                         ("reply", "req-1", Reply(200, {})),
                         ("close_connection", "conn-9", 1000)]


def test_wake_ends_a_blocking_receive_and_close_closes_the_socket_and_the_bus(
        channel, bus, socket_path):
    waker = threading.Timer(0.1, channel.wake)
    waker.start()

    assert channel.receive(10.0) is None  # woken, then nothing on the bus: not ten seconds
    channel.close(keep_inbox=True)
    assert bus.calls[-1] == ("close", True)
    with pytest.raises(OSError):
        Client(socket_path)


def test_frames_split_anywhere_are_reassembled_and_lengths_are_big_endian():
    buffer = FrameBuffer(16)
    data = frame(MESSAGE, b"hello") + frame(CLOSE, b"1000")

    assert [buffer.feed(data[i:i + 1]) for i in range(len(data))][-1] == [(CLOSE, b"1000")]
    assert data[:5] == struct.pack("!IB", 5, MESSAGE)
    with pytest.raises(ValueError, match="over the limit of 16"):
        buffer.feed(HEADER.pack(17, MESSAGE))
