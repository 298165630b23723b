"""The generic session host on a wall-clock provider (a deterministic fake market from
tests/runtimes/providers/fake_market.py), driven through the bus: events stream with no acks,
commands are answered, the session runs past its idle timeout and ends on cancel with its final
state stored; a provider fed from another thread wakes its host; a platform whose provider is
missing fails at start with the reason."""

from __future__ import annotations

import json
import queue
import threading
import time

import pytest
from django.conf import settings
from django.utils import timezone

from runtimes.hosting.bus import InProcessBus
from runtimes.hosting.host import run_session_host
from runtimes.hosting.leases import HostLease
from runtimes.models import SessionEvent, SessionResult, State, TradingSession
from runtimes.providers import registry
from tests.runtimes.providers import fake_market

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


@pytest.fixture
def fake_registry(monkeypatch):
    monkeypatch.setitem(registry.FACTORIES, "mock", "tests.runtimes.providers.fake_market:build")
    fake_market.BUILT.clear()


def mock_session(owner, workspace, **options) -> TradingSession:
    return TradingSession.objects.create(
        workspace=workspace, created_by=owner, platform="mock", symbols=["AAPL", "MSFT"],
        timeframe="1m", state=State.QUEUED, connect_timeout_s=30, idle_timeout_s=1,
        options=options)


class Socket:
    """A bus connection's frames, as a queue of decoded frames."""

    def __init__(self, bus: InProcessBus, session: TradingSession, last_event_id=None) -> None:
        self.frames: queue.SimpleQueue = queue.SimpleQueue()
        self.closed = threading.Event()
        self.id = bus.connect(str(session.id), self._sink, last_event_id=last_event_id)

    def _sink(self, texts, close_code):
        for text in texts:
            self.frames.put(json.loads(text))
        if close_code is not None:
            self.closed.set()

    def until(self, wanted, timeout: float = 10.0) -> list[dict]:
        """Frames received until one satisfies `wanted` (included)."""
        seen, deadline = [], time.monotonic() + timeout
        while True:
            frame = self.frames.get(timeout=max(0.01, deadline - time.monotonic()))
            seen.append(frame)
            if wanted(frame):
                return seen


@pytest.fixture
def host_in_thread():
    """host_in_thread(session, bus) -> (thread, outcome): its host runs in a thread; one still
    running when the test ends is cancelled and joined (it must not outlive the database)."""
    started = []

    def start(session: TradingSession, bus: InProcessBus):
        lease = HostLease.take(session, now=timezone.now())
        outcome: list = []
        thread = threading.Thread(target=lambda: outcome.append(
            run_session_host(lease=lease, bus=bus)))
        thread.start()
        started.append((thread, bus, session))
        return thread, outcome

    yield start
    for thread, bus, session in started:
        if thread.is_alive():
            bus.post(str(session.id), {"kind": "cancel", "reason": "test over"})
            thread.join(10)


def test_a_wall_clock_session_streams_without_acks_answers_commands_and_stores_its_end(
    owner, workspace, fake_registry, host_in_thread
):
    session = mock_session(owner, workspace)
    bus = InProcessBus()
    thread, outcome = host_in_thread(session, bus)
    socket = Socket(bus, session)
    # Never acked, and well past the idle timeout (1 s: 30 ticks of 0.05 s): it keeps going.
    frames = socket.until(lambda f: f.get("type") == "candle" and f["bar"]["close"] == "130")
    assert [f["event_id"] for f in frames] == [f"evt-{n}" for n in range(1, len(frames) + 1)]
    assert {f["bar"]["symbol"] for f in frames if f["type"] == "candle"} == {"AAPL", "MSFT"}

    answer = bus.request(str(session.id), {"op": "submit_order", "body": {
        "symbol": "AAPL", "side": "BUY", "quantity": "2", "order_type": "MARKET"}}, timeout=5)
    assert (answer.status, answer.body["id"]) == (201, "ord-1")
    created = socket.until(lambda f: f.get("type") == "order")[-1]
    assert (created["event"], created["order"]["id"]) == ("ORDER_CREATED", "ord-1")
    assert bus.request(str(session.id), {"op": "capabilities"}, timeout=5).body == {
        "supported_order_types": ["MARKET"], "features": ["fake"]}
    bars = bus.request(str(session.id), {"op": "bars", "path": {"symbol": "AAPL"},
                                         "query": {"timeframe": "1m", "limit": "2"}}, timeout=5)
    assert [b["provider"] for b in bars.body] == ["mock", "mock"]
    info = bus.request(str(session.id), {"op": "session"}, timeout=5).body
    assert (info["platform"], info["state"]) == ("mock", "running")

    bus.post(str(session.id), {"kind": "cancel", "reason": "stopped by its owner"})
    thread.join(10)
    assert outcome == [State.CANCELLED]
    market = fake_market.BUILT[0]
    session.refresh_from_db()
    assert (session.state, session.failure_reason) == ("cancelled", "stopped by its owner")
    assert session.provider_state == {"ticks": market.ticks, "orders": ["ord-1"]}
    result = SessionResult.objects.get(session=session)
    assert ([o["id"] for o in result.orders], result.trades, result.equity) == (["ord-1"], [], [])
    assert market.closed
    assert socket.closed.is_set()
    journaled = SessionEvent.objects.filter(session=session).count()
    assert journaled == session.events_sent > len(frames)
    assert session.events_acked == 0


def test_a_provider_fed_from_another_thread_wakes_its_host(
    owner, workspace, fake_registry, host_in_thread
):
    session = mock_session(owner, workspace, ticking=False)
    bus = InProcessBus()
    thread, outcome = host_in_thread(session, bus)
    socket = Socket(bus, session)
    bus.request(str(session.id), {"op": "status"}, timeout=5)  # the host has attached the socket
    fake_market.BUILT[0].feed("MSFT")
    candle = socket.until(lambda f: f.get("type") == "candle")[-1]
    assert (candle["event_id"], candle["bar"]["symbol"], candle["bar"]["close"]) == (
        "evt-1", "MSFT", "101")
    bus.post(str(session.id), {"kind": "cancel", "reason": ""})
    thread.join(10)
    assert outcome == [State.CANCELLED]


def test_every_socket_of_a_wall_clock_session_gets_every_event(
    owner, workspace, fake_registry, host_in_thread
):
    session = mock_session(owner, workspace)
    bus = InProcessBus()
    thread, outcome = host_in_thread(session, bus)
    first = Socket(bus, session)
    first.until(lambda f: f["event_id"] == "evt-2")
    second = Socket(bus, session, last_event_id="evt-2")
    later = second.until(lambda f: f["event_id"] == "evt-8")
    assert [f["event_id"] for f in later] == [f"evt-{n}" for n in range(3, 9)]
    assert [f["event_id"] for f in first.until(lambda f: f["event_id"] == "evt-8")] == [
        f"evt-{n}" for n in range(3, 9)]
    bus.post(str(session.id), {"kind": "cancel", "reason": ""})
    thread.join(10)
    assert outcome == [State.CANCELLED]


def test_a_session_whose_provider_is_not_in_this_build_fails_at_start_saying_so(
    owner, workspace, monkeypatch
):
    monkeypatch.setitem(registry.FACTORIES, "mock", "runtimes.providers.not_here:build")
    session = mock_session(owner, workspace)
    lease = HostLease.take(session, now=timezone.now())
    assert run_session_host(lease=lease, bus=InProcessBus()) == State.FAILED
    session.refresh_from_db()
    assert (session.state, session.failure_reason) == (
        "failed", "provider: the mock provider is not installed in this build "
                  "(runtimes.providers.not_here)")


# -- over the real server: the management API, the Trading API, the unmodified SDK ---------------


@pytest.fixture
def sdk_owner(owner, workspace, make_api_key):
    return make_api_key(owner, workspace, scopes=("read", "trade:paper"))[1]


@pytest.mark.skipif(
    not settings.CELERY_EMBEDDED_WORKER,
    reason="needs the embedded worker (the fake provider is registered in-process)",
)
async def test_the_sdk_trades_a_wall_clock_session_created_through_the_management_api(
    daphne_url, celery_worker, fake_registry, sdk_owner, workspace
):
    from decimal import Decimal

    import httpx
    from asgiref.sync import sync_to_async
    from tektii import AsyncTradingGateway, CandleEvent, OrderEvent

    from tests.runtimes.conftest import wait_for_state

    headers = {"Authorization": f"Bearer {sdk_owner}"}
    async with httpx.AsyncClient(headers=headers) as api:
        created = await api.post(f"{daphne_url}/api/v1/workspaces/{workspace.id}/sessions",
                                 json={"platform": "mock", "symbols": ["AAPL"],
                                       "timeframe": "1m", "initial_cash": "1000"})
        assert created.status_code == 201, created.json()
        base = created.json()["base_url"].replace("http://testserver", daphne_url)
        session_id = created.json()["id"]
        candles, handle = 0, None
        try:
            async with AsyncTradingGateway(base_url=base, api_key=sdk_owner,
                                           max_retries=0) as gw:
                assert str((await gw.get_account()).balance) == "1000"
                async with gw.stream() as events:
                    async for event in events:  # acked by the SDK; nothing waits for that
                        candles += isinstance(event, CandleEvent)
                        if candles == 3 and handle is None:
                            handle = await gw.submit_order("AAPL", "buy", "1")
                        if isinstance(event, OrderEvent):
                            break
                assert (handle.id, event.order.id, event.order.status.value) == (
                    "ord-1", "ord-1", "OPEN")
                quote = await gw.get_quote("AAPL")
                assert Decimal(quote.ask) - Decimal(quote.bid) == 2
        finally:
            cancelled = await api.post(
                f"{daphne_url}/api/v1/workspaces/{workspace.id}/sessions/{session_id}/cancel")
        assert cancelled.status_code in {200, 202}, cancelled.json()
    session = await sync_to_async(TradingSession.objects.get, thread_sensitive=False)(
        pk=session_id)
    session = await sync_to_async(wait_for_state, thread_sensitive=False)(
        session, {"cancelled", "failed"})
    assert (session.state, session.provider_state["orders"]) == ("cancelled", ["ord-1"])
