"""Trading API commands run by the host, against a bare engine: resampled bars, moving a
position's exits (PATCH /v1/positions/{id}) and cancelling every order (DELETE /v1/orders)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runtimes.core.engine import BacktestConfig
from runtimes.core.market_data import MarketData
from runtimes.hosting.commands import execute
from runtimes.providers.backtest import BacktestProvider
from tests.runtimes.core.scenario import D, bars

T0 = datetime(2021, 4, 2, 0, 0, tzinfo=UTC)
# Minute k (0-based) opens at 100 + k, reaches 100 + k + 0.5 and 100 + k - 0.5, closes at
# 100 + k + 0.25, with volume k + 1: every bucket's OHLCV can be checked by hand.
ROWS = [(100 + k, 100 + k + 0.5, 100 + k - 0.5, 100 + k + 0.25, k + 1) for k in range(150)]


def engine_at(minute: int, rows=ROWS, minutes: int = 1) -> BacktestProvider:
    """An engine whose strategy has seen the bars up to `minute` (0-based) included."""
    engine = BacktestProvider(MarketData.from_bars(bars(rows, "BTCUSDT", T0, minutes)),
                            BacktestConfig(initial_cash=D(100_000)))
    for _ in range(minute + 1):
        engine.next_batch()
    return engine


def call(engine, op, path=None, query=None, body=None):
    reply = execute(engine, {"op": op, "path": path or {}, "query": query or {}, "body": body})
    return reply.status, reply.body


def get_bars(engine, **query):
    return call(engine, "bars", {"symbol": "BTCUSDT"}, query)


def ohlcv(bar):
    return (bar["timestamp"], bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"])


# -- GET /v1/bars/{symbol} ----------------------------------------------------------------------


def test_five_minute_bars_are_built_from_the_minutes_seen_and_omit_the_unfinished_bucket():
    status, body = get_bars(engine_at(6), timeframe="5m")  # minutes 0..6 seen
    assert status == 200
    assert [ohlcv(b) for b in body] == [
        ("2021-04-02T00:00:00Z", "100", "104.5", "99.5", "104.25", "15"),
    ]
    assert body[0]["timeframe"] == "5m" and body[0]["provider"] == "backtest"


def test_on_the_wall_clock_a_bucket_appears_once_the_minute_after_it_has_begun():
    from tests.runtimes.providers.fake_market import FakeMarket

    market = FakeMarket(("AAPL",), D(1000), wake=lambda: None, ticking=False)
    for _ in range(10):  # the minutes 1..10 (closes 101..110); minute 10 is still forming
        market.feed("AAPL")
    status, body = call(market, "bars", {"symbol": "AAPL"}, {"timeframe": "5m"})
    assert status == 200
    assert [(b["timestamp"], b["open"], b["close"], b["volume"], b["provider"]) for b in body] == [
        ("2026-12-06T12:00:00Z", "101", "104", "4", "mock"),
        ("2026-12-06T12:05:00Z", "105", "109", "5", "mock"),
    ]


def test_a_bucket_appears_once_the_minute_that_closes_it_has_been_seen():
    status, body = get_bars(engine_at(9), timeframe="5m")
    assert status == 200
    assert [ohlcv(b) for b in body] == [
        ("2021-04-02T00:00:00Z", "100", "104.5", "99.5", "104.25", "15"),
        ("2021-04-02T00:05:00Z", "105", "109.5", "104.5", "109.25", "40"),
    ]


def test_resampled_bars_honour_start_end_and_limit():
    engine = engine_at(19)
    stamps = lambda **q: [b["timestamp"][11:16] for b in get_bars(engine, timeframe="5m", **q)[1]]  # noqa: E731
    assert stamps() == ["00:00", "00:05", "00:10", "00:15"]
    assert stamps(limit="2") == ["00:10", "00:15"]
    assert stamps(start="2021-04-02T00:01:00Z") == ["00:05", "00:10", "00:15"]
    assert stamps(start="2021-04-02T00:05:00Z", end="2021-04-02T00:10:00Z") == ["00:05", "00:10"]
    assert stamps(end="2021-04-02T00:04:59Z") == ["00:00"]
    assert stamps(limit="0") == []


def test_a_limited_resample_never_shows_a_bucket_cut_short_by_the_fetch():
    status, body = get_bars(engine_at(19), timeframe="10m", limit="1")
    assert status == 200
    assert [ohlcv(b) for b in body] == [
        ("2021-04-02T00:10:00Z", "110", "119.5", "109.5", "119.25", "155"),
    ]


def test_the_session_timeframe_defaults_to_the_last_hundred_bars():
    status, body = get_bars(engine_at(149), timeframe="1m")
    assert status == 200 and len(body) == 100
    assert (body[0]["timestamp"], body[-1]["timestamp"]) == ("2021-04-02T00:50:00Z",
                                                             "2021-04-02T02:29:00Z")
    hourly = get_bars(engine_at(149), timeframe="1h")[1]
    assert [ohlcv(b) for b in hourly] == [
        ("2021-04-02T00:00:00Z", "100", "159.5", "99.5", "159.25", "1830"),
        ("2021-04-02T01:00:00Z", "160", "219.5", "159.5", "219.25", "5430"),
    ]


@pytest.mark.parametrize("timeframe", ["1m", "5m", "3m"])
def test_a_timeframe_finer_than_or_not_a_multiple_of_the_sessions_is_invalid(timeframe):
    status, body = get_bars(engine_at(10, ROWS[:20], minutes=2), timeframe=timeframe)
    assert status == 400
    assert body["code"] == "INVALID_VALUE"
    assert body["details"] == {"field": "timeframe", "provided": timeframe}


def test_bars_need_a_timeframe_and_a_known_symbol():
    engine = engine_at(3)
    assert get_bars(engine)[1]["code"] == "INVALID_REQUEST"
    status, body = call(engine, "bars", {"symbol": "ETHUSDT"}, {"timeframe": "5m"})
    assert (status, body["code"]) == (404, "SYMBOL_NOT_FOUND")


# -- PATCH /v1/positions/{id} -------------------------------------------------------------------


def bracketed_position(**bracket):
    """A filled market buy of 2 carrying `bracket`; its exit legs are live."""
    engine = engine_at(0)
    body = {"symbol": "BTCUSDT", "side": "buy", "quantity": "2", "order_type": "market",
            **bracket}
    assert call(engine, "submit_order", body=body)[0] == 201
    engine.next_batch()  # fills at minute 1's open, 101
    return engine


def test_moving_exits_moves_the_live_stop_loss_and_take_profit_legs():
    engine = bracketed_position(stop_loss="90", take_profit="120")
    status, body = call(engine, "modify_position", {"position_id": "pos-BTCUSDT"},
                        body={"stop_loss": "95.5", "take_profit": "130"})
    assert status == 200
    assert body == {"position_id": "pos-BTCUSDT",
                    "stop_loss": {"order_ids": ["ord-2"], "trigger_price": "95.5"},
                    "take_profit": {"order_ids": ["ord-3"], "trigger_price": "130"}}
    assert (engine.order("ord-2").stop_price, engine.order("ord-3").limit_price) == (D("95.5"),
                                                                                   D(130))


def test_moving_only_the_stop_leaves_the_take_profit_where_it_was():
    engine = bracketed_position(stop_loss="90", take_profit="120")
    status, body = call(engine, "modify_position", {"position_id": "BTCUSDT"},
                        body={"stop_loss": 92})
    assert status == 200
    assert body == {"position_id": "pos-BTCUSDT",
                    "stop_loss": {"order_ids": ["ord-2"], "trigger_price": "92"}}
    assert engine.order("ord-3").limit_price == D(120)


def test_moving_exits_of_a_position_without_tracked_legs_is_a_409():
    engine = bracketed_position(take_profit="120")
    status, body = call(engine, "modify_position", {"position_id": "pos-BTCUSDT"},
                        body={"stop_loss": "95"})
    assert status == 409
    assert body["code"] == "ORDER_NOT_MODIFIABLE"
    assert body["details"] == {"position_id": "pos-BTCUSDT", "missing": ["stop_loss"]}
    assert engine.order("ord-2").limit_price == D(120)  # nothing moved


@pytest.mark.parametrize("body,code", [
    ({}, "INVALID_REQUEST"), ({"quantity": "1"}, "INVALID_REQUEST"), ([], "INVALID_REQUEST"),
    ({"stop_loss": "-1"}, "INVALID_VALUE"), ({"take_profit": "0"}, "INVALID_VALUE"),
])
def test_moving_exits_needs_a_positive_stop_loss_or_take_profit(body, code):
    engine = bracketed_position(stop_loss="90")
    status, answer = call(engine, "modify_position", {"position_id": "pos-BTCUSDT"}, body=body)
    assert (status, answer["code"]) == (400, code)


def test_moving_exits_of_an_unknown_position_is_a_404():
    status, body = call(engine_at(1), "modify_position", {"position_id": "pos-BTCUSDT"},
                        body={"stop_loss": "95"})
    assert (status, body["code"]) == (404, "POSITION_NOT_FOUND")


# -- DELETE /v1/orders --------------------------------------------------------------------------


def test_cancel_all_answers_a_cancel_all_result():
    engine = engine_at(0)
    for price in ("90", "91"):
        call(engine, "submit_order", body={"symbol": "BTCUSDT", "side": "buy", "quantity": "1",
                                           "order_type": "limit", "limit_price": price})
    call(engine, "cancel_order", {"order_id": "ord-1"})
    assert call(engine, "cancel_all_orders", query={"symbol": "ETHUSDT"})[1] == {
        "cancelled_count": 0, "failed_count": 0, "failed_order_ids": []}
    assert call(engine, "cancel_all_orders")[1] == {
        "cancelled_count": 1, "failed_count": 0, "failed_order_ids": []}
    assert [o.status.value for o in engine.all_orders()] == ["CANCELLED", "CANCELLED"]
