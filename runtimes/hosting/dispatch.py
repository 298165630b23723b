"""Fair dispatch of queued sessions to worker slots, the database being the source of truth.

A session asks for a worker when it needs one (a hosted backtest at creation; a remote session at
its strategy's first request or socket, so an idle one holds nothing) and becomes `queued`; each
such request enqueues one dispatch task. Whichever worker thread runs a dispatch task claims the
session that is fairest *then* (`fair_order`) with a conditional update, so two workers, threads
or processes, never start the same one; Celery's FIFO order of the tasks does not matter.
"""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Max, Q

from runtimes.hosting.leases import HostLease
from runtimes.models import WORKER_STATES, Source, State, TradingSession

CLAIM_CANDIDATES = 20  # fairest sessions tried before the order is read again (lost races)


@dataclass(frozen=True)
class Waiting:
    """A queued session as the planner sees it."""

    session_id: str
    workspace_id: str
    queued_at: datetime


def fair_order(
    waiting: Iterable[Waiting],
    *,
    running: Mapping[str, int],
    last_dispatched: Mapping[str, datetime | None],
) -> list[str]:
    """The order in which `waiting` sessions get worker slots: round robin across workspaces.

    Each next session is the oldest one of the workspace with the fewest sessions running, then
    the one served longest ago (never served first), then the one whose oldest session has waited
    longest. Each pick counts as running and served for the picks after it, so the order is also
    every session's queue position. Pure and deterministic (ids break the last ties)."""
    queues: dict[str, deque[Waiting]] = defaultdict(deque)
    for item in sorted(waiting, key=lambda w: (w.queued_at, w.session_id)):
        queues[item.workspace_id].append(item)
    load = dict(running)
    served: dict[str, tuple[int, float]] = {
        ws: (-1, 0.0) if moment is None else (0, moment.timestamp())
        for ws, moment in last_dispatched.items()
    }
    picks = itertools.count()  # a planned pick is served after every real dispatch
    order: list[str] = []
    while queues:
        workspace = min(
            queues,
            key=lambda ws: (
                load.get(ws, 0),
                served.get(ws, (-1, 0.0)),
                queues[ws][0].queued_at,
                ws,
            ),
        )
        order.append(queues[workspace].popleft().session_id)
        load[workspace] = load.get(workspace, 0) + 1
        served[workspace] = (1, float(next(picks)))
        if not queues[workspace]:
            del queues[workspace]
    return order


def current_order() -> list[str]:
    """`fair_order` of every queued session now. Reads across workspaces on purpose: fairness
    between them is the point; nothing of one workspace is shown to another."""
    waiting = [
        Waiting(str(pk), str(ws), queued_at or created_at)
        for pk, ws, queued_at, created_at in TradingSession.objects.filter(
            state=State.QUEUED
        ).values_list("pk", "workspace_id", "queued_at", "created_at")
    ]
    if not waiting:
        return []
    stats = (
        TradingSession.objects.filter(workspace_id__in={w.workspace_id for w in waiting})
        .values("workspace_id")
        .annotate(
            running=Count("pk", filter=Q(state__in=WORKER_STATES)), served=Max("dispatched_at")
        )
    )
    return fair_order(
        waiting,
        running={str(s["workspace_id"]): s["running"] for s in stats},
        last_dispatched={str(s["workspace_id"]): s["served"] for s in stats},
    )


def queue_positions() -> dict[str, int]:
    """Every queued session's place in line (1: the next to get a worker slot)."""
    return {session_id: place for place, session_id in enumerate(current_order(), start=1)}


def queue_position(session: TradingSession) -> int | None:
    """The session's place in line while it is queued, else None."""
    if session.state != State.QUEUED:
        return None
    return queue_positions().get(str(session.pk))


def claim_next_session(*, now: datetime) -> HostLease | None:
    """Claim the fairest queued session for this worker thread: queued -> waiting under the
    host's lease (runtimes/leases.py), a conditional update: of two workers trying the same
    session, one wins and the other tries the next. Returns None when nothing is queued."""
    while order := current_order():
        for session_id in order[:CLAIM_CANDIDATES]:
            lease = HostLease.take(TradingSession(pk=session_id), now=now, dispatched_at=now)
            if lease is not None:
                return lease
    return None


def request_worker(*, session: TradingSession, now: datetime) -> bool:
    """A created session asks for a worker slot: queued now, dispatched by the next free worker
    (after commit). A remote session contacted after its connect timeout fails instead. Returns
    whether this call queued it (False: it was queued, running or ended already)."""
    if session.source == Source.REMOTE and now > _connect_deadline(session):
        _fail_uncontacted(session, now=now)
        return False
    if not session.transition(to=State.QUEUED, allowed_from={State.CREATED}, queued_at=now):
        return False
    enqueue_dispatch()
    return True


def enqueue_dispatch() -> None:
    """One dispatch task per session queued, sent after commit (the worker reads the row)."""
    from runtimes.tasks import run_next_session

    transaction.on_commit(run_next_session.delay)


def sweep_sessions(*, now: datetime) -> int:
    """The periodic pass (beat): fail remote sessions nobody contacted in time, and send one
    dispatch task when sessions are queued, so that one whose task was lost with a worker still
    starts (a surplus task claims nothing and returns). Returns how many sessions failed."""
    expired = expire_uncontacted_sessions(now=now)
    if TradingSession.objects.filter(state=State.QUEUED).exists():
        enqueue_dispatch()
    return expired


def expire_uncontacted_sessions(*, now: datetime) -> int:
    """Fail remote sessions that no strategy contacted within their connect timeout (they hold
    no worker, so no host times them out). Returns how many failed."""
    created = TradingSession.objects.filter(state=State.CREATED, source=Source.REMOTE).only(
        "pk", "state", "created_at", "connect_timeout_s"
    )
    return sum(_fail_uncontacted(s, now=now) for s in created if now > _connect_deadline(s))


def _connect_deadline(session: TradingSession) -> datetime:
    return session.created_at + timedelta(seconds=session.connect_timeout_s)


def _fail_uncontacted(session: TradingSession, *, now: datetime) -> bool:
    return session.transition(
        to=State.FAILED,
        allowed_from={State.CREATED},
        finished_at=now,
        failure_reason=f"no strategy connected within {session.connect_timeout_s} s",
    )
