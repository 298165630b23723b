"""BinanceStreams with the real python-binance against the fake Binance: states, klines and book
tickers as events, executionReports delivered, drops and ended subscriptions rebuilt (the user
data stream subscribed anew), refused keys, and a close that does not keep the caller waiting."""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from binance.client import Client

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
from runtimes.providers.binance.market_data import BinanceMarketData
from runtimes.providers.binance.streams import (
    MARKET_DATA,
    USER_DATA,
    Backoff,
    BinanceStreams,
)
from tests.fakes.binance.server import KEY_ID, SECRET, FakeBinance

FAST = Backoff(initial=0.01, cap=0.05, user_check=0.2, settle=0.1)
WAIT = 10.0  # seconds a signalled wait may take on a loaded machine before the test fails
_ids = itertools.count(1)


class Shared(LocalBudget):
    """The per-IP weight budget in process, with Binance's ban (not used by these tests' paths
    beyond a backfill)."""

    def __init__(self) -> None:
        super().__init__(6000)
        self.until: float | None = None

    def ban(self, seconds: float, reason: str) -> None:
        self.until = time.time() + seconds

    def banned_until(self) -> float | None:
        return self.until


class Recorder:
    """A UserListener that keeps what it was told and signals every change."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.states: list[tuple[str, str, str | None]] = []
        self.events: list[dict[str, Any]] = []

    def on_user_event(self, event: dict[str, Any]) -> None:
        with self.changed:
            self.events.append(event)
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
                 timeframes: tuple[str, ...] = ("1m",), backoff: Backoff = FAST) -> None:
        self.woken = threading.Event()
        self.listener = Recorder()
        self.market = BinanceMarketData(
            connection, symbols=symbols, timeframes=timeframes, broker="binance-testnet",
            shared=Shared(), clock=lambda: datetime.now(UTC), wake=self.woken.set)
        self.streams = BinanceStreams(connection, self.listener, self.market, symbols=symbols,
                                      timeframes=timeframes, rng=random.Random(7),
                                      backoff=backoff)
        self.events: list[Event] = []

    def connected(self) -> None:
        self.listener.wait(lambda: self.streams.states() == {
            USER_DATA: STREAM_CONNECTED, MARKET_DATA: STREAM_CONNECTED})

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
def fake() -> Iterator[FakeBinance]:
    with FakeBinance() as server:
        yield server


@pytest.fixture
def sessions() -> Iterator[list[Session]]:
    made: list[Session] = []
    yield made
    for session in made:  # the SDK clients stop before the fake does
        session.streams.close()


def connection_to(fake: FakeBinance, *, secret: str = SECRET,
                  key_id: str = KEY_ID) -> BrokerConnection:
    return BrokerConnection(id=f"conn-{next(_ids)}", platform="binance-testnet",
                            key_id=key_id, secret=secret, urls=fake.urls)


def started(sessions: list[Session], connection: BrokerConnection, symbols: tuple[str, ...],
            timeframes: tuple[str, ...] = ("1m",), backoff: Backoff = FAST) -> Session:
    session = Session(connection, symbols, timeframes, backoff)
    sessions.append(session)
    session.streams.start()
    return session


def _minute() -> datetime:
    """The newest complete minute (klines the fake keeps must not lie in the future)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=1)


def test_both_streams_report_connected_once_subscribed(fake, sessions) -> None:
    session = started(sessions, connection_to(fake), ("BTC/USDT", "ETHUSDT"), ("1m", "2m"))
    session.connected()

    assert session.listener.sequence(USER_DATA) == [STREAM_CONNECTED]
    assert session.listener.sequence(MARKET_DATA) == [STREAM_CONNECTED]
    assert session.streams.streams == ["btcusdt@kline_1m", "btcusdt@bookTicker",
                                       "ethusdt@kline_1m", "ethusdt@bookTicker"]
    fake.wait_for(lambda: fake.subscriptions() == {"market": 4, "user": 1})


def test_klines_and_book_tickers_become_events(fake, sessions) -> None:
    session = started(sessions, connection_to(fake), ("BTCUSDT",), ("1m", "5m"))
    session.connected()
    minute = _minute()
    bar = Bar("BTCUSDT", "1m", minute, Decimal("64000.10"), Decimal("64010.5"),
              Decimal("63990.01"), Decimal("64005.25"), Decimal("1.23456"))
    fake.push_kline(bar)
    fake.set_book("BTCUSDT", bid=Decimal("64005.20"), ask=Decimal("64005.30"))

    events = session.events_until(lambda seen: any(
        isinstance(e, QuoteEvent) and e.quote.ask == Decimal("64005.30") for e in seen))
    [candle] = [e for e in events if isinstance(e, CandleEvent)]
    assert candle.bar == bar
    assert candle.timestamp == minute + timedelta(minutes=1)
    quote = [e for e in events if isinstance(e, QuoteEvent)][-1].quote
    assert (quote.symbol, quote.bid, quote.ask, quote.last) == (
        "BTCUSDT", Decimal("64005.20"), Decimal("64005.30"), Decimal("64005.25"))


def test_an_execution_report_reaches_the_listener(fake, sessions) -> None:
    session = started(sessions, connection_to(fake), ("BTCUSDT",))
    session.connected()
    fake.set_book("BTCUSDT", bid=Decimal("64000.00"), ask=Decimal("64001.00"))
    order = _place(fake, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                   quantity="0.01000", price="60000.00", newClientOrderId="bs-1")

    listener = session.listener
    listener.wait(lambda: any(e.get("e") == "executionReport" for e in listener.events))
    report = next(e for e in listener.events if e.get("e") == "executionReport")
    assert (report["i"], report["c"], report["x"], report["X"], report["s"]) == (
        order["orderId"], "bs-1", "NEW", "NEW", "BTCUSDT")


def _place(fake: FakeBinance, **params: str) -> dict[str, Any]:
    """One order through python-binance's sync Client, as the provider places them."""

    class Rest(Client):  # type: ignore[misc]
        API_URL = fake.urls["api"]

    answer: dict[str, Any] = Rest(KEY_ID, SECRET, ping=False).create_order(**params)
    return answer


def test_dropped_streams_reconnect_and_subscribe_anew(fake, sessions, caplog) -> None:
    caplog.set_level(logging.DEBUG)  # python-binance and websockets log frames at DEBUG
    session = started(sessions, connection_to(fake), ("BTCUSDT",))
    session.connected()
    fake.wait_for(lambda: fake.subscriptions()["user"] == 1)
    fake.drop_streams()

    for stream in (USER_DATA, MARKET_DATA):
        session.listener.wait_states(
            stream, [STREAM_CONNECTED, STREAM_RECONNECTING, STREAM_CONNECTED])
    fake.wait_for(lambda: fake.subscriptions() == {"market": 2, "user": 1})
    assert all(SECRET not in e and KEY_ID not in e for e in session.listener.errors())

    fake.set_book("BTCUSDT", bid=Decimal("64000.00"), ask=Decimal("64001.00"))
    _place(fake, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
           quantity="0.01000", price="60000.00", newClientOrderId="after-drop")
    session.listener.wait(lambda: any(e.get("c") == "after-drop"
                                      for e in session.listener.events))
    assert SECRET not in caplog.text and KEY_ID not in caplog.text
    # Frames are never logged (websockets cuts them short, which is all that hid the key here).
    assert [r.name for r in caplog.records if r.levelno < logging.INFO and
            r.name.split(".")[0] in ("websockets", "binance")] == []


def test_an_ended_user_stream_is_subscribed_anew(fake, sessions) -> None:
    session = started(sessions, connection_to(fake), ("BTCUSDT",))
    session.connected()
    fake.wait_for(lambda: fake.subscriptions()["user"] == 1)
    fake.end_user_stream()

    session.listener.wait_states(USER_DATA, [STREAM_CONNECTED, STREAM_RECONNECTING,
                                             STREAM_CONNECTED])
    fake.wait_for(lambda: fake.subscriptions()["user"] == 1)
    assert session.listener.sequence(MARKET_DATA) == [STREAM_CONNECTED]
    reason = [e for s, st, e in session.listener.states if st == STREAM_RECONNECTING]
    assert reason == ["Binance ended the user_data subscription"]


WRONG = "wrong0000000000000000000000000000000000000000000000000000000000000"


@pytest.mark.parametrize(("key_id", "secret", "error"), [
    (KEY_ID, WRONG, "Binance refused the signature of the connection's secret"),
    (WRONG, SECRET, "Binance refused the connection's API key (invalid key, IP or permissions)"),
])
def test_refused_keys_fail_the_user_stream_at_once(fake, sessions, caplog, key_id, secret,
                                                   error) -> None:
    caplog.set_level(logging.DEBUG)
    session = started(sessions, connection_to(fake, key_id=key_id, secret=secret),
                      ("BTCUSDT",))

    session.listener.wait_states(USER_DATA, [STREAM_FAILED])
    assert [s for s in session.listener.states if s[0] == USER_DATA] == [
        (USER_DATA, STREAM_FAILED, error)]
    assert session.streams.states()[USER_DATA] == STREAM_FAILED
    assert fake.subscriptions()["user"] == 0
    assert WRONG not in caplog.text and SECRET not in caplog.text


def test_an_outage_is_one_reconnecting_and_gives_up_after_max_attempts(fake, sessions) -> None:
    patient = Backoff(initial=0.01, cap=0.02, max_attempts=4, user_check=0.2, settle=0.1)
    session = started(sessions, connection_to(fake), ("BTCUSDT",), backoff=patient)
    session.connected()
    fake.begin_restart()  # never ends: every attempt is refused

    for stream in (USER_DATA, MARKET_DATA):
        session.listener.wait_states(stream, [STREAM_CONNECTED, STREAM_RECONNECTING,
                                              STREAM_FAILED])
    failed = [e for _, st, e in session.listener.states if st == STREAM_FAILED]
    assert len(failed) == 2
    assert all(e is not None and e.startswith("gave up after 4 attempts: ") for e in failed)
    fake.end_restart()


def test_close_is_fast_and_reports_stopped(fake, sessions) -> None:
    session = started(sessions, connection_to(fake), ("BTCUSDT",))
    session.connected()

    began = time.monotonic()
    session.streams.close()
    assert time.monotonic() - began < 1.0
    assert session.streams.states() == {USER_DATA: STREAM_STOPPED, MARKET_DATA: STREAM_STOPPED}
    for stream in (USER_DATA, MARKET_DATA):
        session.listener.wait_states(stream, [STREAM_CONNECTED, STREAM_STOPPED])
    session.streams.close()  # idempotent
    fake.wait_for(lambda: fake.subscriptions() == {"market": 0, "user": 0})


def test_close_before_connecting_is_fast(fake, sessions) -> None:
    session = started(sessions, connection_to(fake), ("BTCUSDT",))
    began = time.monotonic()
    session.streams.close()
    assert time.monotonic() - began < 1.0
    assert session.streams.states() == {USER_DATA: STREAM_STOPPED, MARKET_DATA: STREAM_STOPPED}


def test_a_silent_market_stream_is_a_drop(fake, sessions) -> None:
    silent = Backoff(initial=0.01, cap=0.05, market_silence=0.3, user_check=0.2, settle=0.1)
    session = started(sessions, connection_to(fake), ("BTCUSDT",), backoff=silent)

    session.listener.wait_states(MARKET_DATA, [STREAM_CONNECTED, STREAM_RECONNECTING,
                                               STREAM_CONNECTED])
    reason = next(e for s, st, e in session.listener.states
                  if s == MARKET_DATA and st == STREAM_RECONNECTING)
    assert reason == "the market_data stream went silent for 0.3 s"
    assert STREAM_RECONNECTING not in session.listener.sequence(USER_DATA)  # quiet is normal


def test_klines_missed_in_an_outage_are_fetched_once_and_in_order(fake, sessions) -> None:
    session = started(sessions, connection_to(fake), ("BTCUSDT",))
    session.connected()
    minute = _minute()

    def bar(at: datetime, close: str) -> Bar:
        c = Decimal(close)
        return Bar("BTCUSDT", "1m", at, c, c, c, c, Decimal("1"))

    def candles(seen: list[Event]) -> list[tuple[datetime, Decimal]]:
        return [(e.bar.timestamp, e.bar.close) for e in seen if isinstance(e, CandleEvent)]

    fake.push_kline(bar(minute - timedelta(minutes=2), "100"))
    session.events_until(lambda seen: len(candles(seen)) == 1)
    fake.begin_restart()  # streams refused and REST 503 until it ends
    session.listener.wait_states(MARKET_DATA, [STREAM_CONNECTED, STREAM_RECONNECTING])
    fake.push_kline(bar(minute - timedelta(minutes=1), "101"))
    fake.push_kline(bar(minute, "102"))
    fake.end_restart()

    seen = session.events_until(lambda seen: len(candles(seen)) >= 3)
    assert candles(seen) == [(minute - timedelta(minutes=2), Decimal("100")),
                             (minute - timedelta(minutes=1), Decimal("101")),
                             (minute, Decimal("102"))]
    assert [p["interval"] for _, path, p in fake.requests if path.endswith("/klines")] == ["1m"]
