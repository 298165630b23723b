"""AlpacaStreams with the real alpaca-py against the fake Alpaca: states, trade updates, bars and
quotes as events, reconnects after drops, refused keys, one shared data connection per
connection, and a close that does not keep the caller waiting."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from runtimes.core.bars import Bar
from runtimes.core.connection import (
    STREAM_CONNECTED,
    STREAM_FAILED,
    STREAM_RECONNECTING,
    STREAM_STOPPED,
    BrokerConnection,
)
from runtimes.core.events import CandleEvent, Event, QuoteEvent
from runtimes.core.rate_budget import LocalBudget
from runtimes.providers.alpaca.market_data import AlpacaMarketData
from runtimes.providers.alpaca.streams import (
    MARKET_DATA,
    TRADE_UPDATES,
    AlpacaStreams,
    Backoff,
    SharedDataStream,
    StreamRefused,
    _Supervisor,
)
from tests.fakes.alpaca.server import KEY_ID, SECRET, FakeAlpaca

FAST = Backoff(initial=0.01, cap=0.05, ack_timeout=5.0)
WAIT = 10.0  # seconds a signalled wait may take on a loaded machine before the test fails
_ids = itertools.count(1)


class Recorder:
    """A StreamListener that keeps what it was told and signals every change."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.states: list[tuple[str, str, str | None]] = []
        self.updates: list[dict[str, Any]] = []

    def on_trade_update(self, update: dict[str, Any]) -> None:
        with self.changed:
            self.updates.append(update)
            self.changed.notify_all()

    def on_stream_state(self, stream: str, state: str, error: str | None) -> None:
        with self.changed:
            self.states.append((stream, state, error))
            self.changed.notify_all()

    def sequence(self, stream: str) -> list[str]:
        with self.changed:
            return [state for name, state, _ in self.states if name == stream]

    def errors(self) -> list[str]:
        with self.changed:
            return [error for _, _, error in self.states if error]

    def wait(self, condition: Callable[[], bool], timeout: float = WAIT) -> None:
        with self.changed:
            assert self.changed.wait_for(condition, timeout), f"not reached: {self.states}"

    def wait_states(self, stream: str, expected: list[str]) -> None:
        self.wait(lambda: self.sequence(stream)[:len(expected)] == expected
                  and len(self.sequence(stream)) >= len(expected))


class Session:
    """One session's market data and streams on a connection, and what reached it."""

    def __init__(self, connection: BrokerConnection, symbols: tuple[str, ...],
                 backoff: Backoff = FAST) -> None:
        self.woken = threading.Event()
        self.listener = Recorder()
        self.market = AlpacaMarketData(
            connection, symbols=symbols, timeframes=("1m",), broker="alpaca",
            budget=LocalBudget(200), clock=lambda: datetime.now(UTC), wake=self.woken.set)
        self.streams = AlpacaStreams(connection, self.listener, self.market, symbols=symbols,
                                     rng=random.Random(7), backoff=backoff)
        self.events: list[Event] = []

    def connected(self) -> None:
        self.listener.wait(lambda: self.streams.states() == {
            TRADE_UPDATES: STREAM_CONNECTED, MARKET_DATA: STREAM_CONNECTED})

    def events_until(self, condition: Callable[[list[Event]], bool]) -> list[Event]:
        """As a host does: advance and drain each time the market data wakes it, until
        `condition` holds."""
        deadline = time.monotonic() + WAIT
        while not condition(self.events):
            assert self.woken.wait(max(0.0, deadline - time.monotonic())), self.events
            self.woken.clear()
            self.market.advance(datetime.now(UTC))
            self.events.extend(self.market.drain_events())
        return self.events


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with FakeAlpaca() as server:
        yield server


@pytest.fixture
def sessions() -> Iterator[list[Session]]:
    made: list[Session] = []
    yield made
    for session in made:  # the SDK clients stop before the fake does
        session.streams.close()


def connection_to(fake: FakeAlpaca, *, secret: str = SECRET) -> BrokerConnection:
    return BrokerConnection(id=f"conn-{next(_ids)}", platform="alpaca-paper", key_id=KEY_ID,
                            secret=secret, urls=fake.urls, options={"feed": "iex"})


def started(sessions: list[Session], connection: BrokerConnection, symbols: tuple[str, ...],
            backoff: Backoff = FAST) -> Session:
    session = Session(connection, symbols, backoff)
    sessions.append(session)
    session.streams.start()
    return session


def test_both_streams_report_connected_once_listening_and_subscribed(fake, sessions) -> None:
    session = started(sessions, connection_to(fake), ("AAPL", "BRK-B"))
    session.connected()

    assert session.listener.sequence(TRADE_UPDATES) == [STREAM_CONNECTED]
    assert session.listener.sequence(MARKET_DATA) == [STREAM_CONNECTED]
    assert fake.stream_clients() == {"trading": 1, "data": 1}
    subscribed = fake.subscriptions()
    assert (subscribed["bars"], subscribed["quotes"]) == (["AAPL", "BRK.B"], ["AAPL", "BRK.B"])


def test_a_trade_update_reaches_the_listener_as_alpacas_data(fake, sessions) -> None:
    session = started(sessions, connection_to(fake), ("AAPL",))
    session.connected()
    fake.set_quote("AAPL", bid=Decimal("190.01"), ask=Decimal("190.05"))
    client = TradingClient(KEY_ID, SECRET, raw_data=True, url_override=fake.urls["trading"])
    order = client.submit_order(MarketOrderRequest(symbol="AAPL", qty=2, side=OrderSide.BUY,
                                                   time_in_force=TimeInForce.DAY))

    listener = session.listener
    listener.wait(lambda: any(u["event"] == "fill" for u in listener.updates))
    events = [u["event"] for u in listener.updates]
    fill = listener.updates[-1]
    assert events == ["new", "fill"]
    assert (fill["order"]["id"], fill["price"], fill["qty"], fill["position_qty"]) == (
        order["id"], "190.05", "2", "2")


def test_bars_and_quotes_of_the_stream_become_events(fake, sessions) -> None:
    session = started(sessions, connection_to(fake), ("AAPL",))
    session.connected()
    minute = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
    fake.push_bar(Bar("AAPL", "1m", minute, Decimal("190.01"), Decimal("190.4"),
                      Decimal("189.9"), Decimal("190.25"), Decimal(1200)))
    fake.set_quote("AAPL", bid=Decimal("190.2"), ask=Decimal("190.3"),
                   at=minute + timedelta(seconds=61))

    events = session.events_until(lambda seen: any(
        isinstance(e, QuoteEvent) and e.quote.ask == Decimal("190.3") for e in seen))
    [candle] = [e for e in events if isinstance(e, CandleEvent)]
    assert candle.bar == Bar("AAPL", "1m", minute, Decimal("190.01"), Decimal("190.4"),
                             Decimal("189.9"), Decimal("190.25"), Decimal(1200))
    quote = [e for e in events if isinstance(e, QuoteEvent)][-1].quote
    assert (quote.bid, quote.ask, quote.last) == (Decimal("190.2"), Decimal("190.3"),
                                                  Decimal("190.25"))
    assert quote.timestamp == minute + timedelta(seconds=61)


def test_dropped_streams_report_reconnecting_then_connected_again(fake, sessions) -> None:
    session = started(sessions, connection_to(fake), ("AAPL",))
    session.connected()
    fake.drop_streams()

    for stream in (TRADE_UPDATES, MARKET_DATA):
        session.listener.wait_states(
            stream, [STREAM_CONNECTED, STREAM_RECONNECTING, STREAM_CONNECTED])
    fake.wait_for(lambda: fake.stream_clients() == {"trading": 1, "data": 1})
    assert fake.subscriptions()["bars"] == ["AAPL"]
    assert all(SECRET not in e and KEY_ID not in e for e in session.listener.errors())

    minute = datetime(2026, 1, 5, 14, 31, tzinfo=UTC)  # data flows on the new connection
    fake.push_bar(Bar("AAPL", "1m", minute, Decimal(1), Decimal(2), Decimal(1), Decimal(2),
                      Decimal(5)))
    session.events_until(lambda seen: any(isinstance(e, CandleEvent) for e in seen))


def test_the_minutes_missed_while_the_data_stream_was_down_come_after_it_returns(
        fake, sessions) -> None:
    session = started(sessions, connection_to(fake), ("AAPL",))
    session.connected()
    now = datetime.now(UTC)
    first = now.replace(second=0, microsecond=0) - timedelta(minutes=5)

    def bar(minute: int) -> Bar:
        price = Decimal(100 + minute)
        return Bar("AAPL", "1m", first + timedelta(minutes=minute), price, price + 1, price - 1,
                   price, Decimal(10))

    fake.push_bar(bar(0))
    session.events_until(lambda seen: any(isinstance(e, CandleEvent) for e in seen))
    fake.refuse_streams()
    fake.drop_streams(trading=False)
    session.listener.wait_states(MARKET_DATA, [STREAM_CONNECTED, STREAM_RECONNECTING])
    fake.push_bar(bar(1))  # nobody hears these: Alpaca keeps them for its history
    fake.push_bar(bar(2))
    fake.refuse_streams(False)
    session.listener.wait_states(MARKET_DATA,
                                 [STREAM_CONNECTED, STREAM_RECONNECTING, STREAM_CONNECTED])

    assert session.market.next_due() == 0.0
    session.market.advance(datetime.now(UTC))
    missed = [e.bar for e in session.market.drain_events() if isinstance(e, CandleEvent)]
    assert missed == [bar(1), bar(2)]


def test_refused_keys_fail_both_streams_without_retrying(fake, sessions) -> None:
    session = started(sessions, connection_to(fake, secret="not-the-secret"), ("AAPL",))

    session.listener.wait(lambda: session.streams.states() == {
        TRADE_UPDATES: STREAM_FAILED, MARKET_DATA: STREAM_FAILED})
    assert session.listener.sequence(TRADE_UPDATES) == [STREAM_FAILED]
    assert session.listener.sequence(MARKET_DATA) == [STREAM_FAILED]
    assert sorted(session.listener.errors()) == [
        "Alpaca refused the connection's keys on the data stream",
        "Alpaca refused the connection's keys on the trade_updates stream"]
    assert fake.stream_clients() == {"trading": 0, "data": 0}


def test_a_session_after_a_failed_data_stream_tries_anew(fake, sessions) -> None:
    refused = connection_to(fake, secret="not-the-secret")
    first = started(sessions, refused, ("AAPL",))
    first.listener.wait(lambda: first.streams.states()[MARKET_DATA] == STREAM_FAILED)

    fixed = BrokerConnection(id=refused.id, platform=refused.platform, key_id=KEY_ID,
                             secret=SECRET, urls=fake.urls, options={"feed": "iex"})
    second = started(sessions, fixed, ("AAPL",))
    second.connected()
    assert fake.stream_clients() == {"trading": 1, "data": 1}


def test_a_long_outage_fails_the_streams_after_the_last_attempt(fake, sessions) -> None:
    fake.refuse_streams()
    session = started(sessions, connection_to(fake), ("AAPL",),
                      Backoff(initial=0.01, cap=0.02, max_attempts=3, ack_timeout=5.0))

    session.listener.wait(lambda: session.streams.states()[TRADE_UPDATES] == STREAM_FAILED)
    assert session.listener.sequence(TRADE_UPDATES) == [STREAM_RECONNECTING, STREAM_FAILED]
    [*_, (_, _, error)] = [s for s in session.listener.states if s[0] == TRADE_UPDATES]
    assert error is not None and error.startswith("gave up after 3 attempts: ")


def test_sessions_of_one_connection_share_one_data_connection(fake, sessions) -> None:
    connection = connection_to(fake)
    apple = started(sessions, connection, ("AAPL",))
    microsoft = started(sessions, connection, ("MSFT",))
    apple.connected()
    microsoft.connected()

    fake.wait_for(lambda: fake.subscriptions().get("bars") == ["AAPL", "MSFT"])
    assert fake.stream_clients() == {"trading": 2, "data": 1}
    minute = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
    for symbol in ("MSFT", "AAPL"):
        fake.push_bar(Bar(symbol, "1m", minute, Decimal(10), Decimal(11), Decimal(9),
                          Decimal("10.5"), Decimal(7)))
    for session, symbol in ((apple, "AAPL"), (microsoft, "MSFT")):
        events = session.events_until(lambda seen: any(isinstance(e, CandleEvent)
                                                       for e in seen))
        assert {e.bar.symbol for e in events if isinstance(e, CandleEvent)} == {symbol}

    apple.streams.close()  # the last to leave closes the data connection, not the first
    fake.wait_for(lambda: fake.subscriptions().get("bars") == ["MSFT"])
    assert fake.stream_clients() == {"trading": 1, "data": 1}
    assert microsoft.streams.states()[MARKET_DATA] == STREAM_CONNECTED
    microsoft.streams.close()
    fake.wait_for(lambda: fake.stream_clients() == {"trading": 0, "data": 0})


def test_a_session_joining_a_connected_data_stream_is_told_it_is_connected(fake,
                                                                          sessions) -> None:
    connection = connection_to(fake)
    first = started(sessions, connection, ("AAPL",))
    first.connected()
    second = started(sessions, connection, ("AAPL",))

    second.connected()
    assert second.listener.sequence(MARKET_DATA) == [STREAM_CONNECTED]
    assert fake.stream_clients()["data"] == 1


def test_close_returns_at_once_and_reports_stopped(fake, sessions) -> None:
    before = SharedDataStream.count()
    session = started(sessions, connection_to(fake), ("AAPL",))
    session.connected()
    assert SharedDataStream.count() == before + 1

    began = time.monotonic()
    session.streams.close()
    assert time.monotonic() - began < 1.0
    assert session.streams.states() == {TRADE_UPDATES: STREAM_STOPPED,
                                        MARKET_DATA: STREAM_STOPPED}
    session.listener.wait(lambda: session.listener.sequence(TRADE_UPDATES)[-1:] == [
        STREAM_STOPPED] and session.listener.sequence(MARKET_DATA)[-1:] == [STREAM_STOPPED])
    fake.wait_for(lambda: fake.stream_clients() == {"trading": 0, "data": 0})
    assert SharedDataStream.count() == before
    session.streams.close()  # idempotent


# -- the supervisor with a scripted stream (what the fake cannot do: end without a word) ----------


class ScriptedStream:
    """A stream whose connections open and end as scripted: "ok" / an exception for each open,
    "ends" (returns), "holds" (until cancelled) or an exception for each consume."""

    def __init__(self, opens: list[object], consumes: list[object]) -> None:
        self.opens, self.consumes = opens, consumes
        self.shut_count = 0

    async def open(self) -> None:
        outcome = self.opens.pop(0)
        if isinstance(outcome, Exception):
            raise outcome

    async def consume(self) -> None:
        outcome = self.consumes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        if outcome == "holds":
            await asyncio.Event().wait()

    async def shut(self) -> None:
        self.shut_count += 1


def supervised(stream: ScriptedStream, backoff: Backoff = FAST) -> tuple[_Supervisor, Recorder]:
    recorder = Recorder()
    supervisor = _Supervisor(TRADE_UPDATES, stream,
                             lambda state, error: recorder.on_stream_state(TRADE_UPDATES, state,
                                                                           error),
                             backoff=backoff, rng=random.Random(3),
                             secrets=("PKSECRETKEY", "s3cret"), label="<conn>")
    return supervisor, recorder


def test_a_stream_that_ends_by_itself_is_a_drop_and_is_reconnected() -> None:
    stream = ScriptedStream(["ok", "ok"], ["ends", "holds"])
    supervisor, recorder = supervised(stream)
    supervisor.start()

    recorder.wait_states(TRADE_UPDATES, [STREAM_CONNECTED, STREAM_RECONNECTING, STREAM_CONNECTED])
    assert recorder.states[1] == (TRADE_UPDATES, STREAM_RECONNECTING,
                                  "the trade_updates stream ended by itself")
    supervisor.stop()
    recorder.wait_states(TRADE_UPDATES, [STREAM_CONNECTED, STREAM_RECONNECTING,
                                         STREAM_CONNECTED, STREAM_STOPPED])
    assert stream.shut_count >= 2


def test_failed_connects_report_reconnecting_once_and_errors_carry_no_key() -> None:
    stream = ScriptedStream([ValueError("bad answer for s3cret"), OSError("refused"), "ok"],
                            ["holds"])
    supervisor, recorder = supervised(stream)
    supervisor.start()

    recorder.wait_states(TRADE_UPDATES, [STREAM_RECONNECTING, STREAM_CONNECTED])
    assert recorder.states[0] == (TRADE_UPDATES, STREAM_RECONNECTING,
                                  "could not connect the trade_updates stream (bad answer for …)")
    supervisor.stop()


def test_a_refusal_fails_at_once() -> None:
    stream = ScriptedStream([StreamRefused("Alpaca refused the keys")], [])
    supervisor, recorder = supervised(stream)
    supervisor.start()

    recorder.wait(lambda: bool(recorder.states))
    assert recorder.states == [(TRADE_UPDATES, STREAM_FAILED, "Alpaca refused the keys")]


def test_backoff_doubles_from_one_second_to_thirty_with_jitter() -> None:
    backoff, rng = Backoff(), random.Random(11)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (40, 30.0)):
        delays = {backoff.delay(attempt, rng) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) == 20  # jittered: no two sessions wait in step
