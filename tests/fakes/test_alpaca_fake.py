"""The fake Alpaca, driven by the real alpaca-py 0.44: REST JSON, executions, rejects and their
bodies, rate limits and faults, historical bars, and both WebSocket streams."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.live.stock import StockDataStream
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AccountStatus, OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)
from alpaca.trading.stream import TradingStream
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.sync.client import connect

from runtimes.core.bars import Bar
from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.alpaca.server import KEY_ID, SECRET

BID, ASK = Decimal("189.99"), Decimal("190.01")
T0 = datetime(2026, 12, 4, 14, 30, tzinfo=UTC)  # a Friday, before any run of this file


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with FakeAlpaca(not_fractionable=["MSFT"]) as server:
        server.set_quote("AAPL", bid=BID, ask=ASK)
        server.set_quote("MSFT", bid=Decimal("410.00"), ask=Decimal("410.10"))
        yield server


def _client(fake: FakeAlpaca, *, raw: bool = False, secret: str = SECRET) -> TradingClient:
    client = TradingClient(KEY_ID, secret, raw_data=raw, url_override=fake.urls["trading"])
    client._retry = 0  # a 429 raises at once instead of three 3 s retries
    return client


@pytest.fixture
def client(fake: FakeAlpaca) -> TradingClient:
    return _client(fake)


@pytest.fixture
def raw(fake: FakeAlpaca) -> TradingClient:
    return _client(fake, raw=True)


def _bar(minute: int, o: str, h: str, low: str, c: str, v: str) -> Bar:
    return Bar(
        "AAPL",
        "1m",
        T0 + timedelta(minutes=minute),
        Decimal(o),
        Decimal(h),
        Decimal(low),
        Decimal(c),
        Decimal(v),
    )


def _order(raw: TradingClient, **body: Any) -> dict[str, Any]:
    """POST /v2/orders the way the provider sends it: numbers as strings from Decimal."""
    body = {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day", **body}
    return raw.post("/orders", body)  # type: ignore[return-value]


def _refusal(raw: TradingClient, **body: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(APIError) as caught:
        _order(raw, **body)
    return caught.value.status_code, json.loads(str(caught.value))


# -- account and orders ---------------------------------------------------------------------
def test_account_reports_cash_equity_and_buying_power_as_strings(client, raw):
    assert client.get_account().status == AccountStatus.ACTIVE
    account = raw.get_account()
    picked = {
        k: account[k]
        for k in (
            "account_number",
            "status",
            "currency",
            "cash",
            "buying_power",
            "equity",
            "portfolio_value",
            "long_market_value",
            "multiplier",
            "pattern_day_trader",
            "daytrade_count",
            "trading_blocked",
            "shorting_enabled",
        )
    }
    assert picked == {
        "account_number": "PA3FAKE0WXYZ",
        "status": "ACTIVE",
        "currency": "USD",
        "cash": "100000",
        "buying_power": "100000",
        "equity": "100000",
        "portfolio_value": "100000",
        "long_market_value": "0",
        "multiplier": "1",
        "pattern_day_trader": False,
        "daytrade_count": 0,
        "trading_blocked": False,
        "shorting_enabled": True,
    }


def test_market_buy_fills_at_the_ask_and_books_position_cash_and_fill_activity(client, raw):
    submitted = client.submit_order(
        MarketOrderRequest(
            symbol="AAPL",
            qty=2,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            client_order_id="cid-1",
        )
    )
    assert submitted.status == OrderStatus.ACCEPTED
    order = raw.get_order_by_id(submitted.id)
    assert {
        k: order[k]
        for k in (
            "status",
            "qty",
            "filled_qty",
            "filled_avg_price",
            "position_intent",
            "order_class",
            "client_order_id",
        )
    } == {
        "status": "filled",
        "qty": "2",
        "filled_qty": "2",
        "filled_avg_price": "190.01",
        "position_intent": "buy_to_open",
        "order_class": "",
        "client_order_id": "cid-1",
    }
    assert order["filled_at"].endswith("Z")
    [position] = raw.get_all_positions()
    assert {
        k: position[k]
        for k in (
            "symbol",
            "qty",
            "side",
            "avg_entry_price",
            "cost_basis",
            "market_value",
            "unrealized_pl",
        )
    } == {
        "symbol": "AAPL",
        "qty": "2",
        "side": "long",
        "avg_entry_price": "190.01",
        "cost_basis": "380.02",
        "market_value": "380.02",
        "unrealized_pl": "0",
    }
    account = raw.get_account()
    assert (account["cash"], account["equity"], account["buying_power"]) == (
        "99619.98",
        "100000",
        "99619.98",
    )
    [fill] = raw.get("/account/activities/FILL")
    assert fill["id"].split("::")[0].isdigit()
    del fill["id"], fill["transaction_time"]
    assert fill == {
        "account_id": "7a1c0f3e-5b2d-4c8e-9f10-a1a2ca0fa4e0",
        "activity_type": "FILL",
        "type": "fill",
        "price": "190.01",
        "qty": "2",
        "side": "buy",
        "symbol": "AAPL",
        "leaves_qty": "0",
        "order_id": str(submitted.id),
        "cum_qty": "2",
        "order_status": "filled",
    }
    assert raw.get("/account/activities", {"activity_types": "FILL"})[0]["order_id"] == str(
        submitted.id
    )


def test_a_resting_limit_order_has_every_alpaca_field_with_numbers_as_strings(raw, fake):
    order = _order(raw, qty="1.5", type="limit", limit_price="180.25", client_order_id="c-2")
    timestamps = ("created_at", "updated_at", "submitted_at")
    assert all(order[k].endswith("Z") for k in timestamps)
    for key in ("id", "asset_id", *timestamps):
        del order[key]
    assert order == {
        "client_order_id": "c-2",
        "filled_at": None,
        "expired_at": None,
        "expires_at": None,
        "canceled_at": None,
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "symbol": "AAPL",
        "asset_class": "us_equity",
        "notional": None,
        "qty": "1.5",
        "filled_qty": "0",
        "filled_avg_price": None,
        "order_class": "",
        "order_type": "limit",
        "type": "limit",
        "side": "buy",
        "position_intent": "buy_to_open",
        "time_in_force": "day",
        "limit_price": "180.25",
        "stop_price": None,
        "status": "accepted",
        "extended_hours": False,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "subtag": None,
        "source": None,
    }
    assert fake.requests[-1] == (
        "POST",
        "/v2/orders",
        {},
        {
            "symbol": "AAPL",
            "side": "buy",
            "type": "limit",
            "time_in_force": "day",
            "qty": "1.5",
            "limit_price": "180.25",
            "client_order_id": "c-2",
        },
    )


def test_stops_and_trailing_stops_trigger_on_the_quote_and_fill_at_the_bid(raw, fake):
    _order(raw, qty="10")
    stop = _order(raw, side="sell", qty="2", type="stop", stop_price="170", time_in_force="gtc")
    stop_limit = _order(
        raw,
        side="sell",
        qty="2",
        type="stop_limit",
        stop_price="170",
        limit_price="169.5",
        time_in_force="gtc",
    )
    by_percent = _order(
        raw, side="sell", qty="2", type="trailing_stop", trail_percent="1.5", time_in_force="gtc"
    )
    by_price = _order(
        raw, side="sell", qty="2", type="trailing_stop", trail_price=2, time_in_force="gtc"
    )
    assert (by_percent["hwm"], by_percent["stop_price"], by_percent["trail_percent"]) == (
        "189.99",
        "187.14",
        "1.5",
    )
    assert (by_price["hwm"], by_price["stop_price"], by_price["trail_price"]) == (
        "189.99",
        "187.99",
        "2",
    )
    fake.set_quote("AAPL", bid=Decimal("191.00"), ask=Decimal("191.02"))
    assert raw.get_order_by_id(by_percent["id"])["stop_price"] == "188.14"
    fake.set_quote("AAPL", bid=Decimal("188.50"), ask=Decimal("188.52"))
    assert [raw.get_order_by_id(o["id"])["status"] for o in (by_percent, by_price)] == [
        "new",
        "filled",
    ]
    assert raw.get_order_by_id(by_price["id"])["filled_avg_price"] == "188.5"
    fake.set_quote("AAPL", bid=Decimal("169.90"), ask=Decimal("169.95"))
    prices = [
        raw.get_order_by_id(o["id"])["filled_avg_price"] for o in (stop, stop_limit, by_percent)
    ]
    assert prices == ["169.9", "169.9", "169.9"]
    assert raw.get_open_position("AAPL")["qty"] == "2"


def test_a_pushed_bar_fills_resting_orders_its_range_crosses_and_moves_the_quote(raw, fake):
    buy = _order(raw, qty="1", type="limit", limit_price="189")
    gap = _order(raw, qty="1", type="limit", limit_price="189.9")
    fake.push_bar(_bar(0, "189.8", "190", "188.5", "189.5", "1000"))
    assert [raw.get_order_by_id(o["id"])["filled_avg_price"] for o in (buy, gap)] == [
        "189",
        "189.8",
    ]
    fake.spread("AAPL", Decimal("0.02"))
    fake.push_bar(_bar(1, "189.5", "190.1", "189.4", "190", "800"))
    market = _order(raw, qty="1")
    assert raw.get_order_by_id(market["id"])["filled_avg_price"] == "190.01"


def test_notional_and_fractional_orders_fill_in_fractions(raw):
    notional = _order(raw, notional="250.5")
    assert (notional["qty"], notional["notional"]) == (None, "250.5")
    filled = raw.get_order_by_id(notional["id"])
    assert (filled["status"], filled["qty"], filled["filled_qty"], filled["filled_avg_price"]) == (
        "filled",
        None,
        "1.318351665",
        "190.01",
    )
    fractional = _order(raw, qty=0.5)
    assert raw.get_order_by_id(fractional["id"])["filled_qty"] == "0.5"
    assert raw.get_open_position("AAPL")["qty"] == "1.818351665"


def test_bracket_legs_are_held_until_the_parent_fills_then_one_exit_cancels_the_other(
    client, raw, fake
):
    fake.hold_fills()
    parent = client.submit_order(
        MarketOrderRequest(
            symbol="AAPL",
            qty=5,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            order_class="bracket",
            take_profit=TakeProfitRequest(limit_price=200),
            stop_loss=StopLossRequest(stop_price=150),
        )
    )
    assert parent.order_class == "bracket"
    assert [
        (leg.type, leg.side, leg.status, leg.limit_price, leg.stop_price) for leg in parent.legs
    ] == [
        ("limit", OrderSide.SELL, OrderStatus.HELD, "200", None),
        ("stop", OrderSide.SELL, OrderStatus.HELD, None, "150"),
    ]
    take_profit, stop_loss = (str(leg.id) for leg in parent.legs)
    fake.fill(str(parent.id))
    assert [raw.get_order_by_id(i)["status"] for i in (take_profit, stop_loss)] == ["new", "held"]
    fake.hold_fills(False)
    fake.set_quote("AAPL", bid=Decimal("200.50"), ask=Decimal("200.60"))
    assert [raw.get_order_by_id(i)["status"] for i in (take_profit, stop_loss)] == [
        "filled",
        "canceled",
    ]
    assert raw.get_all_positions() == []
    assert raw.get_account()["cash"] == "100052.45"


def test_oco_stop_leg_fills_and_cancels_the_take_profit(client, raw, fake):
    _order(raw, qty="5")
    oco = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL",
            qty=5,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            order_class="oco",
            take_profit=TakeProfitRequest(limit_price=200),
            stop_loss=StopLossRequest(stop_price=150),
        )
    )
    assert (oco.type, oco.limit_price, oco.status) == ("limit", "200", OrderStatus.ACCEPTED)
    [leg] = oco.legs
    assert (leg.type, leg.stop_price, leg.status) == ("stop", "150", OrderStatus.HELD)
    fake.set_quote("AAPL", bid=Decimal("149.50"), ask=Decimal("149.60"))
    assert raw.get_order_by_id(str(leg.id))["filled_avg_price"] == "149.5"
    assert raw.get_order_by_id(str(oco.id))["status"] == "canceled"


def test_scripted_partial_fills_then_the_rest_at_the_limit(raw, fake):
    fake.hold_fills()
    order = _order(raw, qty="3", type="limit", limit_price="190.5")
    fake.fill(order["id"], Decimal(1), Decimal("190.2"))
    partial = raw.get_order_by_id(order["id"])
    assert (partial["status"], partial["filled_qty"], partial["filled_avg_price"]) == (
        "partially_filled",
        "1",
        "190.2",
    )
    fake.fill(order["id"])
    done = raw.get_order_by_id(order["id"])
    assert (done["status"], done["filled_qty"], done["filled_avg_price"]) == (
        "filled",
        "3",
        "190.4",
    )
    fills = raw.get("/account/activities/FILL", {"direction": "asc"})
    assert [(f["type"], f["qty"], f["price"], f["leaves_qty"]) for f in fills] == [
        ("partial_fill", "1", "190.2", "2"),
        ("fill", "2", "190.5", "0"),
    ]
    page = raw.get(
        "/account/activities/FILL",
        {"direction": "asc", "page_size": 1, "page_token": fills[0]["id"]},
    )
    assert [f["id"] for f in page] == [fills[1]["id"]]


def test_replace_returns_the_new_order_and_the_old_one_becomes_replaced(client, raw):
    old = _order(raw, qty="1", type="limit", limit_price="180")
    new = client.replace_order_by_id(old["id"], ReplaceOrderRequest(qty=3, limit_price=181))
    assert (str(new.replaces), new.qty, new.limit_price, new.status) == (
        old["id"],
        "3",
        "181",
        OrderStatus.ACCEPTED,
    )
    replaced = raw.get_order_by_id(old["id"])
    assert (replaced["status"], replaced["replaced_by"]) == ("replaced", str(new.id))
    again = raw.patch(f"/orders/{new.id}", {"limit_price": "181.5"})
    assert (again["limit_price"], again["qty"], again["replaces"]) == ("181.5", "3", str(new.id))
    with pytest.raises(APIError) as caught:
        client.replace_order_by_id(old["id"], ReplaceOrderRequest(limit_price=182))
    assert (caught.value.status_code, caught.value.message) == (422, "order is not replaceable")


def test_cancel_answers_204_and_filled_or_unknown_orders_are_refused(client, raw):
    resting = _order(raw, qty="1", type="limit", limit_price="180")
    assert client.cancel_order_by_id(resting["id"]) is None
    assert raw.get_order_by_id(resting["id"])["status"] == "canceled"
    filled = _order(raw, qty="1")
    with pytest.raises(APIError) as caught:
        client.cancel_order_by_id(filled["id"])
    assert (caught.value.status_code, caught.value.code, caught.value.message) == (
        422,
        42210000,
        "order is not cancelable",
    )
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(APIError) as caught:
        client.cancel_order_by_id(missing)
    assert (caught.value.status_code, caught.value.code) == (404, 40410000)
    open_one = _order(raw, qty="1", type="limit", limit_price="181")
    [answer] = client.cancel_orders()
    assert (str(answer.id), answer.status) == (open_one["id"], 200)


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ({"qty": "1000"}, 403, 40310000, "insufficient buying power"),
        (
            {"qty": "1", "type": "limit", "limit_price": "180.123"},
            422,
            42210000,
            "invalid limit_price 180.123. sub-penny increment does not fulfill minimum pricing "
            "criteria",
        ),
        (
            {"qty": "1.5", "time_in_force": "gtc"},
            422,
            42210000,
            "fractional orders must be DAY orders",
        ),
        ({"qty": "0.5", "symbol": "MSFT"}, 422, 42210000, "asset MSFT is not fractionable"),
        (
            {"qty": "0.5", "side": "sell", "type": "trailing_stop", "trail_percent": "1"},
            422,
            42210000,
            "fractional orders are not supported for trailing_stop orders",
        ),
        ({"qty": "1", "symbol": "ZZZZ"}, 422, 40010001, 'asset "ZZZZ" not found'),
        (
            {"qty": "0.5", "side": "sell"},
            403,
            40310000,
            "insufficient qty available for order (requested: 0.5, available: 0)",
        ),
        (
            {"qty": "1", "client_order_id": "x" * 129},
            422,
            40010001,
            "client_order_id must be no more than 128 characters",
        ),
    ],
)
def test_refused_orders_carry_alpacas_status_code_and_message(raw, body, status, code, message):
    assert _refusal(raw, **body) == (status, {"code": code, "message": message})


def test_duplicate_client_order_ids_and_scripted_rejections_are_refused(raw, fake):
    _order(raw, qty="1", client_order_id="same")
    assert _refusal(raw, qty="1", client_order_id="same") == (
        422,
        {"code": 40010001, "message": "client_order_id must be unique"},
    )
    fake.reject_next_order("account is restricted", status=403, code=40310000)
    assert _refusal(raw, qty="1") == (403, {"code": 40310000, "message": "account is restricted"})
    assert _order(raw, qty="1")["status"] == "accepted"


def test_whole_share_shorts_are_allowed_from_a_flat_position(raw):
    short = _order(raw, side="sell", qty="3")
    assert short["position_intent"] == "sell_to_open"
    position = raw.get_open_position("AAPL")
    assert (position["qty"], position["side"], position["avg_entry_price"]) == (
        "-3",
        "short",
        "189.99",
    )
    assert raw.get_account()["cash"] == "100569.97"


def test_orders_listing_filters_by_status_symbol_and_nests_legs(client, raw, fake):
    fake.hold_fills()
    bracket = _order(
        raw,
        qty="1",
        order_class="bracket",
        time_in_force="gtc",
        take_profit={"limit_price": "200"},
        stop_loss={"stop_price": "150"},
    )
    msft = _order(raw, symbol="MSFT", qty="1", type="limit", limit_price="400")
    client.cancel_order_by_id(msft["id"])
    nested = client.get_orders(GetOrdersRequest(status="open", nested=True))
    assert [(str(o.id), len(o.legs)) for o in nested] == [(bracket["id"], 2)]
    flat = raw.get_orders(GetOrdersRequest(status="all", direction="asc"))
    assert [o["symbol"] for o in flat] == ["AAPL", "AAPL", "AAPL", "MSFT"]
    closed = raw.get_orders(GetOrdersRequest(status="closed", symbols=["MSFT"]))
    assert [(o["id"], o["status"]) for o in closed] == [(msft["id"], "canceled")]
    by_client_id = client.get_order_by_client_id(bracket["client_order_id"])
    assert str(by_client_id.id) == bracket["id"]


def test_closing_a_position_submits_a_market_order(client, raw):
    _order(raw, qty="3")
    order = client.close_position("AAPL", ClosePositionRequest(qty="1"))
    assert (order.side, order.qty, order.type) == (OrderSide.SELL, "1", "market")
    assert raw.get_open_position("AAPL")["qty"] == "2"
    [closed] = client.close_all_positions(cancel_orders=True)
    assert (closed.symbol, closed.status) == ("AAPL", 200)
    assert raw.get_all_positions() == []
    with pytest.raises(APIError) as caught:
        client.get_open_position("AAPL")
    assert (caught.value.status_code, caught.value.message) == (404, "position does not exist")


def test_orders_wait_as_accepted_while_the_market_is_closed_and_fill_at_the_open():
    with FakeAlpaca(market_open=False) as fake:
        fake.set_quote("AAPL", bid=BID, ask=ASK)
        raw = _client(fake, raw=True)
        assert raw.get_clock()["is_open"] is False
        order = _order(raw, qty="1")
        assert order["status"] == "accepted"
        fake.set_market_open(True)
        assert raw.get_order_by_id(order["id"])["status"] == "filled"
        limit = _order(raw, qty="1", type="limit", limit_price="100")
        fake.set_market_open(False)
        assert raw.get_order_by_id(limit["id"])["status"] == "expired"


def test_assets_say_which_symbols_are_fractionable(client):
    assert (client.get_asset("AAPL").fractionable, client.get_asset("MSFT").fractionable) == (
        True,
        False,
    )
    assert sorted(a.symbol for a in client.get_all_assets()) == ["AAPL", "MSFT"]
    with pytest.raises(APIError) as caught:
        client.get_asset("ZZZZ")
    assert caught.value.status_code == 404


# -- gateway: keys, rate limits, faults -----------------------------------------------------
def test_bad_keys_get_401_with_a_message_and_no_code(fake):
    with pytest.raises(APIError) as caught:
        _client(fake, secret="wrong").get_account()
    error = caught.value
    assert (error.status_code, json.loads(str(error)), error.message) == (
        401,
        {"message": "unauthorized"},
        "unauthorized",
    )
    with pytest.raises(KeyError):
        _ = error.code


def test_rate_limit_answers_429_with_alpacas_body_and_headers():
    with FakeAlpaca(rate_limit=2) as fake:
        client = _client(fake)
        client.get_account()
        client.get_clock()
        with pytest.raises(APIError) as caught:
            client.get_account()
        error = caught.value
        assert (error.status_code, error.code, error.message) == (
            429,
            42910000,
            "rate limit exceeded",
        )
        headers = error.response.headers
        assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("2", "0")
        assert 1 <= int(headers["Retry-After"]) <= 60
        assert int(headers["X-RateLimit-Reset"]) >= int(datetime.now(UTC).timestamp())


def test_scripted_faults_answer_429_and_gateway_errors_then_recover(fake, client):
    fake.fail_next(429, retry_after=7)
    with pytest.raises(APIError) as caught:
        client.get_account()
    assert (caught.value.status_code, caught.value.response.headers["Retry-After"]) == (429, "7")
    fake.fail_next(502, count=2)
    for _ in range(2):
        with pytest.raises(APIError) as caught:
            client.get_clock()
        assert caught.value.status_code == 502
    assert client.get_account().cash == "100000"


def test_restart_answers_503_while_down_and_keeps_the_orders(fake, raw):
    order = _order(raw, qty="1", type="limit", limit_price="180")
    fake.begin_restart()
    with pytest.raises(APIError) as caught:
        raw.get_order_by_id(order["id"])
    assert caught.value.status_code == 503
    fake.end_restart()
    assert raw.get_order_by_id(order["id"])["status"] == "new"


def test_wait_for_wakes_on_a_request_and_times_out_with_an_assertion(fake, client):
    worker = threading.Thread(target=client.get_clock)
    worker.start()
    fake.wait_for(lambda: any(r[1] == "/v2/clock" for r in fake.requests))
    worker.join()
    with pytest.raises(AssertionError):
        fake.wait_for(lambda: False, timeout=0.05)


# -- market data ----------------------------------------------------------------------------
def test_historical_bars_page_with_next_page_token_and_aggregate_to_5_minutes():
    bars = [_bar(i, "190", str(191 + i), "189.5", f"190.{i}", "100") for i in range(5)]
    with FakeAlpaca(bars=bars, bars_page_size=2) as fake:
        data = StockHistoricalDataClient(KEY_ID, SECRET, url_override=fake.urls["data"])
        minute = data.get_stock_bars(
            StockBarsRequest(symbol_or_symbols=["AAPL"], timeframe=TimeFrame.Minute, start=T0)
        )
        assert [(b.timestamp, b.close) for b in minute["AAPL"]] == [
            (T0 + timedelta(minutes=i), float(f"190.{i}")) for i in range(5)
        ]
        pages = [r[2].get("page_token") for r in fake.requests if r[1] == "/v2/stocks/bars"]
        assert len(pages) == 3 and pages[0] is None and None not in pages[1:]
        five = data.get_stock_bars(
            StockBarsRequest(
                symbol_or_symbols="AAPL", timeframe=TimeFrame(5, TimeFrameUnit.Minute), start=T0
            )
        )
        [bar] = five["AAPL"]
        assert (bar.timestamp, bar.open, bar.high, bar.low, bar.close, bar.volume) == (
            T0,
            190.0,
            195.0,
            189.5,
            190.4,
            500.0,
        )
        quote = data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="AAPL"))
        assert (quote["AAPL"].bid_price, quote["AAPL"].ask_price) == (190.4, 190.4)


# -- streams --------------------------------------------------------------------------------
def _run(stream: Any) -> threading.Thread:
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    return thread


def test_trade_updates_stream_sends_new_fill_and_canceled_in_order(fake, raw):
    updates: list[Any] = []
    enough = threading.Event()

    async def on_update(update: Any) -> None:
        updates.append(update)
        if len(updates) == 4:
            enough.set()

    stream = TradingStream(KEY_ID, SECRET, url_override=fake.urls["trading_stream"])
    stream.subscribe_trade_updates(on_update)
    thread = _run(stream)
    try:
        fake.wait_for(lambda: fake.stream_clients()["trading"] == 1)
        market = _order(raw, qty="2")
        resting = _order(raw, qty="1", type="limit", limit_price="180")
        raw.cancel_order_by_id(resting["id"])
        assert enough.wait(5)
    finally:
        stream.stop()
        thread.join(10)
    assert [(u.event, str(u.order.id), u.order.status) for u in updates] == [
        ("new", market["id"], OrderStatus.NEW),
        ("fill", market["id"], OrderStatus.FILLED),
        ("new", resting["id"], OrderStatus.NEW),
        ("canceled", resting["id"], OrderStatus.CANCELED),
    ]
    fill = updates[1]
    assert (fill.price, fill.qty, fill.position_qty) == (190.01, 2.0, 2.0)
    assert fill.execution_id is not None and fill.timestamp.tzinfo is not None


def test_data_stream_sends_bars_and_quotes_with_timestamps_and_refuses_a_second_connection(fake):
    received: list[Any] = []
    both = threading.Event()

    async def on_data(message: Any) -> None:
        received.append(message)
        if len(received) == 2:
            both.set()

    stream = StockDataStream(KEY_ID, SECRET, url_override=fake.urls["data_stream"] + "/iex")
    stream.subscribe_bars(on_data, "AAPL")
    stream.subscribe_quotes(on_data, "AAPL")
    thread = _run(stream)
    try:
        fake.wait_for(
            lambda: (
                fake.subscriptions().get("quotes") == ["AAPL"]
                and fake.subscriptions().get("bars") == ["AAPL"]
            )
        )
        msgpack_header = {"Content-Type": "application/msgpack"}
        with connect(
            fake.urls["data_stream"] + "/iex", additional_headers=msgpack_header
        ) as second:
            assert msgpack.unpackb(second.recv()) == [{"T": "success", "msg": "connected"}]
            second.send(msgpack.packb({"action": "auth", "key": KEY_ID, "secret": SECRET}))
            assert msgpack.unpackb(second.recv()) == [
                {"T": "error", "code": 406, "msg": "connection limit exceeded"}
            ]
        fake.push_bar(_bar(0, "190", "191", "189.5", "190.5", "1200"))
        fake.set_quote("AAPL", bid=Decimal("190.49"), ask=Decimal("190.51"), at=T0)
        assert both.wait(5)
    finally:
        stream.stop()
        thread.join(10)
    bar, quote = received
    assert (bar.symbol, bar.timestamp, bar.open, bar.high, bar.low, bar.close, bar.volume) == (
        "AAPL",
        T0,
        190.0,
        191.0,
        189.5,
        190.5,
        1200.0,
    )
    assert (quote.symbol, quote.timestamp, quote.bid_price, quote.ask_price) == (
        "AAPL",
        T0,
        190.49,
        190.51,
    )


# -- broker-side events and faults (seen in the fake's record, no SDK stream needed) --------
def _resting(raw: TradingClient, price: str) -> str:
    return _order(raw, qty="1", type="limit", limit_price=price, time_in_force="gtc")["id"]


def test_broker_side_ends_and_replaces_produce_their_trade_updates_in_order(fake, raw):
    rejected, expired, canceled, done, replaced = (
        _resting(raw, p) for p in ("180", "181", "182", "183", "184")
    )
    fake.reject_order(rejected, "order rejected by the exchange")
    fake.expire(expired)
    fake.cancel(canceled)
    fake.done_for_day(done)
    new = raw.replace_order_by_id(replaced, ReplaceOrderRequest(limit_price=185))
    events = [(u["event"], u["order"]["id"], u["order"]["status"]) for u in fake.trade_updates()]
    assert events[5:] == [
        ("rejected", rejected, "rejected"),
        ("expired", expired, "expired"),
        ("canceled", canceled, "canceled"),
        ("done_for_day", done, "done_for_day"),
        ("replaced", replaced, "replaced"),
        ("new", new["id"], "new"),
    ]
    assert fake.trade_updates()[5]["reason"] == "order rejected by the exchange"
    open_ids = {o["id"] for o in raw.get_orders(GetOrdersRequest(status="open"))}
    assert open_ids == {done, new["id"]}


def test_an_order_whose_answer_is_lost_is_placed_and_found_by_its_client_order_id(fake, raw):
    fake.fail_next(504, path="/v2/orders", processed=True)
    with pytest.raises(APIError) as caught:
        _order(raw, qty="1", client_order_id="retry-me")
    assert caught.value.status_code == 504
    assert _refusal(raw, qty="1", client_order_id="retry-me")[0] == 422
    found = raw.get_order_by_client_id("retry-me")
    assert (found["status"], found["filled_qty"]) == ("filled", "1")


def _listen(fake: FakeAlpaca, secret: str = SECRET) -> tuple[Any, list[Any]]:
    """A bare trade_updates client (what the SDK sends), for protocol details."""
    ws = connect(fake.urls["trading_stream"])
    auth = {"action": "authenticate", "data": {"key_id": KEY_ID, "secret_key": secret}}
    ws.send(json.dumps(auth))
    answers = [json.loads(ws.recv())]
    if answers[0]["data"]["status"] == "authorized":
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        answers.append(json.loads(ws.recv()))
    return ws, answers


def test_trade_stream_frames_are_binary_and_bad_keys_are_unauthorized(fake, raw):
    bad, answers = _listen(fake, secret="wrong")
    assert answers == [
        {"stream": "authorization", "data": {"action": "authenticate", "status": "unauthorized"}}
    ]
    with pytest.raises(ConnectionClosed):
        bad.recv(timeout=5)
    ws, answers = _listen(fake)
    assert answers == [
        {"stream": "authorization", "data": {"action": "authenticate", "status": "authorized"}},
        {"stream": "listening", "data": {"streams": ["trade_updates"]}},
    ]
    fake.wait_for(lambda: fake.stream_clients()["trading"] == 1)
    order = _order(raw, qty="1", type="limit", limit_price="180")
    frame = ws.recv(timeout=5, decode=False)
    assert isinstance(frame, bytes)
    assert (json.loads(frame)["data"]["event"], json.loads(frame)["data"]["order"]["id"]) == (
        "new",
        order["id"],
    )
    fake.drop_streams()
    with pytest.raises(ConnectionClosedError):
        ws.recv(timeout=5)
    assert fake.stream_clients() == {"trading": 0, "data": 0}
    fake.refuse_streams()
    with pytest.raises(ConnectionClosed):
        _listen(fake)
    fake.refuse_streams(False)
    _listen(fake)[0].close()
