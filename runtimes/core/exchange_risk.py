"""Business checks of the simulated exchange: can this account place or pay for this order?

Pure functions returning a `Refusal` (reject code, reason, message) or None; the exchange turns
a refusal into a REJECTED order and an `OrderRejected` error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from runtimes.core.costs import Commission, apply_slippage
from runtimes.core.domain import ZERO, Order, OrderRequest, OrderType, RejectReason, Side
from runtimes.core.exchange_accounting import Ledger

SHORT_SELLING_NOT_ALLOWED: Final = "SHORT_SELLING_NOT_ALLOWED"


@dataclass(frozen=True, slots=True)
class Refusal:
    reject_code: str
    reason: RejectReason
    message: str


def reference_price(
    order_type: OrderType,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    last: Decimal | None,
) -> Decimal | None:
    """The price an order is expected to fill at, for buying-power checks."""
    if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return limit_price
    if order_type is OrderType.STOP:
        return stop_price
    return last


def reduce_only_refusal(request: OrderRequest, held: Decimal) -> Refusal | None:
    """A reduce-only order must shrink the position towards flat, never past it."""
    reduces = held < 0 if request.side is Side.BUY else held > 0
    if reduces and request.quantity <= abs(held):
        return None
    return Refusal(
        "REDUCE_ONLY_VIOLATED",
        RejectReason.REDUCE_ONLY_VIOLATED,
        f"reduce-only order would not reduce the {request.symbol} position",
    )


def short_refusal(symbol: str, quantity: Decimal, held: Decimal) -> Refusal | None:
    """On a cash account a sell may only come out of a long position."""
    if quantity <= max(held, ZERO):
        return None
    return Refusal(
        SHORT_SELLING_NOT_ALLOWED,
        RejectReason.INSUFFICIENT_BALANCE,
        f"cash account: cannot sell {quantity} {symbol} while holding {max(held, ZERO)}",
    )


def cash_refusal(
    *,
    quantity: Decimal,
    price: Decimal,
    commission: Commission,
    slippage_bps: Decimal,
    available: Decimal,
) -> Refusal | None:
    """A cash buy needs cash for its notional (after slippage) and its commission."""
    paid = apply_slippage(price, Side.BUY, slippage_bps)
    needed = quantity * paid + commission.fee(quantity, paid)
    if needed <= available:
        return None
    return Refusal(
        "INSUFFICIENT_FUNDS",
        RejectReason.INSUFFICIENT_BALANCE,
        f"insufficient cash: needs {needed}, available {available}",
    )


def margin_refusal(
    *, ledger: Ledger, held: Decimal, signed_qty: Decimal, price: Decimal, leverage: Decimal
) -> Refusal | None:
    """On margin, the gross exposure after the order must stay within equity x leverage."""
    after = held + signed_qty
    if abs(after) <= abs(held) and (after >= 0) == (held >= 0):
        return None  # only reduces the position
    exposure = ledger.gross_exposure() - abs(held) * price + abs(after) * price
    limit = ledger.equity() * leverage
    if exposure <= limit:
        return None
    return Refusal(
        "INSUFFICIENT_MARGIN",
        RejectReason.INSUFFICIENT_MARGIN,
        f"insufficient margin: exposure {exposure} over limit {limit}",
    )


def reserved_cash(
    open_orders: Iterable[Order], last_price: Callable[[str], Decimal | None]
) -> Decimal:
    """Cash promised to open buy orders (their remaining notional at the expected price)."""
    total = ZERO
    for order in open_orders:
        if order.side is not Side.BUY or order.reduce_only:
            continue
        last = last_price(order.symbol)
        price = reference_price(order.order_type, order.limit_price, order.stop_price, last)
        if price is not None:
            total += order.remaining_quantity * price
    return total
