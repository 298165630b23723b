"""A tiny deterministic wall-clock provider for the host's tests: one candle per symbol per
tick (tick n closes at 100 + n), orders accepted as OPEN and never filled. Built through the
registry (`build`), like any provider; each built market is kept in BUILT for the test."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from runtimes.core.bars import Bar
from runtimes.core.domain import Account, Fill, Order, OrderRequest, OrderStatus, Position, Quote
from runtimes.core.errors import OrderNotFound, PositionNotFound, SymbolNotFound
from runtimes.core.events import CandleEvent, Event, OrderEvent, OrderEventKind
from runtimes.core.provider import Pacing

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
TICK_SECONDS = 0.05
BUILT: list[FakeMarket] = []


class FakeMarket:
    """A Provider. Its bars are stamped a minute apart from T0, whatever the wall clock says,
    so what it streams is the same on every run; only when it ticks follows the clock."""

    platform = "mock"
    broker = "fake"
    pacing = Pacing.WALL_CLOCK

    def __init__(self, symbols: tuple[str, ...], cash: Decimal, *, wake: Any,
                 ticking: bool = True) -> None:
        self.symbols, self.cash, self.wake, self.ticking = symbols, cash, wake, ticking
        self.ticks = 0
        self.bars: dict[str, list[Bar]] = {s: [] for s in symbols}
        self._orders: dict[str, Order] = {}
        self._events: list[Event] = []
        self._lock = threading.Lock()  # `feed` runs on another thread, like an SDK stream's
        self._due_at = 0.0
        self.closed = False

    # -- time --------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return T0 + timedelta(minutes=self.ticks)

    def next_due(self) -> float | None:
        import time

        return max(0.0, self._due_at - time.monotonic()) if self.ticking else None

    def advance(self, now: datetime) -> None:
        import time

        self._due_at = time.monotonic() + TICK_SECONDS
        self.ticks += 1
        with self._lock:
            for symbol in self.symbols:
                self._events.append(CandleEvent(self._bar(symbol), self.now))

    def feed(self, symbol: str) -> None:
        """A bar arriving from elsewhere (another thread): queued, and the host woken."""
        with self._lock:
            self.ticks += 1
            self._events.append(CandleEvent(self._bar(symbol), self.now))
        self.wake()

    def _bar(self, symbol: str) -> Bar:
        price = Decimal(100 + self.ticks)
        bar = Bar(symbol, "1m", self.now, price, price, price, price, Decimal(1))
        self.bars[symbol].append(bar)
        return bar

    def drain_events(self) -> list[Event]:
        with self._lock:
            drained, self._events = self._events, []
        return drained

    # -- the venue ---------------------------------------------------------------------------

    def submit_order(self, request: OrderRequest) -> Order:
        order = Order(id=f"ord-{len(self._orders) + 1}", symbol=request.symbol,
                      side=request.side, order_type=request.order_type,
                      quantity=request.quantity, status=OrderStatus.OPEN,
                      time_in_force=request.time_in_force, created_at=self.now,
                      updated_at=self.now, client_order_id=request.client_order_id)
        self._orders[order.id] = order
        self._events.append(OrderEvent(OrderEventKind.ORDER_CREATED, order, self.now))
        return order

    def modify_order(self, order_id: str, **changes: Any) -> tuple[Order, str | None]:
        order = replace(self.order(order_id), **{k: v for k, v in changes.items() if v})
        self._orders[order_id] = order
        return order, None

    def cancel_order(self, order_id: str) -> Order:
        order = replace(self.order(order_id), status=OrderStatus.CANCELLED)
        self._orders[order_id] = order
        self._events.append(OrderEvent(OrderEventKind.ORDER_CANCELLED, order, self.now))
        return order

    def close_position(self, symbol_or_position_id: str, quantity: Any = None,
                       order_type: str = "MARKET", limit_price: Any = None) -> Order:
        raise PositionNotFound(symbol_or_position_id)

    def orders(self, *, open_only: bool = False, symbol: str | None = None) -> list[Order]:
        return [o for o in self._orders.values()
                if (not open_only or not o.status.is_terminal)
                and (symbol is None or o.symbol == symbol)]

    def all_orders(self) -> list[Order]:
        return list(self._orders.values())

    def order(self, order_id: str) -> Order:
        try:
            return self._orders[order_id]
        except KeyError:
            raise OrderNotFound(order_id) from None

    def order_by_client_id(self, client_order_id: str) -> Order | None:
        return next((o for o in self._orders.values()
                     if client_order_id and o.client_order_id == client_order_id), None)

    def fills(self, *, symbol: str | None = None, order_id: str | None = None) -> list[Fill]:
        return []

    def positions(self) -> list[Position]:
        return []

    def position(self, symbol_or_position_id: str) -> Position:
        raise PositionNotFound(symbol_or_position_id)

    def account(self) -> Account:
        zero = Decimal(0)
        return Account(balance=self.cash, equity=self.cash, margin_used=zero,
                       margin_available=self.cash, unrealized_pnl=zero, realized_pnl=zero,
                       total_commission=zero, cash=self.cash)

    def quote(self, symbol: str) -> Quote:
        if not self.bars.get(symbol):
            raise SymbolNotFound(symbol)
        last = self.bars[symbol][-1]
        return Quote(symbol=symbol, provider="mock", bid=last.close - 1, ask=last.close + 1,
                     last=last.close, timestamp=last.timestamp, volume=last.volume)

    def history(self, symbol: str, start: datetime | None = None, end: datetime | None = None,
                limit: int | None = None) -> list[Bar]:
        if symbol not in self.bars:
            raise SymbolNotFound(symbol)
        kept = [b for b in self.bars[symbol] if (start is None or b.timestamp >= start)
                and (end is None or b.timestamp <= end)]
        return kept if limit is None else kept[-limit:] if limit else []

    # -- the provider ------------------------------------------------------------------------

    def capabilities(self) -> dict[str, Any]:
        return {"supported_order_types": ["MARKET"], "features": ["fake"]}

    def status(self) -> dict[str, Any]:
        return {"connected": True, "last_heartbeat": None, "latency_ms": 0}

    def circuit_breakers(self) -> dict[str, Any]:
        return {}

    def snapshot(self) -> dict[str, Any]:
        return {"ticks": self.ticks, "orders": sorted(self._orders)}

    def close(self) -> None:
        self.closed = True


def build(settings: Any, *, wake: Any) -> FakeMarket:
    market = FakeMarket(settings.symbols, settings.initial_cash, wake=wake,
                        ticking=settings.options.get("ticking", True))
    BUILT.append(market)
    return market
