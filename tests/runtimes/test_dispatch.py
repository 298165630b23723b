"""The fair dispatcher's order (runtimes/dispatch.py): round robin across workspaces, not FIFO."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from runtimes.hosting.dispatch import Waiting, fair_order

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def queued(workspace: str, count: int, *, first_second: int = 0) -> list[Waiting]:
    return [
        Waiting(f"{workspace}{n}", workspace, T0 + timedelta(seconds=first_second + n))
        for n in range(1, count + 1)
    ]


def test_two_workspaces_alternate_even_when_one_queued_everything_first():
    waiting = queued("a", 4) + queued("b", 3, first_second=10)

    order = fair_order(waiting, running={}, last_dispatched={})

    assert order == ["a1", "b1", "a2", "b2", "a3", "b3", "a4"]


def test_the_single_session_of_a_workspace_with_nothing_running_goes_next():
    waiting = queued("a", 50) + queued("b", 1, first_second=60)

    order = fair_order(waiting, running={"a": 4, "b": 0}, last_dispatched={"a": T0, "b": None})

    assert order[:3] == ["b1", "a1", "a2"]


def test_with_equal_running_the_workspace_served_longest_ago_goes_first():
    waiting = queued("a", 2) + queued("b", 2, first_second=30)

    order = fair_order(
        waiting, running={"a": 1, "b": 1}, last_dispatched={"a": T0 + timedelta(minutes=5), "b": T0}
    )

    assert order == ["b1", "a1", "b2", "a2"]


def test_a_workspace_never_served_goes_before_one_served_before():
    waiting = queued("a", 1) + queued("b", 1, first_second=30)

    order = fair_order(waiting, running={}, last_dispatched={"a": T0, "b": None})

    assert order == ["b1", "a1"]


def test_the_workspace_with_fewer_running_catches_up_before_round_robin_resumes():
    waiting = queued("a", 2) + queued("b", 3, first_second=30)

    order = fair_order(waiting, running={"a": 2, "b": 0}, last_dispatched={})

    assert order == ["b1", "b2", "a1", "b3", "a2"]


def test_sessions_of_one_workspace_keep_their_own_order():
    waiting = list(reversed(queued("a", 3)))

    assert fair_order(waiting, running={}, last_dispatched={}) == ["a1", "a2", "a3"]


def test_nothing_queued_is_an_empty_order():
    assert fair_order([], running={"a": 3}, last_dispatched={"a": T0}) == []
