"""The session host: runs one backtest session in a worker thread, in lock-step with its strategy.

It owns the engine (single-threaded: every REST command runs here, via the bus), the stream state
machine and the journal. The ORM is touched at the edges only: the state transitions, journal
chunks of thousands of frames, and the results at the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from runtimes import commands
from runtimes.bus import HostEndpoint, Reply, SessionBus
from runtimes.core import wire
from runtimes.core.costs import Commission
from runtimes.core.datasets import DatasetError, load_market_data
from runtimes.core.engine import BacktestConfig, BacktestEngine
from runtimes.core.session import BacktestStream, InMemoryJournal, JsonDict, sequence_of
from runtimes.core.wire import connection_frame, encode_frame, error_frame, fill_json, order_json
from runtimes.models import SessionEvent, SessionResult, State, TradingSession

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # how long the host blocks on its inbox: bounds cancel and timeout latency
JOURNAL_CHUNK = 5000  # acked frames are written to SessionEvent this many at a time
CLOSE_NORMAL = 1000


class HostJournal(InMemoryJournal):
    """The in-memory journal plus what flushing needs: which ids are acked, what is written."""

    def __init__(self) -> None:
        super().__init__()
        self.acked_ids: set[str] = set()
        self.flushed = 0  # frames[:flushed] are in SessionEvent
        self.acked_prefix = 0  # frames[:acked_prefix] are all acked (advanced incrementally)

    def record_ack(self, event_ids: Sequence[str], correlation_id: str) -> None:
        super().record_ack(event_ids, correlation_id)
        self.acked_ids.update(event_ids)

    def flush(
        self, session: TradingSession, *, everything: bool, chunk: int = JOURNAL_CHUNK
    ) -> None:
        """Write the acked prefix of unwritten frames (all of them when `everything`) in bulk."""
        end = len(self.frames)
        if not everything:
            # Acks arrive in order in lock-step, so this pointer moves a few frames per call.
            frames, acked = self.frames, self.acked_ids
            while self.acked_prefix < len(frames) and (
                frames[self.acked_prefix]["event_id"] in acked
            ):
                self.acked_prefix += 1
            end = self.acked_prefix
            if end - self.flushed < chunk:
                return
        rows = [
            SessionEvent(
                session=session,
                sequence=sequence_of(frame["event_id"]),
                event_id=frame["event_id"],
                frame=encode_frame(frame),
                acked=frame["event_id"] in self.acked_ids,
            )
            for frame in self.frames[self.flushed:end]
        ]
        SessionEvent.objects.bulk_create(rows, batch_size=2000)
        self.flushed = end


def build_engine(session: TradingSession) -> BacktestEngine:
    """The engine over the session's dataset, symbols and period. Raises DatasetError."""
    assert session.dataset is not None
    paths = {s: p for s, p in session.dataset.paths().items() if s in session.symbols}
    data = load_market_data(paths, timeframe=session.timeframe).slice(session.start, session.end)
    commission = Commission(**{k: Decimal(v) for k, v in (session.commission or {}).items()})
    config = BacktestConfig(
        initial_cash=session.initial_cash,
        commission=commission,
        slippage_bps=session.slippage_bps,
    )
    return BacktestEngine(data, config)


class SessionHost:
    """One run: `run()` returns when the session has completed, failed or been cancelled."""

    def __init__(
        self,
        session: TradingSession,
        endpoint: HostEndpoint,
        engine: BacktestEngine,
        *,
        now: Callable[[], datetime] = timezone.now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session, self.endpoint, self.engine = session, endpoint, engine
        self.now, self.monotonic = now, monotonic
        self.journal = HostJournal()
        self.stream = BacktestStream(engine, journal=self.journal, provider="backtest",
                                     broker="backtest")
        self.active: str | None = None  # the socket that receives new frames
        self.connections: set[str] = set()
        self.outcome: tuple[str, str] | None = None  # (state, reason) once decided
        self.last_progress = monotonic()

    # -- main loop ------------------------------------------------------------------------------

    def run(self) -> str:
        connect_deadline = self.monotonic() + self.session.connect_timeout_s
        while self.outcome is None:
            message = self.endpoint.receive(POLL_SECONDS)
            if message is not None:
                self.handle(message)
            self._check_timeouts(connect_deadline)
            if self.outcome is None and self.stream.started:
                self.journal.flush(self.session, everything=False)
        return self._finish()

    def _check_timeouts(self, connect_deadline: float) -> None:
        if self.outcome is not None:
            return
        moment = self.monotonic()
        if not self.stream.started and moment > connect_deadline:
            self.outcome = (State.FAILED, f"no strategy connected within "
                                          f"{self.session.connect_timeout_s} s")
        elif self.stream.started and moment - self.last_progress > self.session.idle_timeout_s:
            self.outcome = (State.FAILED, f"strategy stopped acknowledging for "
                                          f"{self.session.idle_timeout_s} s")

    def handle(self, message: JsonDict) -> None:
        kind = message.get("kind")
        if kind == "attach":
            self._attach(message["connection"], message.get("last_event_id"))
        elif kind == "ack":
            self._ack(message)
        elif kind == "command":
            self._command(message)
        elif kind == "detach":
            self.connections.discard(message["connection"])
            if self.active == message["connection"]:
                self.active = None
        elif kind == "notice":
            self._notice(message)
        elif kind == "cancel":
            self.outcome = (State.CANCELLED, message.get("reason") or "cancelled")

    def _attach(self, connection: str, last_event_id: str | None) -> None:
        # The newest socket wins: a reconnecting strategy replaces its dropped connection.
        self.active = connection
        self.connections.add(connection)
        self.last_progress = self.monotonic()
        if self.stream.started:
            self._send(self.stream.frames_for_reconnect(last_event_id))
            return
        self.session.transition(to=State.RUNNING, allowed_from={State.WAITING},
                                started_at=self.now())
        self._send(self.stream.start())

    def _ack(self, message: JsonDict) -> None:
        released = self.stream.on_ack(message["events"], message.get("correlation_id", ""))
        if released:
            self.last_progress = self.monotonic()
        if self.stream.completed:
            self.outcome = (State.COMPLETED, "")
            return
        self._send(self.stream.pump())

    def _command(self, message: JsonDict) -> None:
        if message.get("op") == "session":
            reply = Reply(200, self.session_info())
        else:
            reply = commands.execute(self.engine, message)
        self.endpoint.reply(message["request"], reply)
        if message.get("op") in commands.ACTIONS:
            self._send(self.stream.on_strategy_action())

    def _notice(self, message: JsonDict) -> None:
        def build(event_id: str) -> JsonDict:
            return error_frame(message["code"], message["message"], message.get("details"),
                               timestamp=self.engine.now, event_id=event_id)

        frame = self.stream.emit_notice(build)
        self.endpoint.send(message["connection"], [encode_frame(frame)])

    def _send(self, frames: list[JsonDict]) -> None:
        if frames and self.active is not None:
            self.endpoint.send(self.active, [encode_frame(f) for f in frames])

    def session_info(self) -> JsonDict:
        counts = self.stream.counts()
        return {
            "id": str(self.session.id),
            "platform": self.session.platform,
            "state": self.session.state,
            "symbols": list(self.session.symbols),
            "timeframe": self.session.timeframe,
            "subscriptions": {"symbols": list(self.session.symbols),
                              "timeframes": [self.session.timeframe],
                              "events": ["candle", "order", "trade", "position", "account"]},
            "risk_limits": {},
            "events_sent": counts.sent,
            "events_acked": counts.acked,
            "batches": self.stream.batches_emitted,
            "simulated_time": (wire.timestamp_str(self.engine.now)
                               if self.engine.steps_done else None),
        }

    # -- the end --------------------------------------------------------------------------------

    def _finish(self) -> str:
        assert self.outcome is not None
        state, reason = self.outcome
        if state != State.COMPLETED:
            self._announce_disconnect(reason)
        for connection in list(self.connections):
            self.endpoint.close_connection(connection, CLOSE_NORMAL)
        counts = self.stream.counts()
        with transaction.atomic():
            self.journal.flush(self.session, everything=True)
            if state == State.COMPLETED:
                self._persist_result()
            self.session.finish(to=state, now=self.now(), reason=reason,
                                events_sent=counts.sent, events_acked=counts.acked,
                                batches=self.stream.batches_emitted)
        return state

    def abandon(self, reason: str) -> None:
        """After a crash: tell and release the sockets (no database work, it may be the cause)."""
        self._announce_disconnect(reason)
        for connection in list(self.connections):
            self.endpoint.close_connection(connection, CLOSE_NORMAL)

    def _announce_disconnect(self, reason: str) -> None:
        # The SDK reconnects at once on a normal close; DISCONNECTING first says why, and the
        # reconnect is then refused (403) because the session has ended.
        if self.active is None or not self.stream.started:
            return
        frame = self.stream.emit_notice(lambda event_id: connection_frame(
            "DISCONNECTING", timestamp=self.engine.now, event_id=event_id, broker="backtest",
            error=reason))
        self.endpoint.send(self.active, [encode_frame(frame)])

    def _persist_result(self) -> None:
        result = self.engine.result()
        SessionResult.objects.create(
            session=self.session,
            orders=[order_json(o) for o in result.orders],
            trades=[fill_json(f) for f in result.fills],
            equity=[[p.timestamp.isoformat(), str(p.equity)] for p in result.equity_curve],
            metrics=_jsonable(result.metrics.as_dict()),
        )


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v if v is None or isinstance(v, int | str) else str(v) for k, v in values.items()}


def run_session_host(*, session_id: str, bus: SessionBus) -> str | None:
    """Run the session to its end; returns its final state, or None when it was not `created`
    (already started elsewhere, or cancelled before a worker picked it up)."""
    session = TradingSession.objects.select_related("dataset").get(pk=session_id)
    # The mailbox exists before the state says "waiting", so a cancel posted then is not lost.
    endpoint = bus.host(str(session.id))
    if not session.transition(to=State.WAITING, allowed_from={State.CREATED}):
        endpoint.close()
        return None
    try:
        engine = build_engine(session)
    except (DatasetError, ValueError, OSError) as exc:
        endpoint.close()
        session.finish(to=State.FAILED, now=timezone.now(), reason=f"dataset: {exc}")
        return State.FAILED
    host = SessionHost(session, endpoint, engine)
    try:
        return host.run()
    except Exception:
        logger.exception("session host %s crashed", session.id)
        reason = "internal error in the host"
        try:
            host.abandon(reason)
        finally:
            session.finish(to=State.FAILED, now=timezone.now(), reason=reason)
        return State.FAILED
    finally:
        endpoint.close()
