"""Binance's exchange filters (exchangeInfo) as pure functions: what an order must satisfy before
it leaves, and the rounding Binance requires, with Decimal only.

- LOT_SIZE (and MARKET_LOT_SIZE for market orders): the quantity is rounded DOWN to `stepSize`
  (never more than asked), then must lie within [minQty, maxQty].
- PRICE_FILTER: prices are rounded to `tickSize` never more aggressively than asked: a buy's
  limit price down, a sell's up; a stop price the other way (a buy stop up, a sell stop down:
  it triggers no earlier than asked). Then within [minPrice, maxPrice] (0 = no bound).
- NOTIONAL (and the older MIN_NOTIONAL): price x quantity within [minNotional, maxNotional];
  a market order is checked at the reference (average) price only when `applyMinToMarket` /
  `applyMaxToMarket` (MIN_NOTIONAL: `applyToMarket`) say so.
- PERCENT_PRICE_BY_SIDE: a buy's price within [avg x bidMultiplierDown, avg x bidMultiplierUp],
  a sell's within the ask multipliers.
- MAX_NUM_ORDERS: no more than `maxNumOrders` open orders on the symbol.

An order that cannot satisfy them raises FilterFailure naming the filter and its limits; the
provider turns it into 422 ORDER_REJECTED before anything is sent. Values leave as strings
formatted with format(d, "f") (`wire`), never as floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, Final

ZERO: Final = Decimal(0)
INVALID_QUANTITY: Final = "INVALID_QUANTITY"
INVALID_PRICE: Final = "INVALID_PRICE"


class FilterFailure(Exception):
    """An order that cannot satisfy `filter` (its name at Binance): `reject_code` is the
    protocol's INVALID_QUANTITY or INVALID_PRICE; `limits` the filter's values (strings)."""

    def __init__(self, filter_name: str, reject_code: str, message: str,
                 limits: Mapping[str, str]) -> None:
        super().__init__(message)
        self.filter = filter_name
        self.reject_code = reject_code
        self.message = message
        self.limits = dict(limits)


@dataclass(frozen=True, slots=True)
class LotSize:
    min_qty: Decimal
    max_qty: Decimal
    step: Decimal  # 0: any quantity (MARKET_LOT_SIZE often has stepSize 0)


@dataclass(frozen=True, slots=True)
class PriceFilter:
    min_price: Decimal  # 0: no bound
    max_price: Decimal  # 0: no bound
    tick: Decimal  # 0: any price


@dataclass(frozen=True, slots=True)
class Notional:
    name: str  # "NOTIONAL" or "MIN_NOTIONAL"
    min_notional: Decimal
    apply_min_to_market: bool
    max_notional: Decimal | None
    apply_max_to_market: bool


@dataclass(frozen=True, slots=True)
class PercentPrice:
    bid_up: Decimal
    bid_down: Decimal
    ask_up: Decimal
    ask_down: Decimal


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """One symbol of exchangeInfo, as far as orders need it."""

    symbol: str
    base: str
    quote: str
    status: str = "TRADING"
    order_types: frozenset[str] = frozenset()
    oco_allowed: bool = False
    cancel_replace_allowed: bool = False
    trailing_allowed: bool = False
    quote_market_allowed: bool = False  # quoteOrderQtyMarketAllowed: MARKET by quote amount
    quote_precision: int = 8  # quoteAssetPrecision: decimals of a quoteOrderQty
    lot: LotSize | None = None
    market_lot: LotSize | None = None
    price: PriceFilter | None = None
    notional: Notional | None = None
    percent: PercentPrice | None = None
    max_orders: int | None = None
    raw_filters: tuple[str, ...] = field(default=())  # every filterType Binance listed


@dataclass(frozen=True, slots=True)
class Checked:
    """An order's values after rounding: what is sent."""

    quantity: Decimal
    price: Decimal | None
    stop_price: Decimal | None


# -- exchangeInfo ----------------------------------------------------------------------------

def rules_from_exchange_info(raw: Mapping[str, Any]) -> dict[str, SymbolRules]:
    """symbol -> SymbolRules of exchangeInfo's `symbols`."""
    return {str(s["symbol"]): symbol_rules(s) for s in raw.get("symbols") or ()}


def symbol_rules(raw: Mapping[str, Any]) -> SymbolRules:
    by_type = {str(f.get("filterType")): f for f in raw.get("filters") or ()}
    return SymbolRules(
        symbol=str(raw["symbol"]),
        base=str(raw.get("baseAsset") or ""),
        quote=str(raw.get("quoteAsset") or ""),
        status=str(raw.get("status") or "TRADING"),
        order_types=frozenset(str(t) for t in raw.get("orderTypes") or ()),
        oco_allowed=bool(raw.get("ocoAllowed")),
        cancel_replace_allowed=bool(raw.get("cancelReplaceAllowed")),
        trailing_allowed=bool(raw.get("allowTrailingStop")),
        quote_market_allowed=bool(raw.get("quoteOrderQtyMarketAllowed")),
        quote_precision=int(raw.get("quoteAssetPrecision") or raw.get("quotePrecision") or 8),
        lot=_lot(by_type.get("LOT_SIZE")),
        market_lot=_lot(by_type.get("MARKET_LOT_SIZE")),
        price=_price(by_type.get("PRICE_FILTER")),
        notional=_notional(by_type.get("NOTIONAL"), by_type.get("MIN_NOTIONAL")),
        percent=_percent(by_type.get("PERCENT_PRICE_BY_SIDE")),
        max_orders=_int(by_type.get("MAX_NUM_ORDERS"), "maxNumOrders"),
        raw_filters=tuple(by_type),
    )


def _dec(value: Any, default: Decimal = ZERO) -> Decimal:
    if value is None or value == "":
        return default
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return default


def _int(raw: Mapping[str, Any] | None, key: str) -> int | None:
    if raw is None or raw.get(key) is None:
        return None
    return int(raw[key])


def _lot(raw: Mapping[str, Any] | None) -> LotSize | None:
    if raw is None:
        return None
    return LotSize(_dec(raw.get("minQty")), _dec(raw.get("maxQty")), _dec(raw.get("stepSize")))


def _price(raw: Mapping[str, Any] | None) -> PriceFilter | None:
    if raw is None:
        return None
    return PriceFilter(_dec(raw.get("minPrice")), _dec(raw.get("maxPrice")),
                       _dec(raw.get("tickSize")))


def _notional(new: Mapping[str, Any] | None, old: Mapping[str, Any] | None) -> Notional | None:
    if new is not None:
        top = new.get("maxNotional")
        return Notional("NOTIONAL", _dec(new.get("minNotional")),
                        bool(new.get("applyMinToMarket")),
                        None if top is None else _dec(top), bool(new.get("applyMaxToMarket")))
    if old is not None:
        return Notional("MIN_NOTIONAL", _dec(old.get("minNotional")),
                        bool(old.get("applyToMarket")), None, False)
    return None


def _percent(raw: Mapping[str, Any] | None) -> PercentPrice | None:
    if raw is None:
        return None
    return PercentPrice(_dec(raw.get("bidMultiplierUp")), _dec(raw.get("bidMultiplierDown")),
                        _dec(raw.get("askMultiplierUp")), _dec(raw.get("askMultiplierDown")))


# -- rounding ---------------------------------------------------------------------------------

def wire(value: Decimal) -> str:
    """A Decimal as Binance takes it: plain notation, no exponent ("0.00001", never "1E-5")."""
    return format(value, "f")


def round_step(value: Decimal, step: Decimal, *, up: bool = False) -> Decimal:
    """`value` on a multiple of `step` (down, or up), with the step's exponent; unchanged
    when the step is 0 (no step)."""
    if step <= 0:
        return value
    units = (value / step).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    exponent = step.normalize().as_tuple().exponent
    places = Decimal(1).scaleb(exponent) if isinstance(exponent, int) and exponent < 0 \
        else Decimal(1)
    return (units * step).quantize(places)


def round_quantity(rules: SymbolRules, quantity: Decimal, *, market: bool) -> Decimal:
    """The quantity rounded DOWN to the step of the lot filter that applies."""
    for lot in _lots(rules, market=market):
        quantity = round_step(quantity, lot.step)
    return quantity


def round_price(rules: SymbolRules, price: Decimal, *, buy: bool, stop: bool = False) -> Decimal:
    """A price on the tick, never more aggressive than asked: a buy's limit down, a sell's up;
    a stop price the other way."""
    if rules.price is None:
        return price
    up = (not buy) if not stop else buy
    return round_step(price, rules.price.tick, up=up)


# -- checks -----------------------------------------------------------------------------------

def check_order(rules: SymbolRules, *, buy: bool, market: bool, quantity: Decimal,
                price: Decimal | None = None, stop_price: Decimal | None = None,
                reference_price: Decimal | None = None, open_orders: int = 0) -> Checked:
    """Round and check one order. `price`: a limit price (None for a market order);
    `reference_price`: Binance's average price as far as known (last trade or mid), used for a
    market order's notional and PERCENT_PRICE_BY_SIDE (skipped when None). Raises
    FilterFailure."""
    quantity = round_quantity(rules, quantity, market=market)
    for lot, name in zip(_lots(rules, market=market), _lot_names(rules, market=market),
                         strict=True):
        check_lot(lot, name, quantity)
    if price is not None:
        price = round_price(rules, price, buy=buy)
        check_price(rules, price, "price")
    if stop_price is not None:
        stop_price = round_price(rules, stop_price, buy=buy, stop=True)
        check_price(rules, stop_price, "stopPrice")
    check_notional(rules, quantity, price if price is not None else reference_price,
                   market=market)
    if price is not None and reference_price is not None:
        check_percent(rules, price, reference_price, buy=buy)
    check_max_orders(rules, open_orders)
    return Checked(quantity, price, stop_price)


def _lots(rules: SymbolRules, *, market: bool) -> list[LotSize]:
    lots = [rules.lot] if rules.lot is not None else []
    if market and rules.market_lot is not None:
        lots.append(rules.market_lot)
    return lots


def _lot_names(rules: SymbolRules, *, market: bool) -> list[str]:
    names = ["LOT_SIZE"] if rules.lot is not None else []
    if market and rules.market_lot is not None:
        names.append("MARKET_LOT_SIZE")
    return names


def check_lot(lot: LotSize, name: str, quantity: Decimal) -> None:
    limits = {"minQty": wire(lot.min_qty), "maxQty": wire(lot.max_qty),
              "stepSize": wire(lot.step)}
    if quantity <= 0 or quantity < lot.min_qty:
        raise FilterFailure(name, INVALID_QUANTITY,
                            f"quantity {wire(quantity)} (rounded down to the step "
                            f"{wire(lot.step)}) is below {name} minQty {wire(lot.min_qty)}",
                            limits)
    if lot.max_qty > 0 and quantity > lot.max_qty:
        raise FilterFailure(name, INVALID_QUANTITY,
                            f"quantity {wire(quantity)} is above {name} maxQty "
                            f"{wire(lot.max_qty)}", limits)


def check_price(rules: SymbolRules, price: Decimal, what: str) -> None:
    bounds = rules.price
    if bounds is None:
        if price <= 0:
            raise FilterFailure("PRICE_FILTER", INVALID_PRICE, f"{what} must be positive", {})
        return
    limits = {"minPrice": wire(bounds.min_price), "maxPrice": wire(bounds.max_price),
              "tickSize": wire(bounds.tick)}
    if price <= 0 or (bounds.min_price > 0 and price < bounds.min_price):
        raise FilterFailure("PRICE_FILTER", INVALID_PRICE,
                            f"{what} {wire(price)} is below PRICE_FILTER minPrice "
                            f"{wire(bounds.min_price)}", limits)
    if bounds.max_price > 0 and price > bounds.max_price:
        raise FilterFailure("PRICE_FILTER", INVALID_PRICE,
                            f"{what} {wire(price)} is above PRICE_FILTER maxPrice "
                            f"{wire(bounds.max_price)}", limits)


def check_notional(rules: SymbolRules, quantity: Decimal, price: Decimal | None, *,
                   market: bool) -> None:
    rule = rules.notional
    if rule is None or price is None:
        return
    value = quantity * price
    limits = {"minNotional": wire(rule.min_notional)}
    if rule.max_notional is not None:
        limits["maxNotional"] = wire(rule.max_notional)
    if (not market or rule.apply_min_to_market) and value < rule.min_notional:
        raise FilterFailure(rule.name, INVALID_QUANTITY,
                            f"notional {wire(value)} (quantity x price) is below {rule.name} "
                            f"minNotional {wire(rule.min_notional)}", limits)
    if rule.max_notional is not None and rule.max_notional > 0 and (
            not market or rule.apply_max_to_market) and value > rule.max_notional:
        raise FilterFailure(rule.name, INVALID_QUANTITY,
                            f"notional {wire(value)} is above {rule.name} maxNotional "
                            f"{wire(rule.max_notional)}", limits)


def check_percent(rules: SymbolRules, price: Decimal, average: Decimal, *, buy: bool) -> None:
    rule = rules.percent
    if rule is None or average <= 0:
        return
    up, down = (rule.bid_up, rule.bid_down) if buy else (rule.ask_up, rule.ask_down)
    high, low = average * up, average * down
    limits = {"multiplierUp": wire(up), "multiplierDown": wire(down),
              "averagePrice": wire(average), "highest": wire(high), "lowest": wire(low)}
    if (up > 0 and price > high) or price < low:
        raise FilterFailure("PERCENT_PRICE_BY_SIDE", INVALID_PRICE,
                            f"price {wire(price)} is outside PERCENT_PRICE_BY_SIDE "
                            f"[{wire(low)}, {wire(high)}] around the average price "
                            f"{wire(average)}", limits)


def check_max_orders(rules: SymbolRules, open_orders: int) -> None:
    if rules.max_orders is not None and open_orders >= rules.max_orders:
        raise FilterFailure("MAX_NUM_ORDERS", INVALID_QUANTITY,
                            f"{open_orders} orders are open on {rules.symbol}: MAX_NUM_ORDERS "
                            f"is {rules.max_orders}", {"maxNumOrders": str(rules.max_orders)})
