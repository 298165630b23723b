"""What lets a wall-clock session outlive its worker (docs/session-lifecycle.md, "Takeover"):
event ids reserved in blocks under the fence, what a new host reads of its predecessor, and the
process's registry of running hosts that a stopping worker drains.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from runtimes.core.session import EventSequencer
from runtimes.models import TradingSession

logger = logging.getLogger(__name__)

EVENT_ID_BLOCK = 100_000  # ids reserved per write: a mock session at 10 frames/s, every ~3 h


class ReservingSequencer(EventSequencer):
    """Hands out ids within what the session row reserved; past it, `reserve(upto)` (a write
    under the host's fence, which raises LeaseLost once the lease was taken) reserves the next
    block first. So every id this host sends is at most the row's `event_ids_reserved`, and a
    host taking over starts after it: no id is ever sent twice for different frames."""

    __slots__ = ("reserve", "reserved")

    def __init__(self, last_sequence: int, *, reserved: int,
                 reserve: Callable[[int], None]) -> None:
        super().__init__(last_sequence)
        self.reserved, self.reserve = reserved, reserve

    def next_id(self) -> str:
        if self.last_sequence >= self.reserved:
            upto = self.last_sequence + EVENT_ID_BLOCK
            self.reserve(upto)
            self.reserved = upto
        return super().next_id()


@dataclass(frozen=True, slots=True)
class Predecessor:
    """What a host taking a session over reads of the host before it."""

    journaled: int  # frames in the journal
    last_sequence: int  # the highest id it may have sent (the reservation)
    last_fill_id: str | None  # the last fill its journal recorded
    last_seen: datetime | None  # the time of its last journaled frame


def predecessor_of(session: TradingSession) -> Predecessor | None:
    """The previous host of `session`, or None when this is its first host (nothing journaled,
    nothing reserved, no snapshot). A session journaled by a host that reserved nothing (one
    started before ids were reserved) still has a predecessor: ids go on after its journal."""
    if (not session.event_ids_reserved and session.provider_state is None
            and not session.events.exists()):
        return None
    events = session.events.order_by("-sequence")
    last = events.values_list("frame", flat=True).first()
    trade = events.filter(frame__startswith='{"type":"trade"').values_list(
        "frame", flat=True).first()
    return Predecessor(
        journaled=session.events.count(),
        last_sequence=max(session.event_ids_reserved,
                          events.values_list("sequence", flat=True).first() or 0),
        last_fill_id=None if trade is None else json.loads(trade)["trade"]["id"],
        last_seen=None if last is None else _wire_time(json.loads(last)["timestamp"]),
    )


def _wire_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Drainable(Protocol):
    def drain(self, reason: str) -> None: ...


class RunningHosts:
    """The session hosts running in this process, so that a worker told to stop can drain
    them (refuse orders, flush, persist, release the lease) before it exits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hosts: set[Any] = set()
        self.stopping: str | None = None  # why, once this process drains: it claims nothing more

    def add(self, host: Drainable) -> None:
        with self._lock:
            self._hosts.add(host)
            stopping = self.stopping
        if stopping is not None:  # started as the process began to stop: hand it on too
            host.drain(stopping)

    def hosting(self, session_id: object) -> Any | None:
        """The host of this process running session `session_id`, if any."""
        with self._lock:
            return next((h for h in self._hosts if h.session.pk == session_id), None)

    def __len__(self) -> int:
        return len(self._hosts)  # a set's size: read without the lock

    def discard(self, host: Drainable) -> None:
        with self._lock:
            self._hosts.discard(host)

    def drain_all(self, reason: str) -> int:
        """Ask every running host to drain; returns how many were asked. Each drains on its
        own thread, within a poll interval (runtimes/hosting/host.py)."""
        with self._lock:
            self.stopping = reason
            hosts = list(self._hosts)
        for host in hosts:
            host.drain(reason)
        if hosts:
            logger.warning("draining %d session host(s): %s", len(hosts), reason)
        return len(hosts)


RUNNING_HOSTS = RunningHosts()
