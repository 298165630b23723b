"""Alpaca's JSON to the core's domain objects, and order requests to Alpaca's order bodies.

Alpaca sends quantities and prices as strings; they become Decimal here and never pass through a
float. Order bodies are built here too, with prices rounded the way Alpaca takes them (2 decimals
at or above $1, 4 below; quantities to 9 decimals), so nothing finer ever leaves.

Statuses (reference §4.1): every Alpaca status lands on one of the protocol's; one this module
does not know is mapped conservatively (still working, or partially filled when something filled)
and logged, never raised: a new status at Alpaca must not crash a session.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final

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
    RejectReason,
    Side,
    TimeInForce,
    TrailingType,
)
from runtimes.core.errors import format_decimal
from runtimes.providers.alpaca.symbols import from_alpaca, to_alpaca

JsonDict = dict[str, Any]
log = logging.getLogger(__name__)

CENT: Final = Decimal("0.01")
SUB_DOLLAR_TICK: Final = Decimal("0.0001")
QTY_STEP: Final = Decimal("0.000000001")  # Alpaca takes quantities to 9 decimals
EQUITY_COMMISSION: Final = ZERO  # Alpaca reports no commission on US equity fills
COMMISSION_CURRENCY: Final = "USD"

# Alpaca status -> protocol status. "accepted" depends on the market (see order_status).
STATUSES: Final[dict[str, OrderStatus]] = {
    "pending_new": OrderStatus.PENDING,
    "accepted_for_bidding": OrderStatus.PENDING,
    "pending_review": OrderStatus.PENDING,
    "held": OrderStatus.PENDING,  # a bracket's exit legs, until the entry fills
    "new": OrderStatus.OPEN,
    "pending_replace": OrderStatus.OPEN,  # still working until the replacement is accepted
    "stopped": OrderStatus.OPEN,  # a fill is guaranteed, not done yet
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "pending_cancel": OrderStatus.PENDING_CANCEL,
    "canceled": OrderStatus.CANCELLED,
    "replaced": OrderStatus.CANCELLED,  # the replacement is a new order (modify_order says so)
    "expired": OrderStatus.EXPIRED,
    "done_for_day": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "suspended": OrderStatus.REJECTED,
}

TYPES: Final[dict[str, OrderType]] = {
    "market": OrderType.MARKET,
    "limit": OrderType.LIMIT,
    "stop": OrderType.STOP,
    "stop_limit": OrderType.STOP_LIMIT,
    "trailing_stop": OrderType.TRAILING_STOP,
}
TYPE_NAMES: Final = {kind: name for name, kind in TYPES.items()}

TIFS: Final[dict[str, TimeInForce]] = {
    "day": TimeInForce.DAY,
    "gtc": TimeInForce.GTC,
    "ioc": TimeInForce.IOC,
    "fok": TimeInForce.FOK,
    "opg": TimeInForce.DAY,  # at the open / at the close: day orders as the protocol sees them
    "cls": TimeInForce.DAY,
}

_NANOS = re.compile(r"(\.\d{6})\d+")


class ClientIds:
    """This session's client_order_ids at Alpaca: `prefix` + "c" + the strategy's id, or
    `prefix` + "g" + a generated one. An Alpaca order belongs to the session when its
    client_order_id starts with the prefix (a connection serves several sessions)."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def mine(self, alpaca_id: str | None) -> bool:
        return bool(alpaca_id) and str(alpaca_id).startswith(self.prefix)

    def for_strategy(self, client_order_id: str) -> str:
        return f"{self.prefix}c{client_order_id}"

    def generated(self, token: str) -> str:
        return f"{self.prefix}g{token}"

    def strategy_id(self, alpaca_id: str | None) -> str | None:
        """The strategy's own id back (None for a generated one or another session's)."""
        if not alpaca_id or not alpaca_id.startswith(self.prefix + "c"):
            return None
        return alpaca_id[len(self.prefix) + 1 :]


# -- values -----------------------------------------------------------------------------------

def dec(value: Any) -> Decimal | None:
    """A Decimal from Alpaca's string (or number: the fake or an old API), None when absent."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        log.warning("alpaca sent a number that is not one: %r", value)
        return None


def dec0(value: Any) -> Decimal:
    found = dec(value)
    return ZERO if found is None else found


def stamp(value: Any) -> datetime | None:
    """A tz-aware UTC datetime from Alpaca's RFC 3339 text (nanoseconds are cut to micro)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = _NANOS.sub(r"\1", str(value).replace("Z", "+00:00"))
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def price_str(price: Decimal) -> str:
    """A price as Alpaca takes it: 2 decimals at or above $1, 4 below."""
    tick = CENT if price >= 1 else SUB_DOLLAR_TICK
    return format_decimal(price.quantize(tick, rounding=ROUND_HALF_UP))


def round_price(price: Decimal) -> Decimal:
    return Decimal(price_str(price))


def qty_str(quantity: Decimal) -> str:
    """A quantity to at most 9 decimals (cut, never rounded up past what was asked)."""
    return format_decimal(quantity.quantize(QTY_STEP, rounding=ROUND_DOWN))


def notional_str(notional: Decimal) -> str:
    """A notional in whole cents, rounded down: never more than the strategy asked for."""
    return format_decimal(notional.quantize(CENT, rounding=ROUND_DOWN))


# -- statuses ---------------------------------------------------------------------------------

def order_status(raw: JsonDict, *, market_open: bool | None) -> OrderStatus:
    """The protocol's status of an Alpaca order. `accepted` is OPEN while the market is open
    (Alpaca routes it at once) and PENDING while it is closed (held until the open)."""
    status = str(raw.get("status") or "")
    if status == "accepted":
        return OrderStatus.PENDING if market_open is False else OrderStatus.OPEN
    known = STATUSES.get(status)
    if known is not None:
        return known
    filled = dec0(raw.get("filled_qty"))
    quantity = dec(raw.get("qty"))
    if status == "calculated" and quantity is not None and filled >= quantity > 0:
        return OrderStatus.FILLED
    if status != "calculated":
        log.warning("unknown Alpaca order status %r on order %s: treated as working", status,
                    raw.get("id"))
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.OPEN


# -- orders -----------------------------------------------------------------------------------

def to_order(raw: JsonDict, ids: ClientIds, *, market_open: bool | None,
             reduce_only: bool = False, parent_order_id: str | None = None,
             oco_group_id: str | None = None) -> Order:
    """The core Order of one Alpaca order JSON (a bracket's legs give stop_loss/take_profit)."""
    created = stamp(raw.get("created_at")) or stamp(raw.get("submitted_at")) or _epoch()
    kind = TYPES.get(str(raw.get("type") or raw.get("order_type") or ""), OrderType.MARKET)
    trail_price, trail_percent = dec(raw.get("trail_price")), dec(raw.get("trail_percent"))
    stop_loss, take_profit = _exits(raw)
    status = order_status(raw, market_open=market_open)
    if status is OrderStatus.PENDING and raw.get("order_class") == "oco" and \
            raw.get("status") == "held":
        status = OrderStatus.OPEN  # an OCO's stop leg is `held` but working from the start
    return Order(
        id=str(raw["id"]),
        symbol=from_alpaca(str(raw.get("symbol") or "")),
        side=Side.SELL if raw.get("side") == "sell" else Side.BUY,
        order_type=kind,
        quantity=_quantity(raw),
        status=status,
        time_in_force=TIFS.get(str(raw.get("time_in_force") or ""), TimeInForce.DAY),
        created_at=created,
        updated_at=stamp(raw.get("updated_at")) or created,
        filled_quantity=dec0(raw.get("filled_qty")),
        client_order_id=ids.strategy_id(raw.get("client_order_id")),
        limit_price=dec(raw.get("limit_price")),
        stop_price=dec(raw.get("stop_price")),
        stop_loss=stop_loss,
        take_profit=take_profit,
        trailing_distance=trail_price if trail_price is not None else trail_percent,
        trailing_type=(TrailingType.ABSOLUTE if trail_price is not None
                       else TrailingType.PERCENT if trail_percent is not None else None),
        average_fill_price=dec(raw.get("filled_avg_price")),
        reject_reason=RejectReason.UNKNOWN if status is OrderStatus.REJECTED else None,
        position_id=from_alpaca(str(raw.get("symbol") or "")),
        parent_order_id=parent_order_id,
        reduce_only=reduce_only or str(raw.get("position_intent") or "").endswith("_to_close"),
        oco_group_id=oco_group_id,
        notional=dec(raw.get("notional")),
    )


def _quantity(raw: JsonDict) -> Decimal:
    quantity = dec(raw.get("qty"))
    return quantity if quantity is not None else dec0(raw.get("filled_qty"))


def _exits(raw: JsonDict) -> tuple[Decimal | None, Decimal | None]:
    """A bracket parent's stop loss and take profit, read from its legs."""
    if raw.get("order_class") != "bracket":
        return None, None
    stop_loss = take_profit = None
    for leg in raw.get("legs") or ():
        if leg.get("type") in ("stop", "stop_limit"):
            stop_loss = dec(leg.get("stop_price"))
        elif leg.get("type") == "limit":
            take_profit = dec(leg.get("limit_price"))
    return stop_loss, take_profit


def _epoch() -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC)


def order_body(request: OrderRequest, client_order_id: str) -> JsonDict:
    """POST /v2/orders' body of `request`: quantities and prices as rounded strings; `notional`
    instead of `qty` for an order sized at fill (an equity fraction is made a notional first)."""
    body: JsonDict = {
        "symbol": to_alpaca(request.symbol),
        "qty": qty_str(request.quantity),
        "side": request.side.value.lower(),
        "type": TYPE_NAMES[request.order_type],
        "time_in_force": request.time_in_force.value.lower(),
        "client_order_id": client_order_id,
    }
    if request.notional is not None:  # Alpaca sizes it at the fill: qty and notional exclude
        del body["qty"]
        body["notional"] = notional_str(request.notional)
    if request.limit_price is not None:
        body["limit_price"] = price_str(request.limit_price)
    if request.stop_price is not None:
        body["stop_price"] = price_str(request.stop_price)
    if request.order_type is OrderType.TRAILING_STOP and request.trailing_distance is not None:
        if request.trailing_type is TrailingType.PERCENT:
            body["trail_percent"] = format_decimal(request.trailing_distance)
        else:
            body["trail_price"] = price_str(request.trailing_distance)
    if request.stop_loss is not None or request.take_profit is not None:
        body["order_class"] = "bracket" if request.take_profit and request.stop_loss else "oto"
        if request.take_profit is not None:
            body["take_profit"] = {"limit_price": price_str(request.take_profit)}
        if request.stop_loss is not None:
            body["stop_loss"] = {"stop_price": price_str(request.stop_loss)}
    return body


def oco_body(take_profit: OrderRequest, stop_loss: OrderRequest, client_order_id: str,
             ) -> JsonDict:
    """One Alpaca OCO order of an exit pair: a limit (take profit) and a stop or stop-limit
    (stop loss) of the same symbol, side and quantity."""
    stop_leg: JsonDict = {"stop_price": price_str(_required(stop_loss.stop_price))}
    if stop_loss.limit_price is not None:
        stop_leg["limit_price"] = price_str(stop_loss.limit_price)
    return {
        "symbol": to_alpaca(take_profit.symbol),
        "qty": qty_str(take_profit.quantity),
        "side": take_profit.side.value.lower(),
        "type": "limit",
        "time_in_force": take_profit.time_in_force.value.lower(),
        "order_class": "oco",
        "client_order_id": client_order_id,
        # Alpaca's example has the take profit only in `take_profit`; the same price as the
        # parent's limit_price is accepted too, and some validators insist on it
        "limit_price": price_str(_required(take_profit.limit_price)),
        "take_profit": {"limit_price": price_str(_required(take_profit.limit_price))},
        "stop_loss": stop_leg,
    }


def _required(value: Decimal | None) -> Decimal:
    if value is None:
        raise ValueError("an OCO leg lacks its price")
    return value


def replace_body(*, quantity: Decimal | None, limit_price: Decimal | None,
                 stop_price: Decimal | None, trail: Decimal | None) -> JsonDict:
    """PATCH /v2/orders/{id}'s body: only what changes."""
    body: JsonDict = {}
    if quantity is not None:
        body["qty"] = qty_str(quantity)
    if limit_price is not None:
        body["limit_price"] = price_str(limit_price)
    if stop_price is not None:
        body["stop_price"] = price_str(stop_price)
    if trail is not None:
        body["trail"] = format_decimal(trail)
    return body


# -- fills, positions, account ----------------------------------------------------------------

def fill_from_update(update: JsonDict, order: Order) -> Fill | None:
    """The execution a fill/partial_fill trade update reports (None when it carries none)."""
    price, quantity = dec(update.get("price")), dec(update.get("qty"))
    execution = update.get("execution_id")
    if price is None or quantity is None or not execution:
        return None
    return Fill(
        id=str(execution),
        order_id=order.id,
        symbol=order.symbol,
        side=order.side,
        quantity=quantity,
        price=price,
        commission=EQUITY_COMMISSION,
        commission_currency=COMMISSION_CURRENCY,
        timestamp=stamp(update.get("timestamp")) or order.updated_at,
        base_price=price,
        position_id=order.symbol,
    )


def fill_from_activity(activity: JsonDict) -> Fill:
    """A FILL account activity (GET /v2/account/activities/FILL) as a Fill. Its id is the
    execution's id where Alpaca gives one, so a fill seen on the stream is not counted twice."""
    price = dec0(activity.get("price"))
    symbol = from_alpaca(str(activity.get("symbol") or ""))
    moment = stamp(activity.get("transaction_time")) or _epoch()
    return Fill(
        id=str(activity.get("execution_id") or activity.get("id")),
        order_id=str(activity.get("order_id")),
        symbol=symbol,
        side=Side.SELL if str(activity.get("side", "")).startswith("sell") else Side.BUY,
        quantity=dec0(activity.get("qty")),
        price=price,
        commission=EQUITY_COMMISSION,
        commission_currency=COMMISSION_CURRENCY,
        timestamp=moment,
        base_price=price,
        position_id=symbol,
    )


def to_position(raw: JsonDict, *, opened_at: datetime, updated_at: datetime) -> Position:
    """An Alpaca position (qty is signed for shorts; `side` says so too)."""
    quantity = dec0(raw.get("qty"))
    short = raw.get("side") == "short" or quantity < 0
    symbol = from_alpaca(str(raw.get("symbol") or ""))
    entry = dec0(raw.get("avg_entry_price"))
    return Position(
        id=symbol,
        symbol=symbol,
        side=PositionSide.SHORT if short else PositionSide.LONG,
        quantity=abs(quantity),
        average_entry_price=entry,
        current_price=dec(raw.get("current_price")) or entry,
        unrealized_pnl=dec0(raw.get("unrealized_pl")),
        realized_pnl=ZERO,  # Alpaca reports no realised PnL per position
        opened_at=opened_at,
        updated_at=updated_at,
    )


def to_account(raw: JsonDict, *, unrealized_pnl: Decimal) -> Account:
    """Alpaca's account: balance and cash are its cash; margin_available its buying power."""
    cash = dec0(raw.get("cash"))
    return Account(
        balance=cash,
        equity=dec0(raw.get("equity")),
        margin_used=dec0(raw.get("initial_margin")),
        margin_available=dec0(raw.get("buying_power")),
        unrealized_pnl=unrealized_pnl,
        realized_pnl=ZERO,  # not on Alpaca's account object
        total_commission=ZERO,  # US equities: Alpaca charges none
        currency=str(raw.get("currency") or "USD"),
        cash=cash,
    )
