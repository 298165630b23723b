"""The fake Alpaca's matching: when a quote or a bar crosses a working order it fills (at the
quote, or at the order's price or the bar's open for a bar's range), stops trigger, trailing stops
follow their high-water mark, and a fill frees a bracket's legs or cancels the other exit. A mixin
of `state.Broker`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from runtimes.core.bars import Bar
from tests.fakes.alpaca.ledger import QTY_STEP
from tests.fakes.alpaca.market import Quote
from tests.fakes.alpaca.orders import Order
from tests.fakes.alpaca.values import text, unprocessable


class Matching:
    """Executions of the account's working orders."""

    orders: dict[str, Order]
    quotes: dict[str, Quote]
    last_trade: dict[str, tuple[Decimal, datetime]]
    held: bool
    market_open: bool

    clock: Callable[[], datetime]

    def _work_symbol(self, symbol: str, bar: Bar | None) -> None:
        for order in list(self.orders.values()):
            if order.symbol == symbol and order.is_open:
                self._work(order, bar)

    def _work(self, order: Order, bar: Bar | None) -> None:
        """Fill `order` if the market (the quote, or a bar's range) crosses it."""
        if not order.is_open or not order.active or self.held:
            return
        if order.status in ("accepted", "done_for_day"):
            return
        if not self.market_open and not order.extended_hours:
            return
        quote = self.quotes.get(order.symbol)
        if quote is None:
            return
        price = self._execution_price(order, quote, bar)
        if price is None:
            if order.time_in_force in ("ioc", "fok"):
                self._finish(order, "canceled", "canceled")
            return
        qty = order.remaining
        if qty is None:  # notional: whole amount at this price
            qty = (order.notional / price).quantize(QTY_STEP, ROUND_DOWN)
            order.qty = None
        self._execute(order, qty, price)

    def _execution_price(self, order: Order, quote: Quote, bar: Bar | None) -> Decimal | None:
        buy = order.side == "buy"
        touch = quote.ask if buy else quote.bid
        low, high, opening = (bar.low, bar.high, bar.open) if bar else (touch, touch, touch)
        if order.type in ("stop", "stop_limit", "trailing_stop") and not order.triggered:
            stop = order.stop_price
            hit = stop is not None and (high >= stop if buy else low <= stop)
            if not hit:
                if order.type == "trailing_stop":  # the mark moves only while not triggered
                    self._trail(order, low if buy else high)
                return None
            order.triggered = True
            if order.type != "stop_limit":
                return max(stop, opening) if buy and bar else (min(stop, opening) if bar else touch)
        if order.type in ("market", "stop", "trailing_stop"):
            return opening if bar else touch
        limit = order.limit_price
        if buy:
            if low > limit:
                return None
            return min(limit, opening) if bar else touch
        if high < limit:
            return None
        return max(limit, opening) if bar else touch

    def _start_trail(self, order: Order) -> None:
        quote = self.quotes.get(order.symbol)
        if quote is not None:
            order.hwm = quote.bid if order.side == "sell" else quote.ask
            self._set_trail_stop(order)

    def _trail(self, order: Order, price: Decimal) -> None:
        """A sell trails the highest price seen, a buy the lowest."""
        if order.hwm is None or (price > order.hwm if order.side == "sell" else price < order.hwm):
            order.hwm = price
            self._set_trail_stop(order)

    def _set_trail_stop(self, order: Order) -> None:
        hwm = order.hwm
        if hwm is None:  # no quote yet: the first one starts the trail
            return
        sign = -1 if order.side == "sell" else 1
        if order.trail_price is not None:
            stop = hwm + sign * order.trail_price
        else:
            stop = hwm * (1 + sign * order.trail_percent / 100)
        order.stop_price = stop.quantize(Decimal("0.01"))

    def fill(self, order_id: str, quantity: Decimal | None, price: Decimal | None) -> None:
        """A scripted execution (FakeAlpaca.fill)."""
        with self.lock:
            order = self._get(order_id)
            if not order.is_open:
                raise unprocessable(f"order {order_id} is {order.status}")
            quote = self.quotes.get(order.symbol)
            if price is None:
                price = order.limit_price
            if price is None and quote is not None:
                price = quote.ask if order.side == "buy" else quote.bid
            if price is None:
                raise unprocessable(f"no price to fill {order.symbol} at")
            if quantity is None:
                quantity = order.remaining
                if quantity is None:
                    quantity = (order.notional / price).quantize(QTY_STEP, ROUND_DOWN)
            remaining = order.remaining
            if quantity <= 0 or (remaining is not None and quantity > remaining):
                raise ValueError(f"cannot fill {quantity} of order {order_id}: {remaining} left")
            if order.status == "accepted":
                order.status = "new"
                self._emit_trade("new", order)
            elif order.status == "held":
                order.status = "new"
            self._execute(order, quantity, price)
            self.notify()

    def _execute(self, order: Order, qty: Decimal, price: Decimal) -> None:
        now = self.clock()
        order.filled_qty += qty
        order.filled_value += qty * price
        complete = order.qty is None or order.filled_qty >= order.qty
        order.status = "filled" if complete else "partially_filled"
        order.touch(now)
        if complete:
            order.filled_at = now
        position_qty = self._book(order.symbol, order.side, qty, price)
        self.last_trade[order.symbol] = (price, now)
        event = "fill" if complete else "partial_fill"
        self._record_fill(order, event, qty, price, now)
        self._emit_trade(
            event,
            order,
            price=text(price),
            qty=text(qty),
            position_qty=text(position_qty),
            execution_id=str(uuid.uuid4()),
        )
        if complete:
            self._after_fill(order)

    def _after_fill(self, order: Order) -> None:
        """A filled parent frees its legs; a filled exit cancels its sibling."""
        if order.legs and order.order_class in ("bracket", "oto"):
            for leg_id in order.legs:
                leg = self.orders[leg_id]
                leg.active = True
                if leg.type == "limit" or order.order_class == "oto":
                    leg.status = "new"
                    leg.touch(self.clock())
                    self._emit_trade("new", leg)
            for leg_id in order.legs:
                self._work(self.orders[leg_id], None)
            return
        for sibling in self._siblings(order):
            if sibling.is_open:
                self._finish(sibling, "canceled", "canceled")

    def _siblings(self, order: Order) -> list[Order]:
        """The other exits of the group `order` belongs to (bracket legs; oco parent and leg)."""
        if order.parent_id is not None:
            parent = self.orders[order.parent_id]
            group = [parent] if parent.order_class == "oco" else []
            group += [self.orders[leg] for leg in parent.legs]
        elif order.order_class == "oco":
            group = [self.orders[leg] for leg in order.legs]
        else:
            return []
        return [o for o in group if o.id != order.id]

    def _finish(self, order: Order, status: str, event: str, **extra: Any) -> None:
        """End an open order (canceled, expired, rejected, done_for_day) and its open legs."""
        now = self.clock()
        order.status = status
        order.touch(now)
        if status == "canceled":
            order.canceled_at = now
        elif status == "expired":
            order.expired_at = now
        elif status == "rejected":
            order.failed_at = now
        self._emit_trade(event, order, **extra)
        if status == "done_for_day":
            return
        for leg_id in order.legs:
            leg = self.orders[leg_id]
            if leg.is_open:
                self._finish(
                    leg,
                    status if status != "rejected" else "canceled",
                    event if status != "rejected" else "canceled",
                )
