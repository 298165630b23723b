"""One session's Binance market data: candles from kline streams, quotes from the book ticker,
quotes and history from the REST API, staleness, and the klines a stream outage missed.

Binance streams klines of most timeframes itself (KLINE_INTERVALS): those candles are Binance's
own closed klines ("x": true). The protocol's other timeframes (2m, 10m) are built from the 1m
klines with the core's candle Aggregator; a bucket that began before the first 1m kline this
session saw is never streamed (it would be partial). Binance sends a kline for every interval,
trades or not, so no bucket waits for the clock. After the market stream comes back from a
drop, the klines it missed are fetched by REST before its new ones are taken, so that every
candle is streamed once and in order.

Prices are Binance's strings made Decimals (never through float); times are tz-aware UTC.
Symbols are Binance's ("BTCUSDT"); "BTC/USDT", "btc-usdt" are accepted for it. Crypto trades
around the clock, so staleness always applies.

REST calls spend request weight from the per-IP SharedBudget first (klines 2, bookTicker 2) and
tell it what X-MBX-USED-WEIGHT-1M says; a 429 blocks the IP for its Retry-After, a 418 (a ban)
bans it. The stream feeds `on_kline`/`on_book_ticker` on its own thread; everything else runs on
the session host's thread; one lock guards the state between them.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Protocol

import requests
from binance.exceptions import BinanceAPIException, BinanceRequestException

from runtimes.core.bars import Bar, BarSeries, datetime_to_epoch, epoch_to_datetime
from runtimes.core.candles import Aggregator, Row
from runtimes.core.connection import BrokerConnection, SharedBudget
from runtimes.core.datasets import resample
from runtimes.core.domain import Quote
from runtimes.core.errors import BrokerUnavailable, RateLimited, SymbolNotFound
from runtimes.core.events import CandleEvent, Event, QuoteEvent
from runtimes.core.staleness import StalenessTracker
from runtimes.core.timeframes import bucket_start, timeframe_seconds
from runtimes.providers.binance.sdk import rest_client_class
from runtimes.providers.broker_common import retry_after_seconds

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

MINUTE: Final = 60
# Binance's kline intervals that are protocol timeframes (Binance also has 3m 6h 8h 3d 1M).
KLINE_INTERVALS: Final = ("1m", "5m", "15m", "30m", "1h", "2h", "4h", "12h", "1d", "1w")
KLINES_PER_CALL: Final = 1_000  # Binance's maximum `limit` of GET klines
MAX_HISTORY_CALLS: Final = 20  # history() asks for at most this many pages (the newest bars)
DEFAULT_HISTORY_BARS: Final = 1_000  # history() without start nor limit
WEIGHT_KLINES: Final = 2
WEIGHT_BOOK_TICKER: Final = 2
WEIGHT_LIMIT_1M: Final = 6_000  # Binance's REQUEST_WEIGHT per IP and minute
REST_QUOTE_TTL_SECONDS: Final = 5.0  # a quote fetched by REST serves this long (no stream quote)
REST_TIMEOUT_SECONDS: Final = 10.0
UNKNOWN_SYMBOL: Final = -1121


def normalise_symbol(symbol: str) -> str:
    """Binance's spelling of a spot symbol: upper case, no separator ("BTC/USDT" -> "BTCUSDT")."""
    return "".join(c for c in symbol.strip().upper() if c not in "/-_ ")


def decimal_of(value: Any) -> Decimal:
    """The exact Decimal of one of Binance's number strings (a float is refused: it would have
    lost digits already)."""
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError(f"{type(value).__name__} is not a Binance number string")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return number


def stream_intervals(timeframes: Iterable[str]) -> tuple[str, ...]:
    """The kline intervals to subscribe for `timeframes`: each one Binance has, and 1m for the
    ones built from it."""
    wanted = {tf if tf in KLINE_INTERVALS else "1m" for tf in timeframes}
    return tuple(i for i in KLINE_INTERVALS if i in wanted)


def stream_names(symbols: Iterable[str], timeframes: Iterable[str]) -> list[str]:
    """The market streams of a session: its klines and book tickers (lower-case symbols)."""
    intervals = stream_intervals(timeframes)
    names: list[str] = []
    for symbol in symbols:
        low = normalise_symbol(symbol).lower()
        names.extend(f"{low}@kline_{interval}" for interval in intervals)
        names.append(f"{low}@bookTicker")
    return names


def kline_bar(symbol: str, interval: str, open_ms: Any, o: Any, h: Any, low: Any, c: Any,
              v: Any) -> Bar:
    if not isinstance(open_ms, int) or isinstance(open_ms, bool):
        raise ValueError("a kline's open time is not an integer")
    return Bar(symbol, interval, epoch_to_datetime(open_ms // 1000), decimal_of(o),
               decimal_of(h), decimal_of(low), decimal_of(c), decimal_of(v))


def _row_of(bar: Bar) -> Row[Decimal]:
    return (datetime_to_epoch(bar.timestamp), bar.open, bar.high, bar.low, bar.close,
            bar.volume)


def _bar_of_row(symbol: str, timeframe: str, row: Row[Decimal]) -> Bar:
    epoch, o, h, low, c, v = row
    return Bar(symbol, timeframe, epoch_to_datetime(epoch), o, h, low, c, v)


class MarketRest(Protocol):
    """What is used of python-binance's sync Client (GET klines and ticker/bookTicker); its
    `response` is the last requests.Response (for the weight header)."""

    response: Any

    def get_klines(self, **params: Any) -> Any: ...

    def get_orderbook_ticker(self, **params: Any) -> Any: ...


def rest_client(connection: BrokerConnection) -> MarketRest:
    """python-binance's sync Client at the connection's REST URL: no ping at construction, a
    timeout on every request. (BaseClient makes an asyncio loop for the calling thread if it has
    none: harmless for the sync calls made here.)"""
    client: MarketRest = rest_client_class(connection)(
        connection.key_id, connection.secret, ping=False,
        requests_params={"timeout": REST_TIMEOUT_SECONDS})
    return client


@dataclass(slots=True)
class _SymbolState:
    """What the stream told of one symbol."""

    aggregators: dict[str, Aggregator[Decimal]]
    last_open: dict[str, int] = field(default_factory=dict)  # interval -> newest closed kline
    partial: dict[str, int] = field(default_factory=dict)  # tf -> the bucket begun unseen
    last_price: Decimal | None = None  # the newest kline's close (the last trade)
    quote: Quote | None = None
    quote_fetched_at: datetime | None = None  # set when `quote` came from REST


class BinanceMarketData:
    """Candles, quotes, history and staleness of one session's symbols (see the module doc)."""

    def __init__(self, connection: BrokerConnection, *, symbols: tuple[str, ...],
                 timeframes: tuple[str, ...], broker: str, shared: SharedBudget,
                 clock: Clock, wake: Callable[[], None], staleness_seconds: float = 120.0,
                 client: MarketRest | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        if not timeframes:
            raise ValueError("a session needs at least one timeframe")
        for tf in timeframes:
            if timeframe_seconds(tf) < MINUTE:
                raise ValueError(f"timeframe {tf} is shorter than Binance's 1m klines")
        self.connection = connection
        self.symbols = tuple(dict.fromkeys(normalise_symbol(s) for s in symbols))
        self.timeframes = timeframes
        self.timeframe = timeframes[0]  # the session's own
        self.intervals = stream_intervals(timeframes)
        self.broker = broker
        self.shared = shared
        self.clock = clock
        self._wall = wall  # epoch seconds, for the weight window's reset (the budget's clock)
        self._wake = wake
        self._client = client
        self._lock = threading.Lock()
        built = [tf for tf in timeframes if tf not in KLINE_INTERVALS]
        self._state = {s: _SymbolState({tf: Aggregator[Decimal](tf) for tf in built})
                       for s in self.symbols}
        self._events: list[Event] = []
        self._quotes: dict[str, QuoteEvent] = {}  # undrained: the newest per symbol supersedes
        self._backfill = False  # the stream came back: the klines it missed are to be fetched
        self._held: list[Bar] = []  # the stream's klines that wait for the backfill, in order
        self._staleness = StalenessTracker(self.symbols, seconds=staleness_seconds,
                                           broker=broker, now=clock(), market_open=True)

    # -- fed by the market stream (its thread) ---------------------------------------------------

    def on_kline(self, raw: dict[str, Any]) -> None:
        """One kline event ({"e": "kline", "s", "k": {"t", "i", "o", "h", "l", "c", "v", "x"}}):
        its close is the last trade; a closed one ("x": true) is a candle."""
        try:
            k = raw["k"]
            symbol = normalise_symbol(str(raw.get("s") or k["s"]))
            bar = kline_bar(symbol, str(k["i"]), k["t"], k["o"], k["h"], k["l"], k["c"], k["v"])
            closed = k["x"] is True
        except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
            log.warning("binance: a malformed kline of the market stream was dropped (%s)",
                        type(exc).__name__)
            return
        with self._lock:
            state = self._state.get(symbol)
            if state is None:
                return
            state.last_price = bar.close
            self._seen(symbol)
            if closed and self._backfill:
                self._held.append(bar)
            elif closed:
                self._take(bar)
        self._wake()

    def on_book_ticker(self, raw: dict[str, Any]) -> None:
        """One book ticker ({"u", "s", "b", "B", "a", "A"}: no time of its own, so the clock's)."""
        try:
            symbol = normalise_symbol(str(raw["s"]))
            bid, ask = decimal_of(raw["b"]), decimal_of(raw["a"])
        except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
            log.warning("binance: a malformed book ticker was dropped (%s)", type(exc).__name__)
            return
        now = self.clock()
        with self._lock:
            state = self._state.get(symbol)
            if state is None:
                return
            quote = self._make_quote(symbol, state, bid, ask, now)
            state.quote, state.quote_fetched_at = quote, None
            self._quotes[symbol] = QuoteEvent(quote, now)
            self._seen(symbol)
        self._wake()

    def on_stream_dropped(self) -> None:
        """The market stream dropped: nothing to do until it is back (Binance's klines close
        their buckets, not the clock)."""

    def on_stream_reconnected(self) -> None:
        """The market stream is back after a drop: the next `advance` fetches the klines it
        missed by REST, and the stream's closed klines wait for them meanwhile."""
        with self._lock:
            self._backfill = True
        self._wake()

    def _take(self, bar: Bar) -> None:
        """One closed kline: a candle of its interval when the session has it, and a 1m one
        into the buckets built from 1m. Klines seen already (sent again) are ignored."""
        state = self._state[bar.symbol]
        interval, epoch = bar.timeframe, datetime_to_epoch(bar.timestamp)
        last = state.last_open.get(interval)
        if last is not None and epoch <= last:
            return
        first = last is None
        state.last_open[interval] = epoch
        stamp = epoch_to_datetime(epoch + timeframe_seconds(interval))
        if interval in self.timeframes:
            self._events.append(CandleEvent(bar, stamp))
        if interval != "1m":
            return
        row = _row_of(bar)
        for tf, aggregator in state.aggregators.items():
            if first and bucket_start(epoch, tf) != epoch:
                state.partial[tf] = bucket_start(epoch, tf)
            for done in aggregator.add(row):
                if state.partial.get(tf) != done[0]:
                    self._events.append(CandleEvent(_bar_of_row(bar.symbol, tf, done), stamp))

    def _seen(self, symbol: str) -> None:
        fresh = self._staleness.seen(symbol, self.clock())
        if fresh is not None:
            self._events.append(fresh)

    def _make_quote(self, symbol: str, state: _SymbolState, bid: Decimal, ask: Decimal,
                    moment: datetime) -> Quote:
        return Quote(symbol=symbol, provider=self.connection.platform, bid=bid, ask=ask,
                     last=_last_of(state.last_price, bid, ask), timestamp=moment)

    # -- used by the provider (the host's thread) ----------------------------------------------

    def last_price(self, symbol: str) -> Decimal | None:
        """The newest kline's close, else the newest quote's last, else None (no REST call)."""
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
        """Seconds to the next staleness check (0 while a backfill waits)."""
        now = self.clock()
        with self._lock:
            if self._backfill:
                return 0.0
            return self._staleness.next_due(now)

    def advance(self, now: datetime) -> None:
        """Take the klines a stream outage missed, and the symbols that have gone stale."""
        with self._lock:
            backfill = self._backfill
        if backfill:
            self._take_missed(now)
        with self._lock:
            stale = self._staleness.check(now)
            if stale is not None:
                self._events.append(stale)

    def _take_missed(self, now: datetime) -> None:
        """After a reconnect: the closed klines since each symbol's last one of each interval,
        by REST, then the ones the stream sent meanwhile. When Binance cannot be asked (weight,
        ban, outage), the gap stays: the candles go on from the stream."""
        with self._lock:
            since = [(s, i, st.last_open[i]) for s, st in self._state.items()
                     for i in self.intervals if i in st.last_open]
        missed: list[Bar] = []
        try:
            for symbol, interval, last in since:
                missed.extend(self._fetch_missed(symbol, interval, last, now))
        except (RateLimited, BrokerUnavailable, SymbolNotFound) as exc:
            log.warning("binance: the klines a market stream outage missed were not all fetched "
                        "(%s)", exc.code)
        with self._lock:
            held, self._held, self._backfill = self._held, [], False
            for bar in sorted(missed + held, key=_take_order):
                self._take(bar)

    def _fetch_missed(self, symbol: str, interval: str, last: int, now: datetime) -> list[Bar]:
        length = timeframe_seconds(interval)
        first, end = last + length, bucket_start(_epoch(now), interval)  # end: still forming
        if first >= end:
            return []
        return self._klines(symbol, symbol, interval, first, end)

    def quote(self, symbol: str) -> Quote:
        """The newest quote of `symbol`: the stream's, else Binance's book ticker (REST, served
        again for REST_QUOTE_TTL_SECONDS). SymbolNotFound for a symbol not in the session or
        unknown to Binance; RateLimited when the weight budget refuses or Binance answered 429;
        BrokerUnavailable on a ban (418) or any other failure."""
        name = self._known(symbol)
        now = self.clock()
        with self._lock:
            state = self._state[name]
            cached, fetched_at = state.quote, state.quote_fetched_at
        if cached is not None and (fetched_at is None or (now - fetched_at).total_seconds()
                                   < REST_QUOTE_TTL_SECONDS):
            return cached
        raw = self._call(lambda c: c.get_orderbook_ticker(symbol=name), WEIGHT_BOOK_TICKER,
                         symbol)
        try:
            bid, ask = decimal_of(raw["bidPrice"]), decimal_of(raw["askPrice"])
        except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
            raise BrokerUnavailable("Binance answered a malformed book ticker",
                                    broker=self.broker) from exc
        with self._lock:
            quote = self._make_quote(name, state, bid, ask, now)
            if state.quote is None or state.quote_fetched_at is not None:
                state.quote, state.quote_fetched_at = quote, now
        return quote

    def history(self, symbol: str, start: datetime | None = None, end: datetime | None = None,
                limit: int | None = None) -> list[Bar]:
        """Complete bars of `symbol` in the session's timeframe whose open time lies within
        [start, end], oldest first, the newest `limit` of them (DEFAULT_HISTORY_BARS when
        neither start nor limit is given; never more than MAX_HISTORY_CALLS pages of klines);
        never a bar still forming nor one in the future. Timeframes Binance has no klines for
        are built from the largest interval that divides them. Raises as `quote`."""
        name = self._known(symbol)
        if limit is not None and limit <= 0:
            return []
        if start is None and limit is None:
            limit = DEFAULT_HISTORY_BARS
        tf = self.timeframe
        length, source = timeframe_seconds(tf), _source_of(tf)
        hi = bucket_start(_epoch(self.clock()), tf)  # the bucket at `now` is still forming
        if end is not None:
            hi = min(hi, bucket_start(_epoch(end), tf) + length)
        lo = hi - limit * length if limit is not None else hi
        if start is not None:
            first = bucket_start(_epoch(start), tf)
            begin = first if first == _epoch(start) else first + length
            lo = begin if limit is None else max(lo, begin)
        most = MAX_HISTORY_CALLS * KLINES_PER_CALL * timeframe_seconds(source)
        lo = max(lo, hi - most // length * length)
        if lo >= hi:
            return []
        bars = self._klines(name, symbol, source, lo, hi)
        if source != tf and bars:
            bars = list(resample(BarSeries.from_bars(bars), tf))
        bars = [b for b in bars if lo <= _epoch(b.timestamp) < hi]
        return bars if limit is None else bars[-limit:]

    # -- internals ---------------------------------------------------------------------------

    def _klines(self, name: str, symbol: str, interval: str, lo: int, hi: int) -> list[Bar]:
        """Binance's klines of `interval` opening in [lo, hi) (epoch seconds), oldest first,
        in pages of KLINES_PER_CALL."""
        length = timeframe_seconds(interval)
        bars: list[Bar] = []
        cursor = lo
        while cursor < hi:
            params = {"symbol": name, "interval": interval, "startTime": cursor * 1000,
                      "endTime": hi * 1000 - 1, "limit": KLINES_PER_CALL}
            rows = self._call(lambda c, p=params: c.get_klines(**p),  # type: ignore[misc]
                              WEIGHT_KLINES, symbol)
            page = self._parse_klines(name, interval, rows)
            page = [b for b in page if cursor <= _epoch(b.timestamp) < hi]
            bars.extend(page)
            if len(rows) < KLINES_PER_CALL or not page:
                break
            cursor = _epoch(page[-1].timestamp) + length
        return bars

    def _parse_klines(self, name: str, interval: str, rows: Any) -> list[Bar]:
        if not isinstance(rows, list):
            raise BrokerUnavailable("Binance answered malformed klines", broker=self.broker)
        try:
            return [kline_bar(name, interval, r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]
        except (IndexError, ValueError, TypeError, InvalidOperation) as exc:
            raise BrokerUnavailable("Binance answered malformed klines",
                                    broker=self.broker) from exc

    def _known(self, symbol: str) -> str:
        name = normalise_symbol(symbol)
        if name not in self._state:
            raise SymbolNotFound(symbol)
        return name

    def _call(self, request: Callable[[MarketRest], Any], weight: int, symbol: str) -> Any:
        """One REST request, paid from the IP's weight budget first."""
        wait = self.shared.acquire(weight)
        if wait > 0:
            raise RateLimited("Binance's request weight of this IP is spent for now",
                              retry_after_seconds=max(1, math.ceil(wait)))
        if self._client is None:
            self._client = rest_client(self.connection)
        client = self._client
        try:
            answer = request(client)
        except BinanceAPIException as exc:
            self._observe(exc.response)
            raise self._error_of(exc, symbol) from None
        except (requests.RequestException, BinanceRequestException):
            raise BrokerUnavailable("Binance's market data API could not be reached",
                                    broker=self.broker) from None
        self._observe(client.response)
        return answer

    def _observe(self, response: Any) -> None:
        """X-MBX-USED-WEIGHT-1M: the weight this IP spent in the current minute, by Binance's
        count (it sees other processes and tools on the IP)."""
        headers = getattr(response, "headers", None)
        used = None if headers is None else headers.get("X-MBX-USED-WEIGHT-1M")
        try:
            spent = int(used) if used is not None else None
        except ValueError:
            spent = None
        if spent is None:
            return
        minute_end = (math.floor(self._wall() / MINUTE) + 1) * MINUTE
        self.shared.observe(limit=WEIGHT_LIMIT_1M, remaining=max(0, WEIGHT_LIMIT_1M - spent),
                            reset_at=float(minute_end))

    def _error_of(self, exc: BinanceAPIException, symbol: str) -> Exception:
        status = exc.status_code
        if status == 429:
            retry = retry_after_seconds(exc.response)
            self.shared.blocked_for(retry)
            return RateLimited("Binance's request weight limit of this IP was reached",
                               retry_after_seconds=retry)
        if status == 418:
            retry = retry_after_seconds(exc.response)
            reason = "Binance banned this IP for exceeding its request limits"
            self.shared.ban(retry, reason)
            return BrokerUnavailable(f"{reason} (for {retry} s)", broker=self.broker,
                                     retry_after_seconds=retry)
        if exc.code == UNKNOWN_SYMBOL:
            return SymbolNotFound(symbol)
        if status in (401, 403):
            return BrokerUnavailable("Binance refused this connection's keys for market data",
                                     broker=self.broker)
        return BrokerUnavailable(f"Binance's market data API answered HTTP {status} "
                                 f"(code {exc.code})", broker=self.broker)


def _take_order(bar: Bar) -> tuple[datetime, int]:
    """Backfilled and held klines in time order, shorter intervals first at one time."""
    length = timeframe_seconds(bar.timeframe)
    return (bar.timestamp + timedelta(seconds=length), length)


def _last_of(close: Decimal | None, bid: Decimal, ask: Decimal) -> Decimal:
    """The last price of a quote: the last trade (the newest kline's close), else the mid."""
    if close is not None:
        return close
    if bid > 0 and ask > 0:
        return (bid + ask) / 2
    return max(bid, ask)



def _source_of(timeframe: str) -> str:
    """The largest kline interval whose buckets tile `timeframe`'s."""
    length = timeframe_seconds(timeframe)
    fitting = [i for i in KLINE_INTERVALS if length % timeframe_seconds(i) == 0]
    return max(fitting, key=timeframe_seconds)


def _epoch(moment: datetime) -> int:
    return math.floor(moment.timestamp())
