"""The fake's exchangeInfo: one `SymbolSpec` per symbol with Binance's spot filters, their JSON,
and the filter checks a new order goes through (in Binance's words: "Filter failure: LOT_SIZE").

Values for BTCUSDT and ETHUSDT are the ones Binance publishes (tick 0.01; step 0.00001 and
0.0001; min notional 5 USDT); any other symbol gets tick 0.01 and step 0.001.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.fakes.binance.values import ApiError, amount, bad_request, steps_of

ORDER_TYPES = (
    "LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
)  # fmt: skip
QUOTES = ("USDT", "FDUSD", "USDC", "BTC", "ETH", "BNB")
ALGO_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    symbol: str
    base: str
    quote: str
    tick: Decimal = Decimal("0.01")
    min_price: Decimal = Decimal("0.01")
    max_price: Decimal = Decimal("1000000")
    step: Decimal = Decimal("0.001")
    min_qty: Decimal = Decimal("0.001")
    max_qty: Decimal = Decimal("9000")
    market_max_qty: Decimal = Decimal("1000")
    min_notional: Decimal = Decimal("5")
    max_notional: Decimal = Decimal("9000000")
    max_orders: int = 200
    max_algo_orders: int = 5
    status: str = "TRADING"


KNOWN = {
    "BTCUSDT": dict(step=Decimal("0.00001"), min_qty=Decimal("0.00001"),
                    market_max_qty=Decimal("83.86138083")),
    "ETHUSDT": dict(step=Decimal("0.0001"), min_qty=Decimal("0.0001"),
                    market_max_qty=Decimal("2316.65489673")),
}  # fmt: skip


def spec_for(symbol: str) -> SymbolSpec:
    """The spec of `symbol` ("BTCUSDT"): base and quote split on a known quote asset."""
    name = symbol.upper()
    quote = next((q for q in QUOTES if name.endswith(q) and len(name) > len(q)), "USDT")
    base = name[: -len(quote)] if name.endswith(quote) else name
    return SymbolSpec(name, base, quote, **KNOWN.get(name, {}))  # type: ignore[arg-type]


def symbol_json(spec: SymbolSpec) -> dict[str, Any]:
    return {
        "symbol": spec.symbol,
        "status": spec.status,
        "baseAsset": spec.base,
        "baseAssetPrecision": 8,
        "quoteAsset": spec.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": list(ORDER_TYPES),
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "amendAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": filters_json(spec),
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def filters_json(spec: SymbolSpec) -> list[dict[str, Any]]:
    return [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": amount(spec.min_price),
            "maxPrice": amount(spec.max_price),
            "tickSize": amount(spec.tick),
        },
        {
            "filterType": "LOT_SIZE",
            "minQty": amount(spec.min_qty),
            "maxQty": amount(spec.max_qty),
            "stepSize": amount(spec.step),
        },
        {"filterType": "ICEBERG_PARTS", "limit": 10},
        {
            "filterType": "MARKET_LOT_SIZE",
            "minQty": amount(Decimal(0)),
            "maxQty": amount(spec.market_max_qty),
            "stepSize": amount(Decimal(0)),
        },
        {
            "filterType": "TRAILING_DELTA",
            "minTrailingAboveDelta": 10,
            "maxTrailingAboveDelta": 2000,
            "minTrailingBelowDelta": 10,
            "maxTrailingBelowDelta": 2000,
        },
        {
            "filterType": "PERCENT_PRICE_BY_SIDE",
            "bidMultiplierUp": "5",
            "bidMultiplierDown": "0.2",
            "askMultiplierUp": "5",
            "askMultiplierDown": "0.2",
            "avgPriceMins": 5,
        },
        {
            "filterType": "NOTIONAL",
            "minNotional": amount(spec.min_notional),
            "applyMinToMarket": True,
            "maxNotional": amount(spec.max_notional),
            "applyMaxToMarket": False,
            "avgPriceMins": 5,
        },
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": spec.max_orders},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": spec.max_algo_orders},
    ]


def filter_failure(name: str) -> ApiError:
    return bad_request(-1013, f"Filter failure: {name}")


def check_price(spec: SymbolSpec, price: Decimal) -> None:
    """PRICE_FILTER on a limit or stop price."""
    if price < spec.min_price or price > spec.max_price:
        raise filter_failure("PRICE_FILTER")
    if not steps_of(price - spec.min_price, spec.tick):
        raise filter_failure("PRICE_FILTER")


def check_quantity(spec: SymbolSpec, qty: Decimal, *, market: bool) -> None:
    """LOT_SIZE for every order; MARKET_LOT_SIZE on top for market orders."""
    if qty < spec.min_qty or qty > spec.max_qty or not steps_of(qty - spec.min_qty, spec.step):
        raise filter_failure("LOT_SIZE")
    if market and qty > spec.market_max_qty:
        raise filter_failure("MARKET_LOT_SIZE")


def check_notional(spec: SymbolSpec, notional: Decimal) -> None:
    if notional < spec.min_notional or notional > spec.max_notional:
        raise filter_failure("NOTIONAL")


def check_percent_price(side: str, price: Decimal, average: Decimal | None) -> None:
    """PERCENT_PRICE_BY_SIDE: a limit price within 0.2x..5x of the average price."""
    if average is None or average <= 0:
        return
    if not (average * Decimal("0.2") <= price <= average * 5):
        raise filter_failure("PERCENT_PRICE_BY_SIDE")
