"""The fake Binance, driven by the real python-binance 1.0.37: signed REST (signature, key,
recvWindow), every order type with Binance's answers, filters, commissions, cancel,
cancel-replace, OCO, klines, request weight with 429 and the 418 ban, the user data
subscription over the WebSocket API (and what a dropped connection does to it), and the kline
and bookTicker streams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from binance import AsyncClient, BinanceSocketManager
from binance.client import Client
from binance.exceptions import BinanceAPIException

from runtimes.core.bars import Bar
from tests.fakes.binance import FakeBinance
from tests.fakes.binance.server import KEY_ID, SECRET

BID, ASK = Decimal("43000.00"), Decimal("43000.10")
T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
_READ_TIMEOUT = 0.3


def _bar(minute: int, close: str, *, symbol: str = "BTCUSDT", timeframe: str = "1m") -> Bar:
    price = Decimal(close)
    return Bar(
        symbol, timeframe, T0 + timedelta(minutes=minute), price, price + 10, price - 10, price,
        Decimal("1.5"),
    )  # fmt: skip


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    bars = [_bar(i, str(43000 + i)) for i in range(5)]
    with FakeBinance(bars=bars) as server:
        server.set_book("BTCUSDT", bid=BID, ask=ASK)
        server.set_book("ETHUSDT", bid=Decimal("2300.00"), ask=Decimal("2300.05"))
        yield server


def _client(fake: FakeBinance, *, key: str = KEY_ID, secret: str = SECRET) -> Client:
    class LocalClient(Client):
        API_URL = fake.urls["api"]
        MARGIN_API_URL = fake.urls["api"].removesuffix("/api") + "/sapi"

    return LocalClient(key, secret)


@pytest.fixture
def client(fake: FakeBinance) -> Client:
    return _client(fake)


def _error(call: Any, **params: Any) -> tuple[int, int, str]:
    with pytest.raises(BinanceAPIException) as caught:
        call(**params)
    return caught.value.status_code, caught.value.code, caught.value.message


def _buy_btc(client: Client, qty: str = "0.10000") -> dict[str, Any]:
    return client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=qty)


# -- signing ----------------------------------------------------------------------------------
def test_signed_requests_are_checked_key_then_signature(fake: FakeBinance) -> None:
    assert _error(_client(fake, secret="wrong").get_account) == (
        400, -1022, "Signature for this request is not valid.",
    )  # fmt: skip
    assert _error(_client(fake, key="someone-else").get_account) == (
        401, -2015, "Invalid API-key, IP, or permissions for action.",
    )  # fmt: skip
    account = _client(fake).get_account()
    assert account["balances"] == [
        {"asset": "USDT", "free": "100000.00000000", "locked": "0.00000000"}
    ]
    assert account["commissionRates"] == {
        "maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000", "seller": "0.00000000",
    }  # fmt: skip
    assert (account["canTrade"], account["permissions"]) == (True, ["SPOT"])


def test_order_parameters_arrive_sorted_in_a_form_body_with_the_signature_last(
    fake: FakeBinance, client: Client
) -> None:
    client.create_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01234",
        price="42000.12", newClientOrderId="my-cid-1",
    )  # fmt: skip
    method, path, params = fake.requests[-1]
    assert (method, path) == ("POST", "/api/v3/order")
    assert list(params) == [
        "newClientOrderId", "price", "quantity", "recvWindow", "side", "symbol", "timeInForce",
        "timestamp", "type", "signature",
    ]  # fmt: skip
    assert params["recvWindow"] == "10000"


def test_a_server_clock_ahead_gives_1021_until_the_client_applies_the_offset(
    fake: FakeBinance, client: Client
) -> None:
    fake.set_clock_offset(60_000)
    assert _error(client.get_account) == (
        400, -1021, "Timestamp for this request is outside of the recvWindow.",
    )  # fmt: skip
    client.timestamp_offset = client.get_server_time()["serverTime"] - int(time.time() * 1000)
    assert client.get_account()["accountType"] == "SPOT"
    fake.set_clock_offset(-5_000)
    client.timestamp_offset = 0
    assert _error(client.get_account) == (
        400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.",
    )  # fmt: skip


def test_api_restrictions_tell_whether_the_key_can_withdraw(fake: FakeBinance) -> None:
    assert _client(fake).get_account_api_permissions()["enableWithdrawals"] is False
    with FakeBinance(withdrawals_enabled=True) as other:
        permissions = _client(other).get_account_api_permissions()
    assert (permissions["enableWithdrawals"], permissions["enableSpotAndMarginTrading"]) == (
        True, True,
    )  # fmt: skip
    assert fake.requests[-1][1] == "/sapi/v1/account/apiRestrictions"


# -- exchangeInfo -----------------------------------------------------------------------------
def test_exchange_info_has_binance_filters_for_btcusdt(client: Client) -> None:
    info = client.get_symbol_info("BTCUSDT")
    assert info is not None
    assert (info["status"], info["baseAsset"], info["quoteAsset"]) == ("TRADING", "BTC", "USDT")
    flags = ("ocoAllowed", "quoteOrderQtyMarketAllowed", "cancelReplaceAllowed")
    assert [info[flag] for flag in flags] == [True, True, True]
    filters = {f["filterType"]: f for f in info["filters"]}
    assert filters["PRICE_FILTER"] == {
        "filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
        "tickSize": "0.01000000",
    }  # fmt: skip
    assert filters["LOT_SIZE"] == {
        "filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
        "stepSize": "0.00001000",
    }  # fmt: skip
    assert filters["NOTIONAL"]["minNotional"] == "5.00000000"
    assert filters["NOTIONAL"]["applyMinToMarket"] is True
    assert filters["MARKET_LOT_SIZE"]["maxQty"] == "83.86138083"
    assert filters["PERCENT_PRICE_BY_SIDE"]["bidMultiplierUp"] == "5"
    assert filters["MAX_NUM_ORDERS"] == {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200}
    eth = client.get_symbol_info("ETHUSDT")
    assert eth is not None
    assert {f["filterType"]: f for f in eth["filters"]}["LOT_SIZE"]["stepSize"] == "0.00010000"


# -- orders -----------------------------------------------------------------------------------
def test_market_buy_answers_full_with_fills_and_commission_in_the_base_asset(
    fake: FakeBinance, client: Client
) -> None:
    answer = client.create_order(
        symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01000", newClientOrderId="m-1"
    )
    assert {k: answer[k] for k in ("orderId", "clientOrderId", "status", "executedQty")} == {
        "orderId": 1, "clientOrderId": "m-1", "status": "FILLED", "executedQty": "0.01000000",
    }  # fmt: skip
    assert answer["cummulativeQuoteQty"] == "430.00100000"
    assert answer["fills"] == [
        {
            "price": "43000.10000000", "qty": "0.01000000", "commission": "0.00001000",
            "commissionAsset": "BTC", "tradeId": 1,
        }
    ]  # fmt: skip
    assert fake.balances() == {"USDT": Decimal("99569.999"), "BTC": Decimal("0.00999")}
    sell = client.create_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.00999")
    assert sell["fills"][0]["commission"] == "0.42957000"  # 0.1% of 429.57 USDT received
    assert sell["fills"][0]["commissionAsset"] == "USDT"


def test_market_buy_by_quote_quantity_rounds_down_to_the_step(client: Client) -> None:
    answer = client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quoteOrderQty="1000")
    assert (answer["origQty"], answer["executedQty"]) == ("0.02325000", "0.02325000")
    assert answer["cummulativeQuoteQty"] == "999.75232500"
    assert answer["origQuoteOrderQty"] == "1000.00000000"


def test_limit_orders_rest_fill_as_maker_or_expire_by_time_in_force(
    fake: FakeBinance, client: Client
) -> None:
    resting = client.create_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01000",
        price="42500.00",
    )  # fmt: skip
    assert (resting["status"], resting["fills"]) == ("NEW", [])
    assert fake.locked_balances() == {"USDT": Decimal("425.00000")}
    ioc = client.create_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="IOC", quantity="0.01000",
        price="42900.00",
    )  # fmt: skip
    assert (ioc["status"], ioc["executedQty"]) == ("EXPIRED", "0.00000000")
    fok = client.create_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="FOK", quantity="0.01000",
        price="43100.00",
    )  # fmt: skip
    assert (fok["status"], fok["fills"][0]["price"]) == ("FILLED", "43000.10000000")
    fake.set_book("BTCUSDT", bid=Decimal("42400.00"), ask=Decimal("42450.00"))
    filled = client.get_order(symbol="BTCUSDT", orderId=resting["orderId"])
    assert (filled["status"], filled["cummulativeQuoteQty"]) == ("FILLED", "425.00000000")
    trade = client.get_my_trades(symbol="BTCUSDT", orderId=resting["orderId"])[0]
    assert (trade["price"], trade["isMaker"], trade["commission"]) == (
        "42500.00000000", True, "0.00001000",
    )  # fmt: skip
    assert fake.locked_balances() == {}


def test_limit_maker_refuses_to_take(fake: FakeBinance, client: Client) -> None:
    assert _error(
        client.create_order, symbol="BTCUSDT", side="BUY", type="LIMIT_MAKER",
        quantity="0.01000", price="43000.10",
    ) == (400, -2010, "Order would immediately match and take.")  # fmt: skip
    maker = client.create_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT_MAKER", quantity="0.01000", price="42999.00"
    )
    assert set(maker) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}


def test_stop_loss_and_take_profit_limits_trigger_on_the_book(
    fake: FakeBinance, client: Client
) -> None:
    _buy_btc(client)
    assert _error(
        client.create_order, symbol="BTCUSDT", side="SELL", type="STOP_LOSS_LIMIT",
        timeInForce="GTC", quantity="0.05000", price="43500.00", stopPrice="43500.00",
    ) == (400, -2010, "Stop price would trigger immediately.")  # fmt: skip
    stop = client.create_order(
        symbol="BTCUSDT", side="SELL", type="STOP_LOSS_LIMIT", timeInForce="GTC",
        quantity="0.05000", price="41900.00", stopPrice="42000.00", newOrderRespType="RESULT",
    )  # fmt: skip
    assert (stop["status"], stop["stopPrice"], stop["workingTime"]) == ("NEW", "42000.00000000", -1)
    profit = client.create_order(
        symbol="BTCUSDT", side="SELL", type="TAKE_PROFIT_LIMIT", timeInForce="GTC",
        quantity="0.04000", price="45000.00", stopPrice="45000.00",
    )  # fmt: skip
    fake.set_book("BTCUSDT", bid=Decimal("41950.00"), ask=Decimal("41950.10"))
    assert fake.order(stop["orderId"])["status"] == "FILLED"
    assert client.get_my_trades(symbol="BTCUSDT")[-1]["price"] == "41950.00000000"
    assert fake.order(profit["orderId"])["status"] == "NEW"
    fake.set_book("BTCUSDT", bid=Decimal("45000.00"), ask=Decimal("45000.10"))
    assert client.get_order(symbol="BTCUSDT", orderId=profit["orderId"])["status"] == "FILLED"


ILLEGAL = (
    "Illegal characters found in parameter 'quantity'; "
    "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'."
)
REFUSALS = [
    ("0.000011", "43000.00", -1013, "Filter failure: LOT_SIZE"),
    ("0.01000", "43000.001", -1013, "Filter failure: PRICE_FILTER"),
    ("0.00010", "43000.00", -1013, "Filter failure: NOTIONAL"),
    ("0.01000", "300000.00", -1013, "Filter failure: PERCENT_PRICE_BY_SIDE"),
    ("0.000000001", "43000.00", -1111, "Parameter 'quantity' has too much precision."),
    ("1e-05", "43000.00", -1100, ILLEGAL),
    ("3.00000", "43000.00", -2010, "Account has insufficient balance for requested action."),
]


@pytest.mark.parametrize(("quantity", "price", "code", "msg"), REFUSALS)
def test_new_orders_are_refused_naming_the_rule(
    fake: FakeBinance, client: Client, quantity: str, price: str, code: int, msg: str
) -> None:
    order = {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": quantity, "price": price,
    }  # fmt: skip
    assert _error(client.create_order, **order) == (400, code, msg)
    assert fake.orders() == []
    unknown = {**order, "symbol": "NOPEUSDT"}
    assert _error(client.create_order, **unknown) == (400, -1121, "Invalid symbol.")


def test_market_orders_check_market_lot_size_and_a_duplicate_open_client_id_is_refused(
    client: Client,
) -> None:
    assert _error(
        client.create_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="100.00000"
    ) == (400, -1013, "Filter failure: MARKET_LOT_SIZE")
    order = dict(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01000",
        price="42000.00", newClientOrderId="same",
    )  # fmt: skip
    client.create_order(**order)
    assert _error(client.create_order, **order) == (400, -2010, "Duplicate order sent.")
    assert client.create_test_order(**{**order, "newClientOrderId": "other"}) == {}


def test_cancel_answers_with_the_cancel_id_and_unknown_orders_are_refused(
    fake: FakeBinance, client: Client
) -> None:
    placed = client.create_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01000",
        price="42000.00", newClientOrderId="to-cancel",
    )  # fmt: skip
    cancelled = client.cancel_order(
        symbol="BTCUSDT", origClientOrderId="to-cancel", newClientOrderId="the-cancel"
    )
    keys = ("orderId", "origClientOrderId", "clientOrderId", "status")
    assert {k: cancelled[k] for k in keys} == {
        "orderId": placed["orderId"], "origClientOrderId": "to-cancel",
        "clientOrderId": "the-cancel", "status": "CANCELED",
    }  # fmt: skip
    assert fake.requests[-1][0] == "DELETE"
    assert fake.balances() == {"USDT": Decimal("100000.00000")}
    assert _error(client.cancel_order, symbol="BTCUSDT", orderId=placed["orderId"]) == (
        400, -2011, "Unknown order sent.",
    )  # fmt: skip
    assert _error(client.get_order, symbol="BTCUSDT", orderId=99) == (
        400, -2013, "Order does not exist.",
    )  # fmt: skip
    for price in ("41000.00", "41500.00"):
        client.create_order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01000",
            price=price,
        )  # fmt: skip
    assert [o["status"] for o in client.cancel_all_open_orders(symbol="BTCUSDT")] == [
        "CANCELED", "CANCELED",
    ]  # fmt: skip
    assert client.get_open_orders(symbol="BTCUSDT") == []
    assert [o["status"] for o in client.get_all_orders(symbol="BTCUSDT")] == ["CANCELED"] * 3


def test_cancel_replace_swaps_the_order_or_reports_which_half_failed(
    fake: FakeBinance, client: Client
) -> None:
    old = client.create_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01000",
        price="42000.00", newClientOrderId="v1",
    )  # fmt: skip
    swapped = client.cancel_replace_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.02000",
        price="42100.00", cancelReplaceMode="STOP_ON_FAILURE", cancelOrderId=old["orderId"],
        newClientOrderId="v2",
    )  # fmt: skip
    assert (swapped["cancelResult"], swapped["newOrderResult"]) == ("SUCCESS", "SUCCESS")
    cancel = swapped["cancelResponse"]
    assert (cancel["status"], cancel["origClientOrderId"]) == ("CANCELED", "v1")
    assert (swapped["newOrderResponse"]["clientOrderId"], swapped["newOrderResponse"]["price"]) == (
        "v2", "42100.00000000",
    )  # fmt: skip
    with pytest.raises(BinanceAPIException) as caught:
        client.cancel_replace_order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.02000",
            price="42200.00", cancelReplaceMode="STOP_ON_FAILURE", cancelOrderId=old["orderId"],
        )  # fmt: skip
    assert (caught.value.status_code, caught.value.code) == (400, -2022)
    assert caught.value.response.json()["data"] == {
        "cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
        "cancelResponse": {"code": -2011, "msg": "Unknown order sent."}, "newOrderResponse": None,
    }  # fmt: skip
    assert [o["clientOrderId"] for o in client.get_open_orders(symbol="BTCUSDT")] == ["v2"]


def test_oco_sell_lists_two_legs_and_one_filling_expires_the_other(
    fake: FakeBinance, client: Client
) -> None:
    _buy_btc(client)
    listed = client.create_oco_order(
        symbol="BTCUSDT", side="SELL", quantity="0.05000", aboveType="LIMIT_MAKER",
        abovePrice="45000.00", belowType="STOP_LOSS_LIMIT", belowStopPrice="41000.00",
        belowPrice="40900.00", belowTimeInForce="GTC", listClientOrderId="oco-1",
    )  # fmt: skip
    assert fake.requests[-1][1] == "/api/v3/orderList/oco"
    assert (listed["contingencyType"], listed["listStatusType"], listed["listOrderStatus"]) == (
        "OCO", "EXEC_STARTED", "EXECUTING",
    )  # fmt: skip
    below, above = (o["orderId"] for o in listed["orders"])
    assert fake.locked_balances() == {"BTC": Decimal("0.05000")}
    fake.set_book("BTCUSDT", bid=Decimal("45000.00"), ask=Decimal("45000.10"))
    assert (fake.order(above)["status"], fake.order(below)["status"]) == ("FILLED", "EXPIRED")
    statuses = [(e["l"], e["L"]) for e in fake.user_events() if e["e"] == "listStatus"]
    assert statuses == [("EXEC_STARTED", "EXECUTING"), ("ALL_DONE", "ALL_DONE")]
    assert fake.locked_balances() == {}
    assert fake.balances()["BTC"] == Decimal("0.04990")


def test_a_buy_oco_cancelled_by_one_leg_cancels_both_and_unlocks(
    fake: FakeBinance, client: Client
) -> None:
    listed = client.create_oco_order(
        symbol="BTCUSDT", side="BUY", quantity="0.01000", aboveType="STOP_LOSS_LIMIT",
        aboveStopPrice="44000.00", abovePrice="44100.00", aboveTimeInForce="GTC",
        belowType="LIMIT_MAKER", belowPrice="42000.00", newOrderRespType="RESULT",
    )  # fmt: skip
    assert [r["type"] for r in listed["orderReports"]] == ["LIMIT_MAKER", "STOP_LOSS_LIMIT"]
    assert fake.locked_balances() == {"USDT": Decimal("441.0000000")}
    below = listed["orders"][0]
    cancelled = client.cancel_order(symbol="BTCUSDT", orderId=below["orderId"])
    assert cancelled["orderListId"] == listed["orderListId"]
    assert [o["status"] for o in fake.orders()] == ["CANCELED", "CANCELED"]
    assert [e["L"] for e in fake.user_events() if e["e"] == "listStatus"] == [
        "EXECUTING", "ALL_DONE",
    ]  # fmt: skip
    assert fake.locked_balances() == {}
    assert fake.balances() == {"USDT": Decimal("100000.0000000")}


def test_a_kline_range_fills_resting_orders_and_held_fills_wait_for_the_script(
    fake: FakeBinance, client: Client
) -> None:
    resting = client.create_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01000",
        price="42995.00",
    )  # fmt: skip
    fake.push_kline(_bar(5, "43000"))  # low 42990
    assert fake.order(resting["orderId"])["status"] == "FILLED"
    fake.hold_fills()
    market = _buy_btc(client, "0.01000")
    assert (market["status"], market["fills"]) == ("NEW", [])
    fake.fill(market["orderId"], Decimal("0.00400"))
    assert fake.order(market["orderId"])["executedQty"] == "0.00400000"
    fake.hold_fills(False)
    assert fake.order(market["orderId"])["status"] == "FILLED"


def test_scripted_rejection_expiry_and_deposit_reach_the_user_events(
    fake: FakeBinance, client: Client
) -> None:
    fake.reject_next_order(-1015, "Too many new orders.", status=429)
    assert _error(lambda: _buy_btc(client)) == (429, -1015, "Too many new orders.")
    placed = client.create_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01000",
        price="42000.00",
    )  # fmt: skip
    fake.expire(placed["orderId"])
    fake.deposit("BNB", Decimal("2"))
    events = fake.user_events()
    assert [(e["e"], e.get("x")) for e in events] == [
        ("executionReport", "NEW"), ("outboundAccountPosition", None),
        ("executionReport", "EXPIRED"), ("outboundAccountPosition", None),
        ("balanceUpdate", None), ("outboundAccountPosition", None),
    ]  # fmt: skip
    assert (events[4]["a"], events[4]["d"]) == ("BNB", "2.00000000")
    assert events[5]["B"] == [{"a": "BNB", "f": "2.00000000", "l": "0.00000000"}]


def test_commission_is_charged_in_bnb_when_paying_fees_with_bnb() -> None:
    balances = {"USDT": Decimal(1000), "BNB": Decimal(1)}
    with FakeBinance(
        balances=balances, symbols=("BTCUSDT", "BNBUSDT"), pay_fees_in_bnb=True
    ) as fake:
        fake.set_book("BTCUSDT", bid=BID, ask=ASK)
        fake.set_book("BNBUSDT", bid=Decimal("600.00"), ask=Decimal("600.00"))
        fill = _buy_btc(_client(fake), "0.01000")["fills"][0]
        assert (fill["commission"], fill["commissionAsset"]) == ("0.00071666", "BNB")
        assert fake.balances()["BNB"] == Decimal("0.99928334")


# -- market data, weight, faults -------------------------------------------------------------
def test_klines_filter_by_time_and_limit(client: Client) -> None:
    start = int(T0.timestamp() * 1000)
    rows = client.get_klines(symbol="BTCUSDT", interval="1m", startTime=start + 60_000, limit=2)
    assert rows == [
        [start + 60_000, "43001.00000000", "43011.00000000", "42991.00000000", "43001.00000000",
         "1.50000000", start + 119_999, "64501.50000000", 1, "0.00000000", "0.00000000", "0"],
        [start + 120_000, "43002.00000000", "43012.00000000", "42992.00000000", "43002.00000000",
         "1.50000000", start + 179_999, "64503.00000000", 1, "0.00000000", "0.00000000", "0"],
    ]  # fmt: skip
    assert [r[0] for r in client.get_klines(symbol="BTCUSDT", interval="1m", limit=1)] == [
        start + 240_000
    ]
    assert client.get_klines(symbol="BTCUSDT", interval="5m") == []
    assert _error(client.get_klines, symbol="BTCUSDT", interval="1m", limit=1001) == (
        400, -1130, "Data sent for parameter 'limit' is not valid.",
    )  # fmt: skip
    assert client.get_orderbook_ticker(symbol="BTCUSDT") == {
        "symbol": "BTCUSDT", "bidPrice": "43000.00000000", "bidQty": "10.00000000",
        "askPrice": "43000.10000000", "askQty": "10.00000000",
    }  # fmt: skip
    assert client.get_avg_price(symbol="ETHUSDT")["price"] == "2300.02500000"


def test_weight_headers_count_per_request_and_orders_count_too(
    fake: FakeBinance, client: Client
) -> None:
    client.get_account()
    first = int(client.response.headers["X-MBX-USED-WEIGHT-1M"])
    client.get_exchange_info()
    assert int(client.response.headers["X-MBX-USED-WEIGHT-1M"]) == first + 20
    client.get_open_orders()
    assert int(client.response.headers["X-MBX-USED-WEIGHT-1M"]) == first + 100
    _buy_btc(client, "0.01000")
    headers = client.response.headers
    assert (headers["X-MBX-ORDER-COUNT-10S"], headers["X-MBX-ORDER-COUNT-1D"]) == ("1", "1")
    assert int(headers["X-MBX-USED-WEIGHT-1M"]) == first + 101


def test_over_the_weight_limit_429_with_retry_after_then_a_418_ban_that_lasts(
    fake: FakeBinance, client: Client
) -> None:
    fake.set_used_weight(5990)
    with pytest.raises(BinanceAPIException) as limited:
        client.get_exchange_info()
    assert (limited.value.status_code, limited.value.code) == (429, -1003)
    assert limited.value.message.startswith(
        "Too many requests; current limit of IP(127.0.0.1) request weight per minute is 6000."
    )
    assert limited.value.response.headers["Retry-After"] == "60"
    assert limited.value.response.headers["X-MBX-USED-WEIGHT-1M"] == "5990"
    fake.fail_next(418, retry_after=120)
    fake.set_used_weight(0)
    for _ in range(2):
        with pytest.raises(BinanceAPIException) as caught:
            client.get_server_time()
        assert (caught.value.status_code, caught.value.code) == (418, -1003)
        assert "banned until" in caught.value.message
        assert caught.value.response.headers["Retry-After"] in ("119", "120")
    fake.set_clock_offset(121_000)  # the ban's two minutes pass on the server's clock
    assert "serverTime" in client.get_server_time()


def test_requests_that_ignore_retry_after_get_the_ip_banned(
    fake: FakeBinance, client: Client
) -> None:
    fake.fail_next(429, retry_after=30)
    assert _error(client.get_server_time)[:2] == (429, -1003)
    statuses = [_error(client.get_server_time)[0] for _ in range(3)]
    assert statuses == [429, 429, 418]  # the third request inside Retry-After is banned


def test_scripted_gateway_errors_and_restarts_answer_without_a_binance_body(
    fake: FakeBinance, client: Client
) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    placed = _buy_btc(client, "0.01000")
    fake.fail_next(502)
    assert _error(client.get_server_time)[:2] == (502, 0)
    socket = connect(fake.urls["stream"] + "ws/btcusdt@bookTicker")
    fake.wait_for(lambda: fake.subscriptions()["market"] == 1)
    fake.begin_restart()
    assert fake.connections() == {"market": 0, "ws_api": 0}
    with pytest.raises(ConnectionClosed):
        socket.recv(timeout=5)
    assert _error(client.get_server_time)[:2] == (503, 0)
    fake.end_restart()
    assert client.get_order(symbol="BTCUSDT", orderId=placed["orderId"])["status"] == "FILLED"


# -- streams ----------------------------------------------------------------------------------
@pytest.fixture
async def sdk(fake: FakeBinance) -> AsyncIterator[tuple[AsyncClient, BinanceSocketManager]]:
    class LocalAsyncClient(AsyncClient):
        API_URL = fake.urls["api"]
        WS_API_URL = fake.urls["ws_api"]

    class LocalSocketManager(BinanceSocketManager):
        STREAM_URL = fake.urls["stream"]

    client = await LocalAsyncClient.create(KEY_ID, SECRET)
    client.ws_api.TIMEOUT = _READ_TIMEOUT
    yield client, LocalSocketManager(client)
    await client.close_connection()


def _quick(socket: Any) -> Any:
    """python-binance's sockets close only after their read loop's `recv` times out (10 s);
    a short timeout keeps these tests fast without changing what they see."""
    socket.TIMEOUT = _READ_TIMEOUT
    return socket


async def _until(fake: FakeBinance, condition: Any) -> None:
    await asyncio.to_thread(fake.wait_for, condition)


async def test_user_socket_subscribes_over_the_ws_api_and_receives_new_then_trade(
    fake: FakeBinance, sdk: tuple[AsyncClient, BinanceSocketManager]
) -> None:
    client, manager = sdk
    async with manager.user_socket() as socket:
        assert fake.subscriptions()["user"] == 1
        fake.hold_fills()
        placed = await client.create_order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.02000",
            price="43000.10", newClientOrderId="u-1",
        )  # fmt: skip
        new = await socket.recv()
        assert (new["e"], new["x"], new["X"], new["c"], new["i"]) == (
            "executionReport", "NEW", "NEW", "u-1", placed["orderId"],
        )  # fmt: skip
        assert (new["n"], new["N"], new["t"], new["C"]) == ("0", None, -1, "")
        locked = await socket.recv()
        assert locked["B"] == [{"a": "USDT", "f": "99139.99800000", "l": "860.00200000"}]
        fake.fill(placed["orderId"], Decimal("0.01500"), Decimal("43000.00"))
        trade = await socket.recv()
        assert {k: trade[k] for k in ("x", "X", "l", "L", "z", "n", "N", "m", "Z")} == {
            "x": "TRADE", "X": "PARTIALLY_FILLED", "l": "0.01500000", "L": "43000.00000000",
            "z": "0.01500000", "n": "0.00001500", "N": "BTC", "m": True, "Z": "645.00000000",
        }  # fmt: skip
        position = await socket.recv()
        assert position["e"] == "outboundAccountPosition"
        await client.cancel_order(
            symbol="BTCUSDT", orderId=placed["orderId"], newClientOrderId="c-1"
        )
        cancelled = await socket.recv()
        assert (cancelled["x"], cancelled["X"], cancelled["c"], cancelled["C"], cancelled["z"]) == (
            "CANCELED", "CANCELED", "c-1", "u-1", "0.01500000",
        )  # fmt: skip
    await _until(fake, lambda: fake.subscriptions()["user"] == 0)


async def test_a_dropped_ws_api_loses_the_subscription_error_then_silence(
    fake: FakeBinance, sdk: tuple[AsyncClient, BinanceSocketManager]
) -> None:
    client, manager = sdk
    async with manager.user_socket() as socket:
        fake.drop_streams(market=False, ws_api=True)
        error = await socket.recv()
        assert error["e"] == "error"
        # python-binance reconnects the WS API connection but does not subscribe again.
        await _until(fake, lambda: fake.connections()["ws_api"] == 1)
        assert fake.subscriptions()["user"] == 0
        await client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01000")
        assert [e["x"] for e in fake.user_events() if e["e"] == "executionReport"] == [
            "NEW",
            "TRADE",
        ]
        received = []
        while True:  # what python-binance still queued after the drop: errors only
            try:
                received.append(await asyncio.wait_for(socket.recv(), 0.5))
            except TimeoutError:
                break
        assert {m["e"] for m in received} <= {"error"}


async def test_end_user_stream_sends_event_stream_terminated(
    fake: FakeBinance, sdk: tuple[AsyncClient, BinanceSocketManager]
) -> None:
    _, manager = sdk
    async with manager.user_socket() as socket:
        fake.end_user_stream()
        event = await socket.recv()
        assert event["e"] == "eventStreamTerminated"
        assert fake.subscriptions()["user"] == 0


async def test_kline_and_book_ticker_streams_raw_and_combined(
    fake: FakeBinance, sdk: tuple[AsyncClient, BinanceSocketManager]
) -> None:
    _, manager = sdk
    async with (
        _quick(manager.kline_socket("BTCUSDT", interval="1m")) as klines,
        _quick(manager.symbol_book_ticker_socket("ETHUSDT")) as books,
        _quick(manager.multiplex_socket(["btcusdt@kline_1m", "ethusdt@bookTicker"])) as both,
    ):
        await _until(fake, lambda: fake.subscriptions()["market"] == 4)
        fake.push_kline(_bar(5, "43100"), closed=False)
        fake.set_book("ETHUSDT", bid=Decimal("2301.00"), ask=Decimal("2301.10"))
        kline = await klines.recv()
        assert kline["e"] == "kline"
        assert {k: kline["k"][k] for k in ("t", "i", "o", "h", "l", "c", "v", "x")} == {
            "t": int((T0 + timedelta(minutes=5)).timestamp() * 1000), "i": "1m",
            "o": "43100.00000000", "h": "43110.00000000", "l": "43090.00000000",
            "c": "43100.00000000", "v": "1.50000000", "x": False,
        }  # fmt: skip
        book = await books.recv()
        assert {k: book[k] for k in ("s", "b", "B", "a", "A")} == {
            "s": "ETHUSDT", "b": "2301.00000000", "B": "10.00000000", "a": "2301.10000000",
            "A": "10.00000000",
        }  # fmt: skip
        combined = [await both.recv(), await both.recv()]
        assert [(m["stream"], m["data"].get("e")) for m in combined] == [
            ("btcusdt@kline_1m", "kline"), ("ethusdt@bookTicker", None),
        ]  # fmt: skip


def test_stop_closes_the_open_stream_sockets() -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    fake = FakeBinance().start()
    socket = connect(fake.urls["stream"] + "ws/btcusdt@bookTicker")
    fake.wait_for(lambda: fake.subscriptions()["market"] == 1)
    fake.stop()
    with pytest.raises(ConnectionClosed):
        socket.recv(timeout=5)


async def test_the_ws_api_refuses_a_subscription_signed_with_the_wrong_secret(
    fake: FakeBinance,
) -> None:
    class LocalAsyncClient(AsyncClient):
        API_URL = fake.urls["api"]
        WS_API_URL = fake.urls["ws_api"]

    class LocalSocketManager(BinanceSocketManager):
        STREAM_URL = fake.urls["stream"]

    client = await LocalAsyncClient.create(KEY_ID, "wrong")
    client.ws_api.TIMEOUT = _READ_TIMEOUT
    try:
        with pytest.raises(BinanceAPIException) as caught:
            async with LocalSocketManager(client).user_socket():
                pass
        assert (caught.value.status_code, caught.value.code, caught.value.message) == (
            400, -1022, "Signature for this request is not valid.",
        )  # fmt: skip
        assert fake.subscriptions()["user"] == 0
    finally:
        await client.close_connection()
