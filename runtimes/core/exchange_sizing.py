"""Orders sized at the fill price: the quantity of a `notional` or `equity_fraction` order.

The amount (the notional, or the fraction of the equity at fill time) is divided by the fill's
own price and rounded down to the symbol's quantity step, so no order looks ahead. A notional
excludes fees (as Alpaca's does); on a cash account a buy is then sized down until quantity x
price + commission fits the cash, so an all-in order never overdraws.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal, localcontext
from typing import Final

from runtimes.core.costs import Commission
from runtimes.core.domain import ZERO, Order, OrderRequest, Side

HUNDRED: Final = Decimal(100)
# Enough digits that amount / price never rounds up past a step before it is floored.
_DIVISION_DIGITS: Final = 60


def sizing_amount(sized: Order | OrderRequest, equity: Decimal) -> Decimal:
    """The quote-currency amount an order sized at fill stands for: its notional, or its
    fraction of `equity` (never below zero)."""
    if sized.notional is not None:
        return sized.notional
    fraction = sized.equity_fraction or ZERO
    return max(fraction * equity, ZERO)


def floor_to_step(quantity: Decimal, step: Decimal) -> Decimal:
    """`quantity` rounded down to a whole number of `step`s (`step` > 0)."""
    with localcontext(prec=_DIVISION_DIGITS):
        steps = (quantity / step).to_integral_value(rounding=ROUND_FLOOR)
        return steps * step


def quantity_at_fill(
    order: Order,
    *,
    price: Decimal,
    equity: Decimal,
    cash: Decimal,
    commission: Commission,
    step: Decimal,
    cash_account: bool,
) -> Decimal:
    """The quantity of `order` (awaiting sizing) filled at `price`: amount / price rounded down
    to `step`, and on a cash account a buy at most what `cash` pays for with its commission.
    Zero when not even one step fits (or the price is not positive); the caller rejects the
    order then."""
    if price <= 0:
        return ZERO
    with localcontext(prec=_DIVISION_DIGITS):
        quantity = floor_to_step(sizing_amount(order, equity) / price, step)
    if cash_account and order.side is Side.BUY:
        quantity = min(quantity, affordable_quantity(cash, price, commission, step))
    return max(quantity, ZERO)


def affordable_quantity(
    cash: Decimal, price: Decimal, commission: Commission, step: Decimal
) -> Decimal:
    """The largest multiple of `step` with quantity x price + commission <= `cash`."""
    if cash <= 0:
        return ZERO
    with localcontext(prec=_DIVISION_DIGITS):
        unit = price * (1 + commission.percent / HUNDRED) + commission.per_share
        linear = (cash - commission.fixed) / unit
        floor = (cash - commission.minimum) / price  # when the minimum fee applies
        quantity = floor_to_step(max(min(linear, floor), ZERO), step)
    # The bounds above are exact but for the minimum's max(); one step down settles any doubt.
    while quantity > 0 and quantity * price + commission.fee(quantity, price) > cash:
        quantity -= step
    return quantity
