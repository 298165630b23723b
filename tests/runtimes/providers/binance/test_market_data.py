"""BinanceMarketData on its own: candles from closed klines (native and built from 1m), Decimals
from Binance's strings, quotes from the book ticker and by REST, paged klines history, the
weight spent from the shared per-IP budget, 429 and 418, staleness on a fake clock, and the
klines a stream outage missed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from binance.exceptions import BinanceAPIException

from runtimes.core.bars import Bar
from runtimes.core.connection import BrokerConnection
from runtimes.core.errors import BrokerUnavailable, RateLimited, SymbolNotFound
from runtimes.core.events import CandleEvent, QuoteEvent, StalenessEvent
from runtimes.core.rate_budget import LocalBudget
from runtimes.providers.binance.market_data import (
    BinanceMarketData,
    normalise_symbol,
    stream_names,
)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday
CONNECTION = BrokerConnection("conn-1", "binance-testnet", "KEYID-ABCD", "SECRET-XYZ",
                              urls={"api": "http://127.0.0.1:1/api",
                                    "ws_api": "ws://127.0.0.1:1/ws-api/v3",
                                    "stream": "ws://127.0.0.1:1/"})


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Shared(LocalBudget):
    """The per-IP weight budget in process (LocalBudget's window) with Binance's ban."""

    def __init__(self, limit: int = 6000) -> None:
        super().__init__(limit, clock=lambda: 1_000.0)
        self.spent: list[int] = []
        self.bans: list[tuple[float, str]] = []
        self.observed: list[tuple[int | None, int | None, float | None]] = []

    def acquire(self, cost: int = 1) -> float:
        if self.bans:
            return self.bans[-1][0]
        wait = super().acquire(cost)
        if wait == 0:
            self.spent.append(cost)
        return wait

    def observe(self, *, limit: int | None, remaining: int | None,
                reset_at: float | None) -> None:
        self.observed.append((limit, remaining, reset_at))
        super().observe(limit=limit, remaining=remaining, reset_at=reset_at)

    def ban(self, seconds: float, reason: str) -> None:
        self.bans.append((seconds, reason))

    def banned_until(self) -> float | None:
        return 1_000.0 + self.bans[-1][0] if self.bans else None


def _response(status: int, body: dict[str, Any], headers: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update(headers)
    return response


class Rest:
    """GET klines and ticker/bookTicker as Binance answers them, from bars held here."""

    def __init__(self, bars: list[Bar] = (), used_weight: int = 12) -> None:  # type: ignore[assignment]
        self.bars = list(bars)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail: list[tuple[int, int, dict[str, str]]] = []
        self.used_weight = used_weight
        self.response: requests.Response | None = None
        self.book = {"symbol": "BTCUSDT", "bidPrice": "64000.10000000", "bidQty": "1.5",
                     "askPrice": "64000.30000000", "askQty": "2"}

    def _answer(self, path: str, params: dict[str, Any]) -> None:
        self.calls.append((path, params))
        if self.fail:
            status, code, headers = self.fail.pop(0)
            raise BinanceAPIException(_response(status, {}, headers), status,
                                      json.dumps({"code": code, "msg": "refused"}))
        self.response = _response(200, {}, {"X-MBX-USED-WEIGHT-1M": str(self.used_weight)})

    def get_klines(self, **params: Any) -> Any:
        self._answer("klines", params)
        rows = [b for b in self.bars if b.timeframe == params["interval"]
                and params["startTime"] <= b.timestamp.timestamp() * 1000 <= params["endTime"]]
        length = {"1m": 60, "5m": 300, "1h": 3600}[params["interval"]] * 1000
        return [[int(b.timestamp.timestamp() * 1000), str(b.open), str(b.high), str(b.low),
                 str(b.close), str(b.volume), int(b.timestamp.timestamp() * 1000) + length - 1,
                 "0", 1, "0", "0", "0"] for b in rows[:params["limit"]]]

    def get_orderbook_ticker(self, **params: Any) -> Any:
        self._answer("ticker/bookTicker", params)
        return dict(self.book)


def _market(rest: Rest, clock: Clock, shared: Shared | None = None,
            timeframes: tuple[str, ...] = ("1m",), symbols: tuple[str, ...] = ("BTC/USDT",),
            wakes: list[int] | None = None) -> BinanceMarketData:
    woken = wakes if wakes is not None else []
    return BinanceMarketData(CONNECTION, symbols=symbols, timeframes=timeframes,
                             broker="binance-testnet", shared=shared or Shared(), clock=clock,
                             wake=lambda: woken.append(1), staleness_seconds=120.0,
                             client=rest, wall=lambda: 1_000.5)


def _kline(at: datetime, interval: str = "1m", *, o: str = "100.10", h: str = "101.5",
           low: str = "99.90", c: str = "100.70", v: str = "3.25000000",
           closed: bool = True, symbol: str = "BTCUSDT") -> dict[str, Any]:
    open_ms = int(at.timestamp() * 1000)
    return {"e": "kline", "E": open_ms + 59_999, "s": symbol,
            "k": {"t": open_ms, "T": open_ms + 59_999, "s": symbol, "i": interval,
                  "o": o, "c": c, "h": h, "l": low, "v": v, "x": closed}}


def _bar(at: datetime, close: str, tf: str = "1m") -> Bar:
    c = Decimal(close)
    return Bar("BTCUSDT", tf, at, c, c + 1, c - 1, c, Decimal("2"))


def _candles(market: BinanceMarketData) -> list[CandleEvent]:
    return [e for e in market.drain_events() if isinstance(e, CandleEvent)]


def test_symbols_and_stream_names() -> None:
    assert normalise_symbol(" btc/usdt ") == "BTCUSDT"
    assert normalise_symbol("ETH-USDT") == "ETHUSDT"
    assert stream_names(("BTC/USDT", "ethusdt"), ("2m", "5m", "10m")) == [
        "btcusdt@kline_1m", "btcusdt@kline_5m", "btcusdt@bookTicker",
        "ethusdt@kline_1m", "ethusdt@kline_5m", "ethusdt@bookTicker"]


def test_a_closed_kline_is_a_candle_of_exact_decimals_in_utc() -> None:
    clock = Clock(T0 + timedelta(minutes=1, seconds=1))
    wakes: list[int] = []
    market = _market(Rest(), clock, wakes=wakes)
    market.on_kline(_kline(T0, c="100.70", closed=False))
    assert market.drain_events() == []
    assert market.last_price("BTC/USDT") == Decimal("100.70")
    market.on_kline(_kline(T0, c="100.80000000"))
    [event] = _candles(market)
    assert event.bar == Bar("BTCUSDT", "1m", T0, Decimal("100.10"), Decimal("101.5"),
                            Decimal("99.90"), Decimal("100.80000000"), Decimal("3.25000000"))
    assert event.bar.close.as_tuple().exponent == -8  # Binance's digits, not a float's
    assert event.timestamp == T0 + timedelta(minutes=1)
    assert event.bar.timestamp.tzinfo is UTC
    market.on_kline(_kline(T0, c="999"))  # sent again: taken once
    assert _candles(market) == []
    assert len(wakes) == 3


def test_native_timeframes_come_from_their_klines_and_others_are_built_from_1m() -> None:
    clock = Clock(T0 + timedelta(minutes=10))
    market = _market(Rest(), clock, timeframes=("2m", "5m"))
    market.on_kline(_kline(T0 + timedelta(minutes=1), o="1", h="2", low="1", c="2", v="1"))
    market.on_kline(_kline(T0 + timedelta(minutes=2), o="2", h="5", low="2", c="3", v="1.5"))
    market.on_kline(_kline(T0, "5m", o="9", h="9", low="9", c="9", v="9"))
    market.on_kline(_kline(T0 + timedelta(minutes=3), o="3", h="4", low="0.5", c="4", v="2"))
    candles = _candles(market)
    # The 2m bucket at 10:00 began before the first 1m kline seen: never streamed (partial).
    # Drained in time order: the 2m bar closed at 10:04, the 5m one at 10:05.
    assert [(c.bar.timeframe, c.bar.timestamp, c.timestamp) for c in candles] == [
        ("2m", T0 + timedelta(minutes=2), T0 + timedelta(minutes=4)),
        ("5m", T0, T0 + timedelta(minutes=5))]
    built = candles[0].bar
    assert (built.open, built.high, built.low, built.close, built.volume) == (
        Decimal("2"), Decimal("5"), Decimal("0.5"), Decimal("4"), Decimal("3.5"))


def test_book_ticker_is_a_quote_and_serves_quote_without_rest() -> None:
    clock = Clock(T0)
    rest = Rest()
    market = _market(rest, clock)
    market.on_book_ticker({"u": 7, "s": "BTCUSDT", "b": "64000.10", "B": "1",
                           "a": "64000.30", "A": "2"})
    [event] = market.drain_events()
    assert isinstance(event, QuoteEvent)
    assert (event.quote.bid, event.quote.ask, event.quote.last) == (
        Decimal("64000.10"), Decimal("64000.30"), Decimal("64000.20"))
    assert event.timestamp == T0
    market.on_kline(_kline(T0, c="64000.25", closed=False))
    market.on_book_ticker({"u": 8, "s": "BTCUSDT", "b": "64000.20", "B": "1",
                           "a": "64000.40", "A": "2"})
    quote = market.quote("BTC/USDT")
    assert quote.last == Decimal("64000.25")  # the last trade, not the mid
    assert rest.calls == []


def test_quote_before_the_stream_asks_rest_and_spends_its_weight() -> None:
    clock = Clock(T0)
    rest, shared = Rest(used_weight=40), Shared()
    market = _market(rest, clock, shared)
    quote = market.quote("BTCUSDT")
    assert (quote.bid, quote.ask, quote.last) == (
        Decimal("64000.10000000"), Decimal("64000.30000000"), Decimal("64000.20000000"))
    assert rest.calls == [("ticker/bookTicker", {"symbol": "BTCUSDT"})]
    assert shared.spent == [2]
    assert shared.observed == [(6000, 5960, 1_020.0)]
    market.quote("BTCUSDT")  # served again within its time to live
    assert len(rest.calls) == 1
    clock.now += timedelta(seconds=6)
    market.quote("BTCUSDT")
    assert len(rest.calls) == 2


def test_429_blocks_the_ip_and_is_rate_limited() -> None:
    rest, shared = Rest(), Shared()
    rest.fail.append((429, -1003, {"Retry-After": "7", "X-MBX-USED-WEIGHT-1M": "6001"}))
    market = _market(rest, Clock(T0), shared)
    with pytest.raises(RateLimited) as raised:
        market.quote("BTCUSDT")
    assert raised.value.details == {"retry_after_seconds": 7}
    assert shared.observed == [(6000, 0, 1_020.0)]
    assert shared.acquire(1) == 7.0  # blocked for Retry-After, from 1000.0
    with pytest.raises(RateLimited):
        market.quote("BTCUSDT")
    assert len(rest.calls) == 1  # the second one never left


def test_418_bans_the_ip_and_is_unavailable() -> None:
    rest, shared = Rest(), Shared()
    rest.fail.append((418, -1003, {"Retry-After": "120"}))
    market = _market(rest, Clock(T0), shared)
    with pytest.raises(BrokerUnavailable) as raised:
        market.history("BTCUSDT", limit=2)
    assert shared.bans == [(120, "Binance banned this IP for exceeding its request limits")]
    assert raised.value.details["retry_after_seconds"] == 120
    with pytest.raises(RateLimited):  # the budget refuses while the ban holds
        market.quote("BTCUSDT")


def test_unknown_symbols() -> None:
    rest = Rest()
    rest.fail.append((400, -1121, {}))
    market = _market(rest, Clock(T0))
    with pytest.raises(SymbolNotFound):
        market.quote("BTCUSDT")
    with pytest.raises(SymbolNotFound):
        market.quote("DOGEUSDT")  # not the session's: never asked
    assert len(rest.calls) == 1
    with pytest.raises(BrokerUnavailable):
        rest.fail.append((500, 0, {}))
        market.quote("BTCUSDT")


def test_history_is_the_newest_complete_bars_ascending() -> None:
    clock = Clock(T0 + timedelta(minutes=5, seconds=30))
    bars = [_bar(T0 + timedelta(minutes=m), str(100 + m)) for m in range(-3, 8)]
    rest = Rest(bars)
    market = _market(rest, clock)
    history = market.history("BTC/USDT", limit=3)
    assert [(b.timestamp, b.close) for b in history] == [
        (T0 + timedelta(minutes=2), Decimal("102")), (T0 + timedelta(minutes=3), Decimal("103")),
        (T0 + timedelta(minutes=4), Decimal("104"))]  # 10:05 still forms; 10:06 is the future
    assert rest.calls == [("klines", {"symbol": "BTCUSDT", "interval": "1m",
                                      "startTime": int((T0 + timedelta(minutes=2)).timestamp()
                                                       * 1000),
                                      "endTime": int((T0 + timedelta(minutes=5)).timestamp()
                                                     * 1000) - 1, "limit": 1000})]
    ranged = market.history("BTCUSDT", start=T0 - timedelta(seconds=30),
                            end=T0 + timedelta(minutes=1))
    assert [b.timestamp for b in ranged] == [T0, T0 + timedelta(minutes=1)]


def test_history_pages_by_1000_and_counts_weight() -> None:
    clock = Clock(T0)
    bars = [_bar(T0 - timedelta(minutes=m), "100") for m in range(1, 2601)]
    rest, shared = Rest(sorted(bars, key=lambda b: b.timestamp)), Shared()
    market = _market(rest, clock, shared)
    history = market.history("BTCUSDT", limit=2500)
    assert len(history) == 2500
    assert history[0].timestamp == T0 - timedelta(minutes=2500)
    assert history[-1].timestamp == T0 - timedelta(minutes=1)
    assert [b.timestamp for b in history] == sorted(b.timestamp for b in history)
    assert len(rest.calls) == 3
    assert shared.spent == [2, 2, 2]


def test_history_of_a_timeframe_binance_has_not_is_built() -> None:
    clock = Clock(T0 + timedelta(minutes=21))
    bars = [_bar(T0 + timedelta(minutes=5 * n), str(10 + n), "5m") for n in range(5)]
    rest = Rest(bars)
    market = _market(rest, clock, timeframes=("10m",))
    history = market.history("BTCUSDT", limit=2)
    assert [(b.timeframe, b.timestamp, b.open, b.close, b.volume) for b in history] == [
        ("10m", T0, Decimal("10"), Decimal("11"), Decimal("4")),
        ("10m", T0 + timedelta(minutes=10), Decimal("12"), Decimal("13"), Decimal("4"))]
    assert rest.calls[0][1]["interval"] == "5m"


def test_staleness_on_a_fake_clock() -> None:
    clock = Clock(T0)
    market = _market(Rest(), clock)
    assert market.next_due() == 120.0
    clock.now = T0 + timedelta(seconds=119)
    market.advance(clock.now)
    assert market.drain_events() == []
    clock.now = T0 + timedelta(seconds=120)
    market.advance(clock.now)
    assert market.drain_events() == [StalenessEvent("STALE", ("BTCUSDT",), "binance-testnet",
                                                    clock.now, stale_since=T0)]
    assert market.next_due() is None
    clock.now = T0 + timedelta(seconds=130)
    market.on_book_ticker({"u": 1, "s": "BTCUSDT", "b": "1", "B": "1", "a": "2", "A": "1"})
    events = market.drain_events()
    assert events[0] == StalenessEvent("FRESH", ("BTCUSDT",), "binance-testnet", clock.now)
    assert isinstance(events[1], QuoteEvent)


def test_klines_missed_in_an_outage_are_fetched_once_and_in_order() -> None:
    clock = Clock(T0 + timedelta(minutes=1, seconds=2))
    bars = [_bar(T0 + timedelta(minutes=m), str(100 + m)) for m in range(6)]
    rest = Rest(bars)
    market = _market(rest, clock)
    market.on_kline(_kline(T0, c="100"))
    assert len(_candles(market)) == 1
    market.on_stream_dropped()
    clock.now = T0 + timedelta(minutes=4, seconds=3)
    market.on_stream_reconnected()
    assert market.next_due() == 0.0
    market.on_kline(_kline(T0 + timedelta(minutes=3), c="103"))  # held for the backfill
    market.on_kline(_kline(T0 + timedelta(minutes=4), c="104", closed=False))
    assert _candles(market) == []
    market.advance(clock.now)
    assert [(c.bar.timestamp, c.bar.close) for c in _candles(market)] == [
        (T0 + timedelta(minutes=1), Decimal("101")), (T0 + timedelta(minutes=2), Decimal("102")),
        (T0 + timedelta(minutes=3), Decimal("103"))]
    assert rest.calls == [("klines", {"symbol": "BTCUSDT", "interval": "1m",
                                      "startTime": int((T0 + timedelta(minutes=1)).timestamp()
                                                       * 1000),
                                      "endTime": int((T0 + timedelta(minutes=4)).timestamp()
                                                     * 1000) - 1, "limit": 1000})]
    market.on_kline(_kline(T0 + timedelta(minutes=4), c="104"))
    assert [c.bar.close for c in _candles(market)] == [Decimal("104")]


def test_a_refused_backfill_leaves_the_gap_and_goes_on() -> None:
    clock = Clock(T0 + timedelta(minutes=1))
    rest = Rest()
    market = _market(rest, clock)
    market.on_kline(_kline(T0, c="100"))
    market.drain_events()
    market.on_stream_reconnected()
    market.on_kline(_kline(T0 + timedelta(minutes=3), c="103"))
    rest.fail.append((429, -1003, {"Retry-After": "5"}))
    clock.now = T0 + timedelta(minutes=4)
    market.advance(clock.now)
    assert [c.bar.close for c in _candles(market)] == [Decimal("103")]
