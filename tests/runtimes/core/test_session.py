"""Session state machine: event ids, strict acks, journal and resume, backtest pacing by batches,
and the wall-clock stream (LiveStream)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter
from tektii import models as sdk

from runtimes.core.bars import Bar
from runtimes.core.domain import (
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from runtimes.core.engine import BacktestEngine
from runtimes.core.events import CandleEvent, Event, OrderEvent, OrderEventKind
from runtimes.core.market_data import MarketData
from runtimes.core.session import (
    AckGate,
    AckRecord,
    BacktestStream,
    EventSequencer,
    InMemoryJournal,
    JournalCounts,
    LiveStream,
    event_id_of,
    sequence_of,
)
from runtimes.core.wire import encode_frame, error_frame

T0 = datetime(2025, 1, 15, 10, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
EVENTS = TypeAdapter(sdk.GatewayEvent)
JsonDict = dict[str, Any]


def bar(symbol: str, minute: int, close: str = "100") -> Bar:
    price = Decimal(close)
    return Bar(symbol, "1m", T0 + minute * MINUTE, price, price, price, price, Decimal(5))


def candle(symbol: str, minute: int) -> CandleEvent:
    return CandleEvent(bar(symbol, minute), T0 + minute * MINUTE)


def order_created(order_id: str, minute: int) -> OrderEvent:
    moment = T0 + minute * MINUTE
    order = Order(
        id=order_id,
        symbol="AAPL",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal(1),
        status=OrderStatus.OPEN,
        time_in_force=TimeInForce.GTC,
        created_at=moment,
        updated_at=moment,
    )
    return OrderEvent(OrderEventKind.ORDER_CREATED, order, moment)


@dataclass
class FakeBatch:
    timestamp: datetime
    events: list[Event]


@dataclass
class FakeEngine:
    """Batches as given; `act()` queues events as a strategy action would."""

    batches: list[FakeBatch]
    actions: list[Event] = field(default_factory=list)
    advanced: int = 0

    def next_batch(self) -> FakeBatch | None:
        if self.advanced >= len(self.batches):
            return None
        self.advanced += 1
        return self.batches[self.advanced - 1]

    def drain_events(self) -> list[Event]:
        drained, self.actions = self.actions, []
        return drained

    def act(self, *events: Event) -> None:
        self.actions.extend(events)


def two_symbol_engine() -> FakeEngine:
    return FakeEngine(
        [
            FakeBatch(T0, [candle("AAPL", 0), candle("MSFT", 0)]),
            FakeBatch(T0 + MINUTE, [candle("AAPL", 1), candle("MSFT", 1)]),
        ]
    )


def stream_of(engine: Any, journal: InMemoryJournal | None = None) -> BacktestStream:
    return BacktestStream(
        engine, journal=journal or InMemoryJournal(), provider="backtest", broker="backtest"
    )


def ids(frames: Sequence[JsonDict]) -> list[str]:
    return [frame["event_id"] for frame in frames]


# -- ids ----------------------------------------------------------------------------------------


def test_sequencer_hands_out_increasing_ids_from_one() -> None:
    sequencer = EventSequencer()
    assert [sequencer.next_id() for _ in range(3)] == ["evt-1", "evt-2", "evt-3"]
    assert sequencer.last_sequence == 3


def test_sequencer_resumes_after_the_last_sequence_used() -> None:
    sequencer = EventSequencer(41)
    assert (sequencer.next_id(), sequencer.last_sequence) == ("evt-42", 42)


def test_sequencer_refuses_a_negative_start() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        EventSequencer(-1)


def test_event_ids_and_sequences_convert_both_ways() -> None:
    assert (event_id_of(7), sequence_of("evt-7")) == ("evt-7", 7)
    for bad in ("evt-0", "evt-07", "7", "evt-", "EVT-7"):
        with pytest.raises(ValueError, match="not an event id"):
            sequence_of(bad)


# -- strict acks --------------------------------------------------------------------------------


def gate_with(*event_ids: str) -> AckGate:
    gate = AckGate()
    gate.register(event_ids)
    return gate


def test_gate_is_open_only_when_nothing_is_pending() -> None:
    assert AckGate().is_open
    gate = gate_with("evt-1")
    assert (gate.is_open, gate.pending) == (False, ("evt-1",))
    assert gate.ack(["evt-1"]) == ["evt-1"]
    assert gate.is_open


def test_an_ack_releases_exactly_the_named_ids() -> None:
    gate = gate_with("evt-1", "evt-2", "evt-3")
    assert gate.ack(["evt-2"]) == ["evt-2"]
    assert gate.pending == ("evt-1", "evt-3")


def test_acks_may_arrive_in_any_order() -> None:
    gate = gate_with("evt-1", "evt-2", "evt-3")
    assert gate.ack(["evt-3", "evt-1"]) == ["evt-3", "evt-1"]
    assert gate.ack(["evt-2"]) == ["evt-2"]
    assert gate.is_open


def test_unknown_ids_release_nothing() -> None:
    gate = gate_with("evt-1")
    assert gate.ack(["evt-9", "e1", ""]) == []
    assert gate.pending == ("evt-1",)


def test_repeated_ids_release_once() -> None:
    gate = gate_with("evt-1", "evt-2")
    assert gate.ack(["evt-1", "evt-1"]) == ["evt-1"]
    assert gate.ack(["evt-1"]) == []
    assert gate.pending == ("evt-2",)


def test_an_empty_ack_is_a_no_op() -> None:
    gate = gate_with("evt-1")
    assert gate.ack([]) == []
    assert gate.pending == ("evt-1",)


def test_an_ack_before_registration_is_not_remembered() -> None:
    gate = AckGate()
    assert gate.ack(["evt-1"]) == []
    gate.register(["evt-1"])
    assert (gate.is_open, gate.pending) == (False, ("evt-1",))


def test_registering_a_pending_id_twice_is_a_bug() -> None:
    gate = gate_with("evt-1")
    with pytest.raises(ValueError, match="evt-1 is already pending"):
        gate.register(["evt-1"])


# -- journal ------------------------------------------------------------------------------------


def frame(event_id: str) -> JsonDict:
    return {"type": "ping", "timestamp": "2025-01-15T10:30:00Z", "event_id": event_id}


def test_journal_returns_the_frames_after_a_cursor() -> None:
    journal = InMemoryJournal()
    journal.append_events([frame("evt-1"), frame("evt-2"), frame("evt-5")])
    assert ids(journal.frames_after("evt-1")) == ["evt-2", "evt-5"]
    assert ids(journal.frames_after("evt-3")) == ["evt-5"]
    assert journal.frames_after("evt-5") == []
    assert journal.frames_after("evt-99") == []


def test_journal_tracks_unacked_frames_and_counts() -> None:
    journal = InMemoryJournal()
    journal.append_events([frame("evt-1"), frame("evt-2"), frame("evt-3")])
    journal.record_ack(["evt-2", "evt-2", "evt-77"], "c-1")
    journal.record_ack([], "c-2")
    assert ids(journal.unacked_frames()) == ["evt-1", "evt-3"]
    assert journal.counts() == JournalCounts(sent=3, acked=1)
    assert [(a.correlation_id, a.event_ids) for a in journal.acks] == [
        ("c-1", ("evt-2", "evt-2", "evt-77")),
        ("c-2", ()),
    ]


def test_journal_refuses_frames_without_ids_or_out_of_order() -> None:
    journal = InMemoryJournal()
    journal.append_events([frame("evt-2")])
    with pytest.raises(ValueError, match="evt-2 is not after evt-2"):
        journal.append_events([frame("evt-2")])
    with pytest.raises(ValueError, match="needs a string event_id"):
        journal.append_events([{"type": "ping"}])


# -- backtest stream ----------------------------------------------------------------------------


def test_nothing_streams_before_start() -> None:
    engine = two_symbol_engine()
    stream = stream_of(engine)
    assert (stream.pump(), stream.on_strategy_action(), engine.advanced) == ([], [], 0)


def test_start_emits_the_first_batch_with_ids() -> None:
    stream = stream_of(two_symbol_engine())
    frames = stream.start()
    assert ids(frames) == ["evt-1", "evt-2"]
    assert [f["bar"]["symbol"] for f in frames] == ["AAPL", "MSFT"]
    assert stream.gate.pending == ("evt-1", "evt-2")
    assert (stream.batches_emitted, stream.simulated_time) == (1, T0)


def test_starting_twice_is_a_bug() -> None:
    stream = stream_of(two_symbol_engine())
    stream.start()
    with pytest.raises(RuntimeError, match="already started"):
        stream.start()


def test_time_advances_only_when_every_id_of_the_batch_is_acked() -> None:
    engine = two_symbol_engine()
    stream = stream_of(engine)
    stream.start()
    assert stream.on_ack(["evt-2"]) == ["evt-2"]
    assert (stream.pump(), engine.advanced) == ([], 1)
    assert stream.on_ack(["evt-1"]) == ["evt-1"]
    assert ids(stream.pump()) == ["evt-3", "evt-4"]
    assert (engine.advanced, stream.simulated_time) == (2, T0 + MINUTE)


def test_unknown_repeated_and_empty_acks_do_not_advance_time() -> None:
    engine = two_symbol_engine()
    stream = stream_of(engine)
    stream.start()
    stream.on_ack(["evt-1"])
    for ack in (["evt-1"], [], ["evt-3"], ["nope"]):
        assert stream.on_ack(ack) == []
        assert stream.pump() == []
    assert engine.advanced == 1


def test_events_of_strategy_actions_join_the_pending_batch() -> None:
    engine = two_symbol_engine()
    stream = stream_of(engine)
    stream.start()
    engine.act(order_created("ord-1", 0))
    action_frames = stream.on_strategy_action()
    assert ids(action_frames) == ["evt-3"]
    assert (action_frames[0]["event"], action_frames[0]["timestamp"]) == (
        "ORDER_CREATED",
        "2025-01-15T10:30:00Z",
    )
    stream.on_ack(["evt-1", "evt-2"])
    assert stream.pump() == []  # the order event is part of the batch now
    stream.on_ack(["evt-3"])
    assert ids(stream.pump()) == ["evt-4", "evt-5"]


def test_action_events_left_undrained_go_out_before_time_advances() -> None:
    engine = two_symbol_engine()
    stream = stream_of(engine)
    stream.start()
    stream.on_ack(["evt-1", "evt-2"])
    engine.act(order_created("ord-1", 0))
    assert ids(stream.pump()) == ["evt-3"]
    assert engine.advanced == 1
    stream.on_ack(["evt-3"])
    assert ids(stream.pump()) == ["evt-4", "evt-5"]


def test_backtest_complete_is_emitted_once_and_its_ack_completes_the_session() -> None:
    stream = stream_of(FakeEngine([FakeBatch(T0, [candle("AAPL", 0)])]))
    stream.start()
    stream.on_ack(["evt-1"])
    assert stream.pump() == [
        {
            "type": "backtest_complete",
            "broker": "backtest",
            "timestamp": "2025-01-15T10:30:00Z",
            "event_id": "evt-2",
        }
    ]
    assert (stream.complete_sent, stream.completed) == (True, False)
    assert stream.pump() == []
    assert stream.on_ack(["evt-2"]) == ["evt-2"]
    assert stream.completed
    assert (stream.pump(), stream.on_strategy_action()) == ([], [])
    assert stream.counts() == JournalCounts(sent=2, acked=2)


def test_a_run_without_data_completes_at_start() -> None:
    stream = stream_of(FakeEngine([]))
    assert stream.start() == [
        {"type": "backtest_complete", "broker": "backtest", "event_id": "evt-1"}
    ]


def test_batches_without_events_are_skipped_rather_than_stalling() -> None:
    engine = FakeEngine([FakeBatch(T0, []), FakeBatch(T0 + MINUTE, [candle("AAPL", 1)])])
    stream = stream_of(engine)
    assert ids(stream.start()) == ["evt-1"]
    assert (engine.advanced, stream.batches_emitted) == (2, 2)


def test_notices_get_ids_and_are_journaled_but_do_not_hold_time() -> None:
    stream = stream_of(two_symbol_engine())
    stream.start()
    notice = stream.emit_notice(
        lambda event_id: error_frame("INVALID_MESSAGE", "bad", timestamp=T0, event_id=event_id)
    )
    assert notice["event_id"] == "evt-3"
    assert stream.gate.pending == ("evt-1", "evt-2")
    assert ids(stream.frames_for_reconnect(None)) == ["evt-1", "evt-2", "evt-3"]


def test_reconnect_resumes_after_a_cursor_or_replays_what_is_unacked() -> None:
    stream = stream_of(two_symbol_engine())
    stream.start()
    stream.on_ack(["evt-1", "evt-2"], "c-1")
    stream.pump()
    stream.on_ack(["evt-4"], "c-2")
    assert ids(stream.frames_for_reconnect("evt-2")) == ["evt-3", "evt-4"]
    assert ids(stream.frames_for_reconnect(None)) == ["evt-3"]
    assert stream.counts() == JournalCounts(sent=4, acked=3)


def test_a_stream_can_continue_numbering_after_a_restart() -> None:
    stream = BacktestStream(
        two_symbol_engine(),
        journal=InMemoryJournal(),
        provider="backtest",
        sequencer=EventSequencer(10),
    )
    assert ids(stream.start()) == ["evt-11", "evt-12"]


# -- against the real engine --------------------------------------------------------------------


def market_data() -> MarketData:
    closes = ["100", "101", "102.5"]
    return MarketData.from_bars(
        [
            bar(symbol, minute, close)
            for symbol in ("AAPL", "MSFT")
            for minute, close in enumerate(closes)
        ]
    )


def run_lockstep(buy_on_first_candle: bool = True) -> list[str]:
    """Drive a BacktestStream over the real engine like the SDK does: ack each frame once handled;
    submit a market buy while handling the first candle. Returns the encoded frames."""
    engine = BacktestEngine(market_data())
    stream = BacktestStream(engine, journal=InMemoryJournal(), provider="backtest")
    sent: list[JsonDict] = []
    queue = stream.start()
    bought = not buy_on_first_candle
    while queue:
        current = queue.pop(0)
        sent.append(current)
        if current["type"] == "candle" and not bought:
            engine.submit_order(OrderRequest("AAPL", Side.BUY, Decimal(2)))
            queue.extend(stream.on_strategy_action())
            bought = True
        stream.on_ack([current["event_id"]], "c")
        queue.extend(stream.pump())
    assert stream.completed
    return [encode_frame(f) for f in sent]


M0, M1, M2 = "2025-01-15T10:30:00Z", "2025-01-15T10:31:00Z", "2025-01-15T10:32:00Z"
EXPECTED_LOCKSTEP = [
    ("candle", None, M0, "evt-1"),
    ("candle", None, M0, "evt-2"),
    ("order", "ORDER_CREATED", M0, "evt-3"),  # submitted while handling evt-1: joins batch 1
    ("candle", None, M1, "evt-4"),
    ("candle", None, M1, "evt-5"),
    ("order", "ORDER_FILLED", M1, "evt-6"),
    ("trade", "TRADE_FILLED", M1, "evt-7"),
    ("position", "POSITION_OPENED", M1, "evt-8"),
    ("account", "BALANCE_UPDATED", M1, "evt-9"),
    ("candle", None, M2, "evt-10"),
    ("candle", None, M2, "evt-11"),
    ("backtest_complete", None, M2, "evt-12"),
]


def test_the_real_engine_streams_batches_fills_and_completion_in_lockstep() -> None:
    summary = [
        (f["type"], f.get("event"), f.get("timestamp"), f["event_id"])
        for f in map(json.loads, run_lockstep())
    ]
    assert summary == EXPECTED_LOCKSTEP


def test_same_inputs_give_the_same_frames_byte_for_byte() -> None:
    assert run_lockstep() == run_lockstep()


def test_every_frame_of_a_run_is_parsed_by_the_sdk() -> None:
    parsed = [EVENTS.validate_json(f) for f in run_lockstep()]
    assert isinstance(parsed[-1], sdk.BacktestCompleteEvent)
    assert {type(p).__name__ for p in parsed} >= {
        "CandleEvent",
        "OrderEvent",
        "TradeEvent",
        "AccountEvent",
        "BacktestCompleteEvent",
    }


def test_account_events_carry_simulated_time() -> None:
    accounts = [
        p for p in map(EVENTS.validate_json, run_lockstep()) if isinstance(p, sdk.AccountEvent)
    ]
    assert accounts
    assert all(a.timestamp.year == 2025 for a in accounts)


# -- LiveStream: wall-clock pacing -------------------------------------------------------------


class _Market:
    """A wall-clock provider as LiveStream sees it: events queued by the test, drained once."""

    def __init__(self) -> None:
        self.pending: list[Event] = []

    def drain_events(self) -> list[Event]:
        drained, self.pending = self.pending, []
        return drained


def live_stream() -> tuple[LiveStream, _Market, InMemoryJournal]:
    market, journal = _Market(), InMemoryJournal()
    return LiveStream(market, journal=journal, provider="mock"), market, journal


def test_live_stream_sends_nothing_before_start_and_the_backlog_at_start():
    stream, market, journal = live_stream()
    market.pending = [candle("AAPL", 0)]
    assert stream.pump() == []
    assert market.pending == [candle("AAPL", 0)]  # not drained: nothing is lost before start
    frames = stream.start()
    assert [(f["type"], f["event_id"]) for f in frames] == [("candle", "evt-1")]
    assert journal.frames == frames
    with pytest.raises(RuntimeError):
        stream.start()


def test_live_stream_sends_every_drained_event_at_once_without_waiting_for_acks():
    stream, market, journal = live_stream()
    stream.start()
    market.pending = [candle("AAPL", 0), candle("MSFT", 0)]
    first = stream.pump()
    market.pending = [order_created("o-1", 1)]
    second = stream.on_strategy_action()
    assert [f["event_id"] for f in first] == ["evt-1", "evt-2"]
    assert [(f["type"], f["event_id"]) for f in second] == [("order", "evt-3")]
    assert stream.pump() == []  # each event once
    assert journal.counts() == JournalCounts(sent=3, acked=0)


def test_live_stream_journals_acks_and_releases_nothing():
    stream, market, journal = live_stream()
    stream.start()
    market.pending = [candle("AAPL", 0), candle("AAPL", 1)]
    stream.pump()
    assert stream.on_ack(["evt-2"], "c-1") == []
    assert journal.acks[-1] == AckRecord("c-1", ("evt-2",))
    assert [f["event_id"] for f in stream.frames_for_reconnect(None)] == ["evt-1"]
    assert [f["event_id"] for f in stream.frames_for_reconnect("evt-1")] == ["evt-2"]
    assert journal.counts() == JournalCounts(sent=2, acked=1)


def test_live_stream_never_completes_and_counts_no_batches():
    stream, market, _ = live_stream()
    stream.start()
    market.pending = [candle("AAPL", minute) for minute in range(5)]
    stream.pump()
    assert (stream.completed, stream.complete_sent, stream.batches_emitted) == (False, False, 0)
    assert stream.simulated_time is None


def test_live_stream_notices_take_the_next_id_and_are_journaled():
    stream, market, journal = live_stream()
    stream.start()
    market.pending = [candle("AAPL", 0)]
    stream.pump()
    notice = stream.emit_notice(lambda event_id: error_frame(
        "RATE_LIMITED", "slow down", None, timestamp=T0, event_id=event_id))
    assert notice["event_id"] == "evt-2"
    assert journal.frames[-1] is notice
