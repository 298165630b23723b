"""Hosts that survive, with real worker processes on PostgreSQL and Redis: a remote strategy (a raw
client) trades a `mock` session with client_order_ids; `kill -9` of its worker and the session
carries on on another within 30 s, every acknowledged order there exactly once and the stream
resuming with a `connection` frame; SIGTERM of a worker hands its session over at once.

Each test runs its own Celery worker processes on a queue of its own (the crash tests' Workers,
with their short leases: 3 s, renewed every second, a reaper every second). Runs where the suite
runs against PostgreSQL and Redis (.ci/run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections import Counter
from functools import partial

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from runtimes.hosting.survival import EVENT_ID_BLOCK
from tests.runtimes.conftest import ask_for_worker
from tests.runtimes.shell.test_crash_recovery import (  # noqa: F401 (fixtures)
    poll,
    web_process,
    workers,
)

in_thread = partial(sync_to_async, thread_sensitive=False)

pytestmark = [
    pytest.mark.ci_services,
    pytest.mark.skipif(
        settings.TOPOLOGY != "distributed",
        reason="needs DATABASE_URL and REDIS_URL (the second run of .ci/run)",
    ),
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(150),
]

TAKEOVER_LIMIT_S = 30  # the promise, with the default leases (docs/session-lifecycle.md)


@pytest.fixture
def mock_session(owner, workspace):
    def create():
        from runtimes.models import TradingSession

        session = TradingSession.objects.create(
            workspace=workspace, created_by=owner, platform="mock", symbols=["AAPL"],
            timeframe="1m", connect_timeout_s=60, options={"seed": 11, "quote_interval_ms": 100})
        return ask_for_worker(session)  # dispatched on the test's own queue

    return create


def wait_until_ready(pool, index: int, timeout: float = 30) -> None:
    """Until the test's worker number `index` answers a ping (it consumes its queues)."""
    from config.celery import app

    hostname = f"{pool.queue}-{index}@localhost"
    poll(lambda: app.control.ping(destination=[hostname], timeout=0.5), timeout=timeout,
         what=f"{hostname} answers")


def holder_pid(session_id) -> int | None:
    from runtimes.models import TradingSession

    row = TradingSession.objects.filter(pk=session_id, state="running").values(
        "lease_holder").first()
    return int(row["lease_holder"].split(":")[1]) if row and row["lease_holder"] else None


class Trader:
    """A raw remote strategy: keeps its socket open, reconnecting at once after a close with
    the last event id it saw (as the SDK does on a clean close, plus Last-Event-ID); submits
    orders with client_order_ids, retrying each until it is acknowledged (201)."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {key}"}
        self.frames: list[dict] = []
        self.closes: list[int | None] = []  # close codes of the sockets the server closed
        self.acknowledged: dict[str, str] = {}  # client_order_id -> order id
        self.reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def stop(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader

    async def _read(self) -> None:
        ws_url = f"{self.base_url.replace('http', 'ws', 1)}/v1/ws"
        while True:
            headers = dict(self.headers)
            if self.frames:
                headers["Last-Event-ID"] = self.frames[-1]["event_id"]
            try:
                async with connect(ws_url, additional_headers=headers, open_timeout=10) as ws:
                    async for text in ws:
                        self.frames.append(json.loads(text))
            except ConnectionClosed as closed:
                self.closes.append(None if closed.rcvd is None else closed.rcvd.code)
            else:
                self.closes.append(ws.close_code)

    async def wait_for(self, wanted, *, timeout: float) -> dict:
        """The first frame received that is `wanted`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = [f for f in self.frames if wanted(f)]
            if found:
                return found[0]
            assert self.reader is not None and not self.reader.done(), "the reader stopped"
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no wanted frame within {timeout} s (closes {self.closes}, last frames "
                    f"{[(f['type'], f['event_id']) for f in self.frames[-3:]]})")
            await asyncio.sleep(0.05)

    async def order(self, client_order_id: str, *, timeout: float = 40) -> str:
        body = {"symbol": "AAPL", "side": "buy", "quantity": "1", "order_type": "market",
                "client_order_id": client_order_id}
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, headers=self.headers,
                                     timeout=15) as rest:
            while True:
                try:
                    answer = await rest.post("/v1/orders", json=body)
                    if answer.status_code == 201:
                        self.acknowledged[client_order_id] = answer.json()["id"]
                        return answer.json()["id"]
                    assert answer.status_code == 503, answer.text  # moving: retry
                except httpx.TimeoutException:
                    pass
                assert time.monotonic() < deadline, f"{client_order_id} never acknowledged"
                await asyncio.sleep(0.2)

    async def every_order(self) -> list[dict]:
        """Each order of the session once: the open ones, then the ended ones; an order that
        ended between the two reads (a market order filling at the next tick) is in both, and
        counts once, as it ended."""
        async with httpx.AsyncClient(base_url=self.base_url, headers=self.headers) as rest:
            open_ = (await rest.get("/v1/orders")).json()
            done = (await rest.get("/v1/orders/history")).json()
        return list({order["id"]: order for order in open_ + done}.values())


def takeovers(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f["type"] == "connection" and f["event"] == "BROKER_RECONNECTED"]


async def test_kill_9_of_the_worker_of_a_mock_session_continues_on_another_with_every_order_once(
    workers, mock_session, trader_key, web_process  # noqa: F811 (the imported fixtures)
):
    first = workers.start()
    # Ready before the session is queued, so that it claims it at once: a queued session is
    # also claimed by whichever worker's periodic sweep comes first (the suite's shared one).
    await in_thread(wait_until_ready)(workers, 0)
    session = await in_thread(mock_session)()
    trader = Trader(f"{web_process.url}/sessions/{session.id}", trader_key)
    trader.start()
    await trader.wait_for(lambda f: f["type"] == "quote", timeout=30)
    assert await in_thread(holder_pid)(session.id) == first.pid
    for n in range(3):
        await trader.order(f"before-{n}")
    workers.start(with_beat=True)  # another worker, and the reaper
    await in_thread(wait_until_ready)(workers, 1)

    first.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    # Any other worker: the reaper's dispatch task goes to the queue every worker reads, the
    # suite's shared worker's too (in production: whichever worker is free).
    await in_thread(poll)(lambda: holder_pid(session.id) not in (None, first.pid),
                          timeout=TAKEOVER_LIMIT_S, what="another worker hosts the session")
    taken_over_in = time.monotonic() - killed_at
    connection = await trader.wait_for(lambda f: f["type"] == "connection", timeout=30)
    for n in range(2):
        await trader.order(f"after-{n}")
    assert await trader.order("before-1") == trader.acknowledged["before-1"]  # a retry: the same

    await trader.stop()

    assert taken_over_in < TAKEOVER_LIMIT_S
    assert trader.closes[0] == 1000  # its socket was told the session moved, and reconnected
    assert connection["event"] == "BROKER_RECONNECTED" and connection["broker"] == "mock"
    assert sorted(connection["reconciled"]["positions"]) == ["AAPL"]
    assert int(connection["event_id"].removeprefix("evt-")) > EVENT_ID_BLOCK  # after a gap
    ids = [int(f["event_id"].removeprefix("evt-")) for f in trader.frames]
    assert ids == sorted(set(ids))  # increasing, none twice
    orders = await trader.every_order()
    assert Counter(o["client_order_id"] for o in orders) == Counter(list(trader.acknowledged))
    assert {o["client_order_id"]: o["id"] for o in orders} == trader.acknowledged
    print(f"\ntakeover after kill -9: {taken_over_in:.1f} s")


async def test_sigterm_of_a_worker_hands_its_mock_session_to_another_at_once(
    workers, mock_session, trader_key, web_process  # noqa: F811 (the imported fixtures)
):
    first = workers.start()
    # Ready before the session is queued, so that it claims it at once: a queued session is
    # also claimed by whichever worker's periodic sweep comes first (the suite's shared one).
    await in_thread(wait_until_ready)(workers, 0)
    session = await in_thread(mock_session)()
    trader = Trader(f"{web_process.url}/sessions/{session.id}", trader_key)
    trader.start()
    await trader.wait_for(lambda f: f["type"] == "quote", timeout=30)
    await trader.order("before")
    workers.start()
    await in_thread(wait_until_ready)(workers, 1)

    first.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    await in_thread(poll)(lambda: holder_pid(session.id) not in (None, first.pid), timeout=10,
                          what="another worker hosts the session")
    handed_over_in = time.monotonic() - stopped_at
    connection = await trader.wait_for(
        lambda f: f["type"] == "connection" and f["event"] == "BROKER_RECONNECTED", timeout=20)
    await trader.order("after")
    await trader.stop()

    # At once: well before a lease (3 s here, 15 s by default) could have run out.
    assert handed_over_in < 3
    assert first.wait(timeout=15) == 0  # a warm shutdown: its host returned
    disconnecting = next(f for f in trader.frames if f["type"] == "connection")
    assert (disconnecting["event"], trader.closes[0]) == ("DISCONNECTING", 1000)
    assert connection["reconciled"]["positions"] == ["AAPL"]
    orders = await trader.every_order()
    assert sorted(o["client_order_id"] for o in orders) == ["after", "before"]
    print(f"\nhand-over after SIGTERM: {handed_over_in:.2f} s")
