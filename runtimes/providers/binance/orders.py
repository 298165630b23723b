"""Order requests to Binance's order parameters (after the exchange filters), what Binance spot
does not take, and Binance's 4xx answers turned into the protocol's errors.

Types:
- MARKET: `quantity`, or `quoteOrderQty` for an order by `notional` (our extension; an
  `equity_fraction` is made a notional of the account's equity at submit), when the symbol
  allows it (quoteOrderQtyMarketAllowed; else UNSUPPORTED_OPERATION);
- LIMIT: GTC, IOC or FOK; `post_only` -> LIMIT_MAKER (no timeInForce);
- STOP_LIMIT -> STOP_LOSS_LIMIT when the stop is on the losing side of the market (a sell below,
  a buy above), else TAKE_PROFIT_LIMIT;
- STOP (a market stop) -> STOP_LOSS / TAKE_PROFIT by the same rule, when the symbol's
  orderTypes offer it; refused with the reason otherwise;
- TRAILING_STOP: a PERCENT trail as trailingDelta in basis points on STOP_LOSS (when the symbol
  allows trailing stops and offers STOP_LOSS); an ABSOLUTE trail is refused (Binance trails in
  basis points only).
DAY is refused: crypto markets have no trading day (GTC is the protocol's default).
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Any, Final

from runtimes.core.domain import OrderRequest, OrderType, Side, TimeInForce, TrailingType
from runtimes.core.errors import (
    OrderNotFound,
    OrderNotModifiable,
    OrderRejected,
    OrderValidationError,
    TradingError,
    UnsupportedOperation,
)
from runtimes.core.validation import validate_order_request
from runtimes.providers.binance.filters import (
    Checked,
    FilterFailure,
    SymbolRules,
    check_order,
    wire,
)
from runtimes.providers.binance.mapping import BIPS_PER_PERCENT
from runtimes.providers.binance.rest import BROKER, BinanceError

UNSUPPORTED_FLAGS: Final = ("reduce_only", "hidden")
MIN_BIPS: Final = Decimal(10)
MAX_BIPS: Final = Decimal(2000)


def check_request(request: OrderRequest) -> None:
    """The protocol's validation, then what Binance spot does not take."""
    validate_order_request(request)
    for name in UNSUPPORTED_FLAGS:
        if getattr(request, name):
            raise OrderValidationError.invalid(name, True, "is not supported on Binance spot")
    for name in ("display_quantity", "leverage", "margin_mode"):
        value = getattr(request, name)
        if value is not None:
            raise OrderValidationError.invalid(name, value, "is not supported on Binance spot")
    if request.time_in_force is TimeInForce.DAY:
        raise OrderValidationError.invalid("time_in_force", "DAY",
                                           "is not offered on Binance (crypto trades around the "
                                           "clock): use GTC, IOC or FOK")
    if request.post_only and request.order_type is not OrderType.LIMIT:
        raise OrderValidationError.invalid("post_only", True, "needs a LIMIT order on Binance")
    if request.sized_at_fill:
        _check_sized(request)


def _check_sized(request: OrderRequest) -> None:
    """Binance sizes by quote amount (quoteOrderQty) on plain MARKET orders only."""
    field = "notional" if request.notional is not None else "equity_fraction"
    value = request.notional if request.notional is not None else request.equity_fraction
    if request.order_type is not OrderType.MARKET:
        raise OrderValidationError.invalid(field, value, "needs a MARKET order on Binance")
    if request.stop_loss is not None or request.take_profit is not None or \
            request.oco_group_id is not None:
        raise OrderValidationError.invalid(field, value,
                                           "cannot have exit legs or an OCO group on Binance")


def quote_order_params(request: OrderRequest, rules: SymbolRules, *, notional: Decimal,
                       client_id: str) -> dict[str, Any]:
    """The create_order parameters of a MARKET order by quote amount: `notional` cut to the
    quote asset's precision, checked against the NOTIONAL filter where it applies to market
    orders. Raises UnsupportedOperation when the symbol takes no quoteOrderQty, OrderRejected
    (the filter, named) or OrderValidationError for an amount that rounds to nothing."""
    _check_trading(rules)
    if not rules.quote_market_allowed:
        raise UnsupportedOperation(f"notional (quoteOrderQty) orders on {rules.symbol}", BROKER)
    amount = notional.quantize(Decimal(1).scaleb(-rules.quote_precision), ROUND_DOWN)
    if amount <= 0:
        raise OrderValidationError.invalid("notional", notional,
                                           f"is below the precision of {rules.quote} on Binance")
    _check_quote_notional(rules, amount)
    return {"symbol": rules.symbol, "side": request.side.value, "type": "MARKET",
            "quoteOrderQty": wire(amount), "newClientOrderId": client_id,
            "newOrderRespType": "FULL"}


def _check_quote_notional(rules: SymbolRules, amount: Decimal) -> None:
    bounds = rules.notional
    if bounds is None:
        return
    low = bounds.min_notional if bounds.apply_min_to_market else None
    high = bounds.max_notional if bounds.apply_max_to_market else None
    if (low is not None and amount < low) or (high is not None and amount > high):
        limits = {"minNotional": wire(bounds.min_notional)}
        if bounds.max_notional is not None:
            limits["maxNotional"] = wire(bounds.max_notional)
        raise filter_rejection(FilterFailure(
            bounds.name, "INVALID_QUANTITY",
            f"quoteOrderQty {wire(amount)} is outside {bounds.name} "
            f"[{wire(bounds.min_notional)}, "
            f"{'none' if high is None else wire(high)}]", limits))


def is_stop_loss(side: Side, stop: Decimal, market: Decimal | None) -> bool:
    """A stop on the losing side of the market: a sell at or below it, a buy at or above it
    (unknown market: a stop loss, the common case)."""
    if market is None:
        return True
    return stop <= market if side is Side.SELL else stop >= market


def order_params(request: OrderRequest, rules: SymbolRules, *, client_id: str,
                 market: Decimal | None, open_orders: int) -> dict[str, Any]:
    """The create_order parameters of `request` (its symbol normalised), rounded and checked
    against the filters. Raises OrderRejected (a filter, named) or OrderValidationError /
    UnsupportedOperation for what the symbol does not offer."""
    kind = request.order_type
    checked = _checked(request, rules, market=market, open_orders=open_orders)
    params: dict[str, Any] = {"symbol": rules.symbol, "side": request.side.value,
                              "quantity": wire(checked.quantity),
                              "newClientOrderId": client_id, "newOrderRespType": "FULL"}
    if kind is OrderType.MARKET:
        params["type"] = "MARKET"
    elif kind is OrderType.LIMIT:
        params["type"] = "LIMIT_MAKER" if request.post_only else "LIMIT"
        params["price"] = wire(_need(checked.price))
        if not request.post_only:
            params["timeInForce"] = request.time_in_force.value
    elif kind is OrderType.STOP_LIMIT:
        stop = _need(checked.stop_price)
        loss = is_stop_loss(request.side, stop, market)
        params.update(type="STOP_LOSS_LIMIT" if loss else "TAKE_PROFIT_LIMIT",
                      price=wire(_need(checked.price)), stopPrice=wire(stop),
                      timeInForce=request.time_in_force.value)
    elif kind is OrderType.STOP:
        stop = _need(checked.stop_price)
        name = "STOP_LOSS" if is_stop_loss(request.side, stop, market) else "TAKE_PROFIT"
        _offered(rules, name, "order_type", "STOP")
        params.update(type=name, stopPrice=wire(stop))
    else:
        params.update(type="STOP_LOSS", trailingDelta=trailing_bips(request, rules))
    _offered(rules, str(params["type"]), "order_type", kind.value)
    return params


def trailing_bips(request: OrderRequest, rules: SymbolRules) -> str:
    if not rules.trailing_allowed or "STOP_LOSS" not in rules.order_types:
        raise UnsupportedOperation(f"TRAILING_STOP on {rules.symbol}", BROKER)
    if request.trailing_type is not TrailingType.PERCENT or request.trailing_distance is None:
        raise OrderValidationError.invalid("trailing_type", request.trailing_type,
                                           "must be PERCENT on Binance (it trails in basis "
                                           "points)")
    bips = (request.trailing_distance * BIPS_PER_PERCENT).to_integral_value()
    if not MIN_BIPS <= bips <= MAX_BIPS:
        raise OrderValidationError.invalid("trailing_distance", request.trailing_distance,
                                           "must be between 0.1 and 20 percent on Binance")
    return wire(bips)


def _check_trading(rules: SymbolRules) -> None:
    if rules.status != "TRADING":
        raise OrderRejected(f"{rules.symbol} is not trading on Binance ({rules.status})",
                            reject_code="SYMBOL_NOT_TRADEABLE",
                            details={"symbol_status": rules.status})


def _checked(request: OrderRequest, rules: SymbolRules, *, market: Decimal | None,
             open_orders: int) -> Checked:
    _check_trading(rules)
    try:
        return check_order(rules, buy=request.side is Side.BUY,
                           market=request.order_type in (OrderType.MARKET, OrderType.STOP,
                                                         OrderType.TRAILING_STOP),
                           quantity=request.quantity, price=request.limit_price,
                           stop_price=request.stop_price, reference_price=market,
                           open_orders=open_orders)
    except FilterFailure as failure:
        raise filter_rejection(failure) from None


def filter_rejection(failure: FilterFailure) -> OrderRejected:
    return OrderRejected(f"Binance's {failure.filter} filter refuses the order: "
                         f"{failure.message}", reject_code=failure.reject_code,
                         details={"filter": failure.filter, "limits": failure.limits})


def _offered(rules: SymbolRules, binance_type: str, field: str, value: str) -> None:
    if rules.order_types and binance_type not in rules.order_types:
        raise OrderValidationError.invalid(
            field, value, f"is not offered on {rules.symbol} at Binance ({binance_type} is not "
                          f"among its order types: {', '.join(sorted(rules.order_types))})")


def _need(value: Decimal | None) -> Decimal:
    if value is None:  # the protocol's validation requires it for the type
        raise OrderValidationError.missing("price")
    return value


# -- Binance's answers ------------------------------------------------------------------------

REJECT_CODES: Final[dict[int, str]] = {
    -1013: "INVALID_QUANTITY",  # a filter failure (refined by the message below)
    -1111: "INVALID_QUANTITY",
    -1121: "SYMBOL_NOT_TRADEABLE",
    -2010: "UNKNOWN",
}


def submit_error(error: BinanceError) -> TradingError:
    """An order Binance refused: a rejection carrying Binance's message and code."""
    text = error.message.lower()
    code = REJECT_CODES.get(error.code, "UNKNOWN")
    if "insufficient balance" in text:
        code = "INSUFFICIENT_BALANCE"
    elif "price" in text and error.code == -1013:
        code = "INVALID_PRICE"
    elif "immediately match" in text:
        code = "POST_ONLY_VIOLATED"
    details: dict[str, Any] = {"broker_message": error.message, "broker_code": error.code}
    if error.code == -1013 and "filter failure:" in text:
        details["filter"] = error.message.split(":", 1)[1].strip()
    if error.status in (400, 403, 409):
        return OrderRejected(f"Binance rejected the order: {error.message}", reject_code=code,
                             details=details)
    return OrderValidationError(f"Binance refused the order: {error.message}", details=details)


def order_error(error: BinanceError, order_id: str) -> TradingError:
    """A read, replace or cancel of one order that Binance refused."""
    if (error.code in (-2011, -2013) and "unknown order" in error.message.lower()) or \
            error.code == -2013:
        return OrderNotFound(order_id)
    return OrderNotModifiable(order_id, f"Binance: {error.message}")
