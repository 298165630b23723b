"""One session's Alpaca market data: candles and quotes from the stock data stream, quotes and
history from the historical data API, and staleness.

The data stream carries 1m bars only: every timeframe of the session is built from them (the
core's candle Aggregator, as the `mock` market does), and a bar is streamed once its bucket is
complete: when the 1m bar that ends it arrives, when a 1m bar of a later bucket does, or, as
IEX has no bar for a minute without trades, BAR_GRACE_SECONDS after its end. A bucket that began
before the first bar this session saw is never streamed (it would be partial). After the stream
reconnects, the minutes it missed are fetched by REST before its new bars are taken.

Prices come from msgpack or JSON floats and become Decimals through their shortest text (str),
never through binary arithmetic; timestamps are tz-aware UTC. Symbols are Alpaca's ("BRK.B");
"BRK-B" and "BRK/B" are accepted for it. The stream feeds `on_bar`/`on_quote` on its own thread;
everything else runs on the session host's thread; one lock guards the state between them.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Protocol

import requests
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from runtimes.core.bars import Bar, BarSeries, datetime_to_epoch, epoch_to_datetime
from runtimes.core.candles import Aggregator, Row
from runtimes.core.connection import BrokerConnection, RateBudget
from runtimes.core.datasets import resample
from runtimes.core.domain import Quote
from runtimes.core.errors import BrokerUnavailable, RateLimited, SymbolNotFound
from runtimes.core.events import CandleEvent, Event, QuoteEvent
from runtimes.core.staleness import StalenessTracker
from runtimes.core.timeframes import DAY, bucket_start, timeframe_seconds
from runtimes.providers.broker_common import retry_after_seconds

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

MINUTE: Final = 60
BAR_GRACE_SECONDS: Final = 15  # Alpaca sends a minute's bar within seconds of its end
DEFAULT_HISTORY_BARS: Final = 1_000  # history() without start nor limit
REST_QUOTE_TTL_SECONDS: Final = 5.0  # a quote fetched by REST serves this long (no stream quote)
REST_TIMEOUT_SECONDS: Final = 10.0  # alpaca-py's requests have no timeout of their own

# The timeframes Alpaca serves itself; the others are built from the largest one that divides them.
NATIVE_TIMEFRAMES: Final[dict[str, TimeFrame]] = {
    "1m": TimeFrame(1, TimeFrameUnit.Minute),
    "5m": TimeFrame(5, TimeFrameUnit.Minute),
    "15m": TimeFrame(15, TimeFrameUnit.Minute),
    "1h": TimeFrame(1, TimeFrameUnit.Hour),
    "1d": TimeFrame(1, TimeFrameUnit.Day),
}


def normalise_symbol(symbol: str) -> str:
    """Alpaca's spelling of a US stock symbol: upper case, share classes after a dot."""
    return symbol.strip().upper().replace("-", ".").replace("/", ".")


def decimal_of(value: Any) -> Decimal:
    """The exact Decimal of a number from msgpack or JSON: a float through its shortest text."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int | float | str):
        number = Decimal(str(value))
        if not number.is_finite():
            raise ValueError(f"{value!r} is not a finite number")
        return number
    raise ValueError(f"{type(value).__name__} is not a number")


def utc_of(value: Any) -> datetime:
    """Tz-aware UTC datetime of a msgpack Timestamp, a datetime, or an RFC 3339 string (Alpaca
    sends nanoseconds: the digits past microseconds are dropped)."""
    if hasattr(value, "to_datetime"):
        value = value.to_datetime()
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, str):
        return _parse_rfc3339(value)
    raise ValueError(f"{type(value).__name__} is not a timestamp")


def _parse_rfc3339(text: str) -> datetime:
    text = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in text:
        head, _, tail = text.partition(".")
        digits = len(tail) - len(tail.lstrip("0123456789"))
        text = f"{head}.{tail[:min(digits, 6)]:0<6}{tail[digits:]}"
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def bar_of(raw: dict[str, Any], symbol: str, timeframe: str) -> Bar:
    """A Bar from Alpaca's bar JSON or msgpack map ("t", "o", "h", "l", "c", "v")."""
    return Bar(symbol, timeframe, utc_of(raw["t"]), decimal_of(raw["o"]), decimal_of(raw["h"]),
               decimal_of(raw["l"]), decimal_of(raw["c"]), decimal_of(raw["v"]))


def _row_of(bar: Bar) -> Row[Decimal]:
    return (datetime_to_epoch(bar.timestamp), bar.open, bar.high, bar.low, bar.close,
            bar.volume)


def _bar_of_row(symbol: str, timeframe: str, row: Row[Decimal]) -> Bar:
    epoch, o, h, low, c, v = row
    return Bar(symbol, timeframe, epoch_to_datetime(epoch), o, h, low, c, v)


class HistoricalData(Protocol):
    """What is used of alpaca-py's StockHistoricalDataClient (raw_data=True)."""

    def get_stock_bars(self, request_params: StockBarsRequest) -> Any: ...

    def get_stock_latest_quote(self, request_params: StockLatestQuoteRequest) -> Any: ...


def historical_client(connection: BrokerConnection) -> StockHistoricalDataClient:
    """alpaca-py's data client at the connection's data URL: raw dicts, no retry of its own (a
    429 comes straight back to be counted in the shared budget), a timeout on every request."""
    client = StockHistoricalDataClient(connection.key_id, connection.secret, raw_data=True,
                                       url_override=connection.urls["data"])
    client._retry = 0
    session = client._session
    session.request = functools.partial(  # type: ignore[method-assign]
        session.request, timeout=REST_TIMEOUT_SECONDS)
    return client


@dataclass(slots=True)
class _SymbolState:
    """What the stream told of one symbol."""

    aggregators: dict[str, Aggregator[Decimal]]
    last_minute: int | None = None  # epoch of the newest 1m bar taken
    partial: dict[str, int] = field(default_factory=dict)  # tf -> the bucket begun unseen
    done_until: dict[str, int] = field(default_factory=dict)  # tf -> end of the last bar streamed
    last_price: Decimal | None = None  # the newest bar's close
    quote: Quote | None = None
    quote_fetched_at: datetime | None = None  # set when `quote` came from REST


class AlpacaMarketData:
    """Candles, quotes, history and staleness of one session's symbols (see the module doc)."""

    def __init__(self, connection: BrokerConnection, *, symbols: tuple[str, ...],
                 timeframes: tuple[str, ...], broker: str, budget: RateBudget,
                 clock: Clock, wake: Callable[[], None],
                 staleness_seconds: float = 120.0,
                 client: HistoricalData | None = None) -> None:
        if not timeframes:
            raise ValueError("a session needs at least one timeframe")
        for tf in timeframes:
            if timeframe_seconds(tf) < MINUTE:
                raise ValueError(f"timeframe {tf} is shorter than Alpaca's 1m bars")
        self.connection = connection
        self.symbols = tuple(dict.fromkeys(normalise_symbol(s) for s in symbols))
        self.timeframes = timeframes
        self.timeframe = timeframes[0]  # the session's own
        self.broker = broker
        self.budget = budget
        self.clock = clock
        self.feed = _feed_of(connection)
        self._wake = wake
        self._client = client
        self._lock = threading.Lock()
        self._state = {s: _SymbolState({tf: Aggregator[Decimal](tf) for tf in timeframes
                                           if tf != "1m"})
                       for s in self.symbols}
        self._events: list[Event] = []
        self._quotes: dict[str, QuoteEvent] = {}  # undrained: the newest per symbol supersedes
        self._backfill = False  # the stream came back: the minutes it missed are to be fetched
        self._down = False  # the stream dropped: no bucket is closed by the clock meanwhile
        self._held: list[Bar] = []  # the stream's bars that wait for the backfill, in order
        self._staleness = StalenessTracker(self.symbols, seconds=staleness_seconds,
                                           broker=broker, now=clock())

    # -- fed by the data stream (its thread) ---------------------------------------------------

    def on_bar(self, raw: dict[str, Any]) -> None:
        """One 1m bar of the stream ({"T": "b", "S", "o", "h", "l", "c", "v", "t", ...})."""
        try:
            symbol = normalise_symbol(str(raw["S"]))
            bar = bar_of(raw, symbol, "1m")
        except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
            log.warning("alpaca: a malformed bar of the data stream was dropped (%s)",
                        type(exc).__name__)
            return
        with self._lock:
            if self._backfill:
                self._held.append(bar)
                queued = True
            else:
                queued = self._take_bar(bar)
        if queued:
            self._wake()

    def on_stream_dropped(self) -> None:
        """The data stream dropped: its minutes will be fetched once it is back, so no bucket
        is streamed for its time being up meanwhile (it would lack them)."""
        with self._lock:
            self._down = True

    def on_stream_reconnected(self) -> None:
        """The data stream is back after a drop. Alpaca does not send what it missed: the next
        `advance` fetches those minutes by REST, and the stream's bars wait for them meanwhile,
        so that every candle is built and streamed in order."""
        with self._lock:
            self._down, self._backfill = False, True
        self._wake()

    def on_quote(self, raw: dict[str, Any]) -> None:
        """One quote of the stream ({"T": "q", "S", "bp", "ap", "t", ...})."""
        try:
            symbol = normalise_symbol(str(raw["S"]))
            bid, ask, moment = decimal_of(raw["bp"]), decimal_of(raw["ap"]), utc_of(raw["t"])
        except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
            log.warning("alpaca: a malformed quote of the data stream was dropped (%s)",
                        type(exc).__name__)
            return
        with self._lock:
            state = self._state.get(symbol)
            if state is None:
                return
            quote = self._make_quote(symbol, state, bid, ask, moment)
            state.quote, state.quote_fetched_at = quote, None
            self._quotes[symbol] = QuoteEvent(quote, moment)
            self._seen(symbol)
        self._wake()

    def _take_bar(self, bar: Bar) -> bool:
        state = self._state.get(bar.symbol)
        epoch = datetime_to_epoch(bar.timestamp)
        if state is None or (state.last_minute is not None and epoch <= state.last_minute):
            return False  # not ours, or a bar seen already (sent again after a reconnect)
        first = state.last_minute is None
        state.last_minute, state.last_price = epoch, bar.close
        stamp = bar.timestamp + timedelta(seconds=MINUTE)
        if "1m" in self.timeframes:
            self._events.append(CandleEvent(bar, stamp))
        row = _row_of(bar)
        for tf, aggregator in state.aggregators.items():
            if epoch < state.done_until.get(tf, 0):
                continue  # late: its bucket was streamed already when its time was up
            if first and bucket_start(epoch, tf) != epoch:
                state.partial[tf] = bucket_start(epoch, tf)
            self._stream(bar.symbol, tf, state, aggregator.add(row), stamp)
        self._seen(bar.symbol)
        return True

    def _stream(self, symbol: str, tf: str, state: _SymbolState, rows: Iterable[Row[Decimal]],
                stamp: datetime) -> None:
        length = timeframe_seconds(tf)
        for row in rows:
            state.done_until[tf] = row[0] + length
            if state.partial.get(tf) == row[0]:
                continue
            self._events.append(CandleEvent(_bar_of_row(symbol, tf, row), stamp))

    def _seen(self, symbol: str) -> None:
        fresh = self._staleness.seen(symbol, self.clock())
        if fresh is not None:
            self._events.append(fresh)

    def _make_quote(self, symbol: str, state: _SymbolState, bid: Decimal, ask: Decimal,
                    moment: datetime) -> Quote:
        return Quote(symbol=symbol, provider=self.connection.platform, bid=bid, ask=ask,
                     last=_last_of(state.last_price, bid, ask), timestamp=moment)

    # -- used by the provider (the host's thread) ----------------------------------------------

    def set_market_open(self, is_open: bool) -> None:
        """The provider's market clock: while closed, no symbol becomes stale."""
        with self._lock:
            self._staleness.set_market_open(is_open, self.clock())

    def last_price(self, symbol: str) -> Decimal | None:
        """The newest bar's close, else the newest quote's mid, else None (no REST call)."""
        with self._lock:
            state = self._state.get(normalise_symbol(symbol))
            if state is None:
                return None
            if state.last_price is not None:
                return state.last_price
            return None if state.quote is None else state.quote.last

    def drain_events(self) -> list[Event]:
        """Candles, quotes and staleness events since the last drain, in time order."""
        with self._lock:
            events = self._events + list(self._quotes.values())
            self._events, self._quotes = [], {}
        events.sort(key=lambda e: e.timestamp)
        return events

    def next_due(self) -> float | None:
        """Seconds to the next staleness check or the next bucket whose time is up."""
        now = self.clock()
        with self._lock:
            if self._backfill:
                return 0.0
            dues = [self._staleness.next_due(now)]
            for state in [] if self._down else self._state.values():
                for tf, aggregator in state.aggregators.items():
                    if aggregator.forming is not None:
                        end = aggregator.forming.start + timeframe_seconds(tf) + BAR_GRACE_SECONDS
                        dues.append(max(0.0, end - now.timestamp()))
        known = [d for d in dues if d is not None]
        return min(known) if known else None

    def advance(self, now: datetime) -> None:
        """Take the minutes a reconnect missed, stream the buckets whose time is up (their last
        minutes had no trades), and the symbols that have gone stale."""
        with self._lock:
            backfill = self._backfill
        if backfill:
            self._take_missed_minutes(now)
        with self._lock:
            for symbol, state in [] if self._down else self._state.items():
                for tf, aggregator in state.aggregators.items():
                    forming = aggregator.forming
                    length = timeframe_seconds(tf)
                    if forming is not None and forming.start + length + BAR_GRACE_SECONDS <= \
                            now.timestamp():
                        aggregator.forming = None
                        stamp = epoch_to_datetime(forming.start + length)
                        self._stream(symbol, tf, state, [forming.row()], stamp)
            stale = self._staleness.check(now)
            if stale is not None:
                self._events.append(stale)

    def _take_missed_minutes(self, now: datetime) -> None:
        """After a reconnect: the 1m bars since each symbol's last one, by REST (one request for
        every symbol), then the bars the stream sent meanwhile. When Alpaca cannot be asked
        (budget, outage), the gap stays: the candles go on from the stream."""
        with self._lock:
            since = {s: st.last_minute for s, st in self._state.items()
                     if st.last_minute is not None}
        missed: list[Bar] = []
        try:
            missed = self._fetch_minutes(since, now)
        except (RateLimited, BrokerUnavailable, SymbolNotFound) as exc:
            log.warning("alpaca: the minutes a data stream outage missed were not fetched (%s)",
                        exc.code)
        with self._lock:
            held, self._held, self._backfill = self._held, [], False
            for bar in sorted(missed + held, key=lambda b: b.timestamp):
                self._take_bar(bar)

    def _fetch_minutes(self, since: dict[str, int], now: datetime) -> list[Bar]:
        first, last = min(since.values(), default=0) + MINUTE, bucket_start(_epoch(now), "1m") - 1
        if not since or first > last:
            return []
        names = sorted(since)
        request = StockBarsRequest(symbol_or_symbols=names, timeframe=NATIVE_TIMEFRAMES["1m"],
                                   start=epoch_to_datetime(first), end=epoch_to_datetime(last),
                                   feed=self.feed)
        answer = self._call(lambda c: c.get_stock_bars(request), ",".join(names))
        bars: list[Bar] = []
        for name in names:
            rows = answer.get(name, []) if isinstance(answer, dict) else []
            try:
                bars.extend(b for b in (bar_of(r, name, "1m") for r in rows)
                            if datetime_to_epoch(b.timestamp) > since[name])
            except (KeyError, ValueError, TypeError, InvalidOperation):
                log.warning("alpaca: malformed bars of %s were dropped from a backfill", name)
        return bars

    def quote(self, symbol: str) -> Quote:
        """The newest quote of `symbol`: the stream's, else Alpaca's latest quote (REST, served
        again for REST_QUOTE_TTL_SECONDS). SymbolNotFound for a symbol not in the session or
        unknown to Alpaca; RateLimited when the connection's budget refuses; BrokerUnavailable."""
        name = self._known(symbol)
        now = self.clock()
        with self._lock:
            state = self._state[name]
            cached, fetched_at = state.quote, state.quote_fetched_at
        if cached is not None and (fetched_at is None or (now - fetched_at).total_seconds()
                                   < REST_QUOTE_TTL_SECONDS):
            return cached
        request = StockLatestQuoteRequest(symbol_or_symbols=[name], feed=self.feed)
        answer = self._call(lambda c: c.get_stock_latest_quote(request), symbol)
        raw = answer.get(name) if isinstance(answer, dict) else None
        if not isinstance(raw, dict):
            raise SymbolNotFound(symbol)
        try:
            bid, ask, moment = decimal_of(raw["bp"]), decimal_of(raw["ap"]), utc_of(raw["t"])
        except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
            raise BrokerUnavailable("Alpaca answered a malformed quote",
                                    broker=self.broker) from exc
        with self._lock:
            quote = self._make_quote(name, state, bid, ask, moment)
            if state.quote is None or state.quote_fetched_at is not None:
                state.quote, state.quote_fetched_at = quote, now
        return quote

    def history(self, symbol: str, start: datetime | None = None, end: datetime | None = None,
                limit: int | None = None) -> list[Bar]:
        """Complete bars of `symbol` in the session's timeframe whose open time lies within
        [start, end], oldest first, the newest `limit` of them (DEFAULT_HISTORY_BARS when
        neither start nor limit is given); never a bar still forming. Timeframes Alpaca does
        not serve are built from the largest one it does that divides them; daily bars are
        stamped at 00:00 UTC of their date, like every protocol bucket. Raises as `quote`."""
        name = self._known(symbol)
        if limit is not None and limit <= 0:
            return []
        if start is None and limit is None:
            limit = DEFAULT_HISTORY_BARS
        plan = _HistoryPlan.make(self.timeframe, self.clock(), start, end, limit)
        if plan is None:
            return []
        bars = self._fetch_bars(name, symbol, plan)
        return plan.finish(name, bars)

    def _fetch_bars(self, name: str, symbol: str, plan: _HistoryPlan) -> list[Bar]:
        request = StockBarsRequest(
            symbol_or_symbols=[name], timeframe=NATIVE_TIMEFRAMES[plan.source],
            start=epoch_to_datetime(plan.fetch_from), end=epoch_to_datetime(plan.fetch_to),
            limit=plan.fetch_limit, feed=self.feed,
            sort=Sort.DESC if plan.fetch_limit is not None else Sort.ASC)
        answer = self._call(lambda c: c.get_stock_bars(request), symbol)
        rows = answer.get(name, []) if isinstance(answer, dict) else []
        try:
            bars = [bar_of(r, name, plan.source) for r in rows]
        except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
            raise BrokerUnavailable("Alpaca answered malformed bars", broker=self.broker) from exc
        return bars

    # -- internals ---------------------------------------------------------------------------

    def _known(self, symbol: str) -> str:
        name = normalise_symbol(symbol)
        if name not in self._state:
            raise SymbolNotFound(symbol)
        return name

    def _call(self, request: Callable[[HistoricalData], Any], symbol: str) -> Any:
        """One historical-data request, paid from the connection's budget first."""
        wait = self.budget.acquire(1)
        if wait > 0:
            raise RateLimited("the broker's request budget of this connection is spent",
                              retry_after_seconds=max(1, math.ceil(wait)))
        if self._client is None:
            self._client = historical_client(self.connection)
        try:
            return request(self._client)
        except APIError as exc:
            raise self._error_of(exc, symbol) from None
        except requests.RequestException:
            raise BrokerUnavailable("Alpaca's market data API could not be reached",
                                    broker=self.broker) from None

    def _error_of(self, exc: APIError, symbol: str) -> Exception:
        status = exc.status_code
        if status == 429:
            retry = retry_after_seconds(exc.response)
            self.budget.blocked_for(retry)
            return RateLimited("Alpaca's rate limit of this connection was reached",
                               retry_after_seconds=retry)
        if status in (400, 404, 422):
            return SymbolNotFound(symbol)
        if status in (401, 403):
            return BrokerUnavailable("Alpaca refused this connection's keys for market data",
                                     broker=self.broker)
        return BrokerUnavailable(f"Alpaca's market data API answered HTTP {status}",
                                 broker=self.broker)


def _last_of(close: Decimal | None, bid: Decimal, ask: Decimal) -> Decimal:
    """The last price of a quote: the newest bar's close, else the mid (else the one side)."""
    if close is not None:
        return close
    if bid > 0 and ask > 0:
        return (bid + ask) / 2
    return max(bid, ask)



def _feed_of(connection: BrokerConnection) -> DataFeed:
    name = str(connection.options.get("feed", "iex")).lower()
    if name not in ("iex", "sip"):
        raise ValueError(f"feed must be 'iex' or 'sip', not {name!r}")
    return DataFeed(name)


@dataclass(frozen=True, slots=True)
class _HistoryPlan:
    """Which bars to ask Alpaca for, and how to make the session's bars of them."""

    timeframe: str
    source: str  # a NATIVE_TIMEFRAMES key
    lo: int | None  # the first bucket wanted (epoch), None: as far back as `limit` needs
    hi: int  # the end of the last complete bucket wanted (exclusive)
    limit: int | None
    fetch_from: int
    fetch_to: int  # inclusive
    fetch_limit: int | None

    @classmethod
    def make(cls, timeframe: str, now: datetime, start: datetime | None, end: datetime | None,
             limit: int | None) -> _HistoryPlan | None:
        length = timeframe_seconds(timeframe)
        source = _source_of(timeframe)
        factor = length // timeframe_seconds(source)
        hi = bucket_start(_epoch(now), timeframe)  # the bucket at `now` is still forming
        if end is not None:
            hi = min(hi, bucket_start(_epoch(end), timeframe) + length)
        lo = None
        if start is not None:
            first = bucket_start(_epoch(start), timeframe)
            lo = first if first == _epoch(start) else first + length
        if lo is not None and lo >= hi:
            return None
        fetch_limit = None if limit is None else (limit + (1 if factor > 1 else 0)) * factor
        fetch_from = lo if lo is not None else hi - _lookback(fetch_limit or 0, source)
        return cls(timeframe, source, lo, hi, limit, fetch_from, hi - 1, fetch_limit)

    def finish(self, symbol: str, bars: list[Bar]) -> list[Bar]:
        """The session's bars from what Alpaca answered (any order; daily bars re-stamped)."""
        by_time: dict[int, Bar] = {}
        for bar in bars:
            epoch = datetime_to_epoch(bar.timestamp)
            if self.source == "1d":  # Alpaca stamps a day at midnight New York time
                epoch = bucket_start(epoch, "1d")
            if self.fetch_from <= epoch and epoch + timeframe_seconds(self.source) <= self.hi:
                by_time[epoch] = Bar(symbol, self.source, epoch_to_datetime(epoch), bar.open,
                                     bar.high, bar.low, bar.close, bar.volume)
        ordered = [by_time[t] for t in sorted(by_time)]
        if not ordered:
            return []
        result = ordered
        if self.source != self.timeframe:
            result = list(resample(BarSeries.from_bars(ordered), self.timeframe))
            if self.fetch_limit is not None and len(bars) >= self.fetch_limit:
                result = result[1:]  # cut by the count: its first bucket may be partial
        if self.lo is not None:
            result = [b for b in result if _epoch(b.timestamp) >= self.lo]
        return result if self.limit is None else result[-self.limit:]


def _source_of(timeframe: str) -> str:
    """The largest timeframe Alpaca serves whose buckets tile `timeframe`'s."""
    length = timeframe_seconds(timeframe)
    fitting = [tf for tf in NATIVE_TIMEFRAMES if length % timeframe_seconds(tf) == 0]
    return max(fitting, key=timeframe_seconds)


def _lookback(count: int, source: str) -> int:
    """Seconds back from which `count` bars of `source` surely exist, with nights, weekends and
    holidays in between (Alpaca answers the newest `count` with sort=desc, so too far is fine)."""
    length = timeframe_seconds(source)
    spread = 7 if length < DAY else 2
    return max(count, 1) * length * spread + 7 * DAY


def _epoch(moment: datetime) -> int:
    return math.floor(moment.timestamp())
