"""The simulated exchange: accepts, modifies and cancels orders, and fills them against bars.

One instance per backtest. Strategy actions (submit, modify, cancel) and bar processing append
events to one queue that the engine takes; all state changes happen here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from runtimes.core.domain import (
    ZERO,
    Account,
    Clock,
    Fill,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    RejectReason,
    Side,
)
from runtimes.core.errors import (
    OrderNotFound,
    OrderNotModifiable,
    OrderRejected,
    OrderValidationError,
)
from runtimes.core.events import AccountEvent, Event, OrderEvent, OrderEventKind, PositionEvent
from runtimes.core.exchange_accounting import Ledger, position_id
from runtimes.core.exchange_matching import Working, initial_trailing_stop
from runtimes.core.exchange_modify import apply_modification
from runtimes.core.exchange_risk import (
    Refusal,
    cash_refusal,
    margin_refusal,
    reduce_only_refusal,
    reference_price,
    reserved_cash,
    short_refusal,
    sized_refusal,
)
from runtimes.core.execution import BacktestConfig
from runtimes.core.validation import validate_order_request

PriceSource = Callable[[str], Decimal | None]


class SimulatedExchange:
    """Order book, matching and accounting for one backtest account.

    `last_price(symbol)` gives the last close the strategy has seen (None before the first bar).
    """

    def __init__(
        self,
        *,
        symbols: Sequence[str],
        config: BacktestConfig,
        clock: Clock,
        last_price: PriceSource,
    ) -> None:
        self.config = config
        self.clock = clock
        self.last_price = last_price
        self.symbols = frozenset(symbols)
        self.commission = config.resolved_commission
        self.currency = config.resolved_currency
        self.session_tz = ZoneInfo(config.session_timezone)
        self.ledger = Ledger(config.initial_cash)
        self.orders_by_id: dict[str, Order] = {}
        self.working: dict[str, Working] = {}  # open orders only
        self.open_by_symbol: dict[str, dict[str, None]] = {}  # insertion-ordered id sets
        self.by_client_id: dict[str, str] = {}
        self.fills: list[Fill] = []
        self.events: list[Event] = []
        self.leg_tranches: dict[str, int] = {}
        self.account_changed = False
        self._order_seq = 0
        self._fill_seq = 0

    # -- strategy actions ---------------------------------------------------------------------

    def submit(self, request: OrderRequest) -> Order:
        """Validate and accept `request`; return the OPEN order (or the earlier one with the same
        client_order_id). Raises OrderValidationError, or OrderRejected after recording a
        REJECTED order."""
        validate_order_request(request)
        self._check_fraction_within_leverage(request)
        known = self.by_client_id.get(request.client_order_id or "")
        if known is not None:
            return self.orders_by_id[known]
        refusal = self._refusal(request)
        if refusal is not None:
            rejected = self._record(request, OrderStatus.REJECTED, reason=refusal.reason)
            self.emit_order(OrderEventKind.ORDER_REJECTED, rejected)
            raise OrderRejected(
                refusal.message, reject_code=refusal.reject_code, details={"order_id": rejected.id}
            )
        return self.accept(request)

    def accept(
        self, request: OrderRequest, *, parent_order_id: str | None = None, same_bar: bool = False
    ) -> Order:
        """Put an already checked order on the book and announce it (ORDER_CREATED)."""
        order = self._record(request, OrderStatus.OPEN, parent_order_id=parent_order_id)
        working = Working(self._order_seq, same_bar=same_bar)
        if order.order_type is OrderType.TRAILING_STOP:
            last = self.last_price(order.symbol)
            if last is not None:
                working.extreme = last
                order = self.store(order, stop_price=initial_trailing_stop(order, last))
        self.working[order.id] = working
        self.open_by_symbol.setdefault(order.symbol, {})[order.id] = None
        self.emit_order(OrderEventKind.ORDER_CREATED, order)
        return order

    def cancel(self, order_id: str) -> Order:
        """Cancel an open order. Raises OrderNotFound, or OrderNotModifiable when terminal."""
        order = self.order(order_id)
        if order.status.is_terminal:
            raise OrderNotModifiable(order_id)
        return self.finish(order, OrderStatus.CANCELLED, OrderEventKind.ORDER_CANCELLED)

    def cancel_all(self, symbol: str | None = None) -> list[Order]:
        """Cancel every open order (of `symbol` if given), oldest first; return them."""
        ids = [
            oid
            for sym, book in self.open_by_symbol.items()
            if symbol is None or sym == symbol
            for oid in book
        ]
        ids.sort(key=lambda oid: self.working[oid].seq)
        return [self.cancel(oid) for oid in ids]

    def modify(self, order_id: str, **changes: Decimal | None) -> Order:
        """Change prices or quantity of an open order in place (same id; ORDER_MODIFIED).

        Raises OrderNotFound, OrderNotModifiable, or OrderValidationError for a bad value."""
        order = self.order(order_id)
        if order.status.is_terminal:
            raise OrderNotModifiable(order_id)
        updates = apply_modification(order, self.working[order_id], changes)
        order = self.store(order, **updates)
        self.emit_order(OrderEventKind.ORDER_MODIFIED, order)
        self._sync_exit_legs(order, updates)
        return order

    # -- reads --------------------------------------------------------------------------------

    def order(self, order_id: str) -> Order:
        try:
            return self.orders_by_id[order_id]
        except KeyError:
            raise OrderNotFound(order_id) from None

    def open_orders(self) -> list[Order]:
        ids = [oid for book in self.open_by_symbol.values() for oid in book]
        ids.sort(key=lambda oid: self.working[oid].seq)
        return [self.orders_by_id[oid] for oid in ids]

    def held(self, symbol: str) -> Decimal:
        """Signed net position of `symbol`."""
        state = self.ledger.positions.get(symbol)
        return ZERO if state is None else state.quantity

    def positions(self) -> list[Position]:
        leverage = self.config.leverage if self.config.is_margin else None
        return [p.snapshot(leverage) for p in self.ledger.positions.values()]

    def position(self, symbol: str) -> Position | None:
        state = self.ledger.positions.get(symbol)
        leverage = self.config.leverage if self.config.is_margin else None
        return None if state is None else state.snapshot(leverage)

    def account(self) -> Account:
        return self.ledger.account(
            leverage=self.config.leverage, margin=self.config.is_margin, currency=self.currency
        )

    # -- bookkeeping used by the matcher ------------------------------------------------------

    def store(self, order: Order, **changes: Any) -> Order:
        """Replace `order` with a changed copy stamped with the current time."""
        updated = replace(order, updated_at=self.clock.now(), **changes)
        self.orders_by_id[order.id] = updated
        return updated

    def finish(
        self,
        order: Order,
        status: OrderStatus,
        kind: OrderEventKind,
        reason: RejectReason | None = None,
        **extra: Any,
    ) -> Order:
        """Move an open order to a terminal status and announce it."""
        changes: dict[str, Any] = {"status": status, **extra}
        if reason is not None:
            changes["reject_reason"] = reason
        if order.parent_order_id is not None:
            changes["parent_order_id"] = None  # the reference: only while the leg is live
        done = self.store(order, **changes)
        self.working.pop(order.id, None)
        book = self.open_by_symbol.get(order.symbol)
        if book is not None:
            book.pop(order.id, None)
        self.emit_order(kind, done, parent_order_id=order.parent_order_id)
        return done

    def emit_order(
        self, kind: OrderEventKind, order: Order, *, parent_order_id: str | None = None
    ) -> None:
        parent = parent_order_id or order.parent_order_id
        self.events.append(OrderEvent(kind, order, self.clock.now(), parent))

    def emit_position(self, kind: Any, symbol: str) -> None:
        leverage = self.config.leverage if self.config.is_margin else None
        state = self.ledger.positions.get(symbol) or self.ledger.closed[symbol]
        self.events.append(PositionEvent(kind, state.snapshot(leverage), self.clock.now()))

    def take_events(self) -> list[Event]:
        """Hand over the queued events (adding one account event if money moved)."""
        if self.account_changed:
            self.events.append(AccountEvent(self.account(), self.clock.now()))
            self.account_changed = False
        events, self.events = self.events, []
        return events

    def next_fill_id(self) -> str:
        self._fill_seq += 1
        return f"fill-{self._fill_seq}"

    def session_day(self, epoch: int) -> date:
        return datetime.fromtimestamp(epoch, tz=self.session_tz).date()

    # -- internals ----------------------------------------------------------------------------

    def _record(
        self,
        request: OrderRequest,
        status: OrderStatus,
        *,
        reason: RejectReason | None = None,
        parent_order_id: str | None = None,
    ) -> Order:
        self._order_seq += 1
        now = self.clock.now()
        order = Order(
            id=f"ord-{self._order_seq}",
            symbol=request.symbol,
            side=request.side,
            order_type=request.order_type,
            quantity=request.quantity,
            status=status,
            time_in_force=request.time_in_force,
            created_at=now,
            updated_at=now,
            client_order_id=request.client_order_id,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            stop_loss=request.stop_loss,
            take_profit=request.take_profit,
            trailing_distance=request.trailing_distance,
            trailing_type=request.trailing_type,
            reject_reason=reason,
            position_id=position_id(request.symbol),
            parent_order_id=parent_order_id,
            reduce_only=request.reduce_only,
            post_only=request.post_only,
            hidden=request.hidden,
            display_quantity=request.display_quantity,
            oco_group_id=request.oco_group_id,
            notional=request.notional,
            equity_fraction=request.equity_fraction,
        )
        self.orders_by_id[order.id] = order
        if request.client_order_id is not None:
            self.by_client_id.setdefault(request.client_order_id, order.id)
        return order

    def _refusal(self, request: OrderRequest) -> Refusal | None:
        if request.symbol not in self.symbols:
            return Refusal(
                "INVALID_SYMBOL",
                RejectReason.SYMBOL_NOT_TRADEABLE,
                f"symbol {request.symbol} is not traded in this session",
            )
        held = self.held(request.symbol)
        if request.reduce_only:
            return reduce_only_refusal(request, held)
        price = reference_price(
            request.order_type,
            request.limit_price,
            request.stop_price,
            self.last_price(request.symbol),
        )
        if request.sized_at_fill:
            return sized_refusal(
                request,
                ledger=self.ledger,
                held=held,
                price=price,
                config=self.config,
                reserved=self._reserved_cash(),
            )
        if self.config.is_margin:
            if price is None:
                return None
            signed = request.quantity if request.side is Side.BUY else -request.quantity
            return margin_refusal(
                ledger=self.ledger,
                held=held,
                signed_qty=signed,
                price=price,
                leverage=self.config.leverage,
            )
        if request.side is Side.SELL:
            return short_refusal(request.symbol, request.quantity, held)
        if price is None:
            return None
        return cash_refusal(
            quantity=request.quantity,
            price=price,
            commission=self.commission,
            slippage_bps=self.config.slippage_bps,
            available=self.ledger.cash - self._reserved_cash(),
        )

    def _reserved_cash(self) -> Decimal:
        return reserved_cash(self.open_orders(), self.last_price, equity=self.ledger.equity())

    def _check_fraction_within_leverage(self, request: OrderRequest) -> None:
        """A fraction of equity above the account's leverage could never be paid for."""
        fraction = request.equity_fraction
        if fraction is not None and fraction > self.config.leverage:
            raise OrderValidationError.invalid(
                "equity_fraction",
                fraction,
                f"must be at most the leverage allowed ({self.config.leverage})",
            )

    def _sync_exit_legs(self, entry: Order, updates: dict[str, Any]) -> None:
        """A changed stop_loss / take_profit on an entry moves its live exit legs too."""
        for leg in self.open_orders():
            if leg.parent_order_id != entry.id:
                continue
            if "stop_loss" in updates and leg.order_type is OrderType.STOP:
                leg = self.store(leg, stop_price=updates["stop_loss"])
                self.emit_order(OrderEventKind.ORDER_MODIFIED, leg)
            if "take_profit" in updates and leg.order_type is OrderType.LIMIT:
                leg = self.store(leg, limit_price=updates["take_profit"])
                self.emit_order(OrderEventKind.ORDER_MODIFIED, leg)
