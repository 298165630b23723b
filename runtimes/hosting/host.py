"""The session host: runs one session of any platform in a worker thread, against its provider.

It owns the provider (single-threaded: every REST command runs here, via the bus), the stream
state machine and the journal. How time moves is the provider's pacing: a backtest's simulated
time moves in lock-step with the strategy's acks (BacktestStream); a wall-clock provider's market
moves by itself and the host streams what it drains (LiveStream), waking when the provider is
due (`next_due`) or when a thread feeding it calls `wake`.

The ORM is touched at the edges only: the state transitions, the journal (in bulk, at most a
second behind), the lease (runtimes/leases.py) and the results at the end.
Each journal write and the final writes happen in one transaction with a renewal of the lease:
a host whose lease was taken (its process stalled, the reaper ended the session) writes nothing.

Every socket of the strategy gets every frame (a backtest's time moves once each event was acked
by one of them). Observers (the dashboard's live view) attach through the bus like the strategy's
sockets, with a flag: they receive a copy of every frame, never ack, and never gate time.
With nobody observing, that costs one empty-set check per send.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone

from runtimes.core import wire
from runtimes.core.connection import ConnectionRejected
from runtimes.core.datasets import DatasetError
from runtimes.core.engine_result import BacktestResult
from runtimes.core.errors import TradingError
from runtimes.core.market_data import MarketData
from runtimes.core.provider import Pacing, Provider
from runtimes.core.session import (
    BacktestStream,
    JournalCounts,
    JsonDict,
    LiveStream,
    sequence_of,
)
from runtimes.core.takeover import reconcile, takeover_frame
from runtimes.core.trade_analysis import TradeAnalysis, analyse_backtest
from runtimes.core.wire import connection_frame, encode_frame, error_frame, fill_json, order_json
from runtimes.hosting import commands
from runtimes.hosting.bus import HostEndpoint, Reply, SessionBus
from runtimes.hosting.channel import StrategyChannel, session_prefix
from runtimes.hosting.hosted import HostedStrategy
from runtimes.hosting.leases import HostLease, LeaseLost
from runtimes.hosting.provision import build_provider
from runtimes.hosting.risk import RiskGuard
from runtimes.hosting.survival import (
    RUNNING_HOSTS,
    Predecessor,
    ReservingSequencer,
    predecessor_of,
)
from runtimes.models import SessionEvent, SessionResult, State, TradingSession
from runtimes.providers.registry import ProviderUnavailable
from runtimes.transport.stored_state import READABLE_OPS
from runtimes.transport.views import health_body

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # how long the host blocks on its inbox: bounds cancel and timeout latency
# Messages a poster's thread may hand to the host directly (bus.DirectHandler): none touches the
# database, so an event loop may run them; commands may (the kill switch), so only a thread that
# may block and use the ORM (a sync view's) runs those. Attach and cancel always go through the
# inbox: they change the session row.
DIRECT_ON_ANY_THREAD = frozenset({"ack", "notice", "detach"})
DIRECT_ON_BLOCKING_THREAD = DIRECT_ON_ANY_THREAD | {"command"}
# How often `_step` checks timeouts, the strategy's process, the journal and the lease while
# messages keep coming (always when none came): a bar of a lock-step run paid for all of them.
HOUSEKEEPING_SECONDS = 0.001
PROGRESS_WRITE_SECONDS = 2.0  # how often the batch count reaches the row (the dashboard's bar)
JOURNAL_CHUNK = 5000  # frames are written to SessionEvent at least this many at a time...
JOURNAL_FLUSH_SECONDS = 1.0  # ...or at least this often: what a crash may lose of the journal
CLOSE_NORMAL = 1000
RELEASED = "released"  # the outcome of a host that handed its session back to the queue
TAKEOVER_REASON = "the worker hosting this session stopped; another worker took it over"
# What changes the book (orders, fills, positions, cash): a journal write carrying one of these
# persists the provider's snapshot with it; otherwise (quotes, candles: only the market moved)
# at most every SNAPSHOT_REFRESH_SECONDS, since a market's snapshot is large (mock: ~160 KB and
# ~4 ms with three symbols' bar history).
BOOK_EVENTS = frozenset({"order", "trade", "position", "account"})
SNAPSHOT_REFRESH_SECONDS = 10.0


class HostJournal:
    """The session's journal (a SessionJournal) as the host keeps it: the tail not yet both
    written to SessionEvent and acked stays in memory, each frame as the exact text sent (encoded
    once, here); resume reads older frames back from SessionEvent.

    Frames are written in bulk, acked or not, once a chunk of them waits or a second after the
    last write (the host asks `flush_due` between messages; nothing per frame), and everything
    at the end. Acks of frames written unacked are written with the next flush.

    `keep_unacked` False (a wall-clock session, where acks gate nothing and a client may never
    ack): every written frame leaves memory, acked or not, so a session that runs for days
    holds a second of frames; a reconnect without a cursor then gets the unacked frames of
    that second only, and acks of frames already dropped are written with the next flush.
    """

    def __init__(self, *, keep_unacked: bool = True) -> None:
        self.keep_unacked = keep_unacked
        self.flushed = 0  # frames written to SessionEvent, acked, and dropped from memory
        self.last_dropped = 0  # the sequence of the last frame dropped from memory
        self._ids: list[str] = []  # the tail, oldest first, parallel to _texts and _sequences
        self._texts: list[str] = []
        self._sequences: list[int] = []
        self._acked: set[str] = set()  # acked ids of the tail
        self._acked_prefix = 0  # _ids[:_acked_prefix] are all acked (advanced incrementally)
        self._acked_total = 0
        self._written = 0  # _ids[:_written] are in SessionEvent already
        self._late_acks: list[int] = []  # sequences written unacked and acked since
        self._written_at = float("-inf")  # monotonic time of the last write (or of the first ask)
        self._session: TradingSession | None = None  # where older frames are read from

    # -- SessionJournal ---------------------------------------------------------------------------

    def append_events(self, frames: Sequence[JsonDict]) -> None:
        for frame in frames:
            event_id = frame["event_id"]
            sequence = sequence_of(event_id)
            if self._sequences and sequence <= self._sequences[-1]:
                raise ValueError(f"{event_id} is not after evt-{self._sequences[-1]}")
            self._ids.append(event_id)
            self._sequences.append(sequence)
            self._texts.append(encode_frame(frame))

    def record_ack(self, event_ids: Sequence[str], correlation_id: str) -> None:
        # Keeping unacked frames, flushed ones are acked already (only an acked prefix is
        # flushed before the end). Sequences are contiguous within one host: the tail starts
        # after the last dropped (a host that took the session over starts after a gap).
        first = self._sequences[0] if self._sequences else self.last_dropped + 1
        for event_id in event_ids:
            if event_id in self._acked:
                continue
            try:
                position = sequence_of(event_id) - first
            except ValueError:
                continue
            if position < 0 and not self.keep_unacked:
                # Written and dropped already: its ack reaches the row with the next flush (a
                # repeated ack of such a frame is counted twice: the tail no longer knows it).
                self._late_acks.append(first + position)
                self._acked_total += 1
            elif 0 <= position < len(self._ids) and self._ids[position] == event_id:
                self._acked.add(event_id)
                self._acked_total += 1
                if position < self._written:
                    self._late_acks.append(first + position)

    def resume(self, session: TradingSession, *, journaled: int, last_sequence: int) -> None:
        """A host taking `session` over: `journaled` frames are in SessionEvent already, and
        this host's first frame comes after `last_sequence` (what its predecessor reserved)."""
        self._session = session
        self.flushed, self.last_dropped = journaled, last_sequence

    def frames_after(self, event_id: str) -> list[JsonDict]:
        return [json.loads(text) for text in self.texts_after(event_id)]

    def unacked_frames(self) -> list[JsonDict]:
        return [json.loads(text) for text in self.unacked_texts()]

    def counts(self) -> JournalCounts:
        return JournalCounts(sent=self.flushed + len(self._ids), acked=self._acked_total)

    # -- texts, for the host ----------------------------------------------------------------------

    def last_texts(self, count: int) -> list[str]:
        """The texts of the `count` frames appended last (what the host is about to send)."""
        return self._texts[len(self._texts) - count:] if count else []

    def texts_after(self, event_id: str) -> list[str]:
        """Every frame after `event_id`, oldest first: SessionEvent, then the tail."""
        sequence = sequence_of(event_id)
        start = bisect_right(self._sequences, sequence)
        older: list[str] = []
        if start == 0 and self.flushed and self._session is not None:
            rows = self._session.events.filter(sequence__gt=sequence)
            if self._sequences:  # the tail may be written already: read only what precedes it
                rows = rows.filter(sequence__lt=self._sequences[0])
            older = list(rows.order_by("sequence").values_list("frame", flat=True))
        return older + self._texts[start:]

    def unacked_texts(self) -> list[str]:
        """Every frame not acked yet, oldest first (flushed ones are acked until the end)."""
        return [text for event_id, text in zip(self._ids, self._texts, strict=True)
                if event_id not in self._acked]

    # -- writing ----------------------------------------------------------------------------------

    def flush_due(self, moment: float, chunk: int = JOURNAL_CHUNK) -> bool:
        """Whether a chunk of frames waits, or anything waits for a second (`moment` is
        monotonic time): two comparisons, cheap enough for every step of the host."""
        waiting = len(self._ids) - self._written
        if not waiting and not self._late_acks:
            return False
        if self._written_at == float("-inf"):  # the first frames: a second from now, too
            self._written_at = moment
        return waiting >= chunk or moment - self._written_at >= JOURNAL_FLUSH_SECONDS

    def flush(
        self, session: TradingSession, *, everything: bool, chunk: int = JOURNAL_CHUNK,
        moment: float | None = None,
    ) -> None:
        """Write the frames not written yet (acked or not) and the acks of those written
        before, in bulk; then drop from memory the prefix both written and acked. Not
        `everything`: only when `flush_due(moment)` (without a moment: a whole chunk waits).
        After `everything` (the end), the tail is gone and later acks change nothing."""
        self._session = session
        if not everything and not self.flush_due(
                float("-inf") if moment is None else moment, chunk):
            return
        start, acked = self._written, self._acked
        write_events(session, [
            (sequence, event_id, text, event_id in acked)
            for event_id, sequence, text in zip(
                self._ids[start:], self._sequences[start:], self._texts[start:], strict=True)
        ])
        if self._late_acks:
            session.events.filter(sequence__in=self._late_acks).update(acked=True)
            self._late_acks.clear()
        self._written = len(self._ids)
        if moment is not None:
            self._written_at = moment
        ids = self._ids
        while self._acked_prefix < len(ids) and ids[self._acked_prefix] in acked:
            self._acked_prefix += 1
        self._drop(len(ids) if everything or not self.keep_unacked else self._acked_prefix)

    def _drop(self, end: int) -> None:
        for event_id in self._ids[:end]:
            self._acked.discard(event_id)
        if end:
            self.last_dropped = self._sequences[end - 1]
        del self._ids[:end], self._sequences[:end], self._texts[:end]
        self._acked_prefix -= min(end, self._acked_prefix)
        self._written -= end
        self.flushed += end


def write_events(session: TradingSession, rows: list[tuple[int, str, str, bool]]) -> None:
    """Insert journal rows (sequence, event id, frame text, acked) of one session.

    On PostgreSQL with COPY: Django's bulk_create binds client-side under psycopg 3 and quoted
    every frame in Python, a third of the worker's CPU in the Redis benchmark. Elsewhere (SQLite,
    the embedded topology) with one `executemany`: bulk_create built a model instance and bound
    every value in Python, a write that held the host's lock (and stalled its acks and orders)
    several times longer."""
    if not rows:
        return
    meta = SessionEvent._meta
    columns = ", ".join(meta.get_field(name).column
                        for name in ("session", "sequence", "event_id", "frame", "acked"))
    if db_connection.vendor != "postgresql":
        session_value = meta.get_field("session").get_db_prep_value(session.pk, db_connection)
        with db_connection.cursor() as cursor:
            cursor.executemany(
                # The model's own table and column names; every value is bound.
                f"INSERT INTO {meta.db_table} ({columns}) VALUES (%s, %s, %s, %s, %s)",  # noqa: S608
                [(session_value, sequence, event_id, frame, acked)
                 for sequence, event_id, frame, acked in rows])
        return
    with db_connection.cursor() as cursor, cursor.copy(
            f"COPY {meta.db_table} ({columns}) FROM STDIN") as copy:
        for sequence, event_id, frame, acked in rows:
            copy.write_row((session.pk, sequence, event_id, frame, acked))


class SessionHost:
    """One run: `run()` returns when the session has completed, failed or been cancelled."""

    def __init__(
        self,
        session: TradingSession,
        endpoint: HostEndpoint,
        provider: Provider,
        *,
        now: Callable[[], datetime] = timezone.now,
        monotonic: Callable[[], float] = time.monotonic,
        lease: HostLease | None = None,
        predecessor: Predecessor | None = None,
    ) -> None:
        self.session, self.endpoint, self.provider = session, endpoint, provider
        self.wall_clock = provider.pacing == Pacing.WALL_CLOCK
        self.now, self.monotonic = now, monotonic
        self.lease = lease  # None: a host nobody reaps (unit tests of the host alone)
        self.journal = HostJournal(keep_unacked=not self.wall_clock)
        self.guard = RiskGuard.for_session(session)  # risk limits and kill switches
        self.predecessor = predecessor
        self.draining: str | None = None  # why, once this host was told to hand the session on
        # The takeover's `connection` frame until a strategy socket got it: a client that
        # reconnects without a cursor (the SDK) gets it first, however long ago it was journaled.
        self.takeover_text: str | None = None
        self.book_changed = False  # a book event was sent since the last persisted snapshot
        self.snapshot_written = monotonic()
        self.stream: BacktestStream | LiveStream = (
            LiveStream(provider, journal=self.journal, provider=provider.platform,
                       sequencer=self._sequencer())
            if self.wall_clock else
            BacktestStream(provider, journal=self.journal, provider=provider.platform,
                           broker=provider.broker))
        self.connections: dict[str, None] = {}  # the strategy's sockets, in attach order
        self.observers: set[str] = set()  # read-only sockets that get a copy of every frame
        self.outcome: tuple[str, str] | None = None  # (state, reason) once decided
        self.last_progress = monotonic()
        self.progress_written = monotonic()
        self.housekeeping_due = float("-inf")  # when `_step` next checks timeouts, the journal...
        self.strategy: HostedStrategy | None = None  # a hosted session's sandboxed process
        # Held by whichever thread runs the session at the moment: the host's own, or a poster's
        # taking a message directly (`take_now`). The provider and the stream are
        # single-threaded.
        self.lock = threading.Lock()
        self.crashed: Exception | None = None  # raised on another thread, re-raised on the host's

    # -- surviving the worker (docs/session-lifecycle.md, "Takeover") ------------------------------

    def _sequencer(self) -> ReservingSequencer | None:
        """A wall-clock host under a lease hands out ids within a reservation on the row, so
        that a host taking over after it never reuses one; it starts after its predecessor's."""
        if self.lease is None:
            return None
        last = 0 if self.predecessor is None else self.predecessor.last_sequence
        return ReservingSequencer(last, reserved=last, reserve=self._reserve_event_ids)

    def _reserve_event_ids(self, upto: int) -> None:
        self._hold_lease(event_ids_reserved=upto)

    def take_over(self) -> None:
        """Carry on where the predecessor stopped: the provider was restored from its snapshot;
        reconcile with it, stream again (the strategy's sockets reconnect and attach), and tell
        the strategy with a `connection` frame, the first of this host."""
        predecessor = self.predecessor
        assert predecessor is not None and self.wall_clock
        self.journal.resume(self.session, journaled=predecessor.journaled,
                            last_sequence=predecessor.last_sequence)
        found = reconcile(self.provider, last_journaled_fill_id=predecessor.last_fill_id)
        now = self.now()
        last_seen = predecessor.last_seen
        gap_ms = 0 if last_seen is None else int((now - last_seen).total_seconds() * 1000)
        self.stream.start()
        self.stream.emit_notice(lambda event_id: takeover_frame(
            found, broker=self.provider.broker, reason=TAKEOVER_REASON, gap_ms=gap_ms,
            timestamp=now, event_id=event_id))
        self.takeover_text = self.journal.last_texts(1)[0]
        self.session.transition(to=State.RUNNING, allowed_from={State.WAITING})
        logger.warning("session %s taken over: %s", self.session.pk, found.as_json())

    def drain(self, reason: str) -> None:
        """From another thread (a worker told to stop): refuse orders from now on and hand the
        session back to the queue within a poll interval (`_hand_over`). A backtest is not
        drained: it cannot move (its worker's warm shutdown waits for it to complete)."""
        if not self.wall_clock or self.lease is None:
            return
        self.draining = reason
        self.endpoint.wake()

    def _fenced_action(self, message: JsonDict) -> Reply | None:
        """An order action of a wall-clock host: refused while draining; dropped when its
        caller gave up waiting (an order must not leave after its 503); else sent to the
        provider only while this host still holds its lease (one conditional UPDATE), and its
        effect persisted (the provider's snapshot, under the fence) before the reply."""
        if self.draining is not None:
            return _unavailable("This worker is stopping; the session moves to another. Retry.")
        expires = message.get("expires_at")
        # The caller's real wait (time.time() in the view), not the venue's clock.
        if expires is not None and time.time() > float(expires):
            return None
        assert self.lease is not None
        if not self.lease.renew(now=self.now()):
            self.endpoint.reply(message["request"], _unavailable(
                "The session moved to another worker. Retry."))
            raise LeaseLost(f"the lease of session {self.session.pk} was taken")
        reply = commands.execute(self.provider, message, guard=self.guard)
        try:
            with transaction.atomic():
                self._hold_lease(provider_state=self.provider.snapshot())
        except LeaseLost:
            self.endpoint.reply(message["request"], _unavailable(
                "The session moved to another worker. Retry."))
            raise
        return reply

    def _hand_over(self) -> None:
        """Drain: tell the sockets, write the journal and the snapshot under the fence, release
        the lease (the session is queued again at once), close the sockets (they reconnect)."""
        reason = self.draining or "draining"
        if self.stream.started:
            self._announce_disconnect(reason)
        with transaction.atomic():
            self._hold_lease(provider_state=self.provider.snapshot())
            self.journal.flush(self.session, everything=True)
            self.guard.flush()
        assert self.lease is not None
        self.lease.release(now=self.now())
        for connection in [*self.connections, *self.observers]:
            # A clean close: the SDK reconnects at once, and its attach waits for the next host.
            self.endpoint.close_connection(connection, CLOSE_NORMAL)
        self.outcome = (RELEASED, reason)

    # -- main loop ------------------------------------------------------------------------------

    def run(self) -> str:
        connect_deadline = self.monotonic() + self.session.connect_timeout_s
        self.endpoint.serve_directly(self.take_now)
        wait = POLL_SECONDS
        try:
            while self.outcome is None:
                # A wall-clock market's next tick needs the host awake on time; a backtest's
                # wait only bounds how soon a cancel or a timeout is seen.
                message = (self.endpoint.receive(wait, precise=True) if self.wall_clock
                           else self.endpoint.receive(wait))
                with self.lock:
                    if self.crashed is not None:
                        raise self.crashed  # as if it had happened here: the session fails
                    self._step(message, connect_deadline)
                    wait = self._wait_seconds()  # under the lock: the provider is not shared
        finally:
            self.endpoint.serve_directly(None)
        if self.outcome[0] == RELEASED:
            return RELEASED
        with self.lock:
            return self._finish()

    def _wait_seconds(self) -> float:
        """How long to block on the inbox: POLL_SECONDS, or less when the provider is due."""
        due = self.provider.next_due() if self.wall_clock else None
        return POLL_SECONDS if due is None else max(0.0, min(POLL_SECONDS, due))

    def _step(self, message: JsonDict | None, connect_deadline: float) -> None:
        if message is not None:
            self.handle(message)
        if self.draining is not None and self.outcome is None:
            self._hand_over()
            return
        if self.wall_clock and self.outcome is None:
            self._tick()
        moment = self.monotonic()
        if message is not None and moment < self.housekeeping_due:
            return  # a lock-step run takes a message every few microseconds: check once a ms
        self.housekeeping_due = moment + HOUSEKEEPING_SECONDS
        self._check_timeouts(connect_deadline)
        if self.outcome is None and self.strategy is not None:
            self.outcome = self.strategy.outcome()
        if self.outcome is None:
            self._sync()
            self.guard.refresh_kill_state()  # here, not in the next order's path
        if self.outcome is None and self.stream.started and not self.wall_clock:
            self.record_progress()  # a backtest's batches: the dashboard's progress bar

    def _tick(self) -> None:
        """A wall-clock market moves by itself: advance it when due, then stream whatever
        happened since the last drain (fed from another thread too: its `wake` got us here)."""
        due = self.provider.next_due()
        if due is not None and due <= 0:
            self.provider.advance(self.now())
        self._send(self.stream.pump())

    def _sync(self) -> None:
        """When due: renew the lease and write the journal's news, in one transaction, so that
        the fence guards the write. Raises LeaseLost once the lease was taken."""
        moment = self.monotonic()
        journal_due = self.stream.started and self.journal.flush_due(moment)
        if not journal_due and (self.lease is None or not self.lease.due(moment)):
            return
        # A wall-clock host persists its provider's snapshot with the journal write that carries
        # a change of the book: a host taking over restores the book as the journal left it.
        snapshot = ({"provider_state": self.provider.snapshot()}
                    if journal_due and self._snapshot_due(moment) else {})
        with transaction.atomic():
            self._hold_lease(**snapshot)
            if journal_due:
                self.journal.flush(self.session, everything=False, moment=moment)

    def _snapshot_due(self, moment: float) -> bool:
        if not self.wall_clock or self.lease is None:
            return False
        if not self.book_changed and moment - self.snapshot_written < SNAPSHOT_REFRESH_SECONDS:
            return False
        self.book_changed, self.snapshot_written = False, moment
        return True

    def _hold_lease(self, **fields: Any) -> None:
        """Renew the lease (writing `fields` with it) or raise LeaseLost."""
        if self.lease is None:
            return
        progress = {"batches": self.stream.batches_emitted} if self.stream.started else {}
        if not self.lease.renew(now=self.now(), **progress, **fields):
            raise LeaseLost(f"the lease of session {self.session.pk} was taken")

    def take_now(self, message: JsonDict, blocking: bool) -> bool:
        """A bus.DirectHandler: handle `message` on the poster's thread if the host is free (an
        event loop never waits here: a busy host gets the message through its inbox)."""
        allowed = DIRECT_ON_BLOCKING_THREAD if blocking else DIRECT_ON_ANY_THREAD
        if message.get("kind") not in allowed or not self.lock.acquire(blocking=blocking):
            return False
        try:
            if self.outcome is not None or self.crashed is not None:
                return False  # ending: the host's thread answers what is left
            try:
                self.handle(message)
            except Exception as exc:  # the host's crash, not the poster's: hand it over
                self.crashed = exc
            if self.outcome is not None or self.crashed is not None:
                self.endpoint.wake()  # the host's thread ends the session
            return True
        finally:
            self.lock.release()

    def record_progress(self) -> None:
        """Every few seconds, one UPDATE of the batch count, so progress shows while it runs
        (a plain update: no signals, nothing in the per-event path)."""
        moment = self.monotonic()
        if moment - self.progress_written < PROGRESS_WRITE_SECONDS:
            return
        self.progress_written = moment
        rows = TradingSession.objects.filter(pk=self.session.pk)
        if self.lease is not None:
            rows = rows.filter(lease_fence=self.lease.fence)
        rows.update(batches=self.stream.batches_emitted)

    def _check_timeouts(self, connect_deadline: float) -> None:
        if self.outcome is not None:
            return
        moment = self.monotonic()
        if not self.stream.started and moment > connect_deadline:
            self.outcome = (State.FAILED, f"no strategy connected within "
                                          f"{self.session.connect_timeout_s} s")
        elif (not self.wall_clock and self.stream.started
              and moment - self.last_progress > self.session.idle_timeout_s):
            # Only a backtest needs the strategy's acks to move on; a wall-clock session runs
            # until it is stopped.
            self.outcome = (State.FAILED, f"strategy stopped acknowledging for "
                                          f"{self.session.idle_timeout_s} s")

    def handle(self, message: JsonDict) -> None:
        kind = message.get("kind")
        if kind == "attach" and message.get("observer"):
            self._observe(message["connection"])
        elif kind == "attach":
            self._attach(message["connection"], message.get("last_event_id"))
        elif kind == "ack":
            self._ack(message)
        elif kind == "command":
            self._command(message)
        elif kind == "detach":
            self.connections.pop(message["connection"], None)
            self.observers.discard(message["connection"])
        elif kind == "notice":
            self._notice(message)
        elif kind == "cancel":
            self.outcome = (State.CANCELLED, message.get("reason") or "cancelled")

    def _attach(self, connection: str, last_event_id: str | None) -> None:
        # Every socket gets every frame from now on; a reconnecting one first gets what it
        # missed (after its cursor, or what it has not acked).
        self.connections[connection] = None
        self.last_progress = self.monotonic()
        if self.stream.started:
            texts = self._reconnect_texts(last_event_id)
            if self.takeover_text is not None:
                if last_event_id is None and self.takeover_text not in texts:
                    texts.insert(0, self.takeover_text)  # the oldest frame of this host
                self.takeover_text = None
            self.endpoint.send(connection, texts)
            return
        self.session.transition(to=State.RUNNING, allowed_from={State.WAITING},
                                started_at=self.now())
        self._send(self.stream.start())

    def _observe(self, connection: str) -> None:
        """A new observer: first the provider's state as it is (account, positions, open
        orders), then a copy of every frame from now on. It does not count as the strategy
        connecting."""
        self.observers.add(connection)
        state = {"type": "observer_state",
                 "state": self.session.state,
                 "simulated_time": self._venue_time()}
        for op, key in (("account", "account"), ("list_positions", "positions"),
                        ("list_orders", "orders")):
            reply = commands.execute(self.provider, {"op": op})
            state[key] = reply.body if reply.status == 200 else None
        self.endpoint.send_observed(connection, [encode_frame(state)])

    def _fan_out(self, texts: list[str]) -> None:
        for observer in self.observers:
            self.endpoint.send_observed(observer, texts)

    def _ack(self, message: JsonDict) -> None:
        released = self.stream.on_ack(message["events"], message.get("correlation_id", ""))
        if released:
            self.last_progress = self.monotonic()
        if self.stream.completed:
            self.outcome = (State.COMPLETED, "")
            return
        self._send(self.stream.pump())

    def _command(self, message: JsonDict) -> None:
        op = message.get("op")
        if op == "session":
            reply: Reply | None = Reply(200, self.session_info())
        elif op in commands.ACTIONS and self.wall_clock and self.lease is not None:
            reply = self._fenced_action(message)
            if reply is None:
                return  # nobody waits for it any more
        else:
            reply = commands.execute(self.provider, message, guard=self.guard)
        self.endpoint.reply(message["request"], reply)
        if message.get("op") in commands.ACTIONS:
            self._send(self.stream.on_strategy_action())

    def _notice(self, message: JsonDict) -> None:
        def build(event_id: str) -> JsonDict:
            return error_frame(message["code"], message["message"], message.get("details"),
                               timestamp=self.provider.now, event_id=event_id)

        self.stream.emit_notice(build)
        texts = self.journal.last_texts(1)
        self.endpoint.send(message["connection"], texts)
        if self.observers:
            self._fan_out(texts)

    def _send(self, frames: list[JsonDict]) -> None:
        # The journal encoded each frame once as it was published; those texts go out as-is.
        if not frames:
            return
        texts = self.journal.last_texts(len(frames))
        for connection in self.connections:
            self.endpoint.send(connection, texts)
        if self.observers:
            self._fan_out(texts)
        if self.wall_clock and not self.book_changed:  # one lookup per frame, until it changed
            self.book_changed = any(frame["type"] in BOOK_EVENTS for frame in frames)

    def _reconnect_texts(self, last_event_id: str | None) -> list[str]:
        if last_event_id is not None:
            return self.journal.texts_after(last_event_id)
        return self.journal.unacked_texts()

    def session_info(self) -> JsonDict:
        counts = self.stream.counts()
        return {
            "id": str(self.session.id),
            "platform": self.session.platform,
            "state": self.session.state,
            "symbols": list(self.session.symbols),
            "timeframe": self.session.timeframe,
            "subscriptions": self.session.subscriptions(),
            **self.guard.session_fields(),
            "events_sent": counts.sent,
            "events_acked": counts.acked,
            "batches": self.stream.batches_emitted,
            "simulated_time": self._venue_time(),
        }

    def health(self) -> JsonDict:
        """`GET {base}/health` of a running session (the web tier answers it from the row)."""
        return health_body(self.session.platform, up=True)

    def _venue_time(self) -> str | None:
        """The provider's time, once there is one: a backtest's after its first batch."""
        if not self.wall_clock and not getattr(self.provider, "steps_done", 0):
            return None
        return wire.timestamp_str(self.provider.now)

    # -- the end --------------------------------------------------------------------------------

    def _finish(self) -> str:
        assert self.outcome is not None
        state, reason = self.outcome
        if state != State.COMPLETED:
            self._announce_disconnect(reason)
        for connection in [*self.connections, *self.observers]:
            self.endpoint.close_connection(connection, CLOSE_NORMAL)
        self._hold_lease()  # before the strategy's output is stored, and again below
        if self.strategy is not None:  # its output is stored before the session ends
            serve = self._serve_ended if isinstance(self.endpoint, StrategyChannel) else None
            self.strategy.stop(state=state, serve=serve)
        counts = self.stream.counts()
        with transaction.atomic():
            self._hold_lease()  # first: a host whose lease was taken writes nothing
            self.journal.flush(self.session, everything=True)
            self.guard.flush()
            self._persist_result(complete=state == State.COMPLETED)
            self.session.finish(to=state, now=self.now(), reason=reason,
                                events_sent=counts.sent, events_acked=counts.acked,
                                batches=self.stream.batches_emitted)
        return state

    def _serve_ended(self, seconds: float) -> None:
        """While a channel run's strategy exits after its session ended: answer its reads from
        the final state (its end-of-backtest hook may ask for the account), refuse the rest as
        the web tier refuses an ended session's."""
        message = self.endpoint.receive(seconds)
        if message is None or message.get("kind") != "command":
            return
        assert self.outcome is not None
        state = self.outcome[0]
        if message.get("op") == "session":
            reply = Reply(200, self.session_info())
        elif message.get("op") in READABLE_OPS:
            reply = commands.execute(self.provider, message)
        else:
            reply = Reply(503, {"code": "SHUTTING_DOWN", "message": f"The session has {state}.",
                                "details": {"state": state}})
        self.endpoint.reply(message["request"], reply)

    def abandon(self, reason: str) -> None:
        """After a crash: tell and release the sockets (no database work, it may be the cause)."""
        self._announce_disconnect(reason)
        for connection in [*self.connections, *self.observers]:
            self.endpoint.close_connection(connection, CLOSE_NORMAL)

    def _announce_disconnect(self, reason: str) -> None:
        # The SDK reconnects at once on a normal close; DISCONNECTING first says why, and the
        # reconnect is then refused (403) because the session has ended.
        if not self.connections or not self.stream.started:
            return
        self.stream.emit_notice(lambda event_id: connection_frame(
            "DISCONNECTING", timestamp=self.provider.now, event_id=event_id,
            broker=self.provider.broker, error=reason))
        for connection in self.connections:
            self.endpoint.send(connection, self.journal.last_texts(1))
        if self.observers:
            self._fan_out(self.journal.last_texts(1))

    def _persist_result(self, *, complete: bool) -> None:
        """The result row, also of a session that failed, was cancelled or was stopped: its
        final account, positions, orders and trades stay readable through the Trading API
        (transport/stored_state.py); equity and metrics only for a completed backtest (reports).
        A wall-clock session also leaves the provider's snapshot on its row."""
        provider = self.provider
        final = {"account": commands.execute(provider, {"op": "account"}).body,
                 "positions": commands.execute(provider, {"op": "list_positions"}).body,
                 "session_info": self.session_info()}
        if self.wall_clock:
            self.session.provider_state = provider.snapshot()
            self.session.save(update_fields=["provider_state"])
        if not complete:
            SessionResult.objects.create(
                session=self.session, **final,
                orders=[order_json(o) for o in provider.all_orders()],
                trades=[fill_json(f) for f in provider.fills()])
            return
        engine: Any = provider  # a completed backtest's provider is its BacktestEngine
        store_completed_result(self.session, engine.result(), data=engine.market_data,
                               initial_cash=engine.config.initial_cash, **final)


def store_completed_result(session: TradingSession, result: BacktestResult, *,
                           data: MarketData, initial_cash: Decimal,
                           **final: Any) -> SessionResult:
    """The result row of a completed backtest: orders, fills, metrics, the equity curve and the
    trade analysis (`final`: the account, positions and session info the row also keeps). An
    analysis that fails is logged and left out: a report's bug must not lose the run, whose
    page then says it has none."""
    try:
        analysis: TradeAnalysis | None = analyse_result(result, data=data,
                                                        initial_cash=initial_cash)
    except Exception:
        logger.exception("trade analysis of session %s failed", session.pk)
        analysis = None
    row = SessionResult.objects.create(
        session=session, **final,
        orders=[order_json(o) for o in result.orders],
        trades=[fill_json(f) for f in result.fills],
        metrics=_jsonable(result.metrics.as_dict()),
        analysis=analysis.summary() if analysis is not None else {},
    )
    write_json_text(row, "equity", equity_text(result.equity_curve))
    if analysis is not None:
        write_json_text(row, "round_trips", json.dumps(analysis.rows(), separators=(",", ":")))
    return row


def analyse_result(result: BacktestResult, *, data: MarketData, initial_cash: Decimal
                   ) -> TradeAnalysis:
    """The trade analysis a completed backtest's result row stores (round trips, per symbol,
    monthly returns, benchmark), annualised by the calendar its metrics were computed with."""
    return analyse_backtest(fills=result.fills, orders=result.orders,
                            equity_curve=result.equity_curve, data=data,
                            initial_cash=initial_cash, calendar=result.metrics.calendar)


def equity_text(curve: Iterable[Any]) -> str:
    """The JSON text of an equity curve as results store it, [[iso time, equity], ...], built
    point by point: a list of pairs, then its JSON, held ~150 MB more at the end of a year of
    1m bars. (Neither an ISO time nor a decimal's text has a character JSON escapes.)"""
    return "[" + ",".join(f'["{point.timestamp.isoformat()}","{point.equity}"]'
                          for point in curve) + "]"


def write_json_text(row: Any, field: str, text: str) -> None:
    """Store JSON `text` in `row`'s JSONField `field` as it is (the field would encode a value
    again): a bound parameter, cast to jsonb on PostgreSQL."""
    meta = row._meta
    column = meta.get_field(field).column
    cast = "::jsonb" if db_connection.vendor == "postgresql" else ""
    with db_connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {meta.db_table} SET {column} = %s{cast} "  # noqa: S608 (the model's names)
            f"WHERE {meta.pk.column} = %s", [text, row.pk])


def _alone() -> bool:
    """Whether this process hosts one session only: a channel then busy-waits briefly for its
    strategy (AdaptiveSpin); hosts sharing a process would spin against each other's GIL."""
    return len(RUNNING_HOSTS) <= 1


def _unavailable(message: str) -> Reply:
    """503 PROVIDER_UNAVAILABLE: the SDK retries it, and the retry reaches the next host."""
    return Reply(503, {"code": "PROVIDER_UNAVAILABLE", "message": message, "details": {}})


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v if v is None or isinstance(v, int | str) else str(v) for k, v in values.items()}


def run_session_host(*, lease: HostLease, bus: SessionBus) -> str | None:
    """Run a session this worker claimed under `lease` (runtimes/dispatch.py moved it from
    queued to waiting) to its end; returns its final state, or None when it is no longer
    waiting (cancelled since the claim) or its lease was taken while it ran (the session was
    ended in its place)."""
    session = TradingSession.objects.select_related("dataset").get(pk=lease.session_id)
    # A cancel posted since the claim waits in the mailbox (the bus keeps cancels for sessions
    # not hosted yet), so it is read as soon as the host runs.
    endpoint = bus.host(str(session.id))
    if session.state != State.WAITING:
        endpoint.close()
        return None
    began = time.perf_counter()
    # A hosted strategy's sandbox, interpreter and SDK start while its data loads: it needs its
    # session only when it first connects, and what it sends meanwhile waits (on its local
    # channel's socket, or in the bus' inbox) until the host runs.
    strategy = HostedStrategy.start_for(session)  # None unless the session is hosted
    spawned = time.perf_counter()
    try:
        provider = build_provider(session, wake=endpoint.wake)
    except ProviderUnavailable as exc:
        return _fail_unhosted(session, endpoint, strategy, f"provider: {exc}")
    except (DatasetError, ValueError, OSError) as exc:
        reason = f"dataset: {exc}" if session.dataset is not None else f"provider: {exc}"
        return _fail_unhosted(session, endpoint, strategy, reason)
    except (ConnectionRejected, TradingError) as exc:
        # The broker refused the connection's keys, or could not be reached to reconcile a
        # session taken over (its messages are plain sentences without secrets): say so.
        message = exc.message if isinstance(exc, TradingError) else str(exc)
        return _fail_unhosted(session, endpoint, strategy, f"broker: {message}")
    except BaseException:
        _drop_strategy(strategy)
        raise
    _log_start_up(session, began=began, spawned=spawned, built=time.perf_counter())
    try:
        return _host(session, endpoint, provider, lease, strategy)
    finally:
        provider.close()


def _fail_unhosted(session: TradingSession, endpoint: HostEndpoint,
                   strategy: HostedStrategy | None, reason: str) -> str:
    """End a session before its host runs (no provider, no lease); its strategy, started
    meanwhile, is stopped first (output stored, token revoked: nothing is written after the
    end)."""
    endpoint.close()
    _drop_strategy(strategy)
    session.finish(to=State.FAILED, now=timezone.now(), reason=reason)
    return State.FAILED


def _drop_strategy(strategy: HostedStrategy | None, *, discard: bool = False) -> None:
    """Stop a strategy that no host served (`discard`: writing nothing) and close its local
    channel's listening socket, which otherwise the serving host closes."""
    if strategy is None:
        return
    channel = strategy.channel  # read first: stopping forgets the run
    try:
        if discard:
            strategy.discard()
        else:
            strategy.stop(state=State.FAILED)
    finally:
        if channel is not None:
            channel.close()


def _log_start_up(session: TradingSession, *, began: float, spawned: float, built: float) -> None:
    """Where a session's start-up went (debug; bench/bench_startup.py reads `startup`)."""
    waited = (timezone.now() - session.created_at).total_seconds() - (time.perf_counter() - began)
    parts = {"dispatch": waited, "strategy spawn": spawned - began, "provider": built - spawned}
    logger.debug("session %s start-up: %s", session.id,
                 ", ".join(f"{name} {value * 1000:.0f} ms" for name, value in parts.items()),
                 extra={"startup": {"session": str(session.id), **parts}})


def _host(
    session: TradingSession, endpoint: HostEndpoint, provider: Provider, lease: HostLease,
    strategy: HostedStrategy | None,
) -> str | None:
    """Run `session` on its built `provider` under `lease`, with its hosted `strategy` started
    already (run_session_host's second half)."""
    total = getattr(provider, "steps_total", None)  # a backtest knows its batches up front
    try:
        still_ours = lease.renew(now=timezone.now(),
                                 **({} if total is None else {"total_batches": total}))
    except Exception:
        # The database refused the write: nothing has run yet, so end the session now rather
        # than leave it to the reaper once its lease runs out.
        logger.exception("session host %s could not renew its lease", session.id)
        return _fail_unhosted(session, endpoint, strategy, "internal error in the host")
    if not still_ours:
        endpoint.close(keep_inbox=True)
        _drop_strategy(strategy, discard=True)  # the session was ended in place of this host
        return None
    wall_clock = provider.pacing == Pacing.WALL_CLOCK
    predecessor = predecessor_of(session) if wall_clock else None
    host = SessionHost(session, endpoint, provider, lease=lease, predecessor=predecessor)
    host.strategy = strategy
    if host.strategy is not None and host.strategy.channel is not None:
        # The strategy reaches this thread over its own socket; the bus still brings the rest.
        host.endpoint = StrategyChannel(endpoint, host.strategy.channel,
                                        session_prefix=session_prefix(session.pk),
                                        health=host.health, may_spin=_alone)
    RUNNING_HOSTS.add(host)
    keep_inbox = False  # what is posted meanwhile is for the next host of a session moving on
    try:
        if predecessor is not None:
            host.take_over()
        outcome = host.run()
        keep_inbox = outcome == RELEASED
        return outcome
    except LeaseLost:
        logger.warning("session host %s stops: its lease was taken", session.id)
        keep_inbox = True
        host.abandon("the session was ended in place of its host")
        if host.strategy is not None:
            host.strategy.discard()
        return None
    except Exception:
        logger.exception("session host %s crashed", session.id)
        reason = "internal error in the host"
        try:
            host.abandon(reason)
        finally:
            session.finish(to=State.FAILED, now=timezone.now(), reason=reason)
        return State.FAILED
    finally:
        RUNNING_HOSTS.discard(host)
        if host.strategy is not None:  # after a crash; stopping twice is harmless
            host.strategy.stop(state=State.FAILED)
        host.endpoint.close(keep_inbox=keep_inbox)
