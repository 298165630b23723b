"""`kill -9` in the production topology: of the worker hosting a backtest (the session fails
within 30 s with where it was lost, its journal holds every frame sent up to a second before,
and its socket is refused), and of the web process serving its socket (the strategy resumes on
another with Last-Event-ID and the run completes with no gap and no order executed twice).

Each test runs its own Celery worker processes on a queue of its own, so a kill hits the one
hosting the session. Runs where the suite runs against PostgreSQL and Redis (.ci/run).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from runtimes.sandbox.runner import probe_bubblewrap
from tests.plugins.celery_worker import _test_database_url
from tests.runtimes.conftest import ROWS, ask_for_worker, new_backtest_session, wait_for_state
from tests.runtimes.shell.test_distributed_topology import ROOT, DaphneProcess, start_daphne

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

# Short leases, so that a lost host is noticed in seconds (the defaults allow 15 s + 5 s).
LEASES = {
    "SESSION_LEASE_SECONDS": "3",
    "SESSION_LEASE_RENEW_SECONDS": "1",
    "SESSION_REAPER_INTERVAL_SECONDS": "1",
}
ORDER_EVERY = 40  # candles between two orders of the strategy
STOP_AT = 100  # the candle at which the strategy stops acking (and the test kills a process)


class Workers:
    """Celery worker processes of one test, on a queue of its own; all stopped at the end."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir  # where the test's uploads are (tests/conftest.py)
        self.internal_url = ""  # where hosted strategies reach the platform (a web process)
        self.queue = f"crash-{uuid.uuid4().hex[:8]}"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.settings: dict[str, str] = {}  # more environment of the worker processes

    def start(self, *, with_beat: bool = False) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            **LEASES,
            "DATABASE_URL": _test_database_url(),
            "PARITY_DATA_DIR": str(self.data_dir),
            "PLATFORM_INTERNAL_URL": self.internal_url,
            **self.settings,
        }
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "-Q",
            f"{self.queue},celery",
            "--hostname",
            f"{self.queue}-{len(self.processes)}@localhost",
        ]
        if with_beat:  # the beat schedule holds the reaper; its scheduler is the test database
            command.append("--beat")
        process = subprocess.Popen(command, cwd=ROOT, env=env)
        self.processes.append(process)
        return process

    async def kill_the_first_and_await_the_reaper(self, session):
        """`kill -9` of the first worker, then a replacement with beat (the reaper); the session
        once it has ended, which must be within 30 s of the kill."""
        self.processes[0].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        self.start(with_beat=True)
        session = await in_thread(wait_for_state)(session, {"failed", "completed", "cancelled"}, 30)
        assert time.monotonic() - killed_at < 30
        return session

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def workers(monkeypatch, tmp_path) -> Iterator[Workers]:
    """Sessions created in the test are hosted on its own queue (not the shared test worker)."""
    import runtimes.tasks

    pool = Workers(tmp_path)
    task = runtimes.tasks.run_next_session

    class OnOwnQueue:
        @staticmethod
        def delay() -> None:  # a dispatch task: whoever runs it claims the fairest session
            task.apply_async(queue=pool.queue)

    monkeypatch.setattr(runtimes.tasks, "run_next_session", OnOwnQueue)
    yield pool
    pool.stop_all()


@pytest.fixture
def web_process(django_db_setup) -> Iterator[DaphneProcess]:
    web = start_daphne()
    yield web
    web.stop()


@pytest.fixture
def new_session(owner, workspace, dataset):
    def create():
        session = new_backtest_session(
            workspace, owner, dataset, connect_timeout_s=60, idle_timeout_s=60
        )
        # Queued from here, so its dispatch task goes to the test's own queue: the strategy's
        # first contact would queue it from the web process, onto the queue every worker reads.
        ask_for_worker(session)
        return session

    return create


class Strategy:
    """A raw WebSocket strategy: acks every frame once handled, buys and sells every
    ORDER_EVERY candles over REST, and can stop before acking a given candle."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.frames: list[str] = []  # every text received, replays included
        self.handled: list[str] = []  # event ids handled (acked), each once
        self.orders: list[str] = []  # ids of the orders it submitted
        self.candles = 0

    async def run(self, base_url: str, *, stop_at: int | None = None) -> str:
        """Stream until the backtest completes ("complete") or the candle `stop_at` arrives
        ("stopped", not acked); resumes after the last handled event."""
        headers = {"Authorization": f"Bearer {self.key}"}
        if self.handled:
            headers["Last-Event-ID"] = self.handled[-1]
        ws_url = f"{base_url.replace('http', 'ws', 1)}/v1/ws"
        async with (
            httpx.AsyncClient(base_url=base_url, headers=headers) as rest,
            connect(ws_url, additional_headers=headers, open_timeout=10) as ws,
        ):
            while True:
                text = await asyncio.wait_for(ws.recv(), 20)
                self.frames.append(text)
                frame = json.loads(text)
                event_id = frame.get("event_id")
                if event_id is None or event_id in self.handled:
                    continue
                if frame["type"] == "candle":
                    if self.candles + 1 == stop_at:
                        return "stopped"
                    self.candles += 1
                    if self.candles % ORDER_EVERY == 0:
                        await self._order(rest, "buy" if len(self.orders) % 2 == 0 else "sell")
                self.handled.append(event_id)
                await ws.send(
                    json.dumps(
                        {
                            "type": "event_ack",
                            "correlation_id": event_id,
                            "events_processed": [event_id],
                            "timestamp": 0,
                        }
                    )
                )
                if frame["type"] == "backtest_complete":  # as the SDK: until the host closes
                    await asyncio.wait_for(ws.wait_closed(), 20)
                    return "complete"

    async def _order(self, rest: httpx.AsyncClient, side: str) -> None:
        answer = await rest.post(
            "/v1/orders",
            json={"symbol": "BTCUSDT", "side": side, "quantity": "0.1", "order_type": "market"},
        )
        assert answer.status_code == 201, answer.text
        self.orders.append(answer.json()["id"])


def journal(session) -> list[str]:
    return list(session.events.order_by("sequence").values_list("frame", flat=True))


def fills_per_order(frames: list[str]) -> Counter[str]:
    trades = [json.loads(text) for text in frames]
    return Counter(t["trade"]["order_id"] for t in trades if t["type"] == "trade")


def poll(condition, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)
    return value


async def test_kill_9_of_the_worker_fails_the_backtest_within_30_s_with_where_it_was_lost(
    workers, new_session, trader_key, web_process
):
    workers.start()
    session = await in_thread(new_session)()
    strategy = Strategy(trader_key)
    base_url = f"{web_process.url}/sessions/{session.id}"

    assert await strategy.run(base_url, stop_at=STOP_AT) == "stopped"
    # Everything sent reaches the journal within a second, acked or not.
    await in_thread(poll)(
        lambda: len(journal(session)) == len(strategy.frames),
        timeout=5,
        what="the journal holds every frame sent",
    )
    session = await workers.kill_the_first_and_await_the_reaper(session)
    assert (session.state, session.failure_reason) == (
        "failed",
        f"the worker running this session stopped (lost at batch {STOP_AT} of {ROWS})",
    )
    frames = await in_thread(journal)(session)
    assert frames == strategy.frames
    assert set(fills_per_order(frames).values()) == {1}
    assert set(fills_per_order(frames)) == set(strategy.orders)
    with pytest.raises(InvalidStatus) as refused:
        await strategy.run(base_url)
    assert refused.value.response.status_code == 403


async def test_kill_9_of_the_web_process_mid_stream_resumes_on_another_without_a_gap(
    workers, new_session, trader_key
):
    workers.start()
    session = await in_thread(new_session)()
    strategy = Strategy(trader_key)
    first = start_daphne()
    try:
        base_url = f"{first.url}/sessions/{session.id}"
        assert await strategy.run(base_url, stop_at=STOP_AT) == "stopped"
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    second = start_daphne()
    try:
        assert await strategy.run(f"{second.url}/sessions/{session.id}") == "complete"
    finally:
        second.stop()

    session = await in_thread(wait_for_state)(session, {"completed", "failed", "cancelled"}, 30)
    assert (session.state, session.failure_reason) == ("completed", "")
    assert strategy.candles == ROWS
    sequences = [int(event_id.removeprefix("evt-")) for event_id in strategy.handled]
    assert sequences == list(range(1, session.events_sent + 1))  # each once, no gap
    frames = await in_thread(journal)(session)
    assert len(frames) == session.events_sent == session.events_acked
    assert len(strategy.orders) == ROWS // ORDER_EVERY
    assert fills_per_order(frames) == Counter(strategy.orders)
    result_orders = await in_thread(lambda: [o["id"] for o in session.result.orders])()
    assert result_orders == strategy.orders


SLEEPER = b"import time\nprint('sleeping', flush=True)\ntime.sleep(10_000)\n"


def run_folders(session) -> list[str]:
    """The temp folders of a hosted run (its code, its sandbox's work directory)."""
    return sorted(
        p.name.split("-")[1]
        for p in Path(tempfile.gettempdir()).iterdir()
        if p.name.startswith(("parity-strategy-", "parity-sandbox-")) and str(session.id) in p.name
    )


def total_batches(session) -> int | None:
    from runtimes.models import TradingSession

    return TradingSession.objects.values_list("total_batches", flat=True).get(pk=session.pk)


@pytest.mark.skipif(not probe_bubblewrap().available, reason="needs the bubblewrap sandbox")
async def test_kill_9_of_the_worker_of_a_hosted_run_revokes_its_token_and_removes_its_folders(
    workers, owner, workspace, dataset, web_process
):
    from runtimes.models import SessionToken
    from runtimes.services import create_hosted_backtest
    from strategies.services import upload_strategy_version

    def create():
        version = upload_strategy_version(
            workspace=workspace,
            author=owner,
            strategy="sleeper",
            filename="main.py",
            content=SLEEPER,
        )
        return create_hosted_backtest(
            workspace=workspace, created_by=owner, version=version, dataset=dataset
        )

    workers.internal_url = web_process.url
    # Through the relay, with a session token (a backtest over the local channel has none).
    workers.settings["HOSTED_BACKTEST_TRANSPORT"] = "websocket"
    workers.start()
    session = await in_thread(create)()
    # The sandbox starts while the data loads; the host has run once its lease holds the total.
    await in_thread(poll)(
        lambda: run_folders(session) == ["sandbox", "strategy"] and total_batches(session),
        timeout=30,
        what="the sandbox started and the host ran",
    )
    assert (
        await in_thread(SessionToken.objects.usable(timezone.now()).filter(session=session).count)()
        == 1
    )
    session = await workers.kill_the_first_and_await_the_reaper(session)
    assert (session.state, session.failure_reason) == (
        "failed",
        f"the worker running this session stopped (lost at batch 0 of {ROWS})",
    )
    assert (
        await in_thread(SessionToken.objects.usable(timezone.now()).filter(session=session).count)()
        == 0
    )
    await in_thread(poll)(
        lambda: run_folders(session) == [], timeout=5, what="the reaper removed the run's folders"
    )
