"""The fake Alpaca's order record and its JSON, exactly in Alpaca's shape (every number a string,
null where absent), and the parsing and validation of a submitted order body."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from tests.fakes.alpaca.values import (
    asset_id,
    check_price_increment,
    decimals_of,
    iso,
    parse_decimal,
    text,
    unprocessable,
)

TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
TIME_IN_FORCE = ("day", "gtc", "opg", "cls", "ioc", "fok")
CLASSES = ("simple", "bracket", "oco", "oto")
OPEN_STATUSES = frozenset(
    {
        "new",
        "partially_filled",
        "accepted",
        "held",
        "pending_new",
        "pending_cancel",
        "pending_replace",
        "accepted_for_bidding",
        "calculated",
        # Done executing for the day, not finished: listed as open, cancelable, expires with
        # the session's day orders.
        "done_for_day",
    }
)
FRACTIONAL_TYPES = ("market", "limit", "stop", "stop_limit")
MAX_CLIENT_ORDER_ID = 128


@dataclass(slots=True)
class Order:
    """One Alpaca order, legs included (a leg has `parent_id`)."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    created_at: datetime
    status: str
    order_class: str = "simple"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    hwm: Decimal | None = None
    extended_hours: bool = False
    position_intent: str | None = None
    filled_qty: Decimal = Decimal(0)
    filled_value: Decimal = Decimal(0)  # sum of qty * price of the executions
    updated_at: datetime | None = None
    filled_at: datetime | None = None
    expired_at: datetime | None = None
    canceled_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    legs: list[str] = field(default_factory=list)
    parent_id: str | None = None
    # A stop (or stop_limit, trailing) order that was triggered and now works as market/limit.
    triggered: bool = False
    # Legs of a bracket/oto wait for the parent's fill; the other legs work at once.
    active: bool = True

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal | None:
        return None if self.qty is None else self.qty - self.filled_qty

    @property
    def filled_avg_price(self) -> Decimal | None:
        if not self.filled_qty:
            return None
        return (self.filled_value / self.filled_qty).quantize(Decimal("0.0000000001")).normalize()

    def touch(self, now: datetime) -> None:
        self.updated_at = now


def order_json(order: Order, orders: dict[str, Order], *, nested: bool = True) -> dict[str, Any]:
    """Alpaca's JSON of `order`; its legs nested when it has any and `nested`."""
    legs = None
    if order.legs and nested:
        legs = [order_json(orders[leg], orders) for leg in order.legs]
    return {
        "id": order.id,
        "client_order_id": order.client_order_id,
        "created_at": iso(order.created_at),
        "updated_at": iso(order.updated_at or order.created_at),
        "submitted_at": iso(order.created_at),
        "filled_at": iso(order.filled_at),
        "expired_at": iso(order.expired_at),
        "expires_at": None,
        "canceled_at": iso(order.canceled_at),
        "failed_at": iso(order.failed_at),
        "replaced_at": iso(order.replaced_at),
        "replaced_by": order.replaced_by,
        "replaces": order.replaces,
        "asset_id": asset_id(order.symbol),
        "symbol": order.symbol,
        "asset_class": "us_equity",
        "notional": text(order.notional),
        "qty": text(order.qty),
        "filled_qty": text(order.filled_qty),
        "filled_avg_price": text(order.filled_avg_price),
        # Alpaca's wire form of a simple order's class is "" (the SDK reads it as simple).
        "order_class": "" if order.order_class == "simple" else order.order_class,
        "order_type": order.type,
        "type": order.type,
        "side": order.side,
        "position_intent": order.position_intent,
        "time_in_force": order.time_in_force,
        "limit_price": text(order.limit_price),
        "stop_price": text(order.stop_price),
        "status": order.status,
        "extended_hours": order.extended_hours,
        "legs": legs,
        "trail_percent": text(order.trail_percent),
        "trail_price": text(order.trail_price),
        "hwm": text(order.hwm),
        "subtag": None,
        "source": None,
    }


@dataclass(frozen=True, slots=True)
class Submitted:
    """A validated order body."""

    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    client_order_id: str
    order_class: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail_price: Decimal | None
    trail_percent: Decimal | None
    extended_hours: bool
    position_intent: str | None
    take_profit: Decimal | None
    stop_loss_stop: Decimal | None
    stop_loss_limit: Decimal | None

    @property
    def fractional(self) -> bool:
        return self.notional is not None or (self.qty is not None and decimals_of(self.qty) > 0)


def _choice(body: dict[str, Any], key: str, allowed: tuple[str, ...], default: str | None) -> str:
    value = body.get(key, default)
    if value is None:
        raise unprocessable(f"{key} is required", 40010001)
    if not isinstance(value, str) or value.lower() not in allowed:
        raise unprocessable(f"invalid {key}: {value}", 40010001)
    return value.lower()


def parse_submit(body: Any) -> Submitted:
    """The order body of POST /v2/orders, validated as Alpaca does (before the account checks)."""
    if not isinstance(body, dict):
        raise unprocessable("request body format is invalid", 40010001)
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or not symbol.strip():
        raise unprocessable("symbol is required", 40010001)
    side = _choice(body, "side", ("buy", "sell"), None)
    type_ = _choice(body, "type", TYPES, None)
    tif = _choice(body, "time_in_force", TIME_IN_FORCE, None)
    order_class = _choice(body, "order_class", (*CLASSES, ""), "simple") or "simple"
    qty = parse_decimal(body.get("qty"), "qty")
    notional = parse_decimal(body.get("notional"), "notional")
    if qty is not None and notional is not None:
        raise unprocessable("only one of qty or notional is accepted", 40010001)
    if qty is None and notional is None:
        raise unprocessable("qty or notional is required", 40010001)
    if qty is not None and qty <= 0:
        raise unprocessable("qty must be > 0", 40010001)
    if notional is not None and notional <= 0:
        raise unprocessable("notional must be > 0", 40010001)
    for amount, name in ((qty, "qty"), (notional, "notional")):
        if amount is not None and decimals_of(amount) > 9:
            raise unprocessable(f"{name} must have at most 9 decimal places", 40010001)
    client_order_id = body.get("client_order_id") or str(uuid.uuid4())
    if not isinstance(client_order_id, str):
        raise unprocessable("invalid client_order_id", 40010001)
    if len(client_order_id) > MAX_CLIENT_ORDER_ID:
        raise unprocessable(
            f"client_order_id must be no more than {MAX_CLIENT_ORDER_ID} characters", 40010001
        )
    intent = body.get("position_intent")
    if intent is not None and intent not in (
        "buy_to_open",
        "buy_to_close",
        "sell_to_open",
        "sell_to_close",
    ):
        raise unprocessable(f"invalid position_intent: {intent}", 40010001)
    submitted = Submitted(
        symbol=symbol.strip().upper(),
        side=side,
        type=type_,
        time_in_force=tif,
        qty=qty,
        notional=notional,
        client_order_id=client_order_id,
        order_class=order_class,
        limit_price=_limit_price(body, order_class),
        stop_price=parse_decimal(body.get("stop_price"), "stop_price"),
        trail_price=parse_decimal(body.get("trail_price"), "trail_price"),
        trail_percent=parse_decimal(body.get("trail_percent"), "trail_percent"),
        extended_hours=bool(body.get("extended_hours") or False),
        position_intent=intent,
        take_profit=_leg_price(body, "take_profit", "limit_price"),
        stop_loss_stop=_leg_price(body, "stop_loss", "stop_price"),
        stop_loss_limit=_leg_price(body, "stop_loss", "limit_price"),
    )
    _check_prices(submitted)
    _check_class(submitted)
    return submitted


def _limit_price(body: dict[str, Any], order_class: str) -> Decimal | None:
    """An OCO's own limit is its take-profit's (the SDK sends no top-level limit_price)."""
    limit = parse_decimal(body.get("limit_price"), "limit_price")
    if limit is None and order_class == "oco":
        return _leg_price(body, "take_profit", "limit_price")
    return limit


def _leg_price(body: dict[str, Any], leg: str, key: str) -> Decimal | None:
    part = body.get(leg)
    if part is None:
        return None
    if not isinstance(part, dict):
        raise unprocessable(f"invalid {leg}", 40010001)
    return parse_decimal(part.get(key), f"{leg}.{key}")


def _check_prices(order: Submitted) -> None:
    needs_limit = order.type in ("limit", "stop_limit")
    needs_stop = order.type in ("stop", "stop_limit")
    if needs_limit and order.limit_price is None:
        raise unprocessable("limit_price is required", 40010001)
    if needs_stop and order.stop_price is None:
        raise unprocessable("stop_price is required", 40010001)
    if not needs_limit and order.limit_price is not None:
        raise unprocessable(f"limit_price must not be given for {order.type} orders", 40010001)
    if not needs_stop and order.stop_price is not None:
        raise unprocessable(f"stop_price must not be given for {order.type} orders", 40010001)
    if order.type == "trailing_stop":
        if (order.trail_price is None) == (order.trail_percent is None):
            raise unprocessable("one of trail_price or trail_percent is required", 40010001)
    elif order.trail_price is not None or order.trail_percent is not None:
        raise unprocessable("trail_price and trail_percent are for trailing_stop orders", 40010001)
    for value, name in (
        (order.limit_price, "limit_price"),
        (order.stop_price, "stop_price"),
        (order.trail_price, "trail_price"),
        (order.take_profit, "take_profit.limit_price"),
        (order.stop_loss_stop, "stop_loss.stop_price"),
        (order.stop_loss_limit, "stop_loss.limit_price"),
    ):
        if value is not None:
            if value <= 0:
                raise unprocessable(f"invalid {name}: must be > 0", 40010001)
            check_price_increment(value, name)
    if order.trail_percent is not None and not 0 < order.trail_percent < 100:
        raise unprocessable("invalid trail_percent", 40010001)
    if order.notional is not None and order.type != "market":
        raise unprocessable("notional orders are only allowed for market orders")
    if order.extended_hours and (order.type != "limit" or order.time_in_force != "day"):
        raise unprocessable("extended hours order must be DAY limit orders")


def _check_class(order: Submitted) -> None:
    has_tp, has_sl = order.take_profit is not None, order.stop_loss_stop is not None
    if order.order_class == "simple":
        if has_tp or has_sl:
            raise unprocessable("take_profit and stop_loss are for bracket, oco and oto orders")
    elif order.order_class == "bracket" and not (has_tp and has_sl):
        raise unprocessable("bracket orders require take_profit and stop_loss", 40010001)
    elif order.order_class == "oco":
        if not (has_tp and has_sl):
            raise unprocessable("oco orders require take_profit and stop_loss", 40010001)
        if order.type != "limit":
            raise unprocessable("oco orders must be limit orders", 40010001)
    elif order.order_class == "oto" and has_tp == has_sl:
        raise unprocessable("oto orders require one of take_profit or stop_loss", 40010001)
    if order.order_class != "simple" and order.time_in_force not in ("day", "gtc"):
        raise unprocessable("advanced orders must be DAY or GTC orders")
    if not order.fractional:
        return
    if order.order_class != "simple":
        raise unprocessable("fractional orders must be simple orders")
    if order.type not in FRACTIONAL_TYPES:
        raise unprocessable(f"fractional orders are not supported for {order.type} orders")
    if order.time_in_force != "day":
        raise unprocessable("fractional orders must be DAY orders")
