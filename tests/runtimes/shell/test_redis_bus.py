"""The Redis backend of the session bus, against a real redis-server: the same SDK backtest as
the embedded test, with every frame, ack and command crossing Redis."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from functools import partial

import pytest
from asgiref.sync import sync_to_async

from tests.runtimes.conftest import ROWS, wait_for_state
from tests.runtimes.shell.test_backtest_end_to_end import sma_cross

in_thread = partial(sync_to_async, thread_sensitive=False)
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(60),
]


@pytest.fixture(scope="module")
def redis_url():
    """The configured Redis when there is one: a separate worker process (distributed topology)
    hosts the session over REDIS_URL's bus, so the test must use that server too."""
    from django.conf import settings

    if settings.REDIS_URL:
        yield settings.REDIS_URL
        return
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server or REDIS_URL")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(5)


@pytest.fixture
def redis_bus(redis_url, monkeypatch):
    from runtimes.hosting import bus
    from runtimes.hosting.bus_redis import RedisBus

    monkeypatch.setattr(bus, "_bus", RedisBus(redis_url))
    return bus._bus


async def test_sdk_backtest_completes_over_the_redis_bus(
    redis_bus, daphne_url, start_backtest, trader_key
):
    session = await in_thread(start_backtest)()
    seen = await sma_cross(f"{daphne_url}/sessions/{session.id}", trader_key)
    session = await in_thread(wait_for_state)(session, {"completed", "failed"})
    assert (session.state, session.failure_reason) == ("completed", "")
    assert seen["candles"] == ROWS and len(seen["complete"]) == 1 and seen["orders"]
    assert session.events_sent == session.events_acked


def test_a_command_nobody_answers_raises_bus_unavailable(redis_bus):
    from runtimes.hosting.bus import BusUnavailable

    with pytest.raises(BusUnavailable):
        redis_bus.request("no-such-session", {"op": "account"}, timeout=0.2)


def _session_id() -> str:
    return f"test-{uuid.uuid4().hex}"  # the configured Redis may be shared with other runs


async def test_a_batch_of_frames_reaches_the_socket_as_sent_then_the_close(redis_bus):
    received: list[tuple[list[str], int | None]] = []
    closed = asyncio.Event()

    def sink(texts: list[str], close_code: int | None) -> None:
        received.append((texts, close_code))
        if close_code is not None:
            closed.set()

    session_id = _session_id()
    connection = redis_bus.connect(session_id, sink, last_event_id="evt-3")
    host = redis_bus.host(session_id)
    try:
        attach = await in_thread(host.receive)(2)
        assert attach == {"kind": "attach", "connection": connection, "last_event_id": "evt-3"}
        host.send(connection, ['{"a":1}', '{"b":"x\\ny"}'])
        host.close_connection(connection, 1000)
        await asyncio.wait_for(closed.wait(), 5)
    finally:
        host.close()
        await redis_bus.aclose()
    assert received == [(['{"a":1}', '{"b":"x\\ny"}'], None), ([], 1000)]


async def test_an_async_request_gets_the_hosts_reply(redis_bus):
    from runtimes.hosting.bus import Reply

    session_id = _session_id()
    host = redis_bus.host(session_id)

    def answer() -> dict:
        command = host.receive(5)
        host.reply(command["request"], Reply(201, {"id": "o-1"}))
        return command

    try:
        served = asyncio.ensure_future(in_thread(answer)())
        reply = await redis_bus.arequest(session_id, {"op": "submit_order"}, timeout=5)
        command = await served
    finally:
        host.close()
        await redis_bus.aclose()
    assert reply == Reply(201, {"id": "o-1"})
    assert (command["kind"], command["op"]) == ("command", "submit_order")


def test_blocking_clients_never_time_out_before_their_blpop():
    from runtimes.hosting.bus_redis import BLOCKING_CLIENT

    assert BLOCKING_CLIENT["socket_timeout"] is None


async def test_messages_posted_on_an_event_loop_reach_the_host_in_order(redis_bus):
    session_id = _session_id()
    connection = redis_bus.connect(session_id, lambda texts, code: None, last_event_id=None)
    host = redis_bus.host(session_id)
    for n in (1, 2):
        redis_bus.post(session_id, {"kind": "ack", "connection": connection,
                                    "events": [f"evt-{n}"]})
    redis_bus.post(session_id, {"kind": "detach", "connection": connection})
    try:
        received = [await in_thread(host.receive)(2) for _ in range(4)]
    finally:
        host.close()
        await redis_bus.aclose()
    assert [(m["kind"], m.get("events")) for m in received] == [
        ("attach", None), ("ack", ["evt-1"]), ("ack", ["evt-2"]), ("detach", None)]


async def test_an_awaited_post_keeps_its_place_behind_what_the_poster_still_holds(redis_bus):
    session_id = _session_id()
    connection = redis_bus.connect(session_id, lambda texts, code: None, last_event_id=None)
    host = redis_bus.host(session_id)
    # The attach is still in the poster's hands: this ack queues behind it...
    await redis_bus.apost(session_id, {"kind": "ack", "connection": connection,
                                       "events": ["evt-1"]})
    await redis_bus._posters[asyncio.get_running_loop()].drained()
    # ...and once the poster is idle, one is pushed in place, before `apost` returns.
    await redis_bus.apost(session_id, {"kind": "ack", "connection": connection,
                                       "events": ["evt-2"]})
    try:
        received = [await in_thread(host.receive)(2) for _ in range(3)]
    finally:
        host.close()
        await redis_bus.aclose()
    assert [(m["kind"], m.get("events")) for m in received] == [
        ("attach", None), ("ack", ["evt-1"]), ("ack", ["evt-2"])]


def test_a_hosts_wait_ends_at_its_deadline_not_at_the_servers_next_timer_tick(redis_bus):
    # Redis ends a BLPOP on its own timer (100 ms at the default hz of 10) and takes 0 as
    # "forever": a host due in 20 ms would tick up to 100 ms late, one due now never.
    host = redis_bus.host(_session_id())
    try:
        started = time.monotonic()
        assert host.receive(0) is None
        assert host.receive(0.02, precise=True) is None
        waited = time.monotonic() - started
        redis_bus.post(host._session_id, {"kind": "cancel", "reason": ""})
        assert host.receive(0.02, precise=True) == {"kind": "cancel", "reason": ""}
    finally:
        host.close()
    assert 0.02 <= waited < 0.09
