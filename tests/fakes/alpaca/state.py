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
from tests.fakes.alpaca.ledger import QTY_STEP, Ledger, Position
from tests.fakes.alpaca.market import Quote
from tests.fakes.alpaca.matching import Matching
from tests.fakes.alpaca.orders import TIME_IN_FORCE, Order, Submitted, order_json, parse_submit
from tests.fakes.alpaca.values import (
    ApiError,
    check_price_increment,
    decimals_of,
    forbidden,
    iso,
    not_found,
    parse_decimal,
    text,
    unprocessable,
)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One stream message waiting for delivery: a trade update, or market data of a channel."""

    kind: str  # "trade" | "data"
    payload: dict[str, Any]
    channel: str = ""  # "bars" | "quotes" for data
    symbol: str = ""


class Broker(Matching, Ledger):
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
        self.trade_updates: list[dict[str, Any]] = []  # every one sent, listened to or not
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
        self.spreads: dict[str, Decimal] = {}  # around a pushed bar's close; 0 unless set
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
        self.trade_updates.append(data)

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
        half = self.spreads.get(symbol, Decimal(0)) / 2
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
            day_order = order.time_in_force in ("day", "opg", "cls")
            if order.is_open and day_order and self._top_level(order):
                self._finish(order, "expired", "expired")

    def _top_level(self, order: Order) -> bool:
        """An order, or a leg whose parent is done (the leg then stands for its group)."""
        return order.parent_id is None or not self.orders[order.parent_id].is_open

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

    def _create(self, request: Submitted) -> Order:
        now = self.clock()
        status = "accepted"  # the answer to the POST; routed ("new") right after, if open
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
        """Route an accepted order when the market takes it (a `new` update), then work it."""
        if order.status != "accepted" or not self._accepts_now(order.extended_hours):
            return
        order.status = "new"
        order.touch(self.clock())
        self._emit_trade("new", order)
        self._work(order, None)

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
            # The exits of a bracket or an oco stand or fall together.
            for sibling in self._siblings(order):
                if sibling.is_open:
                    self._finish(sibling, "canceled", "canceled")
            self.notify()

    def cancel_all(self) -> list[dict[str, Any]]:
        with self.lock:
            out = []
            for order in list(self.orders.values()):
                if order.is_open and self._top_level(order):
                    self._finish(order, "canceled", "canceled")
                    out.append(
                        {"id": order.id, "status": 200, "body": order_json(order, self.orders)}
                    )
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
            if new.status == "held":  # a bracket's stop leg: works once its parent filled
                self._work(new, None)
            self._after_accept(new)
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
                if old.type not in (
                    ("limit", "stop_limit") if name == "limit_price" else ("stop", "stop_limit")
                ):
                    raise unprocessable(f"cannot replace {name} of a {old.type} order", 40010001)
                check_price_increment(value, name)
        if trail is not None and old.type != "trailing_stop":
            raise unprocessable(f"cannot replace trail of a {old.type} order", 40010001)
        tif = body.get("time_in_force") or old.time_in_force
        if tif not in TIME_IN_FORCE:
            raise unprocessable(f"invalid time_in_force: {tif}", 40010001)
        client_order_id = body.get("client_order_id") or str(uuid.uuid4())
        if not isinstance(client_order_id, str):
            raise unprocessable("invalid client_order_id", 40010001)
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
            status="held" if old.status == "held" else "accepted",
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
            if trail <= 0:
                raise unprocessable("invalid trail: must be > 0", 40010001)
            if old.trail_price is not None:
                new.trail_price = trail
            else:
                new.trail_percent = trail
            self._set_trail_stop(new)
        return new

    # -- positions ---------------------------------------------------------------------------
    def close_position(
        self, symbol: str, qty: Decimal | None, percentage: Decimal | None
    ) -> dict[str, Any]:
        """DELETE /v2/positions/{symbol}: a market order closing all or part of it."""
        with self.lock:
            position = self._find_position(symbol)
            amount = abs(position.qty)
            if qty is not None:
                amount = qty
            elif percentage is not None:
                amount = (amount * percentage / 100).quantize(QTY_STEP, ROUND_DOWN)
            if amount <= 0 or amount > abs(position.qty):
                raise forbidden(
                    f"insufficient qty available for order (requested: {text(amount)}, "
                    f"available: {text(abs(position.qty))})"
                )
            side = "sell" if position.qty > 0 else "buy"
            body = {
                "symbol": position.symbol,
                "qty": str(amount),
                "side": side,
                "type": "market",
                "time_in_force": "day",
            }
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
                out.append(
                    {
                        "symbol": symbol,
                        "status": 200,
                        "body": self.close_position(symbol, None, None),
                    }
                )
            return out


def _one_minute() -> timedelta:
    return timedelta(minutes=1)


def _quote_message(quote: Quote) -> dict[str, Any]:
    return {
        "T": "q",
        "S": quote.symbol,
        "bx": "V",
        "bp": float(quote.bid),
        "bs": quote.bid_size,
        "ax": "V",
        "ap": float(quote.ask),
        "as": quote.ask_size,
        "t": quote.at,
        "c": ["R"],
        "z": "C",
    }


def _bar_message(bar: Bar) -> dict[str, Any]:
    volume = bar.volume
    return {
        "T": "b",
        "S": bar.symbol.upper(),
        "o": float(bar.open),
        "h": float(bar.high),
        "l": float(bar.low),
        "c": float(bar.close),
        "v": int(volume) if volume == volume.to_integral_value() else float(volume),
        "t": bar.timestamp,
        "n": 1,
        "vw": float(bar.close),
    }


__all__ = ["ApiError", "Broker", "Outgoing", "Position"]
