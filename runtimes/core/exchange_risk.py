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
from runtimes.core.exchange_sizing import sizing_amount
from runtimes.core.execution import BacktestConfig

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


def sized_refusal(
    request: OrderRequest,
    *,
    ledger: Ledger,
    held: Decimal,
    price: Decimal | None,
    config: BacktestConfig,
    reserved: Decimal,
) -> Refusal | None:
    """The submit check of an order sized at fill (notional or equity_fraction). Its quantity
    is not known yet, so it is checked by its amount, never by a quantity guessed from the last
    close (an all-in order must not fail because the next open gaps up): a cash buy's amount
    must fit the cash not reserved (the fill then sizes it down for commission); a cash sell
    needs a long position; on margin, the amount at `price` must fit equity x leverage."""
    amount = sizing_amount(request, ledger.equity())
    if config.is_margin:
        if price is None or not price:
            return None
        signed = amount / price if request.side is Side.BUY else -amount / price
        return margin_refusal(
            ledger=ledger, held=held, signed_qty=signed, price=price, leverage=config.leverage
        )
    if request.side is Side.SELL:
        if held > 0:
            return None
        return Refusal(
            SHORT_SELLING_NOT_ALLOWED,
            RejectReason.INSUFFICIENT_BALANCE,
            f"cash account: cannot sell {request.symbol} while holding none",
        )
    available = ledger.cash - reserved
    if amount <= available:
        return None
    return Refusal(
        "INSUFFICIENT_FUNDS",
        RejectReason.INSUFFICIENT_BALANCE,
        f"insufficient cash: the order's amount is {amount}, available {available}",
    )


def reserved_cash(
    open_orders: Iterable[Order],
    last_price: Callable[[str], Decimal | None],
    *,
    equity: Decimal,
) -> Decimal:
    """Cash promised to open buy orders: their remaining notional at the expected price, or for
    an order not sized yet its amount (its notional, or its fraction of `equity`)."""
    total = ZERO
    for order in open_orders:
        if order.side is not Side.BUY or order.reduce_only:
            continue
        if order.awaits_sizing:
            total += sizing_amount(order, equity)
            continue
        last = last_price(order.symbol)
        price = reference_price(order.order_type, order.limit_price, order.stop_price, last)
        if price is not None:
            total += order.remaining_quantity * price
    return total
