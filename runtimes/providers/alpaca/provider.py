"""AlpacaProvider: one session on an Alpaca account (paper or live) behind the Trading API.

Orders go through Alpaca's REST API (rest.py) with this session's client_order_id prefix, so
that several sessions can share one connection and each sees only its own orders; positions and
the account are the Alpaca account's. Executions arrive on the trade_updates stream (streams.py
calls `on_trade_update` on its thread): they are queued as order, trade, position and account
events, each once, and the host is woken. Market data (quotes, candles, history, staleness) is
AlpacaMarketData's; `drain_events` merges both in time order.

When the trade stream drops, the session is told (BROKER_DISCONNECTED); once it is back the
provider reconciles (fills and orders since the last one seen) before it says
BROKER_RECONNECTED. A provider restored from a snapshot reconciles before `build` returns, so the
host takes no order before the session is up to date.
"""

from __future__ import annotations

import heapq
import logging
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from runtimes.core.bars import Bar
from runtimes.core.connection import (
    STREAM_CONNECTED,
    STREAM_FAILED,
    STREAM_RECONNECTING,
    BrokerConnection,
    ConnectionHealth,
    HealthSink,
)
from runtimes.core.domain import (
    ZERO,
    Account,
    Fill,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Quote,
    RejectReason,
)
from runtimes.core.errors import OrderNotFound, OrderNotModifiable, OrderValidationError
from runtimes.core.events import (
    ConnectionEvent,
    Event,
    OrderEvent,
    OrderEventKind,
    TradeEvent,
)
from runtimes.core.provider import JsonDict, Pacing, Wake
from runtimes.core.takeover import Reconciliation
from runtimes.core.wire import timestamp_str
from runtimes.providers.alpaca import mapping as m
from runtimes.providers.alpaca.book import Book
from runtimes.providers.alpaca.breaker import CircuitBreaker
from runtimes.providers.alpaca.dues import (
    CREATING,
    EVENT_KINDS,
    AccountDue,
    PositionDue,
    Queued,
    complete,
)
from runtimes.providers.alpaca.orders import (
    check_oco_leg,
    check_oco_pair,
    check_request,
    order_error,
    position_error,
    reject_reason,
    submit_error,
)
from runtimes.providers.alpaca.ports import MarketData, Streams
from runtimes.providers.alpaca.rest import AlpacaError, AlpacaRest
from runtimes.providers.alpaca.symbols import normalise, path_symbol

log = logging.getLogger(__name__)

BROKER: Final = "alpaca"
SNAPSHOT_VERSION: Final = 1
CLOCK_REFRESH_SECONDS: Final = 60.0
CLOCK_RETRY_SECONDS: Final = 5.0
RECONCILE_MARGIN: Final = timedelta(seconds=5)  # activities are fetched from a little earlier
TRADE_STREAM: Final = "trade_updates"
LOCAL_PREFIX: Final = "oco-"  # ids of OCO orders held here until their pair arrives
PAGE_SIZE: Final = 100  # Alpaca's largest page of account activities
CAPABILITIES: Final[JsonDict] = {
    "supported_asset_classes": ["STOCK"],
    "supported_order_types": ["MARKET", "LIMIT", "STOP", "STOP_LIMIT", "TRAILING_STOP"],
    "supported_time_in_force": ["GTC", "DAY", "IOC", "FOK"],
    "position_mode": "NETTING",
    "features": ["bracket_orders", "oco_orders", "fractional_quantities",
                 "client_order_id_idempotency", "order_replace", "notional_orders"],
    "max_leverage": "1",
}


class AlpacaProvider:
    """Provider and Venue of one session on an Alpaca account."""

    broker = BROKER
    pacing = Pacing.WALL_CLOCK

    def __init__(self, *, platform: str, connection: BrokerConnection, rest: AlpacaRest,
                 market: MarketData, health: HealthSink, prefix: str, wake: Wake) -> None:
        self.platform = platform
        self.connection = connection
        self.rest = rest
        self.market = market
        self.streams: Streams | None = None
        self._health_sink = health
        self.ids = m.ClientIds(prefix)
        self.book = Book()
        self._wake = wake
        self._lock = threading.Lock()  # the queue and the connection state
        self._queue: list[Queued] = []
        self._stream_states: dict[str, str] = {}
        self._disconnected_at: datetime | None = None
        self._reconcile_due = False
        self._reconcile_not_before = datetime.min.replace(tzinfo=UTC)  # after a failed one
        self._quiet_reconnect = False  # the first connect's reconcile tells nobody of a drop
        self._clock_raw: JsonDict | None = None
        self._clock_read_at: datetime | None = None
        self.exit_breaker = CircuitBreaker()
        self._last_health: ConnectionHealth | None = None
        self._health_due = False  # a stream's state changed: report at the next drain
        self._closed = False
        rest.emit, rest.changed = self._push, self.health_changed

    # -- time ---------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return datetime.now(UTC)

    def next_due(self) -> float | None:
        if self._reconcile_due:
            return max(0.0, (self._reconcile_not_before - self.now).total_seconds())
        due = 0.0  # never read, or read again soon (an order started working: the open?)
        if self._clock_read_at is not None:
            due = CLOCK_REFRESH_SECONDS - (self.now - self._clock_read_at).total_seconds()
        market_due = self.market.next_due()
        return max(0.0, due if market_due is None else min(due, market_due))

    def advance(self, now: datetime) -> None:
        self.market.advance(now)
        if self._reconcile_due and now >= self._reconcile_not_before:
            self._reconcile_after_drop(now)
        read_at = self._clock_read_at
        due = read_at is None or (now - read_at).total_seconds() >= CLOCK_REFRESH_SECONDS
        if due and not self._try(self.refresh_clock):
            # not now (rate limited, unreachable): again in a few seconds, not in a busy loop
            self._clock_read_at = now - timedelta(seconds=CLOCK_REFRESH_SECONDS
                                                  - CLOCK_RETRY_SECONDS)

    def refresh_clock(self) -> None:
        """GET /v2/clock: whether the market is open, and the next open and close."""
        self._clock_raw = self.rest.get("/clock")
        self._clock_read_at = self.now
        self._report_health()

    @property
    def market_open(self) -> bool | None:
        raw = self._clock_raw
        return None if raw is None else bool(raw.get("is_open"))

    # -- orders -------------------------------------------------------------------------------

    def submit_order(self, request: OrderRequest) -> Order:
        check_request(request)
        request = replace(request, symbol=normalise(request.symbol))
        if request.equity_fraction is not None:
            request = self._as_notional(request)
        if request.oco_group_id is not None:
            return self._submit_oco(request)
        if request.client_order_id is not None:
            alpaca_id = self.ids.for_strategy(request.client_order_id)
        else:
            alpaca_id = self.ids.generated(uuid.uuid4().hex[:20])
        try:
            raw = self.rest.post("/orders", m.order_body(request, alpaca_id))
        except AlpacaError as error:
            if error.status == 422 and request.client_order_id is not None:
                again = self.order_by_client_id(request.client_order_id)
                if again is not None:  # Alpaca has it already: a retry of the same order
                    return again
            raise submit_error(error) from None
        order = self._take(raw)
        self._announce(order, OrderEventKind.ORDER_CREATED)
        return order

    def _as_notional(self, request: OrderRequest) -> OrderRequest:
        """A live broker sizes from equity at submit: the fraction of the account's equity now
        becomes the notional Alpaca gets (its fill price then decides the quantity)."""
        fraction = request.equity_fraction or ZERO
        notional = fraction * m.dec0(self.rest.get("/account").get("equity"))
        if notional < m.CENT:
            raise OrderValidationError.invalid("equity_fraction", fraction,
                                               "of the account's equity is less than a cent")
        return replace(request, notional=notional, equity_fraction=None)

    def _submit_oco(self, request: OrderRequest) -> Order:
        """An OCO group's first order waits (PENDING) for its pair; with the pair, both go to
        Alpaca as one `oco` order: the LIMIT is its take profit (the parent), the STOP or
        STOP_LIMIT its stop loss (the leg). The first keeps the id it was given."""
        check_oco_leg(request)
        group = str(request.oco_group_id)
        with self.book.lock:
            held = self.book.held_oco.get(group)
            if held is None:
                return self._hold_oco(group, request)
        first, first_request = held
        if request.client_order_id is not None and request.client_order_id == \
                first.client_order_id:
            return first  # a retry of the first order
        check_oco_pair(first_request, request)
        take, stop = (first_request, request) if first.order_type is OrderType.LIMIT else (
            request, first_request)
        named = take.client_order_id or stop.client_order_id
        alpaca_id = self.ids.for_strategy(named) if named else self.ids.generated(
            uuid.uuid4().hex[:20])
        with self.book.lock:
            try:
                raw = self.rest.post("/orders", m.oco_body(take, stop, alpaca_id))
            except AlpacaError as error:
                raise submit_error(error) from None
            return self._paired(group, first, raw)

    def _hold_oco(self, group: str, request: OrderRequest) -> Order:
        now = self.now
        order = Order(id=f"{LOCAL_PREFIX}{uuid.uuid4().hex[:20]}", symbol=request.symbol,
                      side=request.side, order_type=request.order_type, quantity=request.quantity,
                      status=OrderStatus.PENDING, time_in_force=request.time_in_force,
                      created_at=now, updated_at=now, client_order_id=request.client_order_id,
                      limit_price=request.limit_price, stop_price=request.stop_price,
                      position_id=request.symbol, oco_group_id=group)
        self.book.held_oco[group] = (order, request)
        self.book.remember(order)
        self._announce(order, OrderEventKind.ORDER_CREATED)
        return order

    def _paired(self, group: str, first: Order, raw: JsonDict) -> Order:
        """Alpaca took the pair (under the book's lock): the first order becomes the Alpaca
        order of its type under its own id; the second is returned."""
        legs = raw.get("legs") or []
        leg_raw = legs[0] if legs else {"id": ""}
        first_alpaca = str(raw["id"] if first.order_type is OrderType.LIMIT else leg_raw["id"])
        self.book.alias[first_alpaca] = first.id
        self.book.oco_groups[str(raw["id"])] = group
        self.book.oco_groups[str(leg_raw["id"])] = group
        del self.book.held_oco[group]
        parent = self._take(raw)
        leg = self._take(leg_raw) if legs else parent
        paired, second = (parent, leg) if parent.id == first.id else (leg, parent)
        paired = replace(paired, client_order_id=first.client_order_id)
        self.book.remember(paired)
        items: list[Queued] = [OrderEvent(OrderEventKind.ORDER_MODIFIED, paired,
                                           paired.updated_at)]
        if self.book.announce(second.id):
            items.append(OrderEvent(OrderEventKind.ORDER_CREATED, second, second.updated_at))
        self._push(*items)
        return second

    def modify_order(
        self,
        order_id: str,
        *,
        quantity: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        stop_loss: Decimal | None = None,
        take_profit: Decimal | None = None,
        trailing_distance: Decimal | None = None,
    ) -> tuple[Order, str | None]:
        """Alpaca replaces: the order gets a new id, the old one ends as `replaced`
        (CANCELLED). A bracket's stop loss or take profit is a replace of that leg."""
        current = self.order(order_id)
        if stop_loss is not None or take_profit is not None:
            return self._modify_exit(current, stop_loss=stop_loss, take_profit=take_profit)
        if self.book.held(order_id) is not None:
            raise OrderNotModifiable(order_id, "order is not at Alpaca yet (its OCO pair is not)")
        if not current.is_open:
            raise OrderNotModifiable(order_id)
        body = m.replace_body(quantity=quantity, limit_price=limit_price,
                              stop_price=stop_price, trail=trailing_distance)
        if not body:
            raise OrderValidationError.missing("quantity")
        # The book's lock is held across the call: the stream's `replaced` of the old order
        # waits, so that the events go out as ORDER_MODIFIED (new) then ORDER_CANCELLED (old).
        with self.book.lock:
            try:
                raw = self.rest.patch(f"/orders/{self.book.alpaca_id(order_id)}", body)
            except AlpacaError as error:
                raise order_error(error, order_id) from None
            replaced = self.book.alpaca_id(order_id)
            if replaced in self.book.closing:
                self.book.closing.add(str(raw["id"]))
            if replaced in self.book.foreign:
                self.book.foreign[str(raw["id"])] = self.book.foreign[replaced]
            if replaced in self.book.oco_groups:
                self.book.oco_groups[str(raw["id"])] = self.book.oco_groups[replaced]
            new = self._take(raw)
            old = replace(current, status=OrderStatus.CANCELLED, updated_at=new.created_at)
            self.book.remember(old)
            items: list[Queued] = []
            if self.book.announce(new.id):
                items.append(OrderEvent(OrderEventKind.ORDER_MODIFIED, new, new.updated_at,
                                        parent_order_id=new.parent_order_id))
            if self.book.first_time((old.id, "replaced", str(old.filled_quantity))):
                items.append(OrderEvent(OrderEventKind.ORDER_CANCELLED, old, old.updated_at,
                                        parent_order_id=old.parent_order_id))
            self._push(*items, wake=False)
        self._wake()
        return new, order_id

    def _modify_exit(self, parent: Order, *, stop_loss: Decimal | None,
                     take_profit: Decimal | None) -> tuple[Order, str | None]:
        """A bracket's stop loss or take profit: a replace of that leg (the entry may have
        filled; its exits still work). The bracket's order comes back with its new exits."""
        legs = [o for o in self.orders(open_only=True) if o.parent_order_id == parent.id]
        changed = False
        for leg in legs:
            if stop_loss is not None and leg.order_type in (OrderType.STOP,
                                                            OrderType.STOP_LIMIT):
                self.modify_order(leg.id, stop_price=stop_loss)
                changed = True
            elif take_profit is not None and leg.order_type is OrderType.LIMIT:
                self.modify_order(leg.id, limit_price=take_profit)
                changed = True
        if not changed:
            raise OrderNotModifiable(parent.id, "no open exit of this order to change")
        return self.order(parent.id), None

    def cancel_order(self, order_id: str) -> Order:
        current = self.order(order_id)
        if not current.is_open:
            raise OrderNotModifiable(order_id)
        held = self.book.held(order_id)
        if held is not None:  # never sent: cancelled here
            with self.book.lock:
                self.book.held_oco.pop(held[0], None)
                cancelled = replace(current, status=OrderStatus.CANCELLED, updated_at=self.now)
                self.book.remember(cancelled)
                self._push(OrderEvent(OrderEventKind.ORDER_CANCELLED, cancelled,
                                      cancelled.updated_at))
            return cancelled
        try:
            self.rest.delete(f"/orders/{self.book.alpaca_id(order_id)}")
        except AlpacaError as error:
            raise order_error(error, order_id) from None
        return self.order(order_id)

    def close_position(self, symbol_or_position_id: str, quantity: Decimal | None = None,
                       order_type: str = "MARKET", limit_price: Decimal | None = None) -> Order:
        """DELETE /v2/positions/{symbol}: Alpaca's own closing market order (reduce-only)."""
        symbol = normalise(symbol_or_position_id)
        if order_type != "MARKET" or limit_price is not None:
            raise OrderValidationError.invalid("order_type", order_type,
                                               "must be MARKET to close a position on Alpaca")
        params = None if quantity is None else {"qty": m.qty_str(quantity)}
        try:
            raw = self.rest.call("DELETE", f"/positions/{path_symbol(symbol)}", params,
                                 breaker=self.exit_breaker)
        except AlpacaError as error:
            raise position_error(error, symbol) from None
        with self.book.lock:
            self.book.foreign[str(raw["id"])] = None
            self.book.closing.add(str(raw["id"]))
        order = self._take(raw)
        self._announce(order, OrderEventKind.ORDER_CREATED)
        return order

    # -- reads --------------------------------------------------------------------------------

    def orders(self, *, open_only: bool = False, symbol: str | None = None) -> list[Order]:
        # status=all even for open ones: with nested=true, a bracket's working exits hang under
        # an entry that is filled (closed) already
        params: dict[str, Any] = {"status": "all", "limit": 500, "nested": "true",
                                  "direction": "desc"}
        if symbol is not None:
            params["symbols"] = normalise(symbol)
        found: list[Order] = []
        for raw in reversed(self.rest.get("/orders", params) or []):
            if self._mine(raw):
                found.extend(self._flatten(raw))
        with self.book.lock:  # OCO orders that never reached Alpaca: waiting, or cancelled
            sent = set(self.book.alias.values())
            found += [o for o in self.book.orders.values()
                      if o.id.startswith(LOCAL_PREFIX) and o.id not in sent]
        if open_only:
            found = [o for o in found if o.is_open]
        if symbol is not None:
            found = [o for o in found if o.symbol == normalise(symbol)]
        return found

    def all_orders(self) -> list[Order]:
        return self.orders()

    def order(self, order_id: str) -> Order:
        held = self.book.held(order_id)
        if held is not None:
            return held[1]
        with self.book.lock:
            local = self.book.orders.get(order_id)
        if local is not None and order_id.startswith(LOCAL_PREFIX) and not local.is_open \
                and order_id not in self.book.alias.values():
            return local  # a held OCO order cancelled before it was sent
        try:
            raw = self.rest.get(f"/orders/{self.book.alpaca_id(order_id)}", {"nested": "true"})
        except AlpacaError as error:
            raise order_error(error, order_id) from None
        if not self._mine(raw):
            raise OrderNotFound(order_id)
        return self._take(raw)

    def order_by_client_id(self, client_order_id: str) -> Order | None:
        try:
            raw = self.rest.get("/orders:by_client_order_id",
                                {"client_order_id": self.ids.for_strategy(client_order_id)})
        except AlpacaError as error:
            if error.status in (404, 422):
                return None
            raise order_error(error, client_order_id) from None
        return self._take(raw)

    def fills(self, *, symbol: str | None = None, order_id: str | None = None) -> list[Fill]:
        with self.book.lock:
            return [f for f in self.book.fills
                    if (symbol is None or f.symbol == normalise(symbol))
                    and (order_id is None or f.order_id == order_id)]

    def positions(self) -> list[Position]:
        return [self._position(raw) for raw in self.rest.get("/positions") or []]

    def position(self, symbol_or_position_id: str) -> Position:
        symbol = normalise(symbol_or_position_id)
        try:
            raw = self.rest.get(f"/positions/{path_symbol(symbol)}")
        except AlpacaError as error:
            raise position_error(error, symbol) from None
        return self._position(raw)

    def account(self) -> Account:
        positions = self.positions()
        raw = self.rest.get("/account")
        unrealized = sum((p.unrealized_pnl for p in positions), ZERO)
        return m.to_account(raw, unrealized_pnl=unrealized)

    def quote(self, symbol: str) -> Quote:
        return self.market.quote(normalise(symbol))

    def history(self, symbol: str, start: datetime | None = None, end: datetime | None = None,
                limit: int | None = None) -> list[Bar]:
        return self.market.history(normalise(symbol), start, end, limit)

    # -- events -------------------------------------------------------------------------------

    def drain_events(self) -> list[Event]:
        """The market's events and this session's, in time order; a fill's position and the
        account are read here (once per drain) so a burst of fills costs two requests."""
        with self._lock:
            queued, self._queue = self._queue, []
            health_due, self._health_due = self._health_due, False
        if health_due:
            self._report_health()
        events = self._complete(queued)
        market = self.market.drain_events()
        if not market:
            return events
        # each list keeps its own order (a fill's order, trade, position, account events stay
        # together); the two interleave by time
        return list(heapq.merge(market, events, key=lambda e: e.timestamp))

    def _complete(self, queued: list[Queued]) -> list[Event]:
        """Positions and the account after fills, read once; when Alpaca cannot answer, the
        other events go out now and these at the next drain."""
        if not any(isinstance(q, PositionDue | AccountDue) for q in queued):
            return [q for q in queued if not isinstance(q, PositionDue | AccountDue)]
        try:
            listed = self.positions()
            raw = self.rest.get("/account")
        except Exception as exc:  # the broker is busy: the rest goes out, these at the next drain
            log.warning("alpaca: positions/account not read after fills: %s", type(exc).__name__)
            with self._lock:
                self._queue[:0] = [q for q in queued if isinstance(q, PositionDue | AccountDue)]
            return [q for q in queued if not isinstance(q, PositionDue | AccountDue)]
        account = m.to_account(raw, unrealized_pnl=sum((p.unrealized_pnl for p in listed), ZERO))
        with self.book.lock:
            return complete(queued, {p.symbol: p for p in listed}, account, self.book.opened_at)

    def _push(self, *items: Queued, wake: bool = True) -> None:
        """Queue events (the book's lock first, always, then the queue's: one order). Callers
        holding the book's lock wake the host after releasing it."""
        with self.book.lock, self._lock:
            self._queue.extend(items)
        if wake:
            self._wake()

    # -- the trade stream (StreamListener; called on the SDK's thread) ------------------------

    def on_trade_update(self, update: dict[str, Any]) -> None:
        try:
            self._trade_update(update)
        except Exception:  # never let one odd message kill the SDK's stream
            log.exception("alpaca trade update not understood (event %r)", update.get("event"))

    def _trade_update(self, update: dict[str, Any]) -> None:
        raw = update.get("order") or {}
        if not raw.get("id") or not self._mine(raw):
            return
        event = str(update.get("event") or "")
        items: list[Queued] = []
        with self.book.lock:  # held while queueing: a submit's ORDER_CREATED cannot overtake
            before = self.book.orders.get(self.book.alias.get(str(raw["id"]), str(raw["id"])))
            order = self._take(raw)
            if event in ("rejected", "suspended"):
                order = replace(order, reject_reason=reject_reason(update.get("reason")))
                self.book.remember(order)
            items += self._creation(order, raw)
            if event in ("fill", "partial_fill"):
                items += self._fill_items(update, order)
            elif event not in CREATING:
                items += self._change_items(event, order)
            elif before is not None and before.status is OrderStatus.PENDING and \
                    order.status is OrderStatus.OPEN:
                items += self._working(order)
            if items:
                self._push(*items, wake=False)
        if items:
            self._wake()

    def _creation(self, order: Order, raw: JsonDict) -> list[Queued]:
        if not self.book.announce(order.id):
            return []
        kind = OrderEventKind.ORDER_MODIFIED if raw.get("replaces") else \
            OrderEventKind.ORDER_CREATED
        fresh = order if order.filled_quantity == 0 else replace(
            order, status=OrderStatus.OPEN, filled_quantity=ZERO, average_fill_price=None,
            updated_at=order.created_at)
        return [OrderEvent(kind, fresh, fresh.updated_at, parent_order_id=order.parent_order_id)]

    def _fill_items(self, update: dict[str, Any], order: Order) -> list[Queued]:
        fill = m.fill_from_update(update, order)
        if fill is None or not self.book.add_fill(fill, cumulative=order.filled_quantity):
            return []
        kind = OrderEventKind.ORDER_FILLED if order.status is OrderStatus.FILLED else \
            OrderEventKind.ORDER_PARTIALLY_FILLED
        return [
            OrderEvent(kind, order, fill.timestamp, parent_order_id=order.parent_order_id),
            TradeEvent(fill, fill.timestamp),
            PositionDue(fill.symbol, fill.quantity * fill.side.sign,
                         m.dec(update.get("position_qty")), fill.timestamp),
            AccountDue(fill.timestamp),
        ]

    def _working(self, order: Order) -> list[Queued]:
        """A PENDING order is working now (the market opened, a bracket's entry filled): the
        strategy is told, and the market clock is read again soon (it probably opened)."""
        self._clock_read_at = None
        if not self.book.first_time((order.id, "working", str(order.filled_quantity))):
            return []
        return [OrderEvent(OrderEventKind.ORDER_MODIFIED, order, order.updated_at,
                           parent_order_id=order.parent_order_id)]

    def _change_items(self, event: str, order: Order) -> list[Queued]:
        kind = EVENT_KINDS.get(event)
        if kind is None:
            if event not in ("order_cancel_rejected", "order_replace_rejected", "calculated"):
                log.warning("alpaca trade update %r not mapped; order %s", event, order.id)
            return []
        if not self.book.first_time((order.id, event, str(order.filled_quantity))):
            return []
        if event == "replaced":
            order = replace(order, status=OrderStatus.CANCELLED)
            self.book.remember(order)
        return [OrderEvent(kind, order, order.updated_at, parent_order_id=order.parent_order_id)]

    def expect_first_connect(self) -> None:
        """Until the trade stream first connects, fills can happen unseen (an order sent at
        once, a session taken over): its first connect reconciles, without telling the
        strategy of a drop that it never saw."""
        with self._lock:
            self._disconnected_at = self.now
            self._quiet_reconnect = True

    def on_stream_state(self, stream: str, state: str, error: str | None) -> None:
        """Called on the SDK's event-loop thread: the state is noted and the host woken; the
        health sink (a database write in production, not allowed on an event loop) is told on
        the host's thread, at the next drain."""
        now = self.now
        with self._lock:
            self._stream_states[stream] = state
            event: ConnectionEvent | None = None
            if stream == TRADE_STREAM:
                if state == STREAM_RECONNECTING and (self._disconnected_at is None
                                                     or self._quiet_reconnect):
                    self._disconnected_at, self._quiet_reconnect = now, False
                    event = ConnectionEvent("BROKER_DISCONNECTED", BROKER, now, error=error)
                elif state == STREAM_CONNECTED and self._disconnected_at is not None:
                    self._reconcile_due = True
                elif state == STREAM_FAILED:
                    event = ConnectionEvent("BROKER_CONNECTION_FAILED", BROKER, now,
                                            error=error)
            if event is not None:
                self._queue.append(event)
            self._health_due = True
        self._wake()

    # -- reconcile ----------------------------------------------------------------------------

    def _reconcile_after_drop(self, now: datetime) -> None:
        """The trade stream is back: fetch what happened meanwhile, emit it once, then say
        BROKER_RECONNECTED with the gap and what was reconciled."""
        with self._lock:
            since = self._disconnected_at
        try:
            found = self.reconcile(since=since)
        except Exception as exc:  # the broker is not answering yet: again in a few seconds
            log.warning("alpaca reconcile after a drop failed: %s", type(exc).__name__)
            self._reconcile_not_before = now + timedelta(seconds=CLOCK_RETRY_SECONDS)
            return
        with self._lock:
            self._reconcile_due = False
            self._disconnected_at = None
        if self._quiet_reconnect:
            self._quiet_reconnect = False
            return
        gap = 0 if since is None else int((now - since).total_seconds() * 1000)
        self._push(ConnectionEvent("BROKER_RECONNECTED", BROKER, now, gap_duration_ms=gap,
                                   reconciled=found.as_json()))

    def reconcile(self, *, since: datetime | None) -> Reconciliation:
        """Fills (FILL activities after the last one seen, or after `since`, minus a margin)
        and this session's orders changed since `since`: each missing one is emitted once, as
        the stream would have. `since` None: every order and fill of the session."""
        after = self.book.last_fill_at or since
        activities = self._activities(after)
        mine = {o.id: o for o in self.orders()}  # the 500 latest: a session's recent ones
        new_fills: list[Fill] = []
        for activity in activities:
            alpaca_id = str(activity.get("order_id"))
            order = mine.get(self.book.alias.get(alpaca_id, alpaca_id))
            if order is not None:  # else another session's, or another tool's
                new_fills += self._reconciled_fill(activity, order)
        for order in mine.values():  # changed meanwhile: created, cancelled, expired, rejected
            self._reconciled_order(order, None if since is None else since - RECONCILE_MARGIN)
        open_orders = tuple(o for o in mine.values() if o.is_open)
        return Reconciliation(open_orders=open_orders, positions=tuple(self.positions()),
                              fills_since=tuple(new_fills))

    def _activities(self, after: datetime | None) -> list[JsonDict]:
        """FILL activities after `after` (minus the margin), oldest first, every page."""
        params: dict[str, Any] = {"direction": "asc", "page_size": PAGE_SIZE}
        if after is not None:
            params["after"] = timestamp_str(after - RECONCILE_MARGIN)
        found: list[JsonDict] = []
        while True:
            page = self.rest.get("/account/activities/FILL", params) or []
            found += page
            if len(page) < PAGE_SIZE:
                return found
            params["page_token"] = page[-1]["id"]

    def _reconciled_fill(self, activity: JsonDict, order: Order) -> list[Fill]:
        fill = replace(m.fill_from_activity(activity), order_id=order.id)
        cumulative = m.dec(activity.get("cum_qty"))
        with self.book.lock:
            if not self.book.add_fill(fill, cumulative=cumulative):
                return []
        status_now = order if cumulative is None or cumulative >= order.quantity else replace(
            order, status=OrderStatus.PARTIALLY_FILLED, filled_quantity=cumulative)
        kind = OrderEventKind.ORDER_FILLED if status_now.status is OrderStatus.FILLED else \
            OrderEventKind.ORDER_PARTIALLY_FILLED
        items: list[Queued] = []
        with self.book.lock:
            items += self._creation(order, {})
            self.book.first_time((order.id, "fill", str(status_now.filled_quantity)))
        items += [OrderEvent(kind, status_now, fill.timestamp), TradeEvent(fill, fill.timestamp),
                  PositionDue(fill.symbol, fill.quantity * fill.side.sign, None, fill.timestamp),
                  AccountDue(fill.timestamp)]
        self._push(*items)
        return [fill]

    def _reconciled_order(self, order: Order, since: datetime | None) -> None:
        """An order the stream may not have told of: created (while open) or ended (cancelled,
        expired, rejected) after `since`."""
        if since is not None and order.updated_at < since:
            return
        event = {OrderStatus.CANCELLED: "canceled", OrderStatus.EXPIRED: "expired",
                 OrderStatus.REJECTED: "rejected"}.get(order.status)
        items: list[Queued] = []
        with self.book.lock:
            if order.is_open or since is None or order.created_at >= since:
                items += self._creation(order, {})
            if event is not None:
                items += self._change_items(event, order)
            if items:
                self._push(*items, wake=False)
        if items:
            self._wake()

    # -- description --------------------------------------------------------------------------

    def capabilities(self) -> JsonDict:
        return dict(CAPABILITIES)

    def status(self) -> JsonDict:
        raw = self._clock_raw or {}
        health = self.health()
        return {
            "connected": not self._closed and self._stream_states.get(TRADE_STREAM)
            == STREAM_CONNECTED,
            "last_heartbeat": None if self.rest.last_success_at is None
            else timestamp_str(self.rest.last_success_at),
            "latency_ms": self.rest.latency_ms,
            "market_open": self.market_open,
            "next_open": _iso(raw.get("next_open")),
            "next_close": _iso(raw.get("next_close")),
            "connection": health.as_json(),
        }

    def circuit_breakers(self) -> JsonDict:
        return {"adapter": self.rest.breaker.as_json(), "exit_order": self.exit_breaker.as_json()}

    def health(self) -> ConnectionHealth:
        remaining = self.rest.budget.remaining()
        reset = self.rest.budget.reset_at()
        with self._lock:
            streams = dict(self._stream_states)
        return ConnectionHealth(
            last_success_at=self.rest.last_success_at,
            rate_limit_remaining=remaining,
            rate_limit_reset_at=None if reset is None else datetime.fromtimestamp(reset, UTC),
            streams=streams,
            market_open=self.market_open,
            last_error=self.rest.last_error,
            circuit_breaker="closed" if self.rest.breaker.state == "closed" else "open",
        )

    def _report_health(self) -> None:
        """Tell the sink when anything changed (it throttles what it writes)."""
        health = self.health()
        if health != self._last_health:
            self._last_health = health
            self._health_sink.report(health)

    def health_changed(self) -> None:
        """rest.py's callback: a call succeeded or failed."""
        self._report_health()

    # -- snapshot and lifecycle ---------------------------------------------------------------

    def snapshot(self) -> JsonDict:
        return {"version": SNAPSHOT_VERSION, "prefix": self.ids.prefix,
                "saved_at": timestamp_str(self.now), "book": self.book.to_json()}

    def restore(self, state: JsonDict) -> Reconciliation:
        if state.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"alpaca snapshot version {state.get('version')!r} is not supported")
        self.book.restore(state.get("book") or {})
        saved_at = m.stamp(state.get("saved_at"))
        # what changed after the snapshot: the previous host told the strategy the rest
        return self.reconcile(since=saved_at)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.streams is not None:
            self.streams.close()

    # -- internals ----------------------------------------------------------------------------

    def _mine(self, raw: JsonDict) -> bool:
        return self.ids.mine(raw.get("client_order_id")) or self.book.knows(str(raw.get("id")))

    def _take(self, raw: JsonDict) -> Order:
        """Map an Alpaca order of this session, remember it (and its legs as its own)."""
        order_id = str(raw["id"])
        legs = raw.get("legs") or []
        with self.book.lock:
            for leg in legs:
                self.book.foreign[str(leg["id"])] = order_id
            group = self.book.oco_groups.get(order_id)
            # an OCO's two orders are siblings to the strategy, not a parent and its child
            parent = None if group is not None else self.book.foreign.get(order_id)
            order = m.to_order(raw, self.ids, market_open=self.market_open,
                               reduce_only=order_id in self.book.closing,
                               parent_order_id=parent, oco_group_id=group)
            entry = None if parent is None else self.book.orders.get(parent)
            if order.status is OrderStatus.PENDING and raw.get("status") == "held" and \
                    entry is not None and entry.filled_quantity > 0:
                # a bracket's stop loss stays `held` at Alpaca once the entry filled, working
                order = replace(order, status=OrderStatus.OPEN)
            local = self.book.alias.get(order_id)
            if local is not None:
                known = self.book.orders.get(local)
                order = replace(order, id=local, client_order_id=None if known is None
                                else known.client_order_id)
            previous = self.book.orders.get(order.id)
            if previous is not None and order.reject_reason is RejectReason.UNKNOWN and \
                    previous.reject_reason is not None:
                # the order JSON has no reason; the `rejected` update had one
                order = replace(order, reject_reason=previous.reject_reason)
            if previous is not None and replace(order, updated_at=previous.updated_at) == \
                    previous:
                # Alpaca touched it without a change the protocol shows (accepted -> new):
                # the order the strategy holds is still the order
                return previous
            self.book.remember(order)
        return order

    def _flatten(self, raw: JsonDict) -> list[Order]:
        found = [self._take(raw)]
        found += [self._take(leg) for leg in raw.get("legs") or []]
        return found

    def _position(self, raw: JsonDict) -> Position:
        symbol = normalise(str(raw.get("symbol") or ""))
        with self.book.lock:
            opened = self.book.opened_at.setdefault(symbol, self.now)
            updated = self.book.position_updated.get(symbol, opened)
        return m.to_position(raw, opened_at=opened, updated_at=max(opened, updated))

    def _announce(self, order: Order, kind: OrderEventKind) -> None:
        with self.book.lock:
            fresh = self.book.announce(order.id)
            if fresh:
                self._push(OrderEvent(kind, order, order.updated_at,
                                      parent_order_id=order.parent_order_id), wake=False)
        if fresh:
            self._wake()

    def _try(self, call: Any) -> bool:
        try:
            call()
        except Exception as exc:  # reads in advance() never fail the session; health says
            log.warning("alpaca: %s", type(exc).__name__)
            return False
        return True


def _iso(value: Any) -> str | None:
    moment = m.stamp(value)
    return None if moment is None else timestamp_str(moment)
