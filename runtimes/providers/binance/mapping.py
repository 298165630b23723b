"""Binance's JSON to the core's domain objects, and order requests to Binance's order parameters.

Binance sends quantities and prices as strings; they become Decimal here and never pass through
a float. Statuses (reference §4.1): NEW -> OPEN, PENDING_NEW (an order list's waiting leg) ->
PENDING, EXPIRED_IN_MATCH (self-trade prevention) -> EXPIRED; a status this module does not know
is mapped conservatively (working, or partially filled when something filled) and logged.

Order types: LIMIT_MAKER is a post-only LIMIT; STOP_LOSS and TAKE_PROFIT are market stops (STOP);
STOP_LOSS_LIMIT and TAKE_PROFIT_LIMIT stop-limits (STOP_LIMIT); any of them with a trailingDelta
is a TRAILING_STOP (a percent trail: trailingDelta is in basis points).
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from runtimes.core.domain import (
    ZERO,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
    TrailingType,
)

JsonDict = dict[str, Any]
log = logging.getLogger(__name__)

MAX_CLIENT_ID: Final = 36
CLIENT_ID_PATTERN: Final = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
BIPS_PER_PERCENT: Final = Decimal(100)

STATUSES: Final[dict[str, OrderStatus]] = {
    "NEW": OrderStatus.OPEN,
    "PENDING_NEW": OrderStatus.PENDING,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "PENDING_CANCEL": OrderStatus.PENDING_CANCEL,
    "CANCELED": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}

TYPES: Final[dict[str, OrderType]] = {
    "MARKET": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "LIMIT_MAKER": OrderType.LIMIT,
    "STOP_LOSS": OrderType.STOP,
    "TAKE_PROFIT": OrderType.STOP,
    "STOP_LOSS_LIMIT": OrderType.STOP_LIMIT,
    "TAKE_PROFIT_LIMIT": OrderType.STOP_LIMIT,
}

TIFS: Final[dict[str, TimeInForce]] = {
    "GTC": TimeInForce.GTC,
    "IOC": TimeInForce.IOC,
    "FOK": TimeInForce.FOK,
}

REJECT_TEXT: Final[tuple[tuple[str, RejectReason], ...]] = (
    ("insufficient balance", RejectReason.INSUFFICIENT_BALANCE),
    ("lot_size", RejectReason.INVALID_QUANTITY),
    ("notional", RejectReason.INVALID_QUANTITY),
    ("price_filter", RejectReason.INVALID_PRICE),
    ("percent_price", RejectReason.INVALID_PRICE),
    ("immediately match and take", RejectReason.POST_ONLY_VIOLATED),
    ("market is closed", RejectReason.MARKET_CLOSED),
    ("not permitted", RejectReason.SYMBOL_NOT_TRADEABLE),
)


class ClientIds:
    """This session's newClientOrderIds at Binance: `prefix` + "c" + the strategy's id when it
    fits Binance's 36 characters and alphabet; else `prefix` + "h" + a hash of it (the same id
    for the same strategy id: a retry still finds the first order); `prefix` + "g" + a token
    for an order the strategy did not name. An order belongs to the session when its client id
    (on a cancel, its original one `C`) starts with the prefix."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def mine(self, client_id: Any) -> bool:
        return bool(client_id) and str(client_id).startswith(self.prefix)

    def for_strategy(self, client_order_id: str) -> str:
        plain = f"{self.prefix}c{client_order_id}"
        if len(plain) <= MAX_CLIENT_ID and CLIENT_ID_PATTERN.match(plain):
            return plain
        digest = hashlib.sha256(client_order_id.encode()).hexdigest()
        return f"{self.prefix}h{digest[:MAX_CLIENT_ID - len(self.prefix) - 1]}"

    def generated(self, token: str) -> str:
        return f"{self.prefix}g{token}"[:MAX_CLIENT_ID]

    def strategy_id(self, client_id: str | None) -> str | None:
        """The strategy's own id back where it is spelled out (a hashed one is kept by the
        provider's book)."""
        if not client_id or not client_id.startswith(self.prefix + "c"):
            return None
        return client_id[len(self.prefix) + 1:]


# -- values -----------------------------------------------------------------------------------

def dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def positive(value: Any) -> Decimal | None:
    """A price Binance sends as "0.00000000" when there is none: None then."""
    found = dec(value)
    return None if found is None or found == 0 else found


def stamp(ms: Any) -> datetime | None:
    if ms is None or ms == "" or int(ms) <= 0:
        return None
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def normalise(symbol: str) -> str:
    """"BTC/USDT", "btc-usdt" and "BTCUSDT" are all Binance's "BTCUSDT"."""
    return symbol.replace("/", "").replace("-", "").replace("_", "").upper()


def order_status(raw_status: str, filled: Decimal) -> OrderStatus:
    status = STATUSES.get(raw_status)
    if status is None:
        log.warning("binance order status %r not known; kept as working", raw_status)
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.OPEN
    return status


def order_type(raw_type: str, trailing: bool) -> OrderType:
    if trailing:
        return OrderType.TRAILING_STOP
    found = TYPES.get(raw_type)
    if found is None:
        log.warning("binance order type %r not known; shown as LIMIT", raw_type)
        return OrderType.LIMIT
    return found


def reject_reason(text: str | None) -> RejectReason:
    if not text or text == "NONE":
        return RejectReason.UNKNOWN
    lowered = text.lower()
    for needle, reason in REJECT_TEXT:
        if needle in lowered:
            return reason
    return RejectReason.UNKNOWN


# -- orders -----------------------------------------------------------------------------------

def to_order(raw: JsonDict, ids: ClientIds, *, order_id: str | None = None,
             client_order_id: str | None = None, now: datetime,
             parent_order_id: str | None = None, oco_group_id: str | None = None,
             reduce_only: bool = False, stop_loss: Decimal | None = None,
             take_profit: Decimal | None = None) -> Order:
    """A Binance order (REST order JSON or an order response) as the protocol's Order."""
    filled = dec(raw.get("executedQty")) or ZERO
    quote = dec(raw.get("cummulativeQuoteQty")) or ZERO
    delta = dec(raw.get("trailingDelta"))
    created = stamp(raw.get("time")) or stamp(raw.get("transactTime")) or \
        stamp(raw.get("workingTime")) or now
    updated = stamp(raw.get("updateTime")) or stamp(raw.get("transactTime")) or created
    raw_type = str(raw.get("type") or "")
    status = order_status(str(raw.get("status") or ""), filled)
    client = str(raw.get("clientOrderId") or "")
    return Order(
        id=order_id or str(raw["orderId"]),
        symbol=str(raw.get("symbol") or ""),
        side=Side(str(raw.get("side") or "BUY")),
        order_type=order_type(raw_type, delta is not None and delta > 0),
        quantity=dec(raw.get("origQty")) or ZERO,
        status=status,
        time_in_force=TIFS.get(str(raw.get("timeInForce") or "GTC"), TimeInForce.GTC),
        created_at=created,
        updated_at=max(created, updated),
        filled_quantity=filled,
        client_order_id=client_order_id if client_order_id is not None
        else ids.strategy_id(client),
        limit_price=positive(raw.get("price")) if raw_type not in ("MARKET", "STOP_LOSS",
                                                                   "TAKE_PROFIT") else None,
        stop_price=positive(raw.get("stopPrice")),
        trailing_distance=None if not delta else delta / BIPS_PER_PERCENT,
        trailing_type=None if not delta else TrailingType.PERCENT,
        average_fill_price=(quote / filled) if filled > 0 and quote > 0 else None,
        reject_reason=RejectReason.UNKNOWN if status is OrderStatus.REJECTED else None,
        position_id=str(raw.get("symbol") or "") or None,
        parent_order_id=parent_order_id,
        reduce_only=reduce_only,
        post_only=raw_type == "LIMIT_MAKER",
        oco_group_id=oco_group_id,
        stop_loss=stop_loss,
        take_profit=take_profit,
        notional=positive(raw.get("origQuoteOrderQty")),
    )


def report_as_order(event: JsonDict) -> JsonDict:
    """An executionReport's order, in REST order JSON's keys (one mapping for both)."""
    return {
        "symbol": event.get("s"),
        "orderId": event.get("i"),
        "orderListId": event.get("g", -1),
        "clientOrderId": event.get("C") or event.get("c"),  # a cancel's own id is in `c`
        "price": event.get("p"),
        "origQty": event.get("q"),
        "executedQty": event.get("z"),
        "cummulativeQuoteQty": event.get("Z"),
        "origQuoteOrderQty": event.get("Q"),
        "status": event.get("X"),
        "timeInForce": event.get("f"),
        "type": event.get("o"),
        "side": event.get("S"),
        "stopPrice": event.get("P"),
        "trailingDelta": event.get("d"),
        "time": event.get("O"),
        "updateTime": event.get("T") or event.get("E"),
    }


def report_client_id(event: JsonDict) -> str:
    """The order's own client id of an executionReport: `C` (the original) on a cancel, whose
    `c` is the cancel request's id."""
    return str(event.get("C") or event.get("c") or "")


# -- fills ------------------------------------------------------------------------------------

def fill_id(symbol: str, trade_id: Any) -> str:
    """Trade ids are per symbol at Binance: the symbol makes them unique in a session."""
    return f"{symbol}:{trade_id}"


def fill_from_report(event: JsonDict, order_id: str) -> Fill | None:
    """The execution of an executionReport with x == TRADE."""
    quantity = dec(event.get("l"))
    price = dec(event.get("L"))
    if quantity is None or price is None or quantity <= 0:
        return None
    symbol = str(event.get("s"))
    at = stamp(event.get("T")) or stamp(event.get("E")) or datetime.now(UTC)
    return Fill(id=fill_id(symbol, event.get("t")), order_id=order_id, symbol=symbol,
                side=Side(str(event.get("S"))), quantity=quantity, price=price,
                commission=dec(event.get("n")) or ZERO,
                commission_currency=str(event.get("N") or ""), timestamp=at, base_price=price,
                is_maker=bool(event.get("m")), position_id=symbol)


def fill_from_trade(raw: JsonDict, order_id: str) -> Fill:
    """One of GET myTrades' trades."""
    symbol = str(raw.get("symbol"))
    price = dec(raw.get("price")) or ZERO
    return Fill(id=fill_id(symbol, raw.get("id")), order_id=order_id, symbol=symbol,
                side=Side.BUY if raw.get("isBuyer") else Side.SELL,
                quantity=dec(raw.get("qty")) or ZERO, price=price,
                commission=dec(raw.get("commission")) or ZERO,
                commission_currency=str(raw.get("commissionAsset") or ""),
                timestamp=stamp(raw.get("time")) or datetime.now(UTC), base_price=price,
                is_maker=bool(raw.get("isMaker")), position_id=symbol)


def fill_from_response(raw_fill: JsonDict, order: JsonDict, order_id: str,
                       at: datetime) -> Fill:
    """One of an order response's `fills` (FULL)."""
    symbol = str(order.get("symbol"))
    price = dec(raw_fill.get("price")) or ZERO
    return Fill(id=fill_id(symbol, raw_fill.get("tradeId")), order_id=order_id, symbol=symbol,
                side=Side(str(order.get("side"))), quantity=dec(raw_fill.get("qty")) or ZERO,
                price=price, commission=dec(raw_fill.get("commission")) or ZERO,
                commission_currency=str(raw_fill.get("commissionAsset") or ""), timestamp=at,
                base_price=price, position_id=symbol)
