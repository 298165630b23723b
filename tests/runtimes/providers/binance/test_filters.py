"""Binance's exchange filters as pure functions: rounding with Decimal and every refusal, named."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from runtimes.providers.binance import filters as f

BTCUSDT: dict[str, Any] = {
    "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT",
                   "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"],
    "ocoAllowed": True, "cancelReplaceAllowed": True, "allowTrailingStop": True,
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
         "tickSize": "0.01000000"},
        {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
         "stepSize": "0.00001000"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "100.00000000",
         "stepSize": "0.00000000"},
        {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
         "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
         "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
    ],
}
RULES = f.symbol_rules(BTCUSDT)


def failure(**kwargs: Any) -> f.FilterFailure:
    with pytest.raises(f.FilterFailure) as caught:
        f.check_order(RULES, **kwargs)
    return caught.value


def test_exchange_info_is_read_into_rules() -> None:
    rules = f.rules_from_exchange_info({"symbols": [BTCUSDT]})["BTCUSDT"]
    assert (rules.base, rules.quote, rules.status) == ("BTC", "USDT", "TRADING")
    assert rules.lot == f.LotSize(D("0.00001"), D("9000"), D("0.00001"))
    assert rules.market_lot == f.LotSize(D(0), D(100), D(0))
    assert rules.price == f.PriceFilter(D("0.01"), D("1000000"), D("0.01"))
    assert rules.notional == f.Notional("NOTIONAL", D(5), True, D(9000000), False)
    assert rules.percent == f.PercentPrice(D(5), D("0.2"), D(5), D("0.2"))
    assert rules.max_orders == 200
    assert rules.oco_allowed and rules.cancel_replace_allowed and rules.trailing_allowed
    assert "STOP_LOSS" in rules.order_types


def test_the_older_min_notional_shape_is_read() -> None:
    raw = {**BTCUSDT, "filters": [{"filterType": "MIN_NOTIONAL", "minNotional": "10.0",
                                   "applyToMarket": False, "avgPriceMins": 5}]}
    rules = f.symbol_rules(raw)
    assert rules.notional == f.Notional("MIN_NOTIONAL", D(10), False, None, False)
    # a market order is not held to it (applyToMarket false), a limit order is
    f.check_order(rules, buy=True, market=True, quantity=D("0.0001"),
                  reference_price=D(50000))
    with pytest.raises(f.FilterFailure) as caught:
        f.check_order(rules, buy=True, market=False, quantity=D("0.0001"), price=D(50000))
    assert caught.value.filter == "MIN_NOTIONAL"
    assert caught.value.limits == {"minNotional": "10.0"}


@pytest.mark.parametrize(("value", "step", "up", "expected"), [
    (D("0.123456789"), D("0.00001000"), False, "0.12345"),
    (D("0.123456789"), D("0.00001000"), True, "0.12346"),
    (D("0.12345"), D("0.00001"), True, "0.12345"),
    (D("7"), D("1.00000000"), False, "7"),
    (D("7.9"), D("1.00000000"), False, "7"),
    (D("25"), D("10"), False, "20"),
    (D("0.5"), D("0"), False, "0.5"),
])
def test_round_step(value: D, step: D, up: bool, expected: str) -> None:
    assert f.wire(f.round_step(value, step, up=up)) == expected


def test_wire_never_uses_an_exponent() -> None:
    assert f.wire(D("0.00001")) == "0.00001"
    assert f.wire(D("1E-5")) == "0.00001"
    assert f.wire(D("1E+3")) == "1000"


def test_quantity_rounds_down_to_the_step() -> None:
    checked = f.check_order(RULES, buy=True, market=False, quantity=D("0.0123456"),
                            price=D("50000"))
    assert checked.quantity == D("0.01234")
    assert f.wire(checked.quantity) == "0.01234"


def test_limit_prices_round_never_more_aggressive_than_asked() -> None:
    buy = f.check_order(RULES, buy=True, market=False, quantity=D(1), price=D("43000.129"))
    sell = f.check_order(RULES, buy=False, market=False, quantity=D(1), price=D("43000.121"))
    assert (buy.price, sell.price) == (D("43000.12"), D("43000.13"))


def test_stop_prices_round_to_trigger_no_earlier_than_asked() -> None:
    buy = f.check_order(RULES, buy=True, market=True, quantity=D(1), stop_price=D("43000.121"))
    sell = f.check_order(RULES, buy=False, market=True, quantity=D(1),
                         stop_price=D("43000.129"))
    assert (buy.stop_price, sell.stop_price) == (D("43000.13"), D("43000.12"))


def test_a_quantity_below_the_step_is_refused_by_lot_size() -> None:
    refused = failure(buy=True, market=False, quantity=D("0.000009"), price=D(50000))
    assert (refused.filter, refused.reject_code) == ("LOT_SIZE", "INVALID_QUANTITY")
    assert refused.limits == {"minQty": "0.00001000", "maxQty": "9000.00000000",
                              "stepSize": "0.00001000"}
    assert "below LOT_SIZE minQty 0.00001000" in refused.message


def test_a_quantity_above_max_is_refused_by_lot_size() -> None:
    refused = failure(buy=True, market=False, quantity=D(9001), price=D(1))
    assert (refused.filter, refused.reject_code) == ("LOT_SIZE", "INVALID_QUANTITY")


def test_market_orders_are_also_held_to_market_lot_size() -> None:
    refused = failure(buy=True, market=True, quantity=D(101), reference_price=D(1))
    assert refused.filter == "MARKET_LOT_SIZE"
    assert refused.limits["maxQty"] == "100.00000000"
    # a limit order of the same quantity only meets LOT_SIZE
    f.check_order(RULES, buy=True, market=False, quantity=D(101), price=D(1))


def test_prices_outside_price_filter_are_refused() -> None:
    low = failure(buy=True, market=False, quantity=D(1000), price=D("0.001"))
    high = failure(buy=True, market=False, quantity=D(1), price=D(2000000))
    assert (low.filter, low.reject_code) == ("PRICE_FILTER", "INVALID_PRICE")
    assert high.filter == "PRICE_FILTER" and "above PRICE_FILTER maxPrice" in high.message


def test_notional_below_min_is_refused_for_limit_orders() -> None:
    refused = failure(buy=True, market=False, quantity=D("0.0001"), price=D(40000))
    assert (refused.filter, refused.reject_code) == ("NOTIONAL", "INVALID_QUANTITY")
    assert refused.limits == {"minNotional": "5.00000000", "maxNotional": "9000000.00000000"}
    assert "notional 4.0000" in refused.message


def test_notional_of_a_market_order_uses_the_average_price() -> None:
    refused = failure(buy=True, market=True, quantity=D("0.0001"), reference_price=D(40000))
    assert refused.filter == "NOTIONAL"
    f.check_order(RULES, buy=True, market=True, quantity=D("0.0002"), reference_price=D(40000))
    # unknown average price: left to Binance
    f.check_order(RULES, buy=True, market=True, quantity=D("0.0001"))


def test_max_notional_is_not_applied_to_market_orders_when_binance_says_so() -> None:
    f.check_order(RULES, buy=True, market=True, quantity=D(100), reference_price=D(100000))
    refused = failure(buy=True, market=False, quantity=D(100), price=D(100000))
    assert refused.filter == "NOTIONAL" and "above NOTIONAL maxNotional" in refused.message


def test_percent_price_by_side() -> None:
    f.check_order(RULES, buy=True, market=False, quantity=D(1), price=D(200000),
                  reference_price=D(40000))
    high = failure(buy=True, market=False, quantity=D(1), price=D("200000.01"),
                   reference_price=D(40000))
    low = failure(buy=False, market=False, quantity=D(1), price=D("7999.99"),
                  reference_price=D(40000))
    assert (high.filter, high.reject_code) == ("PERCENT_PRICE_BY_SIDE", "INVALID_PRICE")
    assert high.limits["highest"] == "200000" and low.limits["lowest"] == "8000.0"


def test_max_num_orders() -> None:
    f.check_order(RULES, buy=True, market=False, quantity=D(1), price=D(1000), open_orders=199)
    refused = failure(buy=True, market=False, quantity=D(1), price=D(1000), open_orders=200)
    assert refused.filter == "MAX_NUM_ORDERS"
    assert refused.limits == {"maxNumOrders": "200"}


def test_rules_without_filters_check_only_positive_values() -> None:
    bare = f.symbol_rules({"symbol": "XUSDT", "baseAsset": "X", "quoteAsset": "USDT"})
    assert f.check_order(bare, buy=True, market=False, quantity=D("0.123"),
                         price=D("1.005")) == f.Checked(D("0.123"), D("1.005"), None)
    with pytest.raises(f.FilterFailure):
        f.check_order(bare, buy=True, market=False, quantity=D("1"), price=D(0))
