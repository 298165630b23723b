"""Bar processing of the simulated exchange: expiry, matching, fills, exit legs, OCO.

`process_bar` runs once per bar of a symbol that has open orders. Candidate fills are found for
every open order first, then applied in a fixed order (see `exchange_matching._rank`), so the
outcome never depends on dict order or chance.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from runtimes.core.costs import apply_slippage
from runtimes.core.domain import (
    ZERO,
    Fill,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)
from runtimes.core.events import OrderEventKind, TradeEvent
from runtimes.core.exchange import SimulatedExchange
from runtimes.core.exchange_accounting import PositionChange
from runtimes.core.exchange_matching import (
    Match,
    find_match,
    trail_level,
    updated_extreme,
)
from runtimes.core.exchange_risk import Refusal, cash_refusal, margin_refusal
from runtimes.core.exchange_sizing import quantity_at_fill

ONE_CHANCE = frozenset({TimeInForce.IOC, TimeInForce.FOK})


class BarContext:
    """One bar of one symbol while it is being matched."""

    __slots__ = ("budget", "day", "epoch", "h", "low", "o", "same_bar_legs", "symbol")

    def __init__(
        self, symbol: str, epoch: int, o: Decimal, h: Decimal, low: Decimal, budget: Decimal | None
    ) -> None:
        self.symbol, self.epoch = symbol, epoch
        self.o, self.h, self.low = o, h, low
        self.budget = budget  # volume still fillable in this bar; None = unlimited
        self.day: date | None = None
        self.same_bar_legs: list[str] = []


def process_bar(
    ex: SimulatedExchange,
    symbol: str,
    epoch: int,
    o: Decimal,
    h: Decimal,
    low: Decimal,
    volume: Decimal,
    side: Side | None = None,
) -> None:
    """Match the open orders of `symbol` against one bar (events go to `ex.events`).

    `side` restricts the bar to the orders of one side: a quote-driven market (the `mock`
    provider) matches buys against a bar of asks and sells against a bar of bids, one call each,
    while OCO siblings and exit legs of either side stay on the one book."""
    book = ex.open_by_symbol.get(symbol)
    if not book:
        return
    share = ex.config.max_volume_share
    bar = BarContext(symbol, epoch, o, h, low, None if share is None else volume * share)
    ids = list(book) if side is None else _of_side(ex, book, side)
    _expire_day_orders(ex, ids, bar)
    _match(ex, [oid for oid in ids if oid in ex.working], bar)
    for oid in ids:
        if oid in ex.working:
            _after_bar(ex, ex.orders_by_id[oid], bar)
    while bar.same_bar_legs:  # legs of entries filled at this bar's open act in this bar too
        legs, bar.same_bar_legs = bar.same_bar_legs, []
        _match(ex, legs if side is None else _of_side(ex, legs, side), bar)


def _of_side(ex: SimulatedExchange, ids: Iterable[str], side: Side) -> list[str]:
    return [oid for oid in ids if ex.orders_by_id[oid].side is side]


def _expire_day_orders(ex: SimulatedExchange, ids: list[str], bar: BarContext) -> None:
    for oid in ids:
        order = ex.orders_by_id[oid]
        if order.time_in_force is not TimeInForce.DAY:
            continue
        if bar.day is None:
            bar.day = ex.session_day(bar.epoch)
        working = ex.working[oid]
        if working.session_day is None:
            working.session_day = bar.day
        elif working.session_day != bar.day:
            ex.finish(order, OrderStatus.EXPIRED, OrderEventKind.ORDER_EXPIRED)


def _match(ex: SimulatedExchange, ids: list[str], bar: BarContext) -> None:
    pessimistic = ex.config.pessimistic
    candidates: list[Match] = []
    for oid in ids:
        working = ex.working.get(oid)
        if working is None:  # closed meanwhile (e.g. a leg cancelled because the position closed)
            continue
        order = ex.orders_by_id[oid]
        if order.order_type is OrderType.TRAILING_STOP and working.extreme is None:
            working.extreme = bar.o  # placed before any price was seen: trail from this open
            order = ex.store(order, stop_price=trail_level(order, bar.o))
        match = find_match(order, working, bar.o, bar.h, bar.low, pessimistic=pessimistic)
        if match is not None:
            candidates.append(match)
    candidates.sort(key=lambda m: m.rank)
    for match in candidates:
        order = ex.orders_by_id[match.order_id]
        if not order.status.is_terminal:
            _execute(ex, order, match, bar)


def _after_bar(ex: SimulatedExchange, order: Order, bar: BarContext) -> None:
    """IOC/FOK had their one chance; trailing stops move with the bar just seen."""
    if order.time_in_force in ONE_CHANCE:
        ex.finish(order, OrderStatus.EXPIRED, OrderEventKind.ORDER_EXPIRED)
        return
    working = ex.working[order.id]
    if order.order_type is OrderType.TRAILING_STOP and working.extreme is not None:
        extreme = updated_extreme(order, working.extreme, bar.h, bar.low)
        if extreme != working.extreme:
            working.extreme = extreme
            ex.store(order, stop_price=trail_level(order, extreme))


def _execute(ex: SimulatedExchange, order: Order, match: Match, bar: BarContext) -> None:
    price = _fill_price(ex, order.side, match.price, bar)
    if order.awaits_sizing:
        sized = _size_at_fill(ex, order, price)
        if sized is None:
            return
        order = sized
    qty = _fillable_quantity(ex, order, bar)
    if qty is None:
        return
    held = ex.held(order.symbol)
    refusal = _unaffordable(ex, order, qty, price, held)
    if refusal is not None:
        ex.finish(order, OrderStatus.REJECTED, OrderEventKind.ORDER_REJECTED, refusal.reason)
        return
    _book_fill(ex, order, qty, price, match, bar)


def _size_at_fill(ex: SimulatedExchange, order: Order, price: Decimal) -> Order | None:
    """Fix the quantity of an order given by notional or equity fraction at this fill's price
    (the order keeps it for any later partial fills); reject it when not one step fits."""
    quantity = quantity_at_fill(
        order,
        price=price,
        equity=ex.ledger.equity(),
        cash=ex.ledger.cash,
        commission=ex.commission,
        step=ex.config.step_for(order.symbol),
        cash_account=not ex.config.is_margin,
    )
    if not quantity:
        reason = RejectReason.INVALID_QUANTITY
        ex.finish(order, OrderStatus.REJECTED, OrderEventKind.ORDER_REJECTED, reason)
        return None
    return ex.store(order, quantity=quantity)


def _fillable_quantity(ex: SimulatedExchange, order: Order, bar: BarContext) -> Decimal | None:
    """How much of `order` can fill in this bar; None (and maybe a terminal status) if nothing."""
    qty = order.remaining_quantity
    held = ex.held(order.symbol)
    if order.reduce_only:
        reducing = held < 0 if order.side is Side.BUY else held > 0
        if not reducing:
            ex.finish(order, OrderStatus.CANCELLED, OrderEventKind.ORDER_CANCELLED)
            return None
        qty = min(qty, abs(held))
    elif order.side is Side.SELL and not ex.config.is_margin and qty > max(held, ZERO):
        reason = RejectReason.INSUFFICIENT_BALANCE
        ex.finish(order, OrderStatus.REJECTED, OrderEventKind.ORDER_REJECTED, reason)
        return None
    if bar.budget is not None:
        qty = min(qty, bar.budget)
    if qty <= 0:
        return None
    if order.time_in_force is TimeInForce.FOK and qty < order.remaining_quantity:
        return None
    return qty


def _fill_price(ex: SimulatedExchange, side: Side, base: Decimal, bar: BarContext) -> Decimal:
    """Slippage against the taker, but never outside the bar's range: no real trade was there."""
    price = apply_slippage(base, side, ex.config.slippage_bps)
    return min(max(price, bar.low), bar.h)


def _unaffordable(
    ex: SimulatedExchange, order: Order, qty: Decimal, price: Decimal, held: Decimal
) -> Refusal | None:
    if order.reduce_only:
        return None
    if ex.config.is_margin:
        signed = qty if order.side is Side.BUY else -qty
        return margin_refusal(
            ledger=ex.ledger,
            held=held,
            signed_qty=signed,
            price=price,
            leverage=ex.config.leverage,
        )
    if order.side is Side.SELL:
        return None
    return cash_refusal(
        quantity=qty,
        price=price,
        commission=ex.commission,
        slippage_bps=Decimal(0),
        available=ex.ledger.cash,
    )


def _book_fill(
    ex: SimulatedExchange,
    order: Order,
    qty: Decimal,
    price: Decimal,
    match: Match,
    bar: BarContext,
) -> None:
    now = ex.clock.now()
    fee = ex.commission.fee(qty, price)
    signed = qty if order.side is Side.BUY else -qty
    effect = ex.ledger.apply_fill(order.symbol, signed, price, fee, now)
    if bar.budget is not None:
        bar.budget -= qty
    fill = Fill(
        id=ex.next_fill_id(),
        order_id=order.id,
        symbol=order.symbol,
        side=order.side,
        quantity=qty,
        price=price,
        commission=fee,
        commission_currency=ex.commission.currency,
        timestamp=now,
        base_price=match.price,
        is_maker=False,
        position_id=order.position_id,
    )
    ex.fills.append(fill)
    working = ex.working[order.id]
    working.notional += qty * price
    filled = order.filled_quantity + qty
    average = working.notional / filled
    if filled == order.quantity:
        order = ex.finish(
            order,
            OrderStatus.FILLED,
            OrderEventKind.ORDER_FILLED,
            filled_quantity=filled,
            average_fill_price=average,
        )
    else:
        order = ex.store(
            order,
            filled_quantity=filled,
            average_fill_price=average,
            status=OrderStatus.PARTIALLY_FILLED,
        )
        ex.emit_order(OrderEventKind.ORDER_PARTIALLY_FILLED, order)
    ex.events.append(TradeEvent(fill, now))
    ex.emit_position(effect.change, order.symbol)
    ex.account_changed = True
    _after_fill(ex, order, qty, match, bar, effect.change)


def _after_fill(
    ex: SimulatedExchange,
    order: Order,
    qty: Decimal,
    match: Match,
    bar: BarContext,
    change: PositionChange,
) -> None:
    if order.stop_loss is not None or order.take_profit is not None:
        bar.same_bar_legs.extend(_place_exit_legs(ex, order, qty, same_bar=match.at_open))
    if order.status is OrderStatus.FILLED and order.oco_group_id is not None:
        for sibling in ex.open_orders():
            if sibling.oco_group_id == order.oco_group_id:
                ex.finish(sibling, OrderStatus.CANCELLED, OrderEventKind.ORDER_CANCELLED)
    if change is PositionChange.POSITION_CLOSED:
        for leg in ex.open_orders():
            if leg.symbol == order.symbol and leg.parent_order_id is not None:
                ex.finish(leg, OrderStatus.CANCELLED, OrderEventKind.ORDER_CANCELLED)


def _place_exit_legs(
    ex: SimulatedExchange, entry: Order, qty: Decimal, *, same_bar: bool
) -> list[str]:
    """Stop-loss (STOP) and take-profit (LIMIT) for `qty` of `entry`, one OCO pair per tranche."""
    tranche = ex.leg_tranches[entry.id] = ex.leg_tranches.get(entry.id, 0) + 1
    base = entry.client_order_id or entry.id
    suffix = "" if tranche == 1 else f"-{tranche}"
    both = entry.stop_loss is not None and entry.take_profit is not None
    group = f"{entry.id}-exits{suffix}" if both else None
    side = entry.side.opposite
    legs: list[OrderRequest] = []
    if entry.stop_loss is not None:
        legs.append(
            OrderRequest(
                symbol=entry.symbol,
                side=side,
                quantity=qty,
                order_type=OrderType.STOP,
                stop_price=entry.stop_loss,
                reduce_only=True,
                oco_group_id=group,
                client_order_id=f"{base}-sl{suffix}",
            )
        )
    if entry.take_profit is not None:
        legs.append(
            OrderRequest(
                symbol=entry.symbol,
                side=side,
                quantity=qty,
                order_type=OrderType.LIMIT,
                limit_price=entry.take_profit,
                reduce_only=True,
                oco_group_id=group,
                client_order_id=f"{base}-tp{suffix}",
            )
        )
    placed = [ex.accept(r, parent_order_id=entry.id, same_bar=same_bar) for r in legs]
    return [leg.id for leg in placed] if same_bar else []
