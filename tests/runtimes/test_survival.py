"""Event ids reserved in blocks under the fence (runtimes/hosting/survival.py): a host hands out
no id past its reservation, so the host taking over after it never reuses one; and the process's
registry of running hosts that a stopping worker drains."""

from __future__ import annotations

import pytest

from runtimes.hosting.leases import LeaseLost
from runtimes.hosting.survival import EVENT_ID_BLOCK, ReservingSequencer, RunningHosts


def test_ids_are_reserved_a_block_ahead_before_the_first_and_past_each_block():
    reservations = []
    sequencer = ReservingSequencer(0, reserved=0, reserve=reservations.append)

    first = [sequencer.next_id() for _ in range(EVENT_ID_BLOCK + 1)]

    assert (first[0], first[-1]) == ("evt-1", f"evt-{EVENT_ID_BLOCK + 1}")
    assert reservations == [EVENT_ID_BLOCK, 2 * EVENT_ID_BLOCK]


def test_a_host_taking_over_starts_after_what_its_predecessor_reserved():
    reservations = []
    sequencer = ReservingSequencer(250_000, reserved=250_000, reserve=reservations.append)

    assert sequencer.next_id() == "evt-250001"
    assert reservations == [250_000 + EVENT_ID_BLOCK]


def test_no_id_is_handed_out_once_the_reservation_is_refused():
    def refused(upto):
        raise LeaseLost("taken")

    sequencer = ReservingSequencer(10, reserved=10, reserve=refused)

    with pytest.raises(LeaseLost):
        sequencer.next_id()
    assert sequencer.last_sequence == 10


def test_draining_asks_every_running_host_once():
    class Host:
        def __init__(self):
            self.told = []

        def drain(self, reason):
            self.told.append(reason)

    hosts = RunningHosts()
    first, second, gone = Host(), Host(), Host()
    for host in (first, second, gone):
        hosts.add(host)
    hosts.discard(gone)

    assert hosts.drain_all("stopping") == 2
    assert (first.told, second.told, gone.told) == (["stopping"], ["stopping"], [])


def test_the_hosting_task_is_acknowledged_when_taken_so_a_redelivery_never_runs_it_twice():
    from runtimes.tasks import run_next_session

    assert (run_next_session.acks_late, run_next_session.reject_on_worker_lost) == (False, False)


def test_a_stopping_worker_sends_the_dispatch_on_rather_than_claim(monkeypatch):
    import runtimes.tasks
    from runtimes.hosting.survival import RUNNING_HOSTS

    sent = []
    monkeypatch.setattr(runtimes.tasks.run_next_session, "delay", lambda: sent.append(1))
    monkeypatch.setattr(RUNNING_HOSTS, "stopping", "the worker is stopping")

    assert runtimes.tasks.run_next_session.run() is None  # no database touched
    assert sent == [1]


@pytest.mark.django_db
def test_a_session_journaled_before_ids_were_reserved_goes_on_after_its_journal(owner, workspace):
    from runtimes.hosting.survival import predecessor_of
    from runtimes.models import SessionEvent, TradingSession

    session = TradingSession.objects.create(
        workspace=workspace, created_by=owner, platform="mock", symbols=["AAPL"], timeframe="1m")
    assert predecessor_of(session) is None  # a first host
    SessionEvent.objects.bulk_create([
        SessionEvent(session=session, sequence=n, event_id=f"evt-{n}", acked=True,
                     frame='{"type":"quote","timestamp":"2026-12-06T23:20:00.250Z"}')
        for n in (1, 2, 3)])

    found = predecessor_of(session)

    assert found is not None
    assert (found.journaled, found.last_sequence, found.last_fill_id) == (3, 3, None)
