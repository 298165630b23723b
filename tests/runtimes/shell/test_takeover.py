"""Hosts that survive, in one process (the in-process bus, the real `mock` market): a host whose
lease was taken refuses the order with a 503 before its provider sees it and stops; the reaper
requeues a lost wall-clock session and another host takes it over from the persisted snapshot,
every acknowledged order there once, the stream resuming with a `connection` frame after a gap in
the ids; a drained host hands its session back to the queue at once. The same with real worker
processes, kill -9 and SIGTERM: tests/runtimes/shell/test_takeover_workers.py."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db.models import F
from django.utils import timezone

from runtimes.hosting.bus import InProcessBus
from runtimes.hosting.dispatch import claim_next_session
from runtimes.hosting.host import RELEASED, run_session_host
from runtimes.hosting.leases import reap_lost_sessions
from runtimes.hosting.survival import EVENT_ID_BLOCK, RUNNING_HOSTS
from runtimes.models import State, TradingSession
from tests.runtimes.providers import fake_market
from tests.runtimes.shell.test_crash_recovery import poll
from tests.runtimes.shell.test_wall_clock_host import (  # noqa: F401 (fixtures)
    Socket,
    fake_registry,
    host_in_thread,
    mock_session,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


@pytest.fixture(autouse=True)
def no_dispatch(monkeypatch):
    """The tests play the next worker themselves (`host_next`): the reaper's and a release's
    dispatch task must not reach the suite's worker, which would claim the session first."""
    monkeypatch.setattr("runtimes.hosting.leases.ask_for_a_worker", lambda: None)


@pytest.fixture
def short_leases(settings):
    settings.SESSION_LEASE_SECONDS = 2
    settings.SESSION_LEASE_RENEW_SECONDS = 1


def order(bus, session, client_order_id, side="BUY"):
    return bus.request(str(session.id), {
        "op": "submit_order", "expires_at": time.time() + 5,
        "body": {"symbol": "AAPL", "side": side, "quantity": "1", "order_type": "MARKET",
                 "client_order_id": client_order_id}}, timeout=5)


def journaled_trades(session) -> int:
    return session.events.filter(frame__startswith='{"type":"trade"').count()


@pytest.fixture
def host_next():
    """host_next(bus) -> (thread, outcome): another worker's dispatch task claims the queued
    session and hosts it in a thread; one still running at the end is cancelled and joined."""
    started = []

    def start(bus):
        lease = claim_next_session(now=timezone.now())
        assert lease is not None
        outcome: list = []
        thread = threading.Thread(target=lambda: outcome.append(
            run_session_host(lease=lease, bus=bus)))
        thread.start()
        started.append((thread, bus, str(lease.session_id)))
        return thread, outcome

    yield start
    for thread, bus, session_id in started:
        if thread.is_alive():
            bus.post(session_id, {"kind": "cancel", "reason": "test over"})
            thread.join(10)


def test_a_host_that_lost_its_lease_refuses_the_order_with_503_before_its_provider_sees_it(
    owner, workspace, fake_registry, host_in_thread  # noqa: F811 (the imported fixtures)
):
    session = mock_session(owner, workspace)
    bus = InProcessBus()
    thread, outcome = host_in_thread(session, bus)
    socket = Socket(bus, session)
    socket.until(lambda f: f.get("type") == "candle")
    assert order(bus, session, "first").status == 201
    # The reaper (or a drain) moved the fence on: this host is no longer the session's.
    TradingSession.objects.filter(pk=session.pk).update(lease_fence=F("lease_fence") + 1)

    answer = order(bus, session, "second")

    assert (answer.status, answer.body["code"]) == (503, "PROVIDER_UNAVAILABLE")
    thread.join(10)
    assert outcome == [None]  # it stopped, and ended nothing
    assert fake_market.BUILT[0].snapshot()["orders"] == ["ord-1"]
    session.refresh_from_db()
    assert (session.state, session.provider_state["orders"]) == ("running", ["ord-1"])
    assert socket.closed.is_set()


def test_a_lost_mock_session_is_taken_over_with_every_acknowledged_order_once(
    owner, workspace, short_leases, host_next
):
    session = mock_session(owner, workspace, seed=7, quote_interval_ms=50)
    bus = InProcessBus()
    first, first_outcome = host_next(bus)
    socket = Socket(bus, session)
    socket.until(lambda f: f.get("type") == "quote")
    acknowledged = {}
    for n in range(3):
        answer = order(bus, session, f"cid-{n}")
        assert answer.status == 201
        acknowledged[f"cid-{n}"] = answer.body["id"]
    poll(lambda: journaled_trades(session) == 3, timeout=5, what="the fills are journaled")
    # Its worker is gone: its lease ran out, and the reaper puts the session back in the queue.
    TradingSession.objects.filter(pk=session.pk).update(
        lease_expires_at=timezone.now() - timezone.timedelta(seconds=1))
    assert reap_lost_sessions() == [str(session.id)]
    session.refresh_from_db()
    assert (session.state, session.lease_holder) == ("queued", "")
    first.join(10)  # the old host found its lease taken at its next renewal
    assert first_outcome == [None] and socket.closed.is_set()

    second, second_outcome = host_next(bus)
    resumed = Socket(bus, session, last_event_id="evt-1")
    connection = resumed.until(lambda f: f.get("type") == "connection")[-1]

    assert connection["event_id"] == f"evt-{EVENT_ID_BLOCK + 1}"  # after the reserved ids
    assert (connection["event"], connection["broker"], connection["reconciled"]) == (
        "BROKER_RECONNECTED", "mock",
        {"open_orders": [], "positions": ["AAPL"], "fills_since_last_event": []})
    assert 0 <= connection["gap_duration_ms"] < 10_000
    history = bus.request(str(session.id), {"op": "order_history"}, timeout=5).body
    assert sorted((o["client_order_id"], o["id"]) for o in history) == sorted(
        acknowledged.items())
    again = order(bus, session, "cid-1")  # an SDK retry of an acknowledged order
    assert (again.status, again.body["id"]) == (201, acknowledged["cid-1"])
    assert len(bus.request(str(session.id), {"op": "order_history"}, timeout=5).body) == 3
    bus.post(str(session.id), {"kind": "cancel", "reason": "test over"})
    second.join(10)
    assert second_outcome == [State.CANCELLED]


@pytest.fixture
def draining():
    """RUNNING_HOSTS.drain_all as a stopping worker calls it; afterwards, this process claims
    sessions again (it stands for two workers here: the one stopping, and the next)."""
    yield RUNNING_HOSTS.drain_all
    RUNNING_HOSTS.stopping = None


def test_a_drained_host_hands_its_session_back_to_the_queue_at_once(
    owner, workspace, host_next, draining
):
    session = mock_session(owner, workspace, seed=3, quote_interval_ms=50)
    bus = InProcessBus()
    first, first_outcome = host_next(bus)
    socket = Socket(bus, session)
    socket.until(lambda f: f.get("type") == "quote")
    assert order(bus, session, "before-drain").status == 201
    socket.until(lambda f: f.get("type") == "trade")

    assert draining("the worker is stopping") == 1
    first.join(5)
    RUNNING_HOSTS.stopping = None  # the next host runs on another worker

    assert first_outcome == [RELEASED]
    session.refresh_from_db()
    assert (session.state, session.lease_expires_at) == ("queued", None)
    assert socket.closed.is_set()
    sent = []
    while not socket.frames.empty():
        sent.append(socket.frames.get())
    assert sent[-1]["type"] == "connection" and sent[-1]["event"] == "DISCONNECTING"
    journal = list(session.events.order_by("sequence").values_list("frame", flat=True))
    assert json.loads(journal[-1]) == sent[-1]  # everything sent was journaled before release
    assert session.provider_state["exchange"]["by_client_id"] == {"before-drain": "ord-1"}

    second, second_outcome = host_next(bus)
    # Journaled, so gone from the host's memory (a wall-clock host keeps a second of frames).
    poll(lambda: session.events.filter(frame__contains="BROKER_RECONNECTED").exists(),
         timeout=5, what="the takeover frame is journaled")
    sdk = Socket(bus, session)  # as the SDK reconnects: without a cursor
    first_frame = sdk.until(lambda f: True)[0]
    assert (first_frame["event"], first_frame["event_id"]) == (
        "BROKER_RECONNECTED", f"evt-{EVENT_ID_BLOCK + 1}")
    history = bus.request(str(session.id), {"op": "order_history"}, timeout=5).body
    assert [o["client_order_id"] for o in history] == ["before-drain"]
    bus.post(str(session.id), {"kind": "cancel", "reason": "test over"})
    second.join(10)
    assert second_outcome == [State.CANCELLED]
