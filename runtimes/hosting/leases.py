"""Leases on running sessions, and the reaper that ends the sessions whose host is gone.

The host running a session holds a lease on its row (holder, expiry, fencing number) and renews
it every few seconds (SESSION_LEASE_RENEW_SECONDS). A lease left to expire (SESSION_LEASE_SECONDS)
means the process died: the reaper fails a backtest (revoking its tokens, removing its sandbox
leftovers) and puts a wall-clock session back in the queue for another worker to take over.
Whoever ends or requeues a session in place of its host moves the fencing number on, so a host that
was only stalled finds its lease taken at its next renewal (or its next order), and stops without
writing anything.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from runtimes.core.platforms import PLATFORMS
from runtimes.core.provider import Pacing
from runtimes.hosting.bus import BusUnavailable, get_bus
from runtimes.models import LIVE_STATES, State, TradingSession
from runtimes.transport.authentication import revoke_session_tokens

logger = logging.getLogger(__name__)

HOSTED_STATES = frozenset({State.WAITING, State.RUNNING})  # the states a host holds a lease in
HOST_PROBE_TIMEOUT_S = 1.0  # a live host answers a session command within a poll interval
# Temp folders of a hosted run: the strategy's code (runtimes/hosted.py) and the sandbox's work
# directory (runtimes/sandbox_host.py), both named after the session.
LEFTOVER_NAME = re.compile(r"^parity-(?:strategy|sandbox)-([0-9a-f]{8}-[0-9a-f-]{27})-")
# A leftover of a session another database holds (another platform on this machine: a test
# run, a second install) is removed only once it is this old: that platform removes its own.
FOREIGN_LEFTOVER_AGE_S = 24 * 3600


REQUEUE = "requeue"  # what the reaper does with a lost session: another worker takes it over
FAIL = "fail"  # ...or it ends it, failed, with where it was lost


class LeaseLost(Exception):
    """The session's lease has been taken: its host must stop and write nothing more."""


def holder_name() -> str:
    """Who holds a lease: the machine, the process and the thread running the host."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{threading.get_native_id()}"


class HostLease:
    """The lease a host holds on its session's row (see the module docstring)."""

    def __init__(
        self,
        session_id: object,
        *,
        holder: str,
        fence: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session_id, self.holder, self.fence = session_id, holder, fence
        self.monotonic = monotonic
        self.renewed = monotonic()

    @classmethod
    def take(cls, session: TradingSession, *, now: datetime, **fields: object) -> HostLease | None:
        """Claim a queued session for this thread (runtimes/dispatch.py): `queued` to `waiting`
        under a new lease, writing `fields` too, in one conditional update; None when it was not
        queued (claimed by another worker, or cancelled)."""
        holder = holder_name()
        if not session.transition(
            to=State.WAITING,
            allowed_from={State.QUEUED},
            lease_holder=holder,
            lease_fence=F("lease_fence") + 1,
            lease_expires_at=now + lease_duration(),
            **fields,
        ):
            return None
        session.refresh_from_db(fields=["lease_fence", "lease_expires_at"])
        return cls(session.pk, holder=holder, fence=session.lease_fence)

    def due(self, moment: float) -> bool:
        return moment - self.renewed >= settings.SESSION_LEASE_RENEW_SECONDS

    def release(self, *, now: datetime) -> bool:
        """Hand the session back to the queue at once (a worker told to stop drains its hosts):
        the fence moves on, so this host can write nothing more; another worker's dispatch task
        takes it over. False when the lease was no longer ours."""
        released = TradingSession.objects.filter(
            pk=self.session_id, lease_fence=self.fence, state__in=HOSTED_STATES,
        ).update(state=State.QUEUED, queued_at=now, lease_fence=F("lease_fence") + 1,
                 lease_holder="", lease_expires_at=None)
        if released:
            self.fence += 1  # no longer ours: any renewal from here is refused
            ask_for_a_worker()
        return released == 1

    def renew(self, *, now: datetime, **fields: object) -> bool:
        """Extend the lease (and write `fields`) if it is still ours; False once it was taken.
        In a transaction, the row stays locked until it commits: a reaper waits for it."""
        updated = TradingSession.objects.filter(
            pk=self.session_id,
            lease_fence=self.fence,
            state__in=HOSTED_STATES,
        ).update(lease_expires_at=now + lease_duration(), **fields)
        self.renewed = self.monotonic()
        return updated == 1


def lease_duration() -> timedelta:
    return timedelta(seconds=settings.SESSION_LEASE_SECONDS)


def lost_reason(session: TradingSession) -> str:
    total = "?" if session.total_batches is None else session.total_batches
    return f"the worker running this session stopped (lost at batch {session.batches} of {total})"


def end_session_of_lost_host(
    *, session: TradingSession, to: str, reason: str, now: datetime
) -> bool:
    """End a live session in place of its host (gone): moves the fence on, revokes the
    session's tokens and removes its sandbox leftovers on this machine. False when the row had
    moved first (ended, or its lease renewed or taken since `session` was read)."""
    with transaction.atomic():  # ended and its tokens revoked, as one
        if not session.end_for_lost_host(to=to, now=now, reason=reason):
            return False
        revoke_session_tokens(session=session, now=now)
    logger.warning("session %s ended in place of its host: %s", session.pk, reason)
    remove_sandbox_leftovers()
    return True


def fate_of_lost_session(platform_id: str) -> str:
    """What the reaper does with a session whose host is gone: a wall-clock session (mock,
    brokers: the market went on without it) is REQUEUEd for another worker to take over from its
    snapshot; a backtest (or a platform this build does not know) is FAILed (see
    docs/session-lifecycle.md, "Why a lost backtest is failed, not resumed")."""
    spec = PLATFORMS.get(platform_id)
    return REQUEUE if spec is not None and spec.pacing == Pacing.WALL_CLOCK else FAIL


def reap_lost_sessions(*, now: datetime | None = None) -> list[str]:
    """Deal with every session whose lease expired: requeue it or fail it
    (`fate_of_lost_session`), and remove the sandbox leftovers of ended sessions on this
    machine. Returns the ids of the sessions reaped either way."""
    now = now or timezone.now()
    reaped = [
        str(session.pk)
        for session in TradingSession.objects.filter(
            state__in=HOSTED_STATES, lease_expires_at__lt=now
        )
        if reap_one(session, now=now)
    ]
    remove_sandbox_leftovers()
    return reaped


def reap_one(session: TradingSession, *, now: datetime) -> bool:
    """Requeue or fail one session whose lease expired; False when its row moved first."""
    if fate_of_lost_session(session.platform) == REQUEUE:
        return requeue_session_of_lost_host(session=session, now=now)
    return end_session_of_lost_host(
        session=session, to=State.FAILED, reason=lost_reason(session), now=now
    )


def requeue_session_of_lost_host(*, session: TradingSession, now: datetime) -> bool:
    """Put the session back in the queue under a moved fence and ask for a worker; its tokens
    stay valid (the strategy carries on with the next host). False when the row moved first."""
    if not session.requeue_for_lost_host(now=now):
        return False
    logger.warning("session %s requeued: its host is gone, another worker takes it over",
                   session.pk)
    ask_for_a_worker()
    return True


def ask_for_a_worker() -> None:
    """One dispatch task (after commit, when in a transaction): a worker claims the session."""
    from runtimes.hosting.dispatch import enqueue_dispatch  # dispatch imports this module

    enqueue_dispatch()


def host_is_gone(session: TradingSession, *, now: datetime) -> bool:
    """Whether nobody runs the `waiting` or `running` session any more: its lease expired, or
    its host does not answer over the bus within HOST_PROBE_TIMEOUT_S."""
    if session.state not in HOSTED_STATES:
        return False
    if session.lease_expires_at is not None and session.lease_expires_at < now:
        return True
    try:
        get_bus().request(
            str(session.pk),
            {"op": "session", "path": {}, "query": {}, "body": None},
            timeout=HOST_PROBE_TIMEOUT_S,
        )
    except BusUnavailable:
        return True
    return False


def remove_sandbox_leftovers(directory: Path | None = None, *, now: float | None = None) -> int:
    """Remove the temp folders of hosted runs (in `directory`, the system's temp directory by
    default) whose session has ended: what a killed worker left behind. A folder of a session
    this database does not know belongs to another platform sharing the machine (its own
    database), so it is left alone until it is FOREIGN_LEFTOVER_AGE_S old. Returns how many
    folders were removed."""
    directory = directory or Path(tempfile.gettempdir())
    found: dict[str, list[Path]] = {}
    for path in directory.iterdir():
        match = LEFTOVER_NAME.match(path.name)
        if match is not None and path.is_dir():
            found.setdefault(match.group(1), []).append(path)
    if not found:
        return 0
    states = dict(TradingSession.objects.filter(pk__in=list(found)).values_list("pk", "state"))
    ended = {str(pk) for pk, state in states.items() if state not in LIVE_STATES}
    known = {str(pk) for pk in states}
    oldest = (time.time() if now is None else now) - FOREIGN_LEFTOVER_AGE_S
    removed = 0
    for session_id, paths in found.items():
        for path in paths:
            if session_id in ended or (session_id not in known and _modified(path) < oldest):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
    return removed


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile
        return float("inf")
