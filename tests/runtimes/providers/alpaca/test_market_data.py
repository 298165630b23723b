"""AlpacaMarketData on a fake clock: candles built from the stream's 1m bars, exact Decimals,
quotes (stream first, REST second, paid from the shared budget), history and staleness."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgpack
import pytest
import requests
from alpaca.common.exceptions import APIError

from runtimes.core.bars import Bar
from runtimes.core.connection import BrokerConnection
from runtimes.core.errors import BrokerUnavailable, RateLimited, SymbolNotFound
from runtimes.core.events import CandleEvent, QuoteEvent, StalenessEvent
from runtimes.core.rate_budget import LocalBudget
from runtimes.providers.alpaca.market_data import AlpacaMarketData
from tests.fakes.alpaca.server import KEY_ID, SECRET, FakeAlpaca
from tests.runtimes.providers.clock import FakeClock

# Monday 2026-01-05 14:30:00 UTC (09:30 in New York).
OPEN = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
CONNECTION = BrokerConnection(
    id="conn-1", platform="alpaca-paper", key_id="PKUNIT0000000000WXYZ", secret="unit-secret",
    urls={"trading": "http://127.0.0.1:9", "data": "http://127.0.0.1:9",
          "trading_stream": "ws://127.0.0.1:9/stream", "data_stream": "ws://127.0.0.1:9/v2"})


@dataclass
class ScriptedData:
    """alpaca-py's historical client as the market data uses it: answers given by the test, the
    requests it was sent kept."""

    bars: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    quotes: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: Exception | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)

    def sent(self, request_params: Any) -> None:
        """The query alpaca-py would send for the request."""
        fields = request_params.to_request_fields()
        self.requests.append({k: getattr(v, "value", v) for k, v in fields.items()})

    def get_stock_bars(self, request_params: Any) -> Any:
        self.sent(request_params)
        if self.error is not None:
            raise self.error
        wanted = request_params.symbol_or_symbols
        return {symbol: self.bars[symbol] for symbol in wanted if symbol in self.bars}

    def get_stock_latest_quote(self, request_params: Any) -> Any:
        self.sent(request_params)
        if self.error is not None:
            raise self.error
        wanted = request_params.symbol_or_symbols[0]
        return {wanted: self.quotes[wanted]} if wanted in self.quotes else {}


@dataclass
class Wakes:
    count: int = 0

    def __call__(self) -> None:
        self.count += 1


def market(clock: FakeClock, *, timeframes: tuple[str, ...] = ("1m", "5m"),
           symbols: tuple[str, ...] = ("AAPL", "MSFT"), data: ScriptedData | None = None,
           budget: LocalBudget | None = None, wakes: Wakes | None = None,
           staleness_seconds: float = 120.0) -> AlpacaMarketData:
    return AlpacaMarketData(
        CONNECTION, symbols=symbols, timeframes=timeframes, broker="alpaca",
        budget=budget or LocalBudget(200, clock=lambda: clock().timestamp()), clock=clock,
        wake=wakes or Wakes(), staleness_seconds=staleness_seconds,
        client=data or ScriptedData())


def stamp(moment: datetime) -> msgpack.Timestamp:
    return msgpack.Timestamp.from_datetime(moment)


def stream_bar(symbol: str, minute: int, o: float, h: float, low: float, c: float,
               v: int = 100, *, base: datetime = OPEN) -> dict[str, Any]:
    """A 1m bar as the data stream's msgpack decodes it: floats and a Timestamp."""
    return {"T": "b", "S": symbol, "o": o, "h": h, "l": low, "c": c, "v": v,
            "t": stamp(base + timedelta(minutes=minute)), "n": 3, "vw": c}


def candles(events: list[Any], timeframe: str) -> list[Bar]:
    return [e.bar for e in events if isinstance(e, CandleEvent) and e.bar.timeframe == timeframe]


def test_minute_bars_stream_as_1m_candles_and_a_5m_candle_once_its_last_minute_arrives() -> None:
    clock = FakeClock(OPEN + timedelta(seconds=1))
    wakes = Wakes()
    md = market(clock, wakes=wakes)
    prices = [(190.01, 190.2, 189.95, 190.1), (190.1, 190.3, 190.05, 190.25),
              (190.25, 190.26, 189.9, 189.91), (189.91, 190.0, 189.8, 189.99)]
    for minute, (o, h, low, c) in enumerate(prices):
        md.on_bar(stream_bar("AAPL", minute, o, h, low, c, v=100 + minute))
    assert candles(md.drain_events(), "5m") == []
    md.on_bar(stream_bar("AAPL", 4, 189.99, 190.4, 189.98, 190.35, v=104))

    events = md.drain_events()
    assert candles(events, "1m") == [
        Bar("AAPL", "1m", OPEN + timedelta(minutes=4), Decimal("189.99"), Decimal("190.4"),
            Decimal("189.98"), Decimal("190.35"), Decimal(104))]
    assert candles(events, "5m") == [
        Bar("AAPL", "5m", OPEN, Decimal("190.01"), Decimal("190.4"), Decimal("189.8"),
            Decimal("190.35"), Decimal(510))]
    assert [e.timestamp for e in events if isinstance(e, CandleEvent)] == \
        [OPEN + timedelta(minutes=5)] * 2
    assert wakes.count == 5


def test_prices_are_the_floats_shortest_text_never_binary_sums() -> None:
    clock = FakeClock(OPEN)
    md = market(clock, timeframes=("2m",))
    md.on_bar(stream_bar("AAPL", 0, 0.1, 0.3, 0.1, 0.2, v=1))
    md.on_bar(stream_bar("AAPL", 1, 0.2, 0.30000000000000004, 0.1, 0.3, v=2))

    [bar] = candles(md.drain_events(), "2m")
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
        Decimal("0.1"), Decimal("0.30000000000000004"), Decimal("0.1"), Decimal("0.3"),
        Decimal(3))


def test_hourly_candle_from_sixty_minutes() -> None:
    clock = FakeClock(OPEN)
    md = market(clock, timeframes=("1h",), symbols=("MSFT",))
    hour = datetime(2026, 1, 5, 15, tzinfo=UTC)
    for minute in range(60):
        cents = 42_000 + minute  # the stream's floats are short decimals, as Alpaca's are
        o, h, low, c = (float(Decimal(cents + d) / 100) for d in (0, 50, -25, 1))
        md.on_bar(stream_bar("MSFT", minute, o, h, low, c, base=hour))

    assert candles(md.drain_events(), "1h") == [
        Bar("MSFT", "1h", hour, Decimal("420"), Decimal("421.09"), Decimal("419.75"),
            Decimal("420.6"), Decimal(6000))]


def test_a_bucket_begun_before_the_first_bar_seen_is_never_streamed() -> None:
    clock = FakeClock(OPEN)
    md = market(clock, timeframes=("5m",))
    for minute in range(2, 10):
        md.on_bar(stream_bar("AAPL", minute, 190.0 + minute, 191.0 + minute, 189.0, 190.5))

    assert [b.timestamp for b in candles(md.drain_events(), "5m")] == \
        [OPEN + timedelta(minutes=5)]


def test_a_bucket_whose_last_minutes_had_no_trades_streams_once_its_time_is_up() -> None:
    clock = FakeClock(OPEN)
    md = market(clock, timeframes=("1m", "5m"))
    md.on_bar(stream_bar("AAPL", 0, 190.0, 190.5, 189.5, 190.2))
    md.on_bar(stream_bar("AAPL", 1, 190.2, 190.9, 190.1, 190.8))
    md.drain_events()
    clock.advance(seconds=5 * 60 + 14)
    assert md.next_due() == 1.0
    md.advance(clock())
    assert candles(md.drain_events(), "5m") == []

    clock.advance(seconds=1)
    md.advance(clock())
    assert candles(md.drain_events(), "5m") == [
        Bar("AAPL", "5m", OPEN, Decimal("190.0"), Decimal("190.9"), Decimal("189.5"),
            Decimal("190.8"), Decimal(200))]
    md.on_bar(stream_bar("AAPL", 3, 190.8, 191.0, 190.7, 190.9))  # late: its bucket is done
    assert candles(md.drain_events(), "5m") == []


def test_a_bar_sent_again_after_a_reconnect_is_taken_once() -> None:
    clock = FakeClock(OPEN)
    md = market(clock, timeframes=("1m",))
    md.on_bar(stream_bar("AAPL", 0, 190.0, 190.5, 189.5, 190.2))
    md.on_bar(stream_bar("AAPL", 0, 190.0, 190.5, 189.5, 190.2))

    assert len(candles(md.drain_events(), "1m")) == 1


def test_the_minutes_a_reconnect_missed_are_fetched_and_candles_stay_in_order() -> None:
    clock = FakeClock(OPEN)
    data = ScriptedData(bars={"AAPL": [
        rest_bar(OPEN + timedelta(minutes=m), 190 + m, 191 + m, 189 + m, 190.5 + m, 10)
        for m in (1, 2, 3)]})
    wakes = Wakes()
    md = market(clock, timeframes=("1m", "5m"), data=data, wakes=wakes)
    md.on_bar(stream_bar("AAPL", 0, 190.0, 191.0, 189.0, 190.5, v=10))
    md.drain_events()

    md.on_stream_reconnected()
    md.on_bar(stream_bar("AAPL", 4, 194.0, 195.0, 193.0, 194.5, v=10))  # waits for the gap
    assert md.drain_events() == [] and md.next_due() == 0.0
    clock.advance(seconds=4 * 60 + 30)
    md.advance(clock())

    events = md.drain_events()
    assert [b.timestamp.minute for b in candles(events, "1m")] == [31, 32, 33, 34]
    assert candles(events, "5m") == [
        Bar("AAPL", "5m", OPEN, Decimal("190.0"), Decimal(195), Decimal(189), Decimal("194.5"),
            Decimal(50))]
    [sent] = data.requests
    assert (sent["symbols"], sent["start"], sent["end"]) == (
        "AAPL", "2026-01-05T14:31:00+00:00",
        "2026-01-05T14:33:59+00:00")
    assert wakes.count == 3


def test_during_an_outage_no_bucket_closes_by_the_clock_and_the_gap_completes_it() -> None:
    clock = FakeClock(OPEN)
    data = ScriptedData(bars={"AAPL": [
        rest_bar(OPEN + timedelta(minutes=m), 100, 101, 99, 100, 10) for m in (2, 3, 4)]})
    md = market(clock, timeframes=("5m",), data=data)
    md.on_bar(stream_bar("AAPL", 0, 100.0, 101.0, 99.0, 100.0, v=10))
    md.on_bar(stream_bar("AAPL", 1, 100.0, 101.0, 99.0, 100.0, v=10))
    md.on_stream_dropped()
    clock.advance(seconds=6 * 60)

    assert md.next_due() is None
    md.advance(clock())
    assert md.drain_events() == []
    md.on_stream_reconnected()
    md.advance(clock())
    assert candles(md.drain_events(), "5m") == [
        Bar("AAPL", "5m", OPEN, Decimal(100), Decimal(101), Decimal(99), Decimal(100),
            Decimal(50))]


def test_stream_quotes_become_quote_events_with_exact_prices_and_utc_time() -> None:
    clock = FakeClock(OPEN)
    md = market(clock)
    moment = OPEN + timedelta(seconds=3, microseconds=250_000)
    md.on_quote({"T": "q", "S": "AAPL", "bx": "V", "bp": 190.01, "bs": 3, "ax": "V",
                 "ap": 190.04, "as": 1, "t": stamp(moment), "c": ["R"], "z": "C"})

    [event] = md.drain_events()
    assert isinstance(event, QuoteEvent)
    assert event.quote.bid == Decimal("190.01") and event.quote.ask == Decimal("190.04")
    assert event.quote.last == Decimal("190.025")
    assert event.quote.timestamp == moment and event.quote.timestamp.tzinfo is UTC
    assert event.quote.provider == "alpaca-paper"
    assert md.quote("AAPL") == event.quote


def test_the_last_price_is_the_newest_bar_close_once_a_bar_came() -> None:
    clock = FakeClock(OPEN)
    md = market(clock)
    md.on_bar(stream_bar("AAPL", 0, 190.0, 190.5, 189.5, 190.2))
    md.on_quote({"T": "q", "S": "AAPL", "bp": 190.3, "ap": 190.4, "t": stamp(OPEN)})

    assert md.quote("AAPL").last == Decimal("190.2")
    assert md.last_price("AAPL") == Decimal("190.2")
    assert md.last_price("MSFT") is None


def test_only_the_newest_undrained_quote_of_a_symbol_is_kept() -> None:
    clock = FakeClock(OPEN)
    md = market(clock)
    for cents in range(5):
        md.on_quote({"T": "q", "S": "AAPL", "bp": 190 + cents / 100, "ap": 191.0,
                     "t": stamp(OPEN + timedelta(seconds=cents))})

    events = md.drain_events()
    assert [e.quote.bid for e in events if isinstance(e, QuoteEvent)] == [Decimal("190.04")]


def test_a_quote_before_any_stream_quote_is_fetched_once_from_the_budget() -> None:
    clock = FakeClock(OPEN)
    data = ScriptedData(quotes={"BRK.B": {"bp": 480.5, "ap": 480.75, "bs": 1, "as": 2,
                                          "t": "2026-01-05T14:29:59.123456789Z"}})
    budget = LocalBudget(200, clock=lambda: clock().timestamp())
    md = market(clock, symbols=("BRK-B",), data=data, budget=budget)

    quote = md.quote("BRK/B")
    assert quote.symbol == "BRK.B"
    assert (quote.bid, quote.ask, quote.last) == (Decimal("480.5"), Decimal("480.75"),
                                                  Decimal("480.625"))
    assert quote.timestamp == datetime(2026, 1, 5, 14, 29, 59, 123456, tzinfo=UTC)
    assert data.requests == [{"symbols": "BRK.B", "feed": "iex"}]
    assert budget.remaining() == 199
    assert md.quote("BRK.B") == quote  # served again without a request
    assert len(data.requests) == 1


def test_a_refused_budget_is_rate_limited_without_a_request() -> None:
    clock = FakeClock(OPEN)
    data = ScriptedData(quotes={"AAPL": {"bp": 1, "ap": 2, "t": "2026-01-05T14:29:59Z"}})
    budget = LocalBudget(1, clock=lambda: clock().timestamp())
    budget.acquire()
    md = market(clock, data=data, budget=budget)

    with pytest.raises(RateLimited) as caught:
        md.quote("AAPL")
    assert caught.value.retry_after_seconds == 60
    assert data.requests == []


def test_alpacas_429_blocks_the_budget_for_its_retry_after() -> None:
    clock = FakeClock(OPEN)
    response = requests.Response()
    response.status_code = 429
    response.headers["Retry-After"] = "7"
    error = APIError('{"code": 42910000, "message": "rate limit exceeded"}',
                     requests.HTTPError(response=response))
    budget = LocalBudget(200, clock=lambda: clock().timestamp())
    md = market(clock, data=ScriptedData(error=error), budget=budget)

    with pytest.raises(RateLimited) as caught:
        md.history("AAPL", None, None, 10)
    assert caught.value.retry_after_seconds == 7
    assert budget.acquire() == 7.0


def test_symbols_outside_the_session_or_unknown_to_alpaca_are_not_found() -> None:
    clock = FakeClock(OPEN)
    md = market(clock, data=ScriptedData())
    with pytest.raises(SymbolNotFound):
        md.quote("TSLA")
    with pytest.raises(SymbolNotFound):
        md.quote("AAPL")  # Alpaca answered no quote for it
    with pytest.raises(SymbolNotFound):
        md.history("TSLA", None, None, 5)


def rest_bar(moment: datetime, o: float, h: float, low: float, c: float, v: int = 10) -> dict[
        str, Any]:
    return {"t": moment.isoformat().replace("+00:00", "Z"), "o": o, "h": h, "l": low, "c": c,
            "v": v, "n": 1, "vw": c}


def test_history_is_the_newest_complete_bars_ascending_and_asks_for_them_newest_first() -> None:
    clock = FakeClock(OPEN + timedelta(minutes=3, seconds=20))
    minutes = [rest_bar(OPEN + timedelta(minutes=m), 190 + m, 191 + m, 189 + m, 190.5 + m)
               for m in range(4)]  # the 14:33 bar is still forming at 14:33:20
    data = ScriptedData(bars={"AAPL": list(reversed(minutes))})
    md = market(clock, timeframes=("1m",), data=data)

    bars = md.history("AAPL", None, None, 2)
    assert [(b.timestamp, b.close) for b in bars] == [
        (OPEN + timedelta(minutes=1), Decimal("191.5")),
        (OPEN + timedelta(minutes=2), Decimal("192.5"))]
    [sent] = data.requests
    assert sent["timeframe"] == "1Min" and sent["sort"] == "desc" and sent["limit"] == 2
    assert sent["feed"] == "iex" and sent["end"] == "2026-01-05T14:32:59+00:00"


def test_history_between_start_and_end_is_ascending_without_a_limit() -> None:
    clock = FakeClock(OPEN + timedelta(hours=1))
    minutes = [rest_bar(OPEN + timedelta(minutes=m), 100, 101, 99, 100.5) for m in range(10)]
    data = ScriptedData(bars={"AAPL": minutes})
    md = market(clock, timeframes=("1m",), data=data)

    bars = md.history("AAPL", OPEN + timedelta(minutes=2), OPEN + timedelta(minutes=4), None)
    assert [b.timestamp for b in bars] == [OPEN + timedelta(minutes=m) for m in (2, 3, 4)]
    [sent] = data.requests
    assert sent["sort"] == "asc" and sent["start"] == "2026-01-05T14:32:00+00:00"


def test_history_in_a_timeframe_alpaca_lacks_is_built_from_the_largest_that_divides_it() -> None:
    clock = FakeClock(OPEN + timedelta(minutes=10))
    fives = [rest_bar(OPEN + timedelta(minutes=5 * k), 100 + k, 102 + k, 99 + k, 101 + k, 5)
             for k in range(2)]
    data = ScriptedData(bars={"AAPL": fives})
    md = market(clock, timeframes=("10m",), data=data)

    assert md.history("AAPL", OPEN, None, None) == [
        Bar("AAPL", "10m", OPEN, Decimal(100), Decimal(103), Decimal(99), Decimal(102),
            Decimal(10))]
    assert data.requests[0]["timeframe"] == "5Min"


def test_daily_history_is_stamped_at_midnight_utc() -> None:
    clock = FakeClock(datetime(2026, 1, 7, 15, tzinfo=UTC))
    days = [rest_bar(datetime(2026, 1, d, 5, tzinfo=UTC), 190, 192, 188, 191, 1000)
            for d in (5, 6, 7)]  # Alpaca stamps a day at midnight in New York
    data = ScriptedData(bars={"AAPL": list(reversed(days))})
    md = market(clock, timeframes=("1d",), data=data)

    bars = md.history("AAPL", None, None, 5)
    assert [b.timestamp for b in bars] == [datetime(2026, 1, 5, tzinfo=UTC),
                                           datetime(2026, 1, 6, tzinfo=UTC)]
    assert data.requests[0]["timeframe"] == "1Day"


def test_quiet_symbols_go_stale_while_the_market_is_open_and_fresh_on_their_next_data() -> None:
    clock = FakeClock(OPEN)
    md = market(clock, timeframes=("1m",), staleness_seconds=120)
    assert md.next_due() is None  # nothing can be stale before the market is known open
    md.set_market_open(True)
    clock.advance(seconds=60)
    md.on_bar(stream_bar("MSFT", 0, 420, 421, 419, 420.5))
    md.drain_events()
    assert md.next_due() == 60.0

    clock.advance(seconds=60)
    md.advance(clock())
    assert md.drain_events() == [
        StalenessEvent("STALE", ("AAPL",), "alpaca", clock(), stale_since=OPEN)]
    clock.advance(seconds=60)
    md.advance(clock())
    assert md.drain_events() == [
        StalenessEvent("STALE", ("MSFT",), "alpaca", clock(),
                       stale_since=OPEN + timedelta(seconds=60))]
    assert md.next_due() is None

    clock.advance(seconds=5)
    md.on_quote({"T": "q", "S": "AAPL", "bp": 190.0, "ap": 190.1, "t": stamp(clock())})
    events = md.drain_events()
    assert events[0] == StalenessEvent("FRESH", ("AAPL",), "alpaca", clock())


def test_nothing_goes_stale_while_the_market_is_closed_and_a_reopening_starts_the_watch() -> None:
    clock = FakeClock(OPEN)
    md = market(clock, timeframes=("1m",), staleness_seconds=120)
    md.set_market_open(False)
    clock.advance(seconds=3600)
    md.advance(clock())
    assert md.drain_events() == []
    assert md.next_due() is None

    md.set_market_open(True)
    assert md.next_due() == 120.0
    clock.advance(seconds=119)
    md.advance(clock())
    assert md.drain_events() == []


# -- against the fake Alpaca, through the real alpaca-py ----------------------------------------


def minute_bars(symbol: str, first: datetime, count: int) -> list[Bar]:
    """`count` 1m bars from `first`, prices in whole cents walking up and down."""
    bars = []
    for n in range(count):
        cents = Decimal(19_000 + (n * 37) % 500)
        o, c = cents / 100, (cents + (n % 7) - 3) / 100
        bars.append(Bar(symbol, "1m", first + timedelta(minutes=n), o, max(o, c) + Decimal("0.05"),
                        min(o, c) - Decimal("0.04"), c, Decimal(100 + n % 50)))
    return bars


@pytest.fixture
def fake_with_history() -> Iterator[tuple[FakeAlpaca, list[Bar]]]:
    bars = minute_bars("AAPL", OPEN - timedelta(days=10), 10_050)
    with FakeAlpaca(bars=bars) as server:
        yield server, bars


def connected_market(fake: FakeAlpaca, clock: FakeClock, timeframes: tuple[str, ...]) -> (
        AlpacaMarketData):
    connection = BrokerConnection(id="conn-h", platform="alpaca-paper", key_id=KEY_ID,
                                  secret=SECRET, urls=fake.urls, options={"feed": "iex"})
    return AlpacaMarketData(connection, symbols=("AAPL",), timeframes=timeframes,
                            broker="alpaca", budget=LocalBudget(200), clock=clock,
                            wake=Wakes())


def bar_requests(fake: FakeAlpaca) -> list[dict[str, Any]]:
    return [query for method, path, query, _ in fake.requests if path == "/v2/stocks/bars"]


def test_history_pages_through_alpacas_answer_in_order(fake_with_history) -> None:
    fake, bars = fake_with_history
    md = connected_market(fake, FakeClock(OPEN), ("1m",))

    got = md.history("AAPL", bars[0].timestamp, None, None)
    assert got == bars
    pages = bar_requests(fake)
    assert len(pages) == 2 and "page_token" in pages[1]

    newest = md.history("AAPL", None, None, 3)
    assert newest == bars[-3:]


def test_history_at_five_minutes_is_alpacas_own_and_daily_is_stamped_at_midnight_utc(
        fake_with_history) -> None:
    fake, bars = fake_with_history
    md = connected_market(fake, FakeClock(OPEN), ("5m",))
    [last] = md.history("AAPL", None, None, 1)
    tail = bars[-5:]
    assert last == Bar("AAPL", "5m", tail[0].timestamp, tail[0].open,
                       max(b.high for b in tail), min(b.low for b in tail), tail[-1].close,
                       sum((b.volume for b in tail), Decimal(0)))
    assert bar_requests(fake)[-1]["timeframe"] == "5Min"

    daily = connected_market(fake, FakeClock(OPEN), ("1d",)).history("AAPL", None, None, 2)
    # the bars end on 2026-01-02 08:59 in New York; Alpaca stamps that day 05:00 UTC
    assert [b.timestamp for b in daily] == [datetime(2026, 1, 1, tzinfo=UTC),
                                            datetime(2026, 1, 2, tzinfo=UTC)]


def test_a_quote_comes_from_alpacas_latest_quote_until_the_stream_has_one(
        fake_with_history) -> None:
    fake, _ = fake_with_history
    fake.set_quote("AAPL", bid=Decimal("190.11"), ask=Decimal("190.19"),
                   at=OPEN - timedelta(seconds=2))
    md = connected_market(fake, FakeClock(OPEN), ("1m",))

    quote = md.quote("AAPL")
    assert (quote.bid, quote.ask, quote.last, quote.timestamp) == (
        Decimal("190.11"), Decimal("190.19"), Decimal("190.15"), OPEN - timedelta(seconds=2))
    assert [p for _, p, _, _ in fake.requests] == ["/v2/stocks/quotes/latest"]


def test_alpacas_429_is_rate_limited_with_its_retry_after(fake_with_history) -> None:
    fake, _ = fake_with_history
    fake.fail_next(429, retry_after=3, path="/v2/stocks/bars")
    md = connected_market(fake, FakeClock(OPEN), ("1m",))

    with pytest.raises(RateLimited) as caught:
        md.history("AAPL", None, None, 5)
    assert caught.value.retry_after_seconds == 3
    assert len(bar_requests(fake)) == 1  # alpaca-py did not retry by itself


def test_alpaca_unreachable_or_failing_is_broker_unavailable_without_the_keys(
        fake_with_history) -> None:
    fake, _ = fake_with_history
    fake.fail_next(503, path="/v2/stocks/quotes")
    md = connected_market(fake, FakeClock(OPEN), ("1m",))

    with pytest.raises(BrokerUnavailable) as caught:
        md.quote("AAPL")
    assert caught.value.as_dict() == {
        "code": "PROVIDER_UNAVAILABLE", "message": "Alpaca's market data API answered HTTP 503",
        "details": {"broker": "alpaca"}}
    fake.stop()
    with pytest.raises(BrokerUnavailable) as caught:
        md.history("AAPL", None, None, 1)
    assert caught.value.message == "Alpaca's market data API could not be reached"
    assert SECRET not in repr(caught.value)
