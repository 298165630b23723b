"""Leases and the reaper (runtimes/leases.py): a session whose host died is failed with where it
was lost, its token revoked and its temp folders removed; cancel and kill of it act at once; a
host whose lease was taken stops and writes nothing more."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def lost_session(owner, workspace, dataset):
    """A running session whose host stopped renewing its lease a second ago, at batch 120."""
    from runtimes.models import State, TradingSession

    return TradingSession.objects.create(
        workspace=workspace,
        created_by=owner,
        dataset=dataset,
        symbols=["BTCUSDT"],
        timeframe="1m",
        state=State.RUNNING,
        batches=120,
        total_batches=300,
        lease_holder="worker-1:4242:7",
        lease_fence=1,
        lease_expires_at=NOW - timedelta(seconds=1),
    )


def _session_like(session, **fields):
    from runtimes.models import TradingSession

    return TradingSession.objects.create(
        workspace=session.workspace,
        created_by=session.created_by,
        dataset=session.dataset,
        symbols=session.symbols,
        timeframe="1m",
        **fields,
    )


def test_the_reaper_fails_a_session_whose_lease_expired_with_the_batch_it_was_lost_at(
    lost_session,
):
    from runtimes.hosting.leases import reap_lost_sessions
    from runtimes.models import State

    held = _session_like(
        lost_session,
        state=State.RUNNING,
        lease_fence=1,
        lease_expires_at=NOW + timedelta(seconds=5),
    )
    queued = _session_like(lost_session, state=State.CREATED)

    assert reap_lost_sessions(now=NOW) == [str(lost_session.pk)]

    lost_session.refresh_from_db()
    assert (lost_session.state, lost_session.failure_reason, lost_session.finished_at) == (
        "failed",
        "the worker running this session stopped (lost at batch 120 of 300)",
        NOW,
    )
    assert (lost_session.lease_fence, lost_session.lease_holder, lost_session.lease_expires_at) == (
        2,
        "",
        None,
    )
    held.refresh_from_db()
    queued.refresh_from_db()
    assert (held.state, queued.state) == ("running", "created")


@pytest.mark.parametrize(("platform", "fate"), [
    ("backtest", "fail"), ("mock", "requeue"), ("alpaca-paper", "requeue"),
    ("alpaca-live", "requeue"), ("binance-testnet", "requeue"), ("binance-live", "requeue"),
    ("no-such-platform", "fail"),
])
def test_the_reaper_requeues_wall_clock_platforms_and_fails_the_rest(platform, fate):
    from runtimes.hosting.leases import fate_of_lost_session

    assert fate_of_lost_session(platform) == fate


def test_the_reaper_requeues_a_lost_mock_session_under_a_new_fence_and_keeps_its_token(
    lost_session, django_capture_on_commit_callbacks, monkeypatch
):
    import runtimes.tasks
    from runtimes.hosting.leases import reap_lost_sessions
    from runtimes.models import State
    from runtimes.transport.authentication import authenticate_session_token, mint_session_token

    dispatched = []
    monkeypatch.setattr(runtimes.tasks.run_next_session, "delay", lambda: dispatched.append(1))
    mock = _session_like(lost_session, platform="mock", state=State.RUNNING,
                         lease_fence=4, lease_expires_at=NOW - timedelta(seconds=1),
                         provider_state={"version": 1})
    raw = mint_session_token(session=mock, lifetime=timedelta(hours=1))

    with django_capture_on_commit_callbacks(execute=True):
        reaped = reap_lost_sessions(now=NOW)

    assert sorted(reaped) == sorted([str(lost_session.pk), str(mock.pk)])
    mock.refresh_from_db()
    lost_session.refresh_from_db()
    assert (mock.state, mock.queued_at, mock.finished_at, mock.failure_reason) == (
        "queued", NOW, None, "")
    assert (mock.lease_fence, mock.lease_holder, mock.lease_expires_at) == (5, "", None)
    assert mock.provider_state == {"version": 1}  # what the next host restores
    assert dispatched == [1]  # a worker is asked for at once
    assert authenticate_session_token(raw) is not None  # the strategy carries on
    assert lost_session.state == "failed"  # a backtest still fails


def test_a_requeue_loses_to_a_host_that_renewed_first(lost_session):
    from runtimes.hosting.leases import requeue_session_of_lost_host
    from runtimes.models import State

    mock = _session_like(lost_session, platform="mock", state=State.RUNNING,
                         lease_fence=4, lease_expires_at=NOW - timedelta(seconds=1))
    stale = type(mock).objects.get(pk=mock.pk)
    type(mock).objects.filter(pk=mock.pk).update(lease_fence=5)  # taken meanwhile

    assert not requeue_session_of_lost_host(session=stale, now=NOW)
    mock.refresh_from_db()
    assert (mock.state, mock.lease_fence) == ("running", 5)


def test_the_reaper_revokes_the_session_token_at_once_even_a_cached_one(lost_session):
    from runtimes.hosting.leases import reap_lost_sessions
    from runtimes.transport.authentication import authenticate_session_token, mint_session_token

    raw = mint_session_token(session=lost_session, lifetime=timedelta(hours=1))
    assert authenticate_session_token(raw) is not None  # now cached

    reap_lost_sessions(now=NOW)

    assert authenticate_session_token(raw) is None
    assert lost_session.tokens.get().revoked_at == NOW


def test_the_reaper_removes_the_temp_folders_of_ended_sessions_and_keeps_live_ones(
    lost_session, tmp_path, monkeypatch
):
    from runtimes.hosting.leases import reap_lost_sessions
    from runtimes.models import State

    tmp_path = tmp_path / "tmp"
    tmp_path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    live = _session_like(
        lost_session,
        state=State.RUNNING,
        lease_fence=1,
        lease_expires_at=NOW + timedelta(seconds=5),
    )
    for session in (lost_session, live):
        (tmp_path / f"parity-strategy-{session.pk}-a1b2c3").mkdir()
        (tmp_path / f"parity-sandbox-{session.pk}-d4e5f6" / "tmp").mkdir(parents=True)
    (tmp_path / "parity-sandbox-slots").mkdir()  # not a run's folder

    reap_lost_sessions(now=NOW)

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [
            f"parity-strategy-{live.pk}-a1b2c3",
            f"parity-sandbox-{live.pk}-d4e5f6",
            "parity-sandbox-slots",
        ]
    )


def test_a_leftover_of_a_session_another_database_holds_is_kept_until_a_day_old(tmp_path):
    # Another platform on this machine (its own database) runs that session: removing its
    # folders would take a running strategy's code from under it.
    from runtimes.hosting.leases import FOREIGN_LEFTOVER_AGE_S, remove_sandbox_leftovers

    foreign = tmp_path / f"parity-strategy-{uuid.UUID(int=7)}-a1b2c3"
    stale = tmp_path / f"parity-sandbox-{uuid.UUID(int=8)}-d4e5f6"
    foreign.mkdir()
    stale.mkdir()
    now = time.time()
    os.utime(stale, (now - FOREIGN_LEFTOVER_AGE_S - 1, now - FOREIGN_LEFTOVER_AGE_S - 1))

    assert remove_sandbox_leftovers(tmp_path, now=now) == 1
    assert [p.name for p in tmp_path.iterdir()] == [foreign.name]


def test_a_session_the_reaper_moved_on_from_is_not_ended_twice(lost_session):
    from runtimes.hosting.leases import end_session_of_lost_host
    from runtimes.models import State

    stale = type(lost_session).objects.get(pk=lost_session.pk)
    assert end_session_of_lost_host(session=lost_session, to=State.FAILED, reason="lost", now=NOW)

    assert not end_session_of_lost_host(session=stale, to=State.CANCELLED, reason="again", now=NOW)
    stale.refresh_from_db()
    assert (stale.state, stale.failure_reason, stale.lease_fence) == ("failed", "lost", 2)


def test_cancel_of_a_session_whose_host_is_gone_cancels_it_at_once(lost_session):
    from runtimes.services import cancel_session

    assert cancel_session(session=lost_session, now=NOW)

    lost_session.refresh_from_db()
    assert (lost_session.state, lost_session.failure_reason) == ("cancelled", "cancelled")


def test_cancel_of_a_session_whose_lease_runs_but_whose_host_does_not_answer_is_at_once(
    lost_session,
):
    from runtimes.services import cancel_session

    lost_session.lease_expires_at = NOW + timedelta(seconds=10)  # died a moment ago
    lost_session.save(update_fields=["lease_expires_at"])

    assert cancel_session(session=lost_session, now=NOW)

    lost_session.refresh_from_db()
    assert (lost_session.state, lost_session.lease_fence) == ("cancelled", 2)


def test_kill_of_a_session_whose_host_is_gone_ends_it_at_once(lost_session, owner):
    from runtimes.services import kill_session

    assert kill_session(session=lost_session, set_by=owner, reason="runaway", now=NOW)

    lost_session.refresh_from_db()
    assert (lost_session.state, lost_session.failure_reason, lost_session.kill_switch_active) == (
        "cancelled",
        "kill switch: runaway",
        True,
    )


class _SilentEndpoint:
    """A host endpoint nobody talks to."""

    def receive(self, timeout):
        return None

    def serve_directly(self, handler):
        pass

    def send(self, connection, texts):
        pass

    def close_connection(self, connection, code):
        pass


def _host_with_lease(session, clock):
    from runtimes.core.datasets import load_market_data
    from runtimes.hosting.host import SessionHost
    from runtimes.hosting.leases import HostLease
    from runtimes.providers.backtest import BacktestProvider

    lease = HostLease.take(session, now=NOW)
    lease.monotonic, lease.renewed = (lambda: clock[0]), clock[0]
    files = {f.symbol: f.path for f in session.dataset.files.all()}
    engine = BacktestProvider(load_market_data(files), session.backtest_config())
    return SessionHost(
        session,
        _SilentEndpoint(),
        engine,
        lease=lease,
        now=lambda: NOW + timedelta(seconds=clock[0] - 100.0),
        monotonic=lambda: clock[0],
    )


@pytest.fixture
def short_leases(settings):
    settings.SESSION_LEASE_SECONDS = 4
    settings.SESSION_LEASE_RENEW_SECONDS = 1


def test_a_host_renews_its_lease_every_few_seconds_with_its_progress(lost_session, short_leases):
    from runtimes.models import State

    session = _session_like(lost_session, state=State.QUEUED)  # a worker's claim takes its lease
    clock = [100.0]
    host = _host_with_lease(session, clock)
    assert (session.state, session.lease_fence, session.lease_expires_at) == (
        "waiting",
        1,
        NOW + timedelta(seconds=4),
    )
    host.stream.start()
    host.stream.on_ack(list(host.stream.gate.pending))
    host.stream.pump()
    host._sync()  # nothing due yet: the lease was just taken, the frames were just sent
    assert not session.events.exists()

    clock[0] += 1.0
    host._sync()

    session.refresh_from_db()
    assert (session.batches, session.lease_expires_at) == (2, NOW + timedelta(seconds=5))
    assert session.events.count() == host.journal.counts().sent  # a second on: all written


def test_a_host_whose_lease_was_taken_stops_and_writes_nothing_more(lost_session, short_leases):
    from runtimes.hosting.leases import LeaseLost, end_session_of_lost_host
    from runtimes.models import State

    session = _session_like(lost_session, state=State.QUEUED)  # a worker's claim takes its lease
    clock = [100.0]
    host = _host_with_lease(session, clock)
    host.stream.start()
    taken = type(session).objects.get(pk=session.pk)
    assert end_session_of_lost_host(session=taken, to=State.FAILED, reason="lost", now=NOW)

    clock[0] += 1.0
    with pytest.raises(LeaseLost):
        host.run()

    session.refresh_from_db()
    assert (session.state, session.failure_reason, session.events.count()) == ("failed", "lost", 0)


@pytest.mark.django_db(transaction=True)
def test_the_embedded_reaper_thread_fails_a_lost_session_within_its_interval(lost_session):
    from config.embedded import start_session_reaper

    type(lost_session).objects.filter(pk=lost_session.pk).update(
        lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    reaper = start_session_reaper(interval=0.05)
    try:
        deadline = time.monotonic() + 10
        while lost_session.state == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
            lost_session.refresh_from_db()
    finally:
        reaper.stop()
    assert lost_session.failure_reason == (
        "the worker running this session stopped (lost at batch 120 of 300)"
    )


def test_a_worker_process_reaps_once_as_it_starts(lost_session, settings):
    from runtimes.tasks import reap_at_start_up

    type(lost_session).objects.filter(pk=lost_session.pk).update(
        lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    settings.CELERY_EMBEDDED_WORKER = False

    reap_at_start_up()

    lost_session.refresh_from_db()
    assert lost_session.state == "failed"


def test_a_host_whose_first_lease_renewal_fails_ends_its_session_at_once(
    lost_session, monkeypatch
):
    from django.db import OperationalError

    from runtimes.hosting.bus import get_bus
    from runtimes.hosting.host import run_session_host
    from runtimes.hosting.leases import HostLease
    from runtimes.models import State

    session = _session_like(lost_session, state=State.QUEUED)
    lease = HostLease.take(session, now=NOW)

    def refused(self, **fields):
        raise OperationalError("database table is locked")

    monkeypatch.setattr(HostLease, "renew", refused)
    assert run_session_host(lease=lease, bus=get_bus()) == "failed"

    session.refresh_from_db()
    assert (session.state, session.failure_reason) == ("failed", "internal error in the host")
