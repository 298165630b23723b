"""The streaming session state machine: event ids, strict acks, the event journal, and the two
pacings: BacktestStream (simulated time advances only when every id of the current batch is
acked) and LiveStream (wall clock: events go out as they happen; acks are journaled only).

No I/O and no asyncio: the shell feeds it acks and strategy actions and sends the frames it
returns.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from runtimes.core.events import Event
from runtimes.core.wire import backtest_complete_frame, event_frame

JsonDict = dict[str, Any]

EVENT_ID_PREFIX: Final = "evt-"
_EVENT_ID: Final = re.compile(r"evt-([1-9][0-9]*)")


def event_id_of(sequence: int) -> str:
    """The wire id of a sequence number: 7 -> "evt-7"."""
    return f"{EVENT_ID_PREFIX}{sequence}"


def sequence_of(event_id: str) -> int:
    """The sequence number of a wire id: "evt-7" -> 7. Raises ValueError for any other text."""
    match = _EVENT_ID.fullmatch(event_id)
    if match is None:
        raise ValueError(f"not an event id: {event_id!r}")
    return int(match.group(1))


class EventSequencer:
    """Hands out `evt-1`, `evt-2`, ...: unique and increasing within a session.

    Built from the last sequence number used (0 for a new session) to carry on after a restart.
    """

    __slots__ = ("_last",)

    def __init__(self, last_sequence: int = 0) -> None:
        if last_sequence < 0:
            raise ValueError("last_sequence cannot be negative")
        self._last = last_sequence

    @property
    def last_sequence(self) -> int:
        return self._last

    def next_id(self) -> str:
        self._last += 1
        return event_id_of(self._last)


class AckGate:
    """The ids of the current batch that the client has not acknowledged yet.

    Strict by id: an ack releases exactly the pending ids it names, in any order. Unknown,
    repeated or already released ids release nothing, and an empty ack is a no-op.

    An ack for an id that is not registered yet is NOT remembered (unlike the upstream gateway,
    which remembers acks that race its delivery confirmation). Here an id is registered before its
    frame is handed to the socket, so a legitimate ack can never arrive first; remembering early
    acks would only let a buggy or forged ack release an event the strategy has not seen.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[str, None] = {}  # insertion-ordered set

    def register(self, event_ids: Iterable[str]) -> None:
        """Add ids that must be acked before the gate opens. Raises ValueError for an id that is
        already pending: ids are unique, so that is a bug upstream."""
        for event_id in event_ids:
            if event_id in self._pending:
                raise ValueError(f"{event_id} is already pending")
            self._pending[event_id] = None

    def ack(self, event_ids: Iterable[str]) -> list[str]:
        """Release the named pending ids; return them in the order named, each once."""
        released: list[str] = []
        for event_id in event_ids:
            if event_id in self._pending:
                del self._pending[event_id]
                released.append(event_id)
        return released

    @property
    def pending(self) -> tuple[str, ...]:
        """Pending ids in registration order."""
        return tuple(self._pending)

    @property
    def is_open(self) -> bool:
        return not self._pending


@dataclass(frozen=True, slots=True)
class JournalCounts:
    """Events sent (ids handed out with a frame) and acked (distinct ids acked at least once)."""

    sent: int
    acked: int


class SessionJournal(Protocol):
    """The durable log of a session's frames and acks: for resume, replay and audit.

    Frames are dicts carrying a string `event_id`, appended in increasing sequence order.
    """

    def append_events(self, frames: Sequence[JsonDict]) -> None:
        """Store frames just emitted (each with its `event_id`)."""

    def record_ack(self, event_ids: Sequence[str], correlation_id: str) -> None:
        """Record one client ack as received; ids unknown to the journal are kept in the ack
        record but mark nothing."""

    def frames_after(self, event_id: str) -> list[JsonDict]:
        """Every stored frame with a sequence above `event_id`'s, oldest first (resume)."""

    def unacked_frames(self) -> list[JsonDict]:
        """Every stored frame not acked yet, oldest first (reconnect without a cursor)."""

    def counts(self) -> JournalCounts: ...


@dataclass(frozen=True, slots=True)
class AckRecord:
    correlation_id: str
    event_ids: tuple[str, ...]


class InMemoryJournal:
    """A SessionJournal in memory, for tests and in-process runs. Frames are stored as given and
    must not be mutated afterwards (the stream never does)."""

    def __init__(self) -> None:
        self.frames: list[JsonDict] = []
        self.acks: list[AckRecord] = []
        self._sequences: list[int] = []  # parallel to frames, increasing, for bisection
        self._position: dict[str, int] = {}
        self._acked: set[str] = set()

    def append_events(self, frames: Sequence[JsonDict]) -> None:
        """Raises ValueError for a frame without an id or out of sequence order."""
        for frame in frames:
            event_id = frame.get("event_id")
            if not isinstance(event_id, str):
                raise ValueError("a journaled frame needs a string event_id")
            sequence = sequence_of(event_id)
            if self._sequences and sequence <= self._sequences[-1]:
                raise ValueError(f"{event_id} is not after evt-{self._sequences[-1]}")
            self._position[event_id] = len(self.frames)
            self.frames.append(frame)
            self._sequences.append(sequence)

    def record_ack(self, event_ids: Sequence[str], correlation_id: str) -> None:
        self.acks.append(AckRecord(correlation_id, tuple(event_ids)))
        self._acked.update(i for i in event_ids if i in self._position)

    def frames_after(self, event_id: str) -> list[JsonDict]:
        start = bisect_right(self._sequences, sequence_of(event_id))
        return self.frames[start:]

    def unacked_frames(self) -> list[JsonDict]:
        return [frame for frame in self.frames if frame["event_id"] not in self._acked]

    def counts(self) -> JournalCounts:
        return JournalCounts(sent=len(self.frames), acked=len(self._acked))


class StreamBatch(Protocol):
    """What BacktestStream needs of `runtimes.core.engine.Batch`."""

    @property
    def timestamp(self) -> datetime: ...

    @property
    def events(self) -> Sequence[Event]: ...


class StreamEngine(Protocol):
    """What BacktestStream needs of `runtimes.core.engine.BacktestEngine`."""

    def next_batch(self) -> StreamBatch | None: ...

    def drain_events(self) -> list[Event]: ...


class BacktestStream:
    """Paces one backtest's event stream by strict acks.

    The shell calls `start()` once, `on_ack()` for each client ack, `on_strategy_action()` after
    each order submitted, modified or cancelled over REST, and `pump()` after acks; it sends every
    frame these return, in order. Events of strategy actions join the pending batch (they get ids
    and must be acked before time advances). The run ends with one `backtest_complete`; the stream
    is `completed` once that is acked.
    """

    def __init__(
        self,
        engine: StreamEngine,
        *,
        journal: SessionJournal,
        provider: str,
        broker: str | None = None,
        sequencer: EventSequencer | None = None,
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.provider = provider
        self.broker = broker
        self.sequencer = sequencer or EventSequencer()
        self.gate = AckGate()
        self.batches_emitted = 0
        self.simulated_time: datetime | None = None
        self._started = False
        self._complete_id: str | None = None
        self._completed = False

    @property
    def started(self) -> bool:
        return self._started

    @property
    def complete_sent(self) -> bool:
        """`backtest_complete` has been emitted (the data is exhausted)."""
        return self._complete_id is not None

    @property
    def completed(self) -> bool:
        """`backtest_complete` has been acked: the session may finish."""
        return self._completed

    def start(self) -> list[JsonDict]:
        """Begin the run and return the first batch's frames. Raises RuntimeError if started."""
        if self._started:
            raise RuntimeError("the stream is already started")
        self._started = True
        return self.pump()

    def pump(self) -> list[JsonDict]:
        """If the gate is open, the next frames to send: pending action events at the current
        time, else the next batch, else (once) `backtest_complete`. Empty while acks are due."""
        if not self._started or self.complete_sent or not self.gate.is_open:
            return []
        frames = self._emit(self.engine.drain_events())
        while not frames:
            batch = self.engine.next_batch()
            if batch is None:
                return [self._emit_complete()]
            self.simulated_time = batch.timestamp
            self.batches_emitted += 1
            frames = self._emit(batch.events)
        return frames

    def on_strategy_action(self) -> list[JsonDict]:
        """Frames of the events that strategy actions produced since the last call; they join
        the pending batch. After `backtest_complete` nothing more is streamed."""
        if not self._started or self.complete_sent:
            return []
        return self._emit(self.engine.drain_events())

    def on_ack(self, event_ids: Sequence[str], correlation_id: str = "") -> list[str]:
        """Journal a client ack and release exactly the pending ids it names; return those."""
        self.journal.record_ack(event_ids, correlation_id)
        released = self.gate.ack(event_ids)
        if self._complete_id is not None and self._complete_id in released:
            self._completed = True
        return released

    def emit_notice(self, build: Callable[[str], JsonDict]) -> JsonDict:
        """An out-of-band frame (`error`, `connection`) with the next id, journaled but not
        gated: time does not wait for it. `build(event_id)` makes the frame."""
        frame = build(self.sequencer.next_id())
        self.journal.append_events([frame])
        return frame

    def frames_for_reconnect(self, last_event_id: str | None) -> list[JsonDict]:
        """What a reconnecting client gets first: every frame after its cursor, or, without a
        cursor, every frame it has not acked."""
        if last_event_id is not None:
            return self.journal.frames_after(last_event_id)
        return self.journal.unacked_frames()

    def counts(self) -> JournalCounts:
        return self.journal.counts()

    def _emit(self, events: Sequence[Event]) -> list[JsonDict]:
        frames = [
            event_frame(event, event_id=self.sequencer.next_id(), provider=self.provider)
            for event in events
        ]
        self._publish(frames)
        return frames

    def _emit_complete(self) -> JsonDict:
        self._complete_id = self.sequencer.next_id()
        frame = backtest_complete_frame(
            event_id=self._complete_id, timestamp=self.simulated_time, broker=self.broker
        )
        self._publish([frame])
        return frame

    def _publish(self, frames: list[JsonDict]) -> None:
        """Journal, then gate: both before the shell can send, so no ack can come first."""
        if frames:
            self.journal.append_events(frames)
            self.gate.register(frame["event_id"] for frame in frames)


class LiveEngine(Protocol):
    """What LiveStream needs of a wall-clock provider (runtimes/core/provider.py)."""

    def drain_events(self) -> list[Event]: ...


class LiveStream:
    """Streams a wall-clock session's events as they happen: nothing waits for acks.

    The shell calls `start()` once, then `pump()` whenever the provider may have news (after it
    advanced, after a wake, after a strategy action: `on_strategy_action()` is the same) and
    sends every frame returned, in order. Each frame is journaled before it is returned. Acks
    are journaled and gate nothing; there is no `backtest_complete`: the session runs until it
    is stopped. The same attributes as BacktestStream, so the host treats both alike.
    """

    batches_emitted: Final = 0  # no batches: the market is not stepped by the stream
    simulated_time: Final = None
    complete_sent: Final = False
    completed: Final = False

    def __init__(
        self,
        engine: LiveEngine,
        *,
        journal: SessionJournal,
        provider: str,
        sequencer: EventSequencer | None = None,
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.provider = provider
        self.sequencer = sequencer or EventSequencer()
        self._started = False

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> list[JsonDict]:
        """Begin streaming: the frames of whatever happened so far. Raises RuntimeError if
        started."""
        if self._started:
            raise RuntimeError("the stream is already started")
        self._started = True
        return self.pump()

    def pump(self) -> list[JsonDict]:
        """Frames of every event drained since the last call (nothing before `start()`)."""
        if not self._started:
            return []
        frames = [
            event_frame(event, event_id=self.sequencer.next_id(), provider=self.provider)
            for event in self.engine.drain_events()
        ]
        if frames:
            self.journal.append_events(frames)
        return frames

    def on_strategy_action(self) -> list[JsonDict]:
        return self.pump()

    def on_ack(self, event_ids: Sequence[str], correlation_id: str = "") -> list[str]:
        """Journal a client ack; it releases nothing (returns no ids)."""
        self.journal.record_ack(event_ids, correlation_id)
        return []

    def emit_notice(self, build: Callable[[str], JsonDict]) -> JsonDict:
        """An out-of-band frame (`error`, `connection`) with the next id, journaled."""
        frame = build(self.sequencer.next_id())
        self.journal.append_events([frame])
        return frame

    def frames_for_reconnect(self, last_event_id: str | None) -> list[JsonDict]:
        if last_event_id is not None:
            return self.journal.frames_after(last_event_id)
        return self.journal.unacked_frames()

    def counts(self) -> JournalCounts:
        return self.journal.counts()
