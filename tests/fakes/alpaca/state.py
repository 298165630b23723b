"""The fake Alpaca's account: orders and their legs, executions, positions, cash, FILL
activities, the market clock, and the outbox of stream messages they cause.

Everything here is plain synchronous code guarded by one lock (`Broker.lock`), taken by the REST
handlers on the server's loop and by the control methods on the test thread; every change
notifies `Broker.changed` (a Condition on that lock) so `FakeAlpaca.wait_for` wakes on it.
Stream messages go to `outbox` in the order they happen, under the same lock, and the server
delivers them in that order.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from runtimes.core.bars import Bar
from tests.fakes.alpaca import market
from tests.fakes.alpaca.market import Quote
from tests.fakes.alpaca.orders import Order, Submitted, order_json, parse_submit
from tests.fakes.alpaca.values import (
    ApiError,
    asset_id,
    check_price_increment,
    decimals_of,
    forbidden,
    iso,
    not_found,
    parse_decimal,
    text,
    unprocessable,
)

ACCOUNT_ID = "7a1c0f3e-5b2d-4c8e-9f10-a1a2ca0fa4e0"
ACCOUNT_NUMBER = "PA3FAKE0WXYZ"
_QTY_STEP = Decimal("0.000000001")


@dataclass(slots=True)
class Position:
    """A position: signed quantity and its cost (signed, qty * average entry price)."""

    symbol: str
    qty: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)

    @property
    def avg_entry_price(self) -> Decimal:
        return (self.cost / self.qty) if self.qty else Decimal(0)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One stream message waiting for delivery: a trade update, or market data of a channel."""

    kind: str  # "trade" | "data"
    payload: dict[str, Any]
    channel: str = ""  # "bars" | "quotes" for data
    symbol: str = ""


class Broker:
    """The account and the market of one fake Alpaca."""

    def __init__(
        self,
        *,
        cash: Decimal,
        market_open: bool,
        bars: Iterable[Bar],
        not_fractionable: Iterable[str],
        symbols: Iterable[str] = (),
        clock: Callable[[], datetime] | None = None,
        not_shortable: Iterable[str] = (),
    ) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.outbox: deque[Outgoing] = deque()
        self.on_change: Callable[[], None] = lambda: None
        self.initial_cash = cash
        self.cash = cash
        self.market_open = market_open
        self.next_open: datetime | None = None
        self.next_close: datetime | None = None
        self.held = False
        self.orders: dict[str, Order] = {}
        self.client_ids: dict[str, str] = {}
        self.positions: dict[str, Position] = {}
        self.activities: list[dict[str, Any]] = []
        self.quotes: dict[str, Quote] = {}
        self.last_trade: dict[str, tuple[Decimal, datetime]] = {}
        self.bars: dict[str, list[Bar]] = {}
        self.symbols: set[str] = {s.upper() for s in symbols}
        self.not_fractionable = {s.upper() for s in not_fractionable}
        self.not_shortable = {s.upper() for s in not_shortable}
        self.rejections: deque[ApiError] = deque()
        for bar in sorted(bars, key=lambda b: b.timestamp):
            self._keep_bar(bar)

    # -- change notification -----------------------------------------------------------------
    def notify(self) -> None:
        """Wake `wait_for` and hand the outbox to the server (called after every change)."""
        with self.changed:
            self.changed.notify_all()
        self.on_change()

    def _emit_trade(self, event: str, order: Order, **extra: Any) -> None:
        data: dict[str, Any] = {
            "event": event,
            "order": order_json(order, self.orders),
            "timestamp": iso(self.clock()),
        }
        data.update(extra)
        self.outbox.append(Outgoing("trade", {"stream": "trade_updates", "data": data}))

    # -- market ------------------------------------------------------------------------------
    def known(self, symbol: str) -> bool:
        return symbol in self.symbols or symbol in self.quotes or symbol in self.bars

    def _keep_bar(self, bar: Bar) -> None:
        symbol = bar.symbol.upper()
        series = self.bars.setdefault(symbol, [])
        if series and series[-1].timestamp >= bar.timestamp:
            series[:] = [b for b in series if b.timestamp != bar.timestamp]
            series.append(bar)
            series.sort(key=lambda b: b.timestamp)
        else:
            series.append(bar)
        self.last_trade[symbol] = (bar.close, bar.timestamp + _one_minute())
        spread = self.quotes.get(symbol)
        half = (spread.ask - spread.bid) / 2 if spread else Decimal(0)
        self.quotes[symbol] = Quote(
            symbol, bar.close - half, bar.close + half, bar.timestamp + _one_minute()
        )

    def set_quote(self, quote: Quote) -> None:
        with self.lock:
            self.quotes[quote.symbol] = quote
            self.outbox.append(Outgoing("data", _quote_message(quote), "quotes", quote.symbol))
            self._work_symbol(quote.symbol, None)
            self.notify()

    def push_bar(self, bar: Bar) -> None:
        with self.lock:
            self._keep_bar(bar)
            symbol = bar.symbol.upper()
            self.outbox.append(Outgoing("data", _bar_message(bar), "bars", symbol))
            self._work_symbol(symbol, bar)
            self.notify()

    def set_market_open(
        self, is_open: bool, next_open: datetime | None, next_close: datetime | None
    ) -> None:
        with self.lock:
            was_open, self.market_open = self.market_open, is_open
            self.next_open, self.next_close = next_open, next_close
            if is_open and not was_open:
                self._open_session()
            elif was_open and not is_open:
                self._close_session()
            self.notify()

    def _open_session(self) -> None:
        for order in list(self.orders.values()):
            if order.status == "accepted":
                order.status = "new"
                order.touch(self.clock())
                self._emit_trade("new", order)
        for symbol in sorted({o.symbol for o in self.orders.values() if o.is_open}):
            self._work_symbol(symbol, None)

    def _close_session(self) -> None:
        """Day orders that did not fill expire at the close."""
        for order in list(self.orders.values()):
            if order.is_open and order.time_in_force in ("day", "opg", "cls") and (
                order.parent_id is None
            ):
                self._finish(order, "expired", "expired")

    def clock_json(self) -> dict[str, Any]:
        now = self.clock()
        next_open = self.next_open or market.next_open_after(now)
        next_close = self.next_close or market.next_close_after(now)
        return {
            "timestamp": market.new_york_iso(now),
            "is_open": self.market_open,
            "next_open": market.new_york_iso(next_open),
            "next_close": market.new_york_iso(next_close),
        }

    def mark(self, symbol: str) -> Decimal | None:
        """The price positions are valued at: the last trade (a fill or a bar's close), else the
        quote's midpoint."""
        if symbol in self.last_trade:
            return self.last_trade[symbol][0]
        quote = self.quotes.get(symbol)
        return (quote.bid + quote.ask) / 2 if quote else None

    # -- submit ------------------------------------------------------------------------------
    def submit(self, body: Any) -> dict[str, Any]:
        """POST /v2/orders: the new order's JSON as accepted (executions follow as trade
        updates)."""
        with self.lock:
            if self.rejections:
                raise self.rejections.popleft()
            request = parse_submit(body)
            self._check_account(request)
            order = self._create(request)
            snapshot = order_json(order, self.orders)
            self._after_accept(order)
            self.notify()
            return snapshot

    def _check_account(self, request: Submitted) -> None:
        if not self.known(request.symbol):
            raise unprocessable(f'asset "{request.symbol}" not found', 40010001)
        if request.fractional and request.symbol in self.not_fractionable:
            raise unprocessable(f"asset {request.symbol} is not fractionable")
        if request.client_order_id in self.client_ids:
            raise unprocessable("client_order_id must be unique", 40010001)
        price = self._reference_price(request)
        if request.side == "buy":
            cost = request.notional if request.notional is not None else request.qty * price
            short_cover = max(Decimal(0), -self._position_qty(request.symbol))
            if request.qty is not None:
                cost = max(Decimal(0), request.qty - short_cover) * price
            if cost > self.buying_power():
                raise forbidden("insufficient buying power")
            return
        self._check_sell(request, price)

    def _check_sell(self, request: Submitted, price: Decimal) -> None:
        """Selling what is held is fine; beyond it, a short: whole shares only, from a flat or
        short position (no flip from long to short in one order), with buying power."""
        held = self._position_qty(request.symbol)
        available = max(Decimal(0), held) - self._reserved_sells(request.symbol)
        qty = request.qty
        if qty is None:  # notional sell
            qty = (request.notional / price).quantize(_QTY_STEP, ROUND_DOWN)
        if qty <= available:
            return
        if held > 0 or decimals_of(qty) > 0 or request.symbol in self.not_shortable:
            raise forbidden(
                f"insufficient qty available for order (requested: {text(qty)}, "
                f"available: {text(max(available, Decimal(0)))})"
            )
        if qty * price > self.buying_power():
            raise forbidden("insufficient buying power")

    def _reference_price(self, request: Submitted) -> Decimal:
        quote = self.quotes.get(request.symbol)
        if request.limit_price is not None:
            return request.limit_price
        if quote is not None:
            return quote.ask if request.side == "buy" else quote.bid
        if request.stop_price is not None:
            return request.stop_price
        return self.mark(request.symbol) or Decimal(0)

    def _position_qty(self, symbol: str) -> Decimal:
        position = self.positions.get(symbol)
        return position.qty if position else Decimal(0)

    def _reserved_sells(self, symbol: str) -> Decimal:
        """Shares already promised to open sell orders (a bracket's or oco's exits count once)."""
        reserved = Decimal(0)
        for order in self.orders.values():
            if order.symbol != symbol or order.side != "sell" or not order.is_open:
                continue
            if order.parent_id is not None:
                parent = self.orders[order.parent_id]
                if parent.side == "sell" or parent.legs[0] != order.id or not order.active:
                    continue
            reserved += order.remaining or Decimal(0)
        return reserved

    def _create(self, request: Submitted) -> Order:
        now = self.clock()
        status = "new" if self._accepts_now(request.extended_hours) else "accepted"
        order = Order(
            id=str(uuid.uuid4()),
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            time_in_force=request.time_in_force,
            qty=request.qty,
            notional=request.notional,
            created_at=now,
            status=status,
            order_class=request.order_class,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            trail_price=request.trail_price,
            trail_percent=request.trail_percent,
            extended_hours=request.extended_hours,
            position_intent=request.position_intent or self._intent(request.symbol, request.side),
        )
        if order.type == "trailing_stop":
            self._start_trail(order)
        self._add(order)
        if request.order_class != "simple":
            self._create_legs(order, request)
        return order

    def _accepts_now(self, extended_hours: bool) -> bool:
        return self.market_open or extended_hours

    def _intent(self, symbol: str, side: str) -> str:
        held = self._position_qty(symbol)
        if side == "buy":
            return "buy_to_close" if held < 0 else "buy_to_open"
        return "sell_to_close" if held > 0 else "sell_to_open"

    def _add(self, order: Order) -> None:
        self.orders[order.id] = order
        self.client_ids[order.client_order_id] = order.id

    def _create_legs(self, parent: Order, request: Submitted) -> None:
        """Bracket: take-profit limit and stop-loss legs, held until the parent fills. OTO: the
        one leg, held likewise. OCO: the parent is the take-profit limit, its leg the stop."""
        exit_side = "sell" if parent.side == "buy" else "buy"
        if request.order_class == "oco":
            exit_side = parent.side
        specs: list[tuple[str, Decimal | None, Decimal | None]] = []
        if request.take_profit is not None and request.order_class != "oco":
            specs.append(("limit", request.take_profit, None))
        if request.stop_loss_stop is not None:
            kind = "stop_limit" if request.stop_loss_limit is not None else "stop"
            specs.append((kind, request.stop_loss_limit, request.stop_loss_stop))
        if request.order_class == "oco":
            parent.limit_price = request.take_profit
        for kind, limit, stop in specs:
            leg = Order(
                id=str(uuid.uuid4()),
                client_order_id=str(uuid.uuid4()),
                symbol=parent.symbol,
                side=exit_side,
                type=kind,
                time_in_force=parent.time_in_force,
                qty=parent.qty,
                notional=None,
                created_at=parent.created_at,
                status="held",
                order_class=parent.order_class,
                limit_price=limit,
                stop_price=stop,
                position_intent="sell_to_close" if exit_side == "sell" else "buy_to_close",
                parent_id=parent.id,
                active=request.order_class == "oco",
            )
            self._add(leg)
            parent.legs.append(leg.id)

    def _after_accept(self, order: Order) -> None:
        if order.status != "new":
            return
        self._emit_trade("new", order)
        self._work(order, None)

    # -- execution ---------------------------------------------------------------------------
    def _work_symbol(self, symbol: str, bar: Bar | None) -> None:
        for order in list(self.orders.values()):
            if order.symbol == symbol and order.is_open:
                self._work(order, bar)

    def _work(self, order: Order, bar: Bar | None) -> None:
        """Fill `order` if the market (the quote, or a bar's range) crosses it."""
        if not order.is_open or not order.active or self.held or order.status == "accepted":
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
            qty = (order.notional / price).quantize(_QTY_STEP, ROUND_DOWN)
            order.qty = None
        self._execute(order, qty, price)

    def _execution_price(self, order: Order, quote: Quote, bar: Bar | None) -> Decimal | None:
        buy = order.side == "buy"
        touch = quote.ask if buy else quote.bid
        low, high, opening = (bar.low, bar.high, bar.open) if bar else (touch, touch, touch)
        if order.type == "trailing_stop":
            self._trail(order, high if not buy else low)
        if order.type in ("stop", "stop_limit", "trailing_stop") and not order.triggered:
            stop = order.stop_price
            hit = high >= stop if buy else low <= stop
            if not hit:
                return None
            order.triggered = True
            if order.type != "stop_limit":
                return max(stop, opening) if buy and bar else (
                    min(stop, opening) if bar else touch
                )
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
                    quantity = (order.notional / price).quantize(_QTY_STEP, ROUND_DOWN)
            if order.status in ("accepted", "held"):
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

    def _book(self, symbol: str, side: str, qty: Decimal, price: Decimal) -> Decimal:
        """Cash and position after an execution; the position's quantity after it."""
        signed = qty if side == "buy" else -qty
        self.cash -= signed * price
        position = self.positions.setdefault(symbol, Position(symbol))
        if position.qty == 0 or (position.qty > 0) == (signed > 0):
            position.cost += signed * price
        elif abs(signed) <= abs(position.qty):
            # Reducing keeps the average entry price of what is left.
            position.cost += position.avg_entry_price * signed
        else:
            position.cost = (position.qty + signed) * price
        position.qty += signed
        if position.qty == 0:
            del self.positions[symbol]
            return Decimal(0)
        return position.qty

    def _record_fill(
        self, order: Order, event: str, qty: Decimal, price: Decimal, now: datetime
    ) -> None:
        self.activities.append({
            "id": f"{now.strftime('%Y%m%d%H%M%S%f')[:17]}::{uuid.uuid4()}",
            "account_id": ACCOUNT_ID,
            "activity_type": "FILL",
            "transaction_time": iso(now),
            "type": event,
            "price": text(price),
            "qty": text(qty),
            "side": order.side if self._position_qty(order.symbol) >= 0 or order.side == "buy"
            else "sell_short",
            "symbol": order.symbol,
            "leaves_qty": text((order.qty - order.filled_qty) if order.qty else Decimal(0)),
            "order_id": order.id,
            "cum_qty": text(order.filled_qty),
            "order_status": order.status,
        })

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
                self._finish(leg, status if status != "rejected" else "canceled",
                             event if status != "rejected" else "canceled")

    # -- cancel, replace, broker-side ends ----------------------------------------------------
    def _get(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise not_found(f"order not found for {order_id}")
        return order

    def cancel_by_api(self, order_id: str) -> None:
        with self.lock:
            order = self._get(order_id)
            if not order.is_open:
                raise unprocessable("order is not cancelable")
            self._finish(order, "canceled", "canceled")
            self.notify()

    def cancel_all(self) -> list[dict[str, Any]]:
        with self.lock:
            out = []
            for order in list(self.orders.values()):
                if order.is_open and order.parent_id is None:
                    self._finish(order, "canceled", "canceled")
                    out.append({"id": order.id, "status": 200,
                                "body": order_json(order, self.orders)})
            self.notify()
            return out

    def end_order(self, order_id: str, status: str, event: str, **extra: Any) -> None:
        """Broker-side end: canceled, expired, rejected, done_for_day (control methods)."""
        with self.lock:
            order = self._get(order_id)
            if not order.is_open:
                raise unprocessable(f"order {order_id} is {order.status}")
            self._finish(order, status, event, **extra)
            self.notify()

    def replace(self, order_id: str, body: Any) -> dict[str, Any]:
        """PATCH /v2/orders/{id}: a new order replacing the old (returned); the old becomes
        `replaced` (trade updates: replaced, then new)."""
        with self.lock:
            old = self._get(order_id)
            if not old.is_open or (old.status == "held" and not old.active):
                raise unprocessable("order is not replaceable")
            if not isinstance(body, dict):
                raise unprocessable("request body format is invalid", 40010001)
            new = self._replacement(old, body)
            now = self.clock()
            old.status = "replaced"
            old.replaced_at = now
            old.replaced_by = new.id
            old.touch(now)
            self._add(new)
            if old.parent_id is not None:
                parent = self.orders[old.parent_id]
                parent.legs[parent.legs.index(old.id)] = new.id
            new.legs, old.legs = old.legs, []
            for leg_id in new.legs:
                self.orders[leg_id].parent_id = new.id
            self._emit_trade("replaced", old)
            snapshot = order_json(new, self.orders)
            if new.status == "new":
                self._emit_trade("new", new)
                self._work(new, None)
            self.notify()
            return snapshot

    def _replacement(self, old: Order, body: dict[str, Any]) -> Order:
        qty = parse_decimal(body.get("qty"), "qty")
        if qty is not None and (qty <= 0 or decimals_of(qty) > 0):
            raise unprocessable("qty must be a positive whole number", 40010001)
        limit = parse_decimal(body.get("limit_price"), "limit_price")
        stop = parse_decimal(body.get("stop_price"), "stop_price")
        trail = parse_decimal(body.get("trail"), "trail")
        for value, name in ((limit, "limit_price"), (stop, "stop_price")):
            if value is not None:
                if old.type not in (("limit", "stop_limit") if name == "limit_price"
                                    else ("stop", "stop_limit")):
                    raise unprocessable(f"cannot replace {name} of a {old.type} order", 40010001)
                check_price_increment(value, name)
        if trail is not None and old.type != "trailing_stop":
            raise unprocessable(f"cannot replace trail of a {old.type} order", 40010001)
        tif = body.get("time_in_force") or old.time_in_force
        client_order_id = body.get("client_order_id") or str(uuid.uuid4())
        if client_order_id in self.client_ids:
            raise unprocessable("client_order_id must be unique", 40010001)
        if len(client_order_id) > 128:
            raise unprocessable("client_order_id must be no more than 128 characters", 40010001)
        new = Order(
            id=str(uuid.uuid4()),
            client_order_id=client_order_id,
            symbol=old.symbol,
            side=old.side,
            type=old.type,
            time_in_force=tif,
            qty=qty if qty is not None else old.remaining,
            notional=old.notional if old.qty is None else None,
            created_at=self.clock(),
            status=old.status if old.status in ("held", "accepted") else "new",
            order_class=old.order_class,
            limit_price=limit if limit is not None else old.limit_price,
            stop_price=stop if stop is not None else old.stop_price,
            trail_price=old.trail_price,
            trail_percent=old.trail_percent,
            hwm=old.hwm,
            extended_hours=old.extended_hours,
            position_intent=old.position_intent,
            replaces=old.id,
            parent_id=old.parent_id,
            active=old.active,
            triggered=old.triggered,
        )
        if trail is not None:
            if old.trail_price is not None:
                new.trail_price = trail
            else:
                new.trail_percent = trail
            self._set_trail_stop(new)
        return new

    # -- positions ---------------------------------------------------------------------------
    def close_position(self, symbol: str, qty: Decimal | None, percentage: Decimal | None
                       ) -> dict[str, Any]:
        """DELETE /v2/positions/{symbol}: a market order closing all or part of it."""
        with self.lock:
            position = self._find_position(symbol)
            amount = abs(position.qty)
            if qty is not None:
                amount = qty
            elif percentage is not None:
                amount = (amount * percentage / 100).quantize(_QTY_STEP, ROUND_DOWN)
            if amount <= 0 or amount > abs(position.qty):
                raise forbidden(
                    f"insufficient qty available for order (requested: {text(amount)}, "
                    f"available: {text(abs(position.qty))})"
                )
            side = "sell" if position.qty > 0 else "buy"
            body = {"symbol": position.symbol, "qty": str(amount), "side": side,
                    "type": "market", "time_in_force": "day"}
            request = parse_submit(body)
            order = self._create(request)
            snapshot = order_json(order, self.orders)
            self._after_accept(order)
            self.notify()
            return snapshot

    def close_all_positions(self, cancel_orders: bool) -> list[dict[str, Any]]:
        with self.lock:
            if cancel_orders:
                self.cancel_all()
            out = []
            for symbol in sorted(self.positions):
                out.append({"symbol": symbol, "status": 200,
                            "body": self.close_position(symbol, None, None)})
            return out

    def _find_position(self, symbol_or_id: str) -> Position:
        for position in self.positions.values():
            if symbol_or_id.upper() == position.symbol or symbol_or_id == asset_id(
                position.symbol
            ):
                return position
        raise not_found("position does not exist")

    def position_json(self, position: Position) -> dict[str, Any]:
        price = self.mark(position.symbol) or position.avg_entry_price
        value = position.qty * price
        cost = position.cost
        pl = value - cost
        return {
            "asset_id": asset_id(position.symbol),
            "symbol": position.symbol,
            "exchange": "NASDAQ",
            "asset_class": "us_equity",
            "asset_marginable": True,
            "qty": text(position.qty),
            "qty_available": text(position.qty),
            "avg_entry_price": text(position.avg_entry_price.quantize(Decimal("0.0001"))),
            "side": "long" if position.qty > 0 else "short",
            "market_value": text(value),
            "cost_basis": text(cost),
            "unrealized_pl": text(pl),
            "unrealized_plpc": text((pl / abs(cost)).quantize(Decimal("0.0000000001"))
                                    if cost else Decimal(0)),
            "unrealized_intraday_pl": text(pl),
            "unrealized_intraday_plpc": text((pl / abs(cost)).quantize(Decimal("0.0000000001"))
                                             if cost else Decimal(0)),
            "current_price": text(price),
            "lastday_price": text(price),
            "change_today": "0",
        }

    # -- account -----------------------------------------------------------------------------
    def market_values(self) -> tuple[Decimal, Decimal]:
        long_value = short_value = Decimal(0)
        for position in self.positions.values():
            price = self.mark(position.symbol) or position.avg_entry_price
            if position.qty > 0:
                long_value += position.qty * price
            else:
                short_value += position.qty * price
        return long_value, short_value

    def buying_power(self) -> Decimal:
        """A cash-like account (multiplier 1): equity less what positions and open buy orders
        use; shorts use it as much as longs."""
        long_value, short_value = self.market_values()
        equity = self.cash + long_value + short_value
        reserved = Decimal(0)
        for order in self.orders.values():
            if order.is_open and order.side == "buy" and order.active:
                if order.notional is not None and order.qty is None:
                    reserved += order.notional
                    continue
                quote = self.quotes.get(order.symbol)
                price = order.limit_price or order.stop_price or (quote.ask if quote else 0)
                reserved += (order.remaining or Decimal(0)) * price
        return max(Decimal(0), equity - long_value + short_value - reserved)

    def account_json(self) -> dict[str, Any]:
        long_value, short_value = self.market_values()
        equity = self.cash + long_value + short_value
        buying_power = text(self.buying_power())
        return {
            "id": ACCOUNT_ID,
            "admin_configurations": {},
            "user_configurations": None,
            "account_number": ACCOUNT_NUMBER,
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "options_approved_level": 0,
            "options_trading_level": 0,
            "currency": "USD",
            "buying_power": buying_power,
            "regt_buying_power": buying_power,
            "daytrading_buying_power": "0",
            "effective_buying_power": buying_power,
            "non_marginable_buying_power": buying_power,
            "options_buying_power": buying_power,
            "bod_dtbp": "0",
            "cash": text(self.cash),
            "accrued_fees": "0",
            "portfolio_value": text(equity),
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": "2024-01-02T14:30:00.000000Z",
            "trade_suspended_by_user": False,
            "multiplier": "1",
            "shorting_enabled": True,
            "equity": text(equity),
            "last_equity": text(self.initial_cash),
            "long_market_value": text(long_value),
            "short_market_value": text(short_value),
            "position_market_value": text(long_value - short_value),
            "initial_margin": text(long_value - short_value),
            "maintenance_margin": text(long_value - short_value),
            "last_maintenance_margin": "0",
            "sma": "0",
            "daytrade_count": 0,
            "balance_asof": self.clock().astimezone(market.NEW_YORK).date().isoformat(),
            "crypto_tier": 0,
            "intraday_adjustments": "0",
            "pending_reg_taf_fees": "0",
        }

    def asset_json(self, symbol: str) -> dict[str, Any]:
        fractionable = symbol not in self.not_fractionable
        return {
            "id": asset_id(symbol),
            "class": "us_equity",
            "exchange": "NASDAQ",
            "symbol": symbol,
            "name": f"{symbol} Fake Inc. Common Stock",
            "status": "active",
            "tradable": True,
            "marginable": True,
            "maintenance_margin_requirement": 30,
            "margin_requirement_long": "30",
            "margin_requirement_short": "30",
            "shortable": symbol not in self.not_shortable,
            "easy_to_borrow": symbol not in self.not_shortable,
            "fractionable": fractionable,
            "min_order_size": None,
            "min_trade_increment": None,
            "price_increment": None,
            "attributes": ["fractional_eh_enabled"] if fractionable else [],
        }

    def all_symbols(self) -> list[str]:
        return sorted(self.symbols | set(self.quotes) | set(self.bars))


def _one_minute() -> timedelta:
    return timedelta(minutes=1)


def _quote_message(quote: Quote) -> dict[str, Any]:
    return {
        "T": "q", "S": quote.symbol,
        "bx": "V", "bp": float(quote.bid), "bs": quote.bid_size,
        "ax": "V", "ap": float(quote.ask), "as": quote.ask_size,
        "t": quote.at, "c": ["R"], "z": "C",
    }


def _bar_message(bar: Bar) -> dict[str, Any]:
    volume = bar.volume
    return {
        "T": "b", "S": bar.symbol.upper(),
        "o": float(bar.open), "h": float(bar.high), "l": float(bar.low), "c": float(bar.close),
        "v": int(volume) if volume == volume.to_integral_value() else float(volume),
        "t": bar.timestamp, "n": 1, "vw": float(bar.close),
    }


__all__ = ["ApiError", "Broker", "Outgoing", "Position"]
