"""The strategy socket's watchdog (runtimes/transport/consumers.py): a socket whose session
ended, or moved to another host (the fence moved past the host it attached to), is closed; one
whose host still serves it is not."""

from __future__ import annotations

import pytest

from runtimes.models import State, TradingSession
from runtimes.transport.consumers import MOVED_REASON, ended_reason, host_generation

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(owner, workspace):
    return TradingSession.objects.create(
        workspace=workspace, created_by=owner, platform="mock", symbols=["AAPL"],
        timeframe="1m", state=State.QUEUED, lease_fence=4)


def move(session, **fields):
    TradingSession.objects.filter(pk=session.pk).update(**fields)


def test_a_socket_attached_while_queued_is_served_by_the_next_claim(session):
    generation = host_generation(str(session.pk))
    assert generation == 5
    assert ended_reason(str(session.pk), generation) is None  # still waiting for a worker
    move(session, state=State.RUNNING, lease_fence=5)  # claimed
    assert ended_reason(str(session.pk), generation) is None


def test_a_socket_whose_host_was_reaped_or_drained_is_told_the_session_moved(session):
    move(session, state=State.RUNNING, lease_fence=5)
    generation = host_generation(str(session.pk))
    assert generation == 5

    move(session, state=State.QUEUED, lease_fence=6)  # requeued by the reaper, or released
    assert ended_reason(str(session.pk), generation) == MOVED_REASON
    move(session, state=State.RUNNING, lease_fence=7)  # and already taken over
    assert ended_reason(str(session.pk), generation) == MOVED_REASON


def test_a_socket_of_an_ended_session_is_told_why(session):
    move(session, state=State.FAILED, failure_reason="lost")
    assert ended_reason(str(session.pk), host_generation(str(session.pk))) == "lost"
