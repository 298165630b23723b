"""The fake Binance's account and market: balances (free/locked), book tickers, klines, orders,
trades and order lists, and the outbox of stream messages their changes cause.

Everything here is plain synchronous code under one lock (`Exchange.lock`), taken by the REST
and WebSocket handlers on the server's loop and by the control methods on the test thread;
every change notifies `Exchange.changed` (a Condition on that lock) so `FakeBinance.wait_for`
wakes on it, and hands the outbox to the server, which delivers it in order.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from runtimes.core.bars import Bar
from tests.fakes.binance.orders import Order, Trade
from tests.fakes.binance.symbols import SymbolSpec, spec_for
from tests.fakes.binance.values import ZERO, ApiError, amount, interval_ms, millis


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One stream message waiting for delivery: a user data event, or market data of a
    stream ("btcusdt@bookTicker")."""

    kind: str  # "user" | "market" | "terminated"
    payload: dict[str, Any]
    stream: str = ""


@dataclass
class Book:
    bid: Decimal
    ask: Decimal
    bid_qty: Decimal
    ask_qty: Decimal
    update_id: int


@dataclass
class Kline:
    bar: Bar
    interval: str
    closed: bool

    @property
    def open_ms(self) -> int:
        return millis(self.bar.timestamp)

    @property
    def close_ms(self) -> int:
        return self.open_ms + interval_ms(self.interval) - 1

    def row(self) -> list[Any]:
        """One row of GET klines."""
        bar = self.bar
        return [
            self.open_ms, amount(bar.open), amount(bar.high), amount(bar.low),
            amount(bar.close), amount(bar.volume), self.close_ms,
            amount(bar.volume * bar.close), 1, amount(ZERO), amount(ZERO), "0",
        ]  # fmt: skip

    def event(self, now: int) -> dict[str, Any]:
        bar = self.bar
        return {
            "e": "kline",
            "E": now,
            "s": bar.symbol.upper(),
            "k": {
                "t": self.open_ms,
                "T": self.close_ms,
                "s": bar.symbol.upper(),
                "i": self.interval,
                "f": 100,
                "L": 100,
                "o": amount(bar.open),
                "c": amount(bar.close),
                "h": amount(bar.high),
                "l": amount(bar.low),
                "v": amount(bar.volume),
                "n": 1,
                "x": self.closed,
                "q": amount(bar.volume * bar.close),
                "V": amount(ZERO),
                "Q": amount(ZERO),
                "B": "0",
            },
        }


@dataclass
class OrderList:
    id: int
    client_id: str
    symbol: str
    order_ids: list[int]
    time: int
    status: str = "EXECUTING"  # listOrderStatus
    status_type: str = "EXEC_STARTED"  # listStatusType


@dataclass
class Ledger:
    """Balances: asset -> free, locked."""

    free: dict[str, Decimal] = field(default_factory=dict)
    locked: dict[str, Decimal] = field(default_factory=dict)

    def available(self, asset: str) -> Decimal:
        return self.free.get(asset, ZERO)

    def add(self, asset: str, delta: Decimal) -> None:
        self.free[asset] = self.free.get(asset, ZERO) + delta

    def lock(self, asset: str, value: Decimal) -> None:
        self.add(asset, -value)
        self.locked[asset] = self.locked.get(asset, ZERO) + value

    def unlock(self, asset: str, value: Decimal) -> None:
        self.locked[asset] = self.locked.get(asset, ZERO) - value
        self.add(asset, value)

    def assets(self) -> list[str]:
        return sorted(set(self.free) | set(self.locked))


class State:
    """The account and market data of one fake Binance (order entry and matching are added by
    `tests.fakes.binance.exchange.Exchange`)."""

    def __init__(
        self,
        *,
        balances: Mapping[str, Decimal] | None,
        symbols: Iterable[str],
        bars: Iterable[Bar],
        commission_rate: Decimal,
        pay_fees_in_bnb: bool,
    ) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.clock_offset_ms = 0
        self.outbox: deque[Outgoing] = deque()
        self.on_change: Callable[[], None] = lambda: None
        self.user_events: list[dict[str, Any]] = []  # every one produced, listened to or not
        self.specs: dict[str, SymbolSpec] = {}
        for symbol in symbols:
            self.add_symbol(symbol)
        initial = {"USDT": Decimal(100_000)} if balances is None else dict(balances)
        self.ledger = Ledger(free={a.upper(): Decimal(v) for a, v in initial.items()})
        self.commission_rate = commission_rate
        self.pay_fees_in_bnb = pay_fees_in_bnb
        self.books: dict[str, Book] = {}
        self.spreads: dict[str, Decimal] = {}
        self.last_price: dict[str, Decimal] = {}
        self.klines: dict[tuple[str, str], dict[int, Kline]] = {}
        self.orders: dict[int, Order] = {}
        self.trades: list[Trade] = []
        self.order_lists: dict[int, OrderList] = {}
        self.held = False
        self.rejections: deque[ApiError] = deque()
        self.next_order_id = 1
        self.next_trade_id = 1
        self.next_list_id = 1
        self.next_update_id = 1
        self.cancel_count = 0
        for bar in sorted(bars, key=lambda b: b.timestamp):
            self._keep_kline(Kline(bar, bar.timeframe, True))

    # -- clock and notification --------------------------------------------------------------
    def now_ms(self) -> int:
        """The server's clock in epoch ms: the wall clock plus the scripted offset."""
        return int(time.time() * 1000) + self.clock_offset_ms

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms() / 1000, UTC)

    def notify(self) -> None:
        """Wake `wait_for` and hand the outbox to the server (called after every change)."""
        with self.changed:
            self.changed.notify_all()
        self.on_change()

    def emit_user(self, event: dict[str, Any]) -> None:
        self.outbox.append(Outgoing("user", event))
        self.user_events.append(event)

    def emit_positions(self, assets: Iterable[str]) -> None:
        """outboundAccountPosition for the assets that changed."""
        now = self.now_ms()
        rows = [
            {
                "a": asset,
                "f": amount(self.ledger.free.get(asset, ZERO)),
                "l": amount(self.ledger.locked.get(asset, ZERO)),
            }
            for asset in sorted(set(assets))
        ]
        if rows:
            self.emit_user({"e": "outboundAccountPosition", "E": now, "u": now, "B": rows})

    # -- symbols -----------------------------------------------------------------------------
    def add_symbol(self, symbol: str) -> SymbolSpec:
        spec = self.specs.get(symbol.upper())
        if spec is None:
            spec = self.specs[symbol.upper()] = spec_for(symbol)
        return spec

    def spec(self, symbol: str | None) -> SymbolSpec:
        if not symbol:
            raise ApiError(
                400,
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            )
        spec = self.specs.get(symbol)
        if spec is None:
            raise ApiError(400, -1121, "Invalid symbol.")
        return spec

    # -- market data -------------------------------------------------------------------------
    def set_book(
        self, symbol: str, bid: Decimal, ask: Decimal, bid_qty: Decimal, ask_qty: Decimal
    ) -> Book:
        symbol = symbol.upper()
        self.add_symbol(symbol)
        book = Book(bid, ask, bid_qty, ask_qty, self.next_update_id)
        self.next_update_id += 1
        self.books[symbol] = book
        self.last_price.setdefault(symbol, (bid + ask) / 2)
        self.outbox.append(
            Outgoing("market", self.book_event(symbol, book), f"{symbol.lower()}@bookTicker")
        )
        return book

    def book_event(self, symbol: str, book: Book) -> dict[str, Any]:
        return {
            "u": book.update_id,
            "s": symbol,
            "b": amount(book.bid),
            "B": amount(book.bid_qty),
            "a": amount(book.ask),
            "A": amount(book.ask_qty),
        }

    def book_ticker_json(self, symbol: str) -> dict[str, Any]:
        book = self.books.get(symbol)
        values = (book.bid, book.bid_qty, book.ask, book.ask_qty) if book else (ZERO,) * 4
        return {
            "symbol": symbol,
            "bidPrice": amount(values[0]),
            "bidQty": amount(values[1]),
            "askPrice": amount(values[2]),
            "askQty": amount(values[3]),
        }

    def push_kline(self, bar: Bar, closed: bool) -> Kline:
        symbol = bar.symbol.upper()
        self.add_symbol(symbol)
        kline = Kline(bar, bar.timeframe, closed)
        self._keep_kline(kline)
        self.outbox.append(
            Outgoing(
                "market", kline.event(self.now_ms()), f"{symbol.lower()}@kline_{kline.interval}"
            )
        )
        self.last_price[symbol] = bar.close
        half = self.spreads.get(symbol, ZERO) / 2
        old = self.books.get(symbol)
        book = Book(
            bar.close - half,
            bar.close + half,
            old.bid_qty if old else Decimal(10),
            old.ask_qty if old else Decimal(10),
            self.next_update_id,
        )
        self.next_update_id += 1
        self.books[symbol] = book
        return kline

    def _keep_kline(self, kline: Kline) -> None:
        self.klines.setdefault((kline.bar.symbol.upper(), kline.interval), {})[kline.open_ms] = (
            kline
        )
        self.last_price.setdefault(kline.bar.symbol.upper(), kline.bar.close)

    def kline_rows(
        self, symbol: str, interval: str, start: int | None, end: int | None, limit: int
    ) -> list[list[Any]]:
        series = sorted(self.klines.get((symbol, interval), {}).items())
        chosen = [
            k for t, k in series if (start is None or t >= start) and (end is None or t <= end)
        ]
        chosen = chosen[:limit] if start is not None else chosen[-limit:]
        return [k.row() for k in chosen]

    def average_price(self, symbol: str) -> Decimal | None:
        """avgPrice: the last price (closes and book mids), standing in for Binance's 5-minute
        average."""
        book = self.books.get(symbol)
        if book is not None:
            return (book.bid + book.ask) / 2
        return self.last_price.get(symbol)

    # -- account -----------------------------------------------------------------------------
    def balances_json(self) -> list[dict[str, str]]:
        return [
            {
                "asset": asset,
                "free": amount(self.ledger.free.get(asset, ZERO)),
                "locked": amount(self.ledger.locked.get(asset, ZERO)),
            }
            for asset in self.ledger.assets()
        ]

    def account_json(self) -> dict[str, Any]:
        rate = amount(self.commission_rate)
        bps = int(self.commission_rate * 10_000)
        return {
            "makerCommission": bps,
            "takerCommission": bps,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": rate,
                "taker": rate,
                "buyer": amount(ZERO),
                "seller": amount(ZERO),
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.now_ms(),
            "accountType": "SPOT",
            "balances": self.balances_json(),
            "permissions": ["SPOT"],
            "uid": 354937868,
        }
