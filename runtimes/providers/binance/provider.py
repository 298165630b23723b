"""BinanceProvider: one session on a Binance spot account (testnet or live) behind the Trading API.

Orders go through Binance's REST API (rest.py) with this session's newClientOrderId prefix, so
that several sessions can share one account and each sees only its own orders; balances are
the account's. Executions arrive on the user data stream (streams.py calls
`on_user_event` on its thread): every executionReport of the session's orders becomes order,
trade, position and account events, each once and in order; an order's REST answer (FULL, with
its fills) goes through the same path, so whichever arrives first is told and the other is a
duplicate. Market data (quotes, candles, history, staleness) is BinanceMarketData's;
`drain_events` merges both in time order.

Spot positions: a "position" is the base asset of one of the session's symbols while its
balance (free + locked) rounds to at least one lot step: BTC for BTCUSDT, LONG, its quantity the
account's whole balance. Its average entry price is followed from the session's fills (the
current price for what was held before). The account is in the quote asset (USDT): equity =
USDT + every position at its last price.

Emulated brackets (Binance spot has none): the entry goes alone; when it fills, an OCO (take
profit + stop loss) is placed on the filled quantity, and replaced as a partial fill grows.
OCO orders of one oco_group_id wait here for their pair, then go as one orderList/oco.

When the user stream drops, the session is told (BROKER_DISCONNECTED); once it is back the
provider reconciles over REST (openOrders, myTrades after the last trade id seen, allOrders
changed meanwhile) and emits what was missed once before BROKER_RECONNECTED. A provider
restored from a snapshot reconciles before `build` returns.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
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
    PositionSide,
    Quote,
    Side,
)
from runtimes.core.errors import (
    OrderNotFound,
    OrderNotModifiable,
    OrderRejected,
    OrderValidationError,
    PositionNotFound,
    SymbolNotFound,
    UnsupportedOperation,
)
from runtimes.core.events import (
    AccountEvent,
    ConnectionEvent,
    Event,
    OrderEvent,
    OrderEventKind,
    PositionEvent,
    PositionEventKind,
    TradeEvent,
)
from runtimes.core.provider import JsonDict, Pacing, Wake
from runtimes.core.takeover import Reconciliation
from runtimes.core.wire import timestamp_str
from runtimes.providers.alpaca.breaker import CircuitBreaker
from runtimes.providers.alpaca.ports import MarketData, Streams
from runtimes.providers.binance import filters as f
from runtimes.providers.binance import mapping as m
from runtimes.providers.binance.book import Balance, Book, BracketPlan
from runtimes.providers.binance.orders import (
    check_request,
    filter_rejection,
    order_error,
    order_params,
    quote_order_params,
    submit_error,
)
from runtimes.providers.binance.rest import BROKER, BinanceError, BinanceRest, ban_sentence

log = logging.getLogger(__name__)

SNAPSHOT_VERSION: Final = 1
USER_STREAM: Final = "user_data"
CLOCK_REFRESH_SECONDS: Final = 600.0
RULES_REFRESH_SECONDS: Final = 3600.0
RETRY_SECONDS: Final = 5.0
RECONCILE_MARGIN: Final = timedelta(seconds=5)
LOCAL_PREFIX: Final = "oco-"
QUOTE: Final = "USDT"
FEE_ASSET: Final = "BNB"
CAPABILITIES: Final[JsonDict] = {
    "supported_asset_classes": ["CRYPTO"],
    "supported_order_types": ["MARKET", "LIMIT", "STOP", "STOP_LIMIT", "TRAILING_STOP"],
    "supported_time_in_force": ["GTC", "IOC", "FOK"],
    "position_mode": "NETTING",
    "features": ["bracket_orders_emulated", "oco_orders", "fractional_quantities",
                 "client_order_id_idempotency", "order_replace", "post_only",
                 "notional_orders"],
    "max_leverage": "1",
}
EXECUTION_KINDS: Final[dict[str, OrderEventKind]] = {
    "CANCELED": OrderEventKind.ORDER_CANCELLED,
    "EXPIRED": OrderEventKind.ORDER_EXPIRED,
    "TRADE_PREVENTION": OrderEventKind.ORDER_EXPIRED,
    "REJECTED": OrderEventKind.ORDER_REJECTED,
    "AMENDMENT": OrderEventKind.ORDER_MODIFIED,
}


class BinanceProvider:
    """Provider and Venue of one session on a Binance spot account."""

    broker = BROKER
    pacing = Pacing.WALL_CLOCK

    def __init__(self, *, platform: str, connection: BrokerConnection, rest: BinanceRest,
                 market: MarketData, health: HealthSink, prefix: str, wake: Wake,
                 symbols: tuple[str, ...]) -> None:
        self.platform = platform
        self.connection = connection
        self.rest = rest
        self.market = market
        self.symbols = tuple(m.normalise(s) for s in symbols)
        self.streams: Streams | None = None
        self._health_sink = health
        self.ids = m.ClientIds(prefix)
        self.book = Book()
        self.rules: dict[str, f.SymbolRules] = {}
        self._wake = wake
        self._lock = threading.Lock()  # the queue and the connection state
        self._queue: list[Event | _AccountDue] = []
        self._stream_states: dict[str, str] = {}
        self._disconnected_at: datetime | None = None
        self._quiet_reconnect = False
        self._reconcile_due = False
        self._reconcile_not_before = datetime.min.replace(tzinfo=UTC)
        self._plans_due = False
        self._plans_not_before = datetime.min.replace(tzinfo=UTC)
        self._clock_at: datetime | None = None
        self._rules_at: datetime | None = None
        self._told_ban: float | None = None
        self._fee_prices: dict[str, Decimal] = {}
        self.exit_breaker = CircuitBreaker()
        self._last_health: ConnectionHealth | None = None
        self._health_due = False
        self._closed = False
        self._start = self.now  # when a position held before the session is first seen
        rest.emit, rest.changed, rest.banned = self._push, self._report_health, self._ban_seen

    # -- time ---------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return datetime.now(UTC)

    def next_due(self) -> float | None:
        if self._new_ban() is not None:
            return 0.0
        dues = [self._since_due(self._clock_at, CLOCK_REFRESH_SECONDS),
                self._since_due(self._rules_at, RULES_REFRESH_SECONDS)]
        if self._plans_due:
            dues.append((self._plans_not_before - self.now).total_seconds())
        if self._reconcile_due:
            dues.append(max(0.0, (self._reconcile_not_before - self.now).total_seconds()))
        market_due = self.market.next_due()
        if market_due is not None:
            dues.append(market_due)
        return max(0.0, min(dues))

    def _since_due(self, moment: datetime | None, every: float) -> float:
        return 0.0 if moment is None else every - (self.now - moment).total_seconds()

    def advance(self, now: datetime) -> None:
        self.market.advance(now)
        until = self._new_ban()
        if until is not None:
            self._ban_seen(ban_sentence(until))
        if self._reconcile_due and now >= self._reconcile_not_before:
            self._reconcile_after_drop(now)
        if self._plans_due and now >= self._plans_not_before:
            self._sync_plans_or_later(now)
        if self._since_due(self._clock_at, CLOCK_REFRESH_SECONDS) <= 0 and \
                not self._try(self.measure_clock):
            self._clock_at = now - timedelta(seconds=CLOCK_REFRESH_SECONDS - RETRY_SECONDS)
        if self._since_due(self._rules_at, RULES_REFRESH_SECONDS) <= 0 and \
                not self._try(self.load_rules):
            self._rules_at = now - timedelta(seconds=RULES_REFRESH_SECONDS - RETRY_SECONDS)

    def measure_clock(self) -> None:
        self.rest.measure_clock()
        self._clock_at = self.now

    def load_rules(self) -> None:
        """exchangeInfo (weight 20), hourly: the session's symbols' filters and order types."""
        raw = self.rest.call("exchangeInfo", self.rest.client.get_exchange_info)
        rules = f.rules_from_exchange_info(raw)
        self.rules = {s: rules[s] for s in self.symbols if s in rules} or rules
        self._rules_at = self.now

    # -- the ban ------------------------------------------------------------------------------

    def _new_ban(self) -> float | None:
        """The end of a ban on the IP this session has not told its strategy of yet."""
        until = self.rest.shared.banned_until()
        if until is None or until <= time.time() or until == self._told_ban:
            return None
        return until

    def _ban_seen(self, sentence: str) -> None:
        """Every session on a banned IP tells its strategy once per ban."""
        until = self.rest.shared.banned_until()
        with self._lock:
            if until is not None and until == self._told_ban:
                return
            self._told_ban = until
            self._queue.append(ConnectionEvent("BROKER_CONNECTION_FAILED", BROKER, self.now,
                                               error=sentence))
            self._health_due = True
        self._wake()

    # -- orders -------------------------------------------------------------------------------

    def _rules(self, symbol: str) -> f.SymbolRules:
        rules = self.rules.get(symbol)
        if rules is None:
            raise SymbolNotFound(symbol)
        return rules

    def _market_price(self, symbol: str) -> Decimal | None:
        last = self.market.last_price(symbol)
        if last is not None:
            return last
        try:
            quote = self.market.quote(symbol)
        except Exception:  # no price known: the filters that need one are checked by Binance
            return None
        return (quote.bid + quote.ask) / 2 if quote.bid and quote.ask else quote.last

    def submit_order(self, request: OrderRequest) -> Order:
        check_request(request)
        request = replace(request, symbol=m.normalise(request.symbol))
        rules = self._rules(request.symbol)
        if request.oco_group_id is not None:
            return self._submit_oco(request, rules)
        if request.client_order_id is not None:
            known = self._known_client_id(request.client_order_id)
            if known is not None:  # a retry of an order this session sent
                return known
            client_id = self.ids.for_strategy(request.client_order_id)
        else:
            client_id = self.ids.generated(uuid.uuid4().hex[:20])
        if request.sized_at_fill:
            params = quote_order_params(request, rules, client_id=client_id,
                                        notional=self._notional_of(request, rules))
            return self._send(params, request.client_order_id)
        bracket = request.stop_loss is not None or request.take_profit is not None
        if bracket and request.order_type is not OrderType.MARKET and \
                request.order_type is not OrderType.LIMIT:
            raise OrderValidationError.invalid("order_type", request.order_type.value,
                                               "must be MARKET or LIMIT for a bracket on "
                                               "Binance (emulated with an OCO)")
        params = order_params(request, rules, client_id=client_id,
                              market=self._market_price(request.symbol),
                              open_orders=self.book.open_count(request.symbol))
        order = self._send(params, request.client_order_id, bracket=request if bracket
                           else None)
        if bracket:  # filled at once (a market entry): its exits now, else when it fills
            self._sync_plans_or_later(self.now)
        return order

    def _notional_of(self, request: OrderRequest, rules: f.SymbolRules) -> Decimal:
        """The quote amount of an order sized at fill. A live broker sizes an equity fraction
        from the account's equity at submit (in the account's quote asset); the fill price then
        decides the quantity."""
        if request.notional is not None:
            return request.notional
        if rules.quote != QUOTE:
            raise UnsupportedOperation(f"equity_fraction on {rules.symbol} (quoted in "
                                       f"{rules.quote}, the account's equity is in {QUOTE})",
                                       BROKER)
        return (request.equity_fraction or ZERO) * self.account().equity

    def _send(self, params: dict[str, Any], strategy_id: str | None, *,
              bracket: OrderRequest | None = None, closing: bool = False) -> Order:
        client_id = str(params["newClientOrderId"])
        with self.book.lock:  # before the call: the stream may tell of the order first
            if strategy_id is not None:
                self.book.strategy_ids[client_id] = strategy_id
            if closing:
                self.book.closing.add(client_id)
        try:
            raw = self.rest.call("order", self.rest.client.create_order, **params)
        except BinanceError as error:
            if strategy_id is not None and "duplicate" in error.message.lower():
                again = self.order_by_client_id(strategy_id)
                if again is not None:
                    return again
            raise submit_error(error) from None
        order_id = str(raw["orderId"])
        with self.book.lock:
            if bracket is not None:
                self.book.plans[order_id] = BracketPlan(
                    entry_id=order_id, symbol=str(raw["symbol"]),
                    exit_side=bracket.side.opposite.value,
                    stop_loss=None if bracket.stop_loss is None else f.wire(bracket.stop_loss),
                    take_profit=None if bracket.take_profit is None
                    else f.wire(bracket.take_profit))
        return self._answered(raw)

    def _answered(self, raw: JsonDict) -> Order:
        """An order response (FULL): the order is told created, then each of its fills, through
        the stream's path (whichever of the two comes first is told)."""
        reports = response_reports(raw)
        for report in reports:
            self._execution(report)
        return self._current(str(raw["orderId"]))

    def _current(self, binance_id: str) -> Order:
        with self.book.lock:
            order = self.book.orders.get(self.book.local_id(binance_id))
        if order is None:
            raise OrderNotFound(binance_id)
        return order

    def _known_client_id(self, strategy_id: str) -> Order | None:
        client_id = self.ids.for_strategy(strategy_id)
        with self.book.lock:
            for order_id, known in self.book.order_client_ids.items():
                if known == client_id and order_id in self.book.orders:
                    return self.book.orders[order_id]
        return None

    # -- OCO ----------------------------------------------------------------------------------

    def _submit_oco(self, request: OrderRequest, rules: f.SymbolRules) -> Order:
        """An OCO group's first order waits (PENDING, a local id) for its pair; with the pair,
        both go to Binance as one orderList/oco: the LIMIT is the take profit, the STOP or
        STOP_LIMIT the stop loss. The first keeps the id it was given."""
        if request.order_type not in (OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT):
            raise OrderValidationError.invalid("oco_group_id", request.oco_group_id,
                                               "must be on a LIMIT, STOP or STOP_LIMIT order")
        if not rules.oco_allowed:
            raise OrderValidationError.invalid("oco_group_id", request.oco_group_id,
                                               f"OCO is not allowed on {rules.symbol}")
        group = str(request.oco_group_id)
        with self.book.lock:
            held = self.book.held_oco.get(group)
            if held is None:
                return self._hold_oco(group, request)
        first, first_request = held
        if request.client_order_id is not None and \
                request.client_order_id == first.client_order_id:
            return first
        kinds = {first_request.order_type, request.order_type}
        same = (first_request.symbol, first_request.side, first_request.quantity) == (
            request.symbol, request.side, request.quantity)
        if not same or OrderType.LIMIT not in kinds or len(kinds) != 2:
            raise OrderValidationError.invalid(
                "oco_group_id", group, "must pair one LIMIT and one STOP or STOP_LIMIT order of "
                "the same symbol, side and quantity on Binance")
        take, stop = (first_request, request) if first_request.order_type is OrderType.LIMIT \
            else (request, first_request)
        token = uuid.uuid4().hex[:16]
        take_id = self.ids.for_strategy(take.client_order_id) if take.client_order_id \
            else self.ids.generated("t" + token)
        stop_id = self.ids.for_strategy(stop.client_order_id) if stop.client_order_id \
            else self.ids.generated("s" + token)
        params = oco_params(rules, side=take.side, quantity=take.quantity,
                            take_profit=_required(take.limit_price),
                            stop_loss=_required(stop.stop_price), stop_limit=stop.limit_price,
                            take_id=take_id, stop_id=stop_id, list_id=self.ids.generated(
                                "l" + token))
        with self.book.lock:
            try:
                raw = self.rest.call("oco", self.rest.client.create_oco_order, **params)
            except BinanceError as error:
                raise submit_error(error) from None
            del self.book.held_oco[group]
            for report in raw.get("orderReports") or ():
                binance_id = str(report["orderId"])
                self.book.oco_groups[binance_id] = group
                is_take = report.get("clientOrderId") == take_id
                if (first_request is take) == is_take:
                    self.book.alias[binance_id] = first.id
                    self.book.oco_groups[first.id] = group
        second_id = ""
        for report in raw.get("orderReports") or ():
            self._execution(new_report(report))
            binance_id = str(report["orderId"])
            if self.book.local_id(binance_id) != first.id:
                second_id = binance_id
        return self._current(second_id)

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
        self.book.announce(order.id)
        self._push(OrderEvent(OrderEventKind.ORDER_CREATED, order, now))
        return order

    # -- emulated brackets --------------------------------------------------------------------

    def _sync_plans_or_later(self, now: datetime) -> None:
        """Place what the brackets need; when Binance cannot take it now (rate limited,
        unreachable), again in a few seconds, not in a busy loop."""
        if not self._try(self.sync_plans):
            self._plans_due = True
            self._plans_not_before = now + timedelta(seconds=RETRY_SECONDS)

    def sync_plans(self) -> None:
        """Each bracket whose entry filled more than its OCO covers: the OCO is (re)placed on
        the filled quantity, rounded down to the lot step. On the host's thread."""
        self._plans_due = False
        with self.book.lock:
            plans = [p for p in self.book.plans.values() if not p.done]
        for plan in plans:
            self._sync_plan(plan)

    def _sync_plan(self, plan: BracketPlan) -> None:
        entry = self.book.orders.get(plan.entry_id)
        if entry is None:
            return
        rules = self._rules(plan.symbol)
        filled = f.round_quantity(rules, entry.filled_quantity, market=False)
        if not entry.is_open and entry.filled_quantity == 0:
            plan.done = True
            return
        if filled <= Decimal(plan.placed_quantity) or filled <= 0:
            return
        if plan.list_id is not None:
            try:
                self.rest.call("cancelOrderList", self.rest.client.v3_delete_order_list,
                               symbol=plan.symbol, orderListId=plan.list_id)
            except BinanceError as error:  # an exit filled meanwhile: the bracket is over
                log.info("binance bracket %s: its OCO could not be replaced (%s)",
                         plan.entry_id, error.code)
                plan.done = True
                return
        self._place_exits(plan, rules, filled)

    def _place_exits(self, plan: BracketPlan, rules: f.SymbolRules, quantity: Decimal) -> None:
        token = uuid.uuid4().hex[:14]
        side = Side(plan.exit_side)
        if plan.take_profit is None or plan.stop_loss is None:
            price = plan.take_profit or plan.stop_loss
            kind = OrderType.LIMIT if plan.take_profit else OrderType.STOP
            request = OrderRequest(symbol=plan.symbol, side=side, quantity=quantity,
                                   order_type=kind,
                                   limit_price=None if kind is OrderType.STOP
                                   else Decimal(str(price)),
                                   stop_price=Decimal(str(price)) if kind is OrderType.STOP
                                   else None)
            params = order_params(request, rules, client_id=self.ids.generated("x" + token),
                                  market=self._market_price(plan.symbol), open_orders=0)
            with self.book.lock:
                raw = self.rest.call("order", self.rest.client.create_order, **params)
                self.book.parents[str(raw["orderId"])] = plan.entry_id
            plan.leg_ids = (str(raw["orderId"]),)
            plan.placed_quantity = f.wire(quantity)
            self._answered(raw)
            return
        params = oco_params(rules, side=side, quantity=quantity,
                            take_profit=Decimal(plan.take_profit),
                            stop_loss=Decimal(plan.stop_loss), stop_limit=None,
                            take_id=self.ids.generated("t" + token),
                            stop_id=self.ids.generated("s" + token),
                            list_id=self.ids.generated("l" + token))
        with self.book.lock:
            raw = self.rest.call("oco", self.rest.client.create_oco_order, **params)
            legs = tuple(str(r["orderId"]) for r in raw.get("orderReports") or ())
            for leg in legs:
                self.book.parents[leg] = plan.entry_id
            plan.list_id = int(raw["orderListId"])
            plan.leg_ids = legs
            plan.placed_quantity = f.wire(quantity)
        for report in raw.get("orderReports") or ():
            self._execution(new_report(report))

    # -- modify, cancel, close ------------------------------------------------------------------

    def modify_order(self, order_id: str, *, quantity: Decimal | None = None,
                     limit_price: Decimal | None = None, stop_price: Decimal | None = None,
                     stop_loss: Decimal | None = None, take_profit: Decimal | None = None,
                     trailing_distance: Decimal | None = None) -> tuple[Order, str | None]:
        """cancelReplace (STOP_ON_FAILURE): the order is replaced by a new one with a new id;
        the old ends CANCELLED. A bracket's stop loss / take profit change its plan."""
        current = self.order(order_id)
        if not current.is_open:
            raise OrderNotModifiable(order_id)
        if trailing_distance is not None or current.order_type is OrderType.TRAILING_STOP:
            raise OrderNotModifiable(order_id, "a trailing stop cannot be replaced on Binance")
        if stop_loss is not None or take_profit is not None:
            changed = self._modify_plan(current, stop_loss, take_profit)
            if quantity is None and limit_price is None and stop_price is None:
                return changed, None
        if current.id.startswith(LOCAL_PREFIX) or current.oco_group_id is not None:
            raise OrderNotModifiable(order_id, "an OCO order cannot be replaced on Binance; "
                                               "cancel it and send a new pair")
        rules = self._rules(current.symbol)
        if not rules.cancel_replace_allowed:
            raise OrderNotModifiable(order_id, f"cancelReplace is not allowed on {rules.symbol}")
        request = OrderRequest(
            symbol=current.symbol, side=current.side,
            quantity=quantity if quantity is not None else current.quantity
            - current.filled_quantity,
            order_type=current.order_type,
            limit_price=limit_price if limit_price is not None else current.limit_price,
            stop_price=stop_price if stop_price is not None else current.stop_price,
            post_only=current.post_only, time_in_force=current.time_in_force)
        strategy_id = current.client_order_id
        client_id = self.ids.generated("r" + uuid.uuid4().hex[:20])
        params = order_params(request, rules, client_id=client_id,
                              market=self._market_price(current.symbol),
                              open_orders=self.book.open_count(current.symbol) - 1)
        params.update(cancelReplaceMode="STOP_ON_FAILURE",
                      cancelOrderId=int(self.book.binance_id(current.id)))
        with self.book.lock:  # before the call: the stream may tell of the new order first
            self.book.replacing.add(client_id)
            if strategy_id is not None:
                self.book.strategy_ids[client_id] = strategy_id
        try:
            raw = self.rest.call("cancelReplace", self.rest.client.cancel_replace_order,
                                 **params)
        except BinanceError as error:
            raise order_error(error, order_id) from None
        new_raw = raw.get("newOrderResponse") or {}
        new_id = str(new_raw.get("orderId"))
        with self.book.lock:
            plan = self.book.plans.pop(current.id, None)
            if plan is not None:
                plan.entry_id = new_id
                self.book.plans[new_id] = plan
        cancelled = raw.get("cancelResponse") or {}
        if cancelled.get("orderId") is not None:
            self._execution(change_report(cancelled, "CANCELED"))
        order = self._answered(new_raw)
        return order, current.id

    def _modify_plan(self, order: Order, stop_loss: Decimal | None,
                     take_profit: Decimal | None) -> Order:
        with self.book.lock:
            plan = self.book.plans.get(order.id)
            if plan is None:
                raise OrderNotModifiable(order.id, "only a bracket's entry has a stop loss and "
                                                   "take profit to change on Binance")
            if stop_loss is not None:
                plan.stop_loss = f.wire(stop_loss)
            if take_profit is not None:
                plan.take_profit = f.wire(take_profit)
            if plan.list_id is not None:
                plan.placed_quantity = "0"  # placed again with the new prices
                self._plans_due = True
            changed = replace(order, stop_loss=stop_loss or order.stop_loss,
                              take_profit=take_profit or order.take_profit, updated_at=self.now)
            self.book.remember(changed)
        self._push(OrderEvent(OrderEventKind.ORDER_MODIFIED, changed, changed.updated_at))
        return changed

    def cancel_order(self, order_id: str) -> Order:
        held = self.book.held(order_id)
        if held is not None:
            group, order = held
            with self.book.lock:
                del self.book.held_oco[group]
                cancelled = replace(order, status=OrderStatus.CANCELLED, updated_at=self.now)
                self.book.remember(cancelled)
            self._push(OrderEvent(OrderEventKind.ORDER_CANCELLED, cancelled,
                                  cancelled.updated_at))
            return cancelled
        current = self.order(order_id)
        if not current.is_open:
            raise OrderNotModifiable(order_id)
        try:
            raw = self.rest.call("cancel", self.rest.client.cancel_order, symbol=current.symbol,
                                 orderId=int(self.book.binance_id(current.id)))
        except BinanceError as error:
            raise order_error(error, order_id) from None
        self._execution(change_report(raw, "CANCELED"))
        return self._current(self.book.binance_id(current.id))

    def close_position(self, symbol_or_position_id: str, quantity: Decimal | None = None,
                       order_type: str = "MARKET", limit_price: Decimal | None = None) -> Order:
        """A sell of the base asset held (its free balance, or `quantity` of it), rounded down to
        the lot step; MARKET, or LIMIT at `limit_price`."""
        symbol = m.normalise(symbol_or_position_id)
        rules = self._rules(symbol)
        with self.book.lock:
            held = self.book.balances.get(rules.base)
        free = ZERO if held is None else held.free
        if free <= 0:
            raise PositionNotFound(symbol)
        amount = free if quantity is None else min(quantity, free)
        kind = OrderType(order_type) if order_type in ("MARKET", "LIMIT") else None
        if kind is None:
            raise OrderValidationError.invalid("order_type", order_type,
                                               "must be MARKET or LIMIT to close on Binance")
        request = OrderRequest(symbol=symbol, side=Side.SELL, quantity=amount, order_type=kind,
                               limit_price=limit_price)
        check_request(request)
        params = order_params(request, rules, client_id=self.ids.generated(
            "p" + uuid.uuid4().hex[:20]), market=self._market_price(symbol),
            open_orders=self.book.open_count(symbol))
        return self._send(params, None, closing=True)

    # -- reads --------------------------------------------------------------------------------

    def orders(self, *, open_only: bool = False, symbol: str | None = None) -> list[Order]:
        """The session's orders as the book knows them (kept by the stream and reconciles; a
        REST read of every symbol would cost 20 weight each)."""
        wanted = None if symbol is None else m.normalise(symbol)
        with self.book.lock:
            found = sorted(self.book.orders.values(), key=lambda o: (o.created_at, o.id))
        return [o for o in found if (not open_only or o.is_open)
                and (wanted is None or o.symbol == wanted)]

    def all_orders(self) -> list[Order]:
        return self.orders()

    def order(self, order_id: str) -> Order:
        with self.book.lock:
            known = self.book.orders.get(order_id)
        if known is not None:
            return known
        if not order_id.isdigit():
            raise OrderNotFound(order_id)
        for symbol in self.symbols:
            try:
                raw = self.rest.call("getOrder", self.rest.client.get_order, symbol=symbol,
                                     orderId=int(order_id))
            except BinanceError:
                continue
            if self._mine(raw):
                return self._take(raw)
        raise OrderNotFound(order_id)

    def order_by_client_id(self, client_order_id: str) -> Order | None:
        known = self._known_client_id(client_order_id)
        if known is not None:
            return known
        client_id = self.ids.for_strategy(client_order_id)
        for symbol in self.symbols:
            try:
                raw = self.rest.call("getOrder", self.rest.client.get_order, symbol=symbol,
                                     origClientOrderId=client_id)
            except BinanceError:
                continue
            with self.book.lock:
                self.book.strategy_ids[client_id] = client_order_id
            return self._take(raw)
        return None

    def fills(self, *, symbol: str | None = None, order_id: str | None = None) -> list[Fill]:
        wanted = None if symbol is None else m.normalise(symbol)
        with self.book.lock:
            return [x for x in self.book.fills if (wanted is None or x.symbol == wanted)
                    and (order_id is None or x.order_id == order_id)]

    def positions(self) -> list[Position]:
        if not self.book.balances or self._stream_states.get(USER_STREAM) != STREAM_CONNECTED:
            self.refresh_balances()
        found = []
        for symbol in self.symbols:
            position = self._position(symbol)
            if position is not None:
                found.append(position)
        return found

    def position(self, symbol_or_position_id: str) -> Position:
        symbol = m.normalise(symbol_or_position_id)
        self._rules(symbol)
        for position in self.positions():
            if position.symbol == symbol:
                return position
        raise PositionNotFound(symbol)

    def account(self) -> Account:
        self.refresh_balances()
        return self._account()

    def refresh_balances(self) -> None:
        """GET account (weight 20): every balance, as of now."""
        raw = self.rest.call("account", self.rest.client.get_account)
        at = int(time.time() * 1000 + (self.rest.clock_offset_ms or 0))  # Binance's time
        with self.book.lock:
            self.book.balances_read_ms = at
            for entry in raw.get("balances") or ():
                self.book.balances[str(entry["asset"])] = Balance(
                    m.dec(entry.get("free")) or ZERO, m.dec(entry.get("locked")) or ZERO, at)

    def quote(self, symbol: str) -> Quote:
        symbol = m.normalise(symbol)
        self._rules(symbol)
        return self.market.quote(symbol)

    def history(self, symbol: str, start: datetime | None = None, end: datetime | None = None,
                limit: int | None = None) -> list[Bar]:
        return self.market.history(m.normalise(symbol), start, end, limit)

    # -- positions and the account from the book --------------------------------------------

    def _price(self, symbol: str) -> Decimal | None:
        return self.market.last_price(symbol)

    def _position(self, symbol: str) -> Position | None:
        rules = self.rules.get(symbol)
        if rules is None:
            return None
        with self.book.lock:
            balance = self.book.balances.get(rules.base)
            entry = self.book.entries.get(symbol)
            opened = self.book.opened_at.get(symbol)
            changed = max((x.timestamp for x in self.book.fills if x.symbol == symbol),
                          default=None)
        quantity = ZERO if balance is None else balance.total
        if f.round_quantity(rules, quantity, market=False) <= 0 or (
                rules.lot is not None and quantity < rules.lot.min_qty):
            return None
        price = self._price(symbol)
        average = entry[0] if entry is not None else (price or ZERO)
        realized = entry[1] if entry is not None else ZERO
        current = price if price is not None else average
        return Position(id=symbol, symbol=symbol, side=PositionSide.LONG, quantity=quantity,
                        average_entry_price=average, current_price=current,
                        unrealized_pnl=(current - average) * quantity, realized_pnl=realized,
                        opened_at=opened or self._start, updated_at=max(
                            changed or self._start, opened or self._start))

    def _account(self) -> Account:
        with self.book.lock:
            quote = self.book.balances.get(QUOTE)
            realized = sum((r for _, r in self.book.entries.values()), ZERO)
            paid = list(self.book.commission_paid)
        cash = ZERO if quote is None else quote.total
        free = ZERO if quote is None else quote.free
        positions = [p for p in (self._position(s) for s in self.symbols) if p is not None]
        held = sum((p.current_price * p.quantity for p in positions), ZERO)
        unrealized = sum((p.unrealized_pnl for p in positions), ZERO)
        return Account(balance=cash, equity=cash + held, margin_used=ZERO,
                       margin_available=free, unrealized_pnl=unrealized, realized_pnl=realized,
                       total_commission=sum((self._in_quote(*each) for each in paid), ZERO),
                       currency=QUOTE, cash=free)

    def _in_quote(self, asset: str, amount: Decimal, fill_price: Decimal, symbol: str,
                  ) -> Decimal:
        """A commission in the quote currency: as is in USDT, the fill's base asset at the
        fill's price, another asset (BNB) at its USDT price (the session's market, else a REST
        ticker read once)."""
        rules = self.rules.get(symbol)
        if asset == QUOTE:
            return amount
        if rules is not None and rules.base == asset:
            return amount * fill_price
        price = self._fee_price(asset)
        return ZERO if price is None else amount * price

    def _fee_price(self, asset: str) -> Decimal | None:
        symbol = f"{asset}{QUOTE}"
        last = self.market.last_price(symbol)
        if last is not None:
            return last
        known = self._fee_prices.get(symbol)
        if known is not None:
            return known
        try:
            raw = self.rest.call("ticker", self.rest.client.get_symbol_ticker, symbol=symbol)
        except Exception:  # converted later; the commission in its own asset is on the fill
            return None
        price = m.dec(raw.get("price"))
        if price is not None:
            self._fee_prices[symbol] = price
        return price

    # -- user data (UserListener; called on the stream thread) --------------------------------

    def on_user_event(self, event: dict[str, Any]) -> None:
        try:
            kind = event.get("e")
            if kind == "executionReport":
                self._execution(event)
            elif kind == "outboundAccountPosition":
                self._balances(event)
            elif kind == "listStatus":
                self._list_status(event)
        except Exception:  # never let one odd message kill the stream
            log.exception("binance user event not understood (%r)", event.get("e"))

    def _balances(self, event: JsonDict) -> None:
        at = int(event.get("u") or event.get("E") or 0)
        with self.book.lock:
            for entry in event.get("B") or ():
                asset = str(entry.get("a"))
                known = self.book.balances.get(asset)
                if known is not None and known.as_of_ms > at:
                    continue
                self.book.balances[asset] = Balance(m.dec(entry.get("f")) or ZERO,
                                                    m.dec(entry.get("l")) or ZERO, at)

    def _list_status(self, event: JsonDict) -> None:
        """An order list ended (ALL_DONE): a bracket whose exits it held is over."""
        if event.get("L") != "ALL_DONE":
            return
        list_id = int(event.get("g") or -1)
        with self.book.lock:
            for plan in self.book.plans.values():
                if plan.list_id == list_id:
                    entry = self.book.orders.get(plan.entry_id)
                    plan.done = entry is None or not entry.is_open

    def _mine(self, raw: JsonDict) -> bool:
        client = str(raw.get("clientOrderId") or "")
        return self.ids.mine(client) or str(raw.get("orderId")) in self.book.alias or \
            str(raw.get("orderId")) in self.book.orders

    def _execution(self, event: JsonDict) -> None:
        """One executionReport (the stream's, or one made from a REST answer): the order
        event, and for a TRADE the trade, position and account events, each once."""
        raw = m.report_as_order(event)
        if not self._mine(raw):
            return
        execution = str(event.get("x") or "")
        items: list[Event | _AccountDue] = []
        with self.book.lock:
            order = self._take(raw)
            items += self._creation(order)
            if execution == "TRADE":
                items += self._trade(event, order)
            elif execution in EXECUTION_KINDS:
                key = (order.id, execution, str(order.filled_quantity))
                if self.book.first_time(key):
                    if execution == "REJECTED":
                        order = replace(order, reject_reason=m.reject_reason(event.get("r")))
                        self.book.remember(order)
                    items.append(OrderEvent(EXECUTION_KINDS[execution], order, order.updated_at,
                                            parent_order_id=order.parent_order_id))
                    self._plan_ended(order)
            if items:
                self._push(*items, wake=False)
        if items:
            self._wake()

    def _take(self, raw: JsonDict) -> Order:
        """Map a Binance order of this session and remember it (under the book's lock)."""
        binance_id = str(raw["orderId"])
        client = str(raw.get("clientOrderId") or "")
        with self.book.lock:
            local = self.book.local_id(binance_id)
            previous = self.book.orders.get(local)
            strategy_id = self.book.strategy_ids.get(client)
            if previous is not None and strategy_id is None:
                strategy_id = previous.client_order_id
            plan = self.book.plans.get(local)
            order = m.to_order(raw, self.ids, order_id=local, client_order_id=strategy_id,
                               now=self.now, parent_order_id=self.book.parents.get(binance_id),
                               oco_group_id=self.book.oco_groups.get(local),
                               reduce_only=client in self.book.closing,
                               stop_loss=None if plan is None or plan.stop_loss is None
                               else Decimal(plan.stop_loss),
                               take_profit=None if plan is None or plan.take_profit is None
                               else Decimal(plan.take_profit))
            if previous is not None:
                if previous.filled_quantity > order.filled_quantity or (
                        previous.status.is_terminal and not order.status.is_terminal):
                    # an older report than what is known (the stream's NEW after the REST
                    # answer of a cancel): the order never goes back
                    return previous
                if previous.reject_reason is not None and order.reject_reason is not None:
                    order = replace(order, reject_reason=previous.reject_reason)
                order = replace(order, created_at=previous.created_at)
            if client and binance_id not in self.book.alias:
                self.book.order_client_ids.setdefault(local, client)
            self.book.remember(order)
        return order

    def _creation(self, order: Order) -> list[Event | _AccountDue]:
        if not self.book.announce(order.id):
            return []
        kind = OrderEventKind.ORDER_MODIFIED if self.book.order_client_ids.get(order.id) in \
            self.book.replacing else OrderEventKind.ORDER_CREATED
        fresh = order if order.filled_quantity == 0 else replace(
            order, status=OrderStatus.OPEN, filled_quantity=ZERO, average_fill_price=None,
            updated_at=order.created_at)
        return [OrderEvent(kind, fresh, fresh.created_at, parent_order_id=order.parent_order_id)]

    def _trade(self, event: JsonDict, order: Order) -> list[Event | _AccountDue]:
        fill = m.fill_from_report(event, order.id)
        trade_id = int(event.get("t") or -1)
        if fill is None or not self.book.add_fill(fill, order.id, trade_id):
            return []
        rules = self.rules.get(fill.symbol)
        before, after = self._apply_fill(fill, rules, int(event.get("T") or event.get("E") or 0))
        kind = OrderEventKind.ORDER_FILLED if order.status is OrderStatus.FILLED else \
            OrderEventKind.ORDER_PARTIALLY_FILLED
        items: list[Event | _AccountDue] = [
            OrderEvent(kind, order, fill.timestamp, parent_order_id=order.parent_order_id),
            TradeEvent(fill, fill.timestamp)]
        position = self._position_event(fill, before, after)
        if position is not None:
            items.append(position)
        items.append(_AccountDue(fill.timestamp))
        if order.id in self.book.plans:
            self._plans_due = True
        if order.parent_order_id is not None and order.status is OrderStatus.FILLED:
            plan = self.book.plans.get(order.parent_order_id)
            if plan is not None:
                plan.done = True
        return items

    def _apply_fill(self, fill: Fill, rules: f.SymbolRules | None,
                    at_ms: int) -> tuple[Decimal, Decimal]:
        """The base balance before and after `fill`: balances known from an account event
        newer than the fill include it already; else the fill (and its commission) is applied
        here, and the next outboundAccountPosition sets the truth. The average entry price and
        realized P&L follow the session's fills."""
        base = rules.base if rules is not None else fill.symbol
        quote = rules.quote if rules is not None else QUOTE
        book = self.book
        held = book.balances.get(base, Balance(ZERO, ZERO, 0))
        # Stream events come in Binance's order (a trade, then its balances), so only a REST
        # read of the account made after the trade includes it already
        included = 0 < at_ms <= book.balances_read_ms
        signed = fill.quantity * fill.side.sign
        after = held.total if included else held.total + signed - (
            fill.commission if fill.commission_currency == base else ZERO)
        before = after - signed
        if not included:
            book.balances[base] = Balance(held.free + after - held.total, held.locked,
                                          held.as_of_ms)
            cash = book.balances.get(quote, Balance(ZERO, ZERO, 0))
            spent = fill.quantity * fill.price * fill.side.sign
            fee = fill.commission if fill.commission_currency == quote else ZERO
            book.balances[quote] = Balance(cash.free - spent - fee, cash.locked, cash.as_of_ms)
        average, realized = book.entries.get(fill.symbol, (fill.price, ZERO))
        if fill.side is Side.BUY:
            held_before = max(before, ZERO)
            total = held_before + fill.quantity
            average = (average * held_before + fill.price * fill.quantity) / total if total \
                else fill.price
        else:
            realized += (fill.price - average) * fill.quantity
        book.entries[fill.symbol] = (average, realized)
        if fill.commission:
            book.commission_paid.append((fill.commission_currency, fill.commission, fill.price,
                                         fill.symbol))
        return before, after

    def _position_event(self, fill: Fill, before: Decimal, after: Decimal,
                        ) -> PositionEvent | None:
        rules = self.rules.get(fill.symbol)
        step = ZERO if rules is None or rules.lot is None else rules.lot.min_qty
        if after <= step:
            kind = PositionEventKind.POSITION_CLOSED
        elif before <= step:
            kind = PositionEventKind.POSITION_OPENED
        else:
            kind = PositionEventKind.POSITION_MODIFIED
        average, realized = self.book.entries.get(fill.symbol, (fill.price, ZERO))
        opened = self.book.opened_at.get(fill.symbol, fill.timestamp)
        quantity = max(after, ZERO)
        position = Position(id=fill.symbol, symbol=fill.symbol, side=PositionSide.LONG,
                            quantity=quantity, average_entry_price=average,
                            current_price=fill.price,
                            unrealized_pnl=(fill.price - average) * quantity,
                            realized_pnl=realized, opened_at=opened, updated_at=fill.timestamp)
        if kind is PositionEventKind.POSITION_CLOSED:
            self.book.opened_at.pop(fill.symbol, None)
        return PositionEvent(kind, position, fill.timestamp)

    def _plan_ended(self, order: Order) -> None:
        plan = self.book.plans.get(order.id)
        if plan is not None and order.filled_quantity == 0 and not order.is_open:
            plan.done = True
        elif plan is not None and not order.is_open:
            self._plans_due = True  # what filled before the end still gets its exits

    # -- connection ---------------------------------------------------------------------------

    def expect_first_connect(self) -> None:
        """Until the user stream first connects, fills can happen unseen: its first connect
        reconciles, without telling the strategy of a drop it never saw."""
        with self._lock:
            self._disconnected_at = self.now
            self._quiet_reconnect = True

    def on_stream_state(self, stream: str, state: str, error: str | None) -> None:
        now = self.now
        with self._lock:
            self._stream_states[stream] = state
            event: ConnectionEvent | None = None
            if stream == USER_STREAM:
                if state == STREAM_RECONNECTING and (self._disconnected_at is None
                                                     or self._quiet_reconnect):
                    self._disconnected_at, self._quiet_reconnect = now, False
                    event = ConnectionEvent("BROKER_DISCONNECTED", BROKER, now, error=error)
                elif state == STREAM_CONNECTED and self._disconnected_at is not None:
                    self._reconcile_due = True
                    self._reconcile_not_before = now
                elif state == STREAM_FAILED:
                    event = ConnectionEvent("BROKER_CONNECTION_FAILED", BROKER, now,
                                            error=error)
            if event is not None:
                self._queue.append(event)
            self._health_due = True
        self._wake()

    def _reconcile_after_drop(self, now: datetime) -> None:
        with self._lock:
            since = self._disconnected_at
        try:
            found = self.reconcile(since=since)
        except Exception as exc:  # Binance is not answering yet: again in a few seconds
            log.warning("binance reconcile after a drop failed: %s", type(exc).__name__)
            self._reconcile_not_before = now + timedelta(seconds=RETRY_SECONDS)
            return
        with self._lock:
            self._reconcile_due = False
            self._disconnected_at = None
            quiet, self._quiet_reconnect = self._quiet_reconnect, False
        if quiet:
            return
        gap = 0 if since is None else int((now - since).total_seconds() * 1000)
        self._push(ConnectionEvent("BROKER_RECONNECTED", BROKER, now, gap_duration_ms=gap,
                                   reconciled=found.as_json()))

    def reconcile(self, *, since: datetime | None) -> Reconciliation:
        """What the stream may not have told, per symbol of the session: open orders
        (openOrders, weight 6), orders changed since `since` (allOrders, 20) and trades after
        the last trade id seen (myTrades, 20); each missing event is emitted once, as the
        stream would have, then the balances are read again (account, 20)."""
        new_fills: list[Fill] = []
        for symbol in self.symbols:
            new_fills += self._reconcile_symbol(symbol, since)
        self.refresh_balances()
        self._plans_due = self._plans_due or bool(new_fills)
        open_orders = tuple(o for o in self.orders() if o.is_open)
        return Reconciliation(open_orders=open_orders, positions=tuple(self.positions()),
                              fills_since=tuple(new_fills))

    def _reconcile_symbol(self, symbol: str, since: datetime | None) -> list[Fill]:
        client = self.rest.client
        params: dict[str, Any] = {"symbol": symbol}
        if since is not None:
            params["startTime"] = int((since - RECONCILE_MARGIN).timestamp() * 1000)
        changed = self.rest.call("allOrders", client.get_all_orders, **params) or []
        opened = self.rest.call("openOrders", client.get_open_orders, symbol=symbol) or []
        orders: dict[str, JsonDict] = {}
        for raw in [*changed, *opened]:
            if self._mine(raw):
                orders[str(raw["orderId"])] = raw
        with self.book.lock:
            last = self.book.last_trade_ids.get(symbol)
        trade_params: dict[str, Any] = {"symbol": symbol}
        if last is not None:
            trade_params["fromId"] = last + 1
        elif since is not None:
            trade_params["startTime"] = params["startTime"]
        trades = self.rest.call("myTrades", client.get_my_trades, **trade_params) or []
        found: list[Fill] = []
        for trade in sorted(trades, key=lambda t: int(t["id"])):
            order_id = str(trade.get("orderId"))
            raw = orders.get(order_id)
            if raw is None and order_id not in self.book.orders and \
                    order_id not in self.book.alias:
                continue  # another session's, or another tool's
            if raw is None:
                raw = {"orderId": trade["orderId"], "symbol": symbol}
            seen = (self.book.local_id(order_id), int(trade["id"])) in self.book.trades
            self._execution(self._trade_report(trade, raw))
            fill_id = m.fill_id(symbol, trade["id"])
            if not seen:
                found += [x for x in self.book.fills if x.id == fill_id]
        since_ms = None if since is None else int(since.timestamp() * 1000)
        for raw in orders.values():
            self._reconciled_order(raw, since_ms)
        return found

    def _reconciled_order(self, raw: JsonDict, since_ms: int | None) -> None:
        """An order the stream may not have told of: created, or ended, after `since_ms` (what
        happened before it, the previous host or the stream told); then its state as Binance
        has it now."""
        status = str(raw.get("status"))
        created = int(raw.get("time") or 0)
        updated = int(raw.get("updateTime") or created)
        if since_ms is None or created >= since_ms:
            self._execution(new_report(raw))
        with self.book.lock:
            self._take(raw)
        if status in ("CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED") and (
                since_ms is None or updated >= since_ms):
            self._execution(change_report(raw, "EXPIRED" if status.startswith("EXPIRED")
                                          else status))

    def _trade_report(self, trade: JsonDict, raw: JsonDict) -> JsonDict:
        """A myTrades trade as an executionReport, its cumulative quantity counted from the
        session's fills of the order."""
        order_id = str(raw["orderId"])
        local = self.book.local_id(order_id)
        known = self.book.orders.get(local)
        cumulative = self.book.filled(local) + (m.dec(trade.get("qty")) or ZERO)
        original = m.dec(raw.get("origQty")) or (known.quantity if known else cumulative)
        status = "FILLED" if cumulative >= original else "PARTIALLY_FILLED"
        return {
            "e": "executionReport", "x": "TRADE", "X": status, "s": trade.get("symbol"),
            "i": raw["orderId"], "c": raw.get("clientOrderId") or (
                self.book.order_client_ids.get(local, "")),
            "S": "BUY" if trade.get("isBuyer") else "SELL",
            "o": raw.get("type") or (known.order_type.value if known else "MARKET"),
            "f": raw.get("timeInForce") or "GTC", "q": f.wire(original),
            "p": raw.get("price") or "0", "P": raw.get("stopPrice") or "0",
            "l": trade.get("qty"), "L": trade.get("price"), "z": f.wire(cumulative),
            "Z": None, "n": trade.get("commission"), "N": trade.get("commissionAsset"),
            "T": trade.get("time"), "t": trade.get("id"), "m": trade.get("isMaker"),
            "O": raw.get("time") or trade.get("time"),
        }

    # -- description --------------------------------------------------------------------------

    def capabilities(self) -> JsonDict:
        return dict(CAPABILITIES)

    def status(self) -> JsonDict:
        health = self.health()
        return {
            "connected": not self._closed and self._stream_states.get(USER_STREAM)
            == STREAM_CONNECTED,
            "last_heartbeat": None if self.rest.last_success_at is None
            else timestamp_str(self.rest.last_success_at),
            "latency_ms": self.rest.latency_ms,
            "market_open": True,
            "clock_offset_ms": self.rest.clock_offset_ms,
            "connection": health.as_json(),
        }

    def circuit_breakers(self) -> JsonDict:
        return {"adapter": self.rest.breaker.as_json(), "exit_order": self.exit_breaker.as_json()}

    def health(self) -> ConnectionHealth:
        remaining = self.rest.shared.remaining()
        reset = self.rest.shared.reset_at()
        banned = self.rest.shared.banned_until()
        with self._lock:
            streams = dict(self._stream_states)
        return ConnectionHealth(
            last_success_at=self.rest.last_success_at, rate_limit_remaining=remaining,
            rate_limit_reset_at=None if reset is None else datetime.fromtimestamp(reset, UTC),
            streams=streams, market_open=True, last_error=self.rest.last_error,
            circuit_breaker="closed" if self.rest.breaker.state == "closed" else "open",
            clock_offset_ms=self.rest.clock_offset_ms,
            banned_until=None if banned is None or banned <= time.time()
            else datetime.fromtimestamp(banned, UTC))

    def _report_health(self) -> None:
        health = self.health()
        if health != self._last_health:
            self._last_health = health
            self._health_sink.report(health)

    # -- events -------------------------------------------------------------------------------

    def drain_events(self) -> list[Event]:
        with self._lock:
            queued, self._queue = self._queue, []
            health_due, self._health_due = self._health_due, False
        if health_due:
            self._report_health()
        last_due = max((i for i, q in enumerate(queued) if isinstance(q, _AccountDue)),
                       default=-1)
        events: list[Event] = []
        for index, item in enumerate(queued):
            if isinstance(item, _AccountDue):
                if index == last_due:  # one account event per drain, after its fills
                    events.append(AccountEvent(self._account(), item.timestamp))
            else:
                events.append(item)
        market = self.market.drain_events()
        if not market:
            return events
        return list(heapq.merge(market, events, key=lambda e: e.timestamp))

    def _push(self, *items: Event | _AccountDue, wake: bool = True) -> None:
        with self.book.lock, self._lock:
            self._queue.extend(items)
        if wake:
            self._wake()

    # -- snapshot and lifecycle ---------------------------------------------------------------

    def snapshot(self) -> JsonDict:
        with self.book.lock:
            held = {g: _request_json(r) for g, (_, r) in self.book.held_oco.items()}
            held_ids = {g: o.id for g, (o, _) in self.book.held_oco.items()}
        return {"version": SNAPSHOT_VERSION, "prefix": self.ids.prefix,
                "saved_at": timestamp_str(self.now), "book": self.book.to_json(),
                "held_oco": held, "held_oco_ids": held_ids}

    def restore(self, state: JsonDict) -> Reconciliation:
        if state.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"binance snapshot version {state.get('version')!r} is not "
                             "supported")
        self.book.restore(state.get("book") or {})
        ids = state.get("held_oco_ids") or {}
        for group, raw in (state.get("held_oco") or {}).items():
            request = _request_from_json(raw)
            now = self.now
            order = Order(id=str(ids.get(group)), symbol=request.symbol, side=request.side,
                          order_type=request.order_type, quantity=request.quantity,
                          status=OrderStatus.PENDING, time_in_force=request.time_in_force,
                          created_at=now, updated_at=now,
                          client_order_id=request.client_order_id,
                          limit_price=request.limit_price, stop_price=request.stop_price,
                          position_id=request.symbol, oco_group_id=group)
            with self.book.lock:
                self.book.held_oco[group] = (order, request)
                self.book.remember(order)
                self.book.announce(order.id)
        saved = state.get("saved_at")
        since = None if not saved else datetime.fromisoformat(str(saved).replace("Z", "+00:00"))
        return self.reconcile(since=since)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.streams is not None:
            self.streams.close()

    def _try(self, call: Any) -> bool:
        try:
            call()
        except Exception as exc:  # reads in advance() never fail the session; health says
            log.warning("binance: %s", type(exc).__name__)
            return False
        return True


class _AccountDue:
    """A fill's account event, built at drain time (one per drain)."""

    __slots__ = ("timestamp",)

    def __init__(self, timestamp: datetime) -> None:
        self.timestamp = timestamp


# -- reports made from REST answers -----------------------------------------------------------

def response_reports(raw: JsonDict) -> list[JsonDict]:
    """An order response as executionReports: NEW, then a TRADE per fill (cumulative counted
    along), then how it ended when it did not stay working."""
    reports = [new_report(raw)]
    cumulative = ZERO
    quote = ZERO
    original = m.dec(raw.get("origQty")) or ZERO
    for fill in raw.get("fills") or ():
        quantity = m.dec(fill.get("qty")) or ZERO
        price = m.dec(fill.get("price")) or ZERO
        cumulative += quantity
        quote += quantity * price
        done = cumulative >= original
        reports.append({**_report_base(raw), "x": "TRADE",
                        "X": "FILLED" if done else "PARTIALLY_FILLED",
                        "l": fill.get("qty"), "L": fill.get("price"), "z": f.wire(cumulative),
                        "Z": f.wire(quote), "n": fill.get("commission"),
                        "N": fill.get("commissionAsset"), "t": fill.get("tradeId"),
                        "T": raw.get("transactTime")})
    status = str(raw.get("status") or "")
    if status in ("CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED"):
        reports.append(change_report(raw, "EXPIRED" if status.startswith("EXPIRED")
                                     else status))
    return reports


def _report_base(raw: JsonDict) -> JsonDict:
    return {"e": "executionReport", "s": raw.get("symbol"), "i": raw.get("orderId"),
            "c": raw.get("clientOrderId"), "S": raw.get("side"), "o": raw.get("type"),
            "f": raw.get("timeInForce"), "q": raw.get("origQty"), "p": raw.get("price"),
            "P": raw.get("stopPrice"), "d": raw.get("trailingDelta"),
            "Q": raw.get("origQuoteOrderQty"),
            "O": raw.get("time") or raw.get("transactTime") or raw.get("workingTime"),
            "E": raw.get("transactTime") or raw.get("updateTime")}


def new_report(raw: JsonDict) -> JsonDict:
    """The order as working (NEW) with what had filled before (z)."""
    status = str(raw.get("status") or "NEW")
    shown = status if status in ("NEW", "PENDING_NEW", "PARTIALLY_FILLED") else "NEW"
    return {**_report_base(raw), "x": "NEW", "X": shown, "z": "0", "Z": "0",
            "T": raw.get("time") or raw.get("transactTime")}


def change_report(raw: JsonDict, execution: str) -> JsonDict:
    """A cancel answer's order (or an order seen ended) as its executionReport: a cancel's
    own id is `clientOrderId`, the order's is `origClientOrderId`."""
    client = raw.get("origClientOrderId") or raw.get("clientOrderId")
    return {**_report_base(raw), "c": client, "x": execution,
            "X": raw.get("status") or execution, "z": raw.get("executedQty") or "0",
            "Z": raw.get("cummulativeQuoteQty"),
            "T": raw.get("transactTime") or raw.get("updateTime")}


def oco_params(rules: f.SymbolRules, *, side: Side, quantity: Decimal, take_profit: Decimal,
               stop_loss: Decimal, stop_limit: Decimal | None, take_id: str, stop_id: str,
               list_id: str) -> dict[str, Any]:
    """orderList/oco: for a sell, the take profit (LIMIT_MAKER) above, the stop loss
    (STOP_LOSS, or STOP_LOSS_LIMIT with a limit price) below; for a buy the other way. Rounded
    and checked against the filters."""
    buy = side is Side.BUY
    try:
        checked = f.check_order(rules, buy=buy, market=False, quantity=quantity,
                                price=take_profit, stop_price=stop_loss)
        limit = None if stop_limit is None else f.round_price(rules, stop_limit, buy=buy)
    except f.FilterFailure as failure:
        raise filter_rejection(failure) from None
    take = {"Type": "LIMIT_MAKER", "Price": f.wire(_required(checked.price)),
            "ClientOrderId": take_id}
    stop_type = "STOP_LOSS_LIMIT" if limit is not None or \
        "STOP_LOSS" not in rules.order_types else "STOP_LOSS"
    stop: dict[str, Any] = {"Type": stop_type, "StopPrice": f.wire(_required(
        checked.stop_price)), "ClientOrderId": stop_id}
    if stop_type == "STOP_LOSS_LIMIT":
        stop["Price"] = f.wire(limit if limit is not None else _required(checked.stop_price))
        stop["TimeInForce"] = "GTC"
    above, below = (stop, take) if buy else (take, stop)
    params: dict[str, Any] = {"symbol": rules.symbol, "side": side.value,
                              "quantity": f.wire(checked.quantity),
                              "listClientOrderId": list_id, "newOrderRespType": "FULL"}
    params.update({f"above{k}": v for k, v in above.items()})
    params.update({f"below{k}": v for k, v in below.items()})
    return params


def _required(value: Decimal | None) -> Decimal:
    if value is None:
        raise OrderRejected("a price is missing", reject_code="INVALID_PRICE")
    return value


def _request_json(request: OrderRequest) -> JsonDict:
    return {"symbol": request.symbol, "side": request.side.value,
            "quantity": f.wire(request.quantity), "order_type": request.order_type.value,
            "limit_price": None if request.limit_price is None else f.wire(request.limit_price),
            "stop_price": None if request.stop_price is None else f.wire(request.stop_price),
            "client_order_id": request.client_order_id, "oco_group_id": request.oco_group_id,
            "time_in_force": request.time_in_force.value}


def _request_from_json(raw: JsonDict) -> OrderRequest:
    from runtimes.core.domain import TimeInForce

    return OrderRequest(symbol=raw["symbol"], side=Side(raw["side"]),
                        quantity=Decimal(raw["quantity"]), order_type=OrderType(raw["order_type"]),
                        limit_price=m.dec(raw.get("limit_price")),
                        stop_price=m.dec(raw.get("stop_price")),
                        client_order_id=raw.get("client_order_id"),
                        oco_group_id=raw.get("oco_group_id"),
                        time_in_force=TimeInForce(raw["time_in_force"]))
