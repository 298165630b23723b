"""The Redis backend of the session bus, against a real redis-server: the same SDK backtest as
the embedded test, with every frame, ack and command crossing Redis."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from functools import partial

import pytest
from asgiref.sync import sync_to_async

from tests.runtimes.conftest import ROWS, wait_for_state
from tests.runtimes.shell.test_backtest_end_to_end import sma_cross

in_thread = partial(sync_to_async, thread_sensitive=False)
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


@pytest.fixture(scope="module")
def redis_url():
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
    from runtimes import bus
    from runtimes.bus_redis import RedisBus

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
    from runtimes.bus import BusUnavailable

    with pytest.raises(BusUnavailable):
        redis_bus.request("no-such-session", {"op": "account"}, timeout=0.2)
