"""Hand-computed fills of the simulated exchange: every order type and time in force, gaps,
brackets, OCO, partial fills, fees, slippage, rejections and shorting on margin."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from runtimes.core.costs import Commission
from runtimes.core.domain import OrderStatus, PositionSide, RejectReason, TimeInForce, TrailingType
from runtimes.core.engine import BacktestConfig, BacktestEngine
from runtimes.core.errors import (
    OrderNotFound,
    OrderNotModifiable,
    OrderRejected,
    OrderValidationError,
)
from runtimes.core.events import AccountEvent, PositionEvent
from runtimes.core.market_data import MarketData
from tests.runtimes.core.scenario import D, buy, fill_prices, order_kinds, sell, start, step
from tests.runtimes.core.scenario import bars as make_bars

FLAT = (10, 10, 10, 10)


# -- market orders ------------------------------------------------------------------------------


def test_market_buy_fills_at_the_next_bars_open_and_equity_is_marked_at_its_close():
    engine = start([FLAT, (10.5, 12, 10, 11)])
    placed = engine.submit_order(buy(2))
    assert placed.status is OrderStatus.OPEN
    events = step(engine)
    assert fill_prices(events) == [("ord-1", D(2), D("10.5"))]
    assert engine.account().cash == D(979)
    assert engine.account().equity == D(1001)
    assert engine.order("ord-1").status is OrderStatus.FILLED
    assert engine.order("ord-1").average_fill_price == D("10.5")


def test_fill_events_come_in_order_then_one_account_event():
    engine = start([FLAT, (10.5, 12, 10, 11)])
    engine.submit_order(buy(2))
    events = step(engine)
    assert [type(e).__name__ for e in events] == [
        "OrderEvent",
        "TradeEvent",
        "PositionEvent",
        "AccountEvent",
    ]
    position = events[2]
    assert isinstance(position, PositionEvent) and position.kind == "POSITION_OPENED"
    assert isinstance(events[3], AccountEvent)


# -- limit and stop orders ----------------------------------------------------------------------


def test_limit_buy_fills_at_its_price_when_the_bar_touches_it():
    engine = start([FLAT, (10, 10.5, 9, 9.5)])
    engine.submit_order(buy(1, limit_price="9.2"))
    assert fill_prices(step(engine)) == [("ord-1", D(1), D("9.2"))]


def test_limit_buy_fills_at_the_open_when_the_market_gaps_below_the_limit():
    engine = start([FLAT, (9, 9.4, 8.5, 9)])
    engine.submit_order(buy(1, limit_price="9.5"))
    assert fill_prices(step(engine)) == [("ord-1", D(1), D(9))]


def test_limit_buy_rests_while_the_price_stays_above_it():
    engine = start([FLAT, (10, 11, 9.6, 10), (10, 10.2, 9.4, 9.8)])
    engine.submit_order(buy(1, limit_price="9.5"))
    assert fill_prices(step(engine)) == []
    assert engine.order("ord-1").status is OrderStatus.OPEN
    assert fill_prices(step(engine)) == [("ord-1", D(1), D("9.5"))]


def test_stop_buy_fills_at_the_stop_when_touched_inside_the_bar():
    engine = start([FLAT, (10, 10.8, 9.9, 10.7)])
    engine.submit_order(buy(1, stop_price="10.5"))
    assert fill_prices(step(engine)) == [("ord-1", D(1), D("10.5"))]


def test_stop_buy_fills_at_the_open_when_the_market_gaps_through_it():
    engine = start([FLAT, (11, 11.5, 10.9, 11.2)])
    engine.submit_order(buy(1, stop_price="10.5"))
    assert fill_prices(step(engine)) == [("ord-1", D(1), D(11))]


def test_stop_sell_on_a_long_position_fills_at_the_open_after_a_gap_down():
    engine = start([FLAT, FLAT, (8, 8.5, 7.5, 8)])
    engine.submit_order(buy(1))
    step(engine)
    engine.submit_order(sell(1, stop_price=9))
    assert fill_prices(step(engine)) == [("ord-2", D(1), D(8))]
    assert engine.positions() == []


def test_stop_limit_triggered_inside_the_bar_fills_at_the_stop_when_the_limit_allows_it():
    engine = start([FLAT, (10, 10.8, 9.9, 10.7)])
    engine.submit_order(buy(1, stop_price="10.5", limit_price="10.6"))
    assert fill_prices(step(engine)) == [("ord-1", D(1), D("10.5"))]


def test_stop_limit_with_a_lower_limit_waits_for_the_next_bar_after_an_intrabar_trigger():
    engine = start([FLAT, (10, 10.8, 9.9, 10.7), (10.4, 10.5, 10.1, 10.3)])
    engine.submit_order(buy(1, stop_price="10.5", limit_price="10.2"))
    assert fill_prices(step(engine)) == []
    assert fill_prices(step(engine)) == [("ord-1", D(1), D("10.2"))]


def test_stop_limit_triggered_by_a_gap_fills_at_the_limit_later_in_that_bar():
    engine = start([FLAT, (11, 11.2, 10.4, 10.9)])
    engine.submit_order(buy(1, stop_price="10.5", limit_price="10.6"))
    assert fill_prices(step(engine)) == [("ord-1", D(1), D("10.6"))]


def test_stop_limit_not_triggered_does_not_fill_even_if_the_limit_is_touched():
    engine = start([FLAT, (10, 10.4, 9, 9.5)])
    engine.submit_order(buy(1, stop_price="10.5", limit_price="10.6"))
    assert fill_prices(step(engine)) == []


# -- trailing stops -----------------------------------------------------------------------------


def test_absolute_trailing_stop_trails_the_highest_high_and_fills_at_its_level():
    engine = start([FLAT, FLAT, (10, 12, 9.5, 11.5), (11.6, 11.8, 10.5, 11)])
    engine.submit_order(buy(1))
    step(engine)
    trailing = engine.submit_order(
        sell(1, trailing_distance=1, trailing_type=TrailingType.ABSOLUTE)
    )
    assert trailing.stop_price == D(9)  # last close 10 - 1
    assert fill_prices(step(engine)) == []
    assert engine.order(trailing.id).stop_price == D(11)  # high 12 - 1
    assert fill_prices(step(engine)) == [(trailing.id, D(1), D(11))]


def test_percent_trailing_stop_fills_at_the_open_when_the_market_gaps_below_it():
    engine = start([FLAT, FLAT, (10, 12, 9.5, 11.5), (10.5, 10.6, 10, 10.2)])
    engine.submit_order(buy(1))
    step(engine)
    trailing = engine.submit_order(
        sell(1, trailing_distance=10, trailing_type=TrailingType.PERCENT)
    )
    assert trailing.stop_price == D(9)
    step(engine)
    assert engine.order(trailing.id).stop_price == D("10.8")  # 12 - 10 %
    assert fill_prices(step(engine)) == [(trailing.id, D(1), D("10.5"))]


# -- time in force ------------------------------------------------------------------------------


def test_ioc_limit_that_does_not_fill_on_the_next_bar_expires():
    engine = start([FLAT, (10, 10.5, 9.6, 10), (9, 9, 8, 8.5)])
    engine.submit_order(buy(1, limit_price="9.5", time_in_force=TimeInForce.IOC))
    assert order_kinds(step(engine)) == [("ORDER_EXPIRED", "ord-1")]
    assert engine.order("ord-1").status is OrderStatus.EXPIRED
    assert fill_prices(step(engine)) == []


def test_ioc_fills_what_the_volume_cap_allows_and_expires_the_rest():
    engine = start([FLAT, (10, 10, 10, 10, 20)], max_volume_share=D("0.1"))
    engine.submit_order(buy(5, time_in_force=TimeInForce.IOC))
    events = step(engine)
    assert fill_prices(events) == [("ord-1", D(2), D(10))]
    assert order_kinds(events) == [("ORDER_PARTIALLY_FILLED", "ord-1"), ("ORDER_EXPIRED", "ord-1")]
    assert engine.order("ord-1").filled_quantity == D(2)


def test_fok_that_cannot_fill_completely_in_one_bar_expires_without_any_fill():
    engine = start([FLAT, (10, 10, 10, 10, 20)], max_volume_share=D("0.1"))
    engine.submit_order(buy(5, time_in_force=TimeInForce.FOK))
    events = step(engine)
    assert fill_prices(events) == []
    assert order_kinds(events) == [("ORDER_EXPIRED", "ord-1")]


def test_fok_that_can_fill_completely_fills():
    engine = start([FLAT, (10, 10, 10, 10, 100)], max_volume_share=D("0.1"))
    engine.submit_order(buy(5, time_in_force=TimeInForce.FOK))
    assert fill_prices(step(engine)) == [("ord-1", D(5), D(10))]


def test_day_order_expires_when_the_next_new_york_trading_day_begins():
    day1 = make_bars([FLAT, (10, 10.5, 9.6, 10)], start=datetime(2024, 1, 2, 20, 58, tzinfo=UTC))
    day2 = make_bars([(9, 9, 8, 8.5)], start=datetime(2024, 1, 3, 14, 30, tzinfo=UTC))
    config = BacktestConfig(initial_cash=D(1000), platform_preset="alpaca")
    engine = BacktestEngine(MarketData.from_bars(day1 + day2), config)
    engine.next_batch()
    engine.submit_order(buy(1, limit_price="9.5", time_in_force=TimeInForce.DAY))
    assert fill_prices(step(engine)) == []  # 15:59 New York: not touched, still working
    events = step(engine)  # next morning: would have filled, but the day is over
    assert order_kinds(events) == [("ORDER_EXPIRED", "ord-1")]
    assert fill_prices(events) == []


def test_day_order_placed_after_the_last_bar_of_a_day_works_on_the_next_day():
    day1 = make_bars([FLAT], start=datetime(2024, 1, 2, 20, 59, tzinfo=UTC))
    day2 = make_bars([(9, 9, 8, 8.5)], start=datetime(2024, 1, 3, 14, 30, tzinfo=UTC))
    config = BacktestConfig(initial_cash=D(1000), day_session_timezone="America/New_York")
    engine = BacktestEngine(MarketData.from_bars(day1 + day2), config)
    engine.next_batch()
    engine.submit_order(buy(1, limit_price="9.5", time_in_force=TimeInForce.DAY))
    assert fill_prices(step(engine)) == [("ord-1", D(1), D(9))]


# -- brackets and OCO ---------------------------------------------------------------------------


def test_bracket_legs_are_placed_when_the_entry_fills_and_carry_their_parent():
    engine = start([FLAT, (10, 10.5, 9.8, 10.2)])
    engine.submit_order(buy(2, stop_loss="9.5", take_profit=11, client_order_id="entry"))
    events = step(engine)
    created = [e for e in events if getattr(e, "kind", None) == "ORDER_CREATED"]
    assert [(e.order.client_order_id, e.parent_order_id) for e in created] == [
        ("entry-sl", "ord-1"),
        ("entry-tp", "ord-1"),
    ]
    stop_leg, target_leg = engine.orders(open_only=True)
    assert (stop_leg.order_type, stop_leg.stop_price, stop_leg.quantity) == ("STOP", D("9.5"), D(2))
    assert (target_leg.order_type, target_leg.limit_price) == ("LIMIT", D(11))
    assert stop_leg.reduce_only and target_leg.reduce_only


def test_when_one_bar_touches_stop_loss_and_take_profit_the_pessimistic_default_takes_the_loss():
    engine = start([FLAT, (10, 10.2, 9.9, 10), (10, 11.5, 9, 10)])
    engine.submit_order(buy(1, stop_loss="9.5", take_profit=11))
    step(engine)
    events = step(engine)
    assert fill_prices(events) == [("ord-2", D(1), D("9.5"))]
    assert engine.order("ord-3").status is OrderStatus.CANCELLED
    assert engine.account().cash == D("999.5")


def test_the_optimistic_rule_takes_the_profit_instead():
    engine = start([FLAT, (10, 10.2, 9.9, 10), (10, 11.5, 9, 10)], stop_take_same_bar="optimistic")
    engine.submit_order(buy(1, stop_loss="9.5", take_profit=11))
    step(engine)
    assert fill_prices(step(engine)) == [("ord-3", D(1), D(11))]
    assert engine.order("ord-2").status is OrderStatus.CANCELLED


def test_a_gap_through_the_take_profit_fills_it_at_the_open_even_when_pessimistic():
    engine = start([FLAT, (10, 10.2, 9.9, 10), (11.5, 12, 9, 10)])
    engine.submit_order(buy(1, stop_loss="9.5", take_profit=11))
    step(engine)
    assert fill_prices(step(engine)) == [("ord-3", D(1), D("11.5"))]


def test_legs_of_an_entry_filled_at_the_open_act_in_the_same_bar():
    engine = start([FLAT, (10, 10.2, 9, 9.4)])
    engine.submit_order(buy(1, stop_loss="9.5", take_profit=11))
    assert fill_prices(step(engine)) == [("ord-1", D(1), D(10)), ("ord-2", D(1), D("9.5"))]


def test_legs_of_an_entry_filled_inside_the_bar_wait_for_the_next_bar():
    engine = start([FLAT, (10, 10.2, 9, 9.4), (9.4, 9.6, 9.3, 9.5)])
    engine.submit_order(buy(1, limit_price="9.8", stop_loss="9.5", take_profit=11))
    assert fill_prices(step(engine)) == [("ord-1", D(1), D("9.8"))]
    assert fill_prices(step(engine)) == [("ord-2", D(1), D("9.4"))]  # gap below the stop


def test_closing_the_position_cancels_the_bracket_legs():
    engine = start([FLAT, FLAT, FLAT])
    engine.submit_order(buy(1, stop_loss=9, take_profit=11))
    step(engine)
    engine.close_position("pos-AAA")
    events = step(engine)
    assert fill_prices(events) == [("ord-4", D(1), D(10))]
    assert ("ORDER_CANCELLED", "ord-2") in order_kinds(events)
    assert ("ORDER_CANCELLED", "ord-3") in order_kinds(events)
    assert engine.orders(open_only=True) == []


def test_partial_entry_fills_place_one_leg_pair_per_tranche():
    engine = start([FLAT, (10, 10, 10, 10, 10), (10, 10, 10, 10, 10)], max_volume_share=D("0.2"))
    engine.submit_order(buy(4, stop_loss=9, client_order_id="e"))
    step(engine)
    step(engine)
    legs = engine.orders(open_only=True)
    assert [(leg.client_order_id, leg.quantity) for leg in legs] == [
        ("e-sl", D(2)),
        ("e-sl-2", D(2)),
    ]


def test_oco_group_fill_cancels_the_sibling():
    engine = start([FLAT, (10, 11.2, 9.8, 11)])
    engine.submit_order(buy(1, limit_price=9, oco_group_id="g"))
    engine.submit_order(buy(1, stop_price=11, oco_group_id="g"))
    events = step(engine)
    assert fill_prices(events) == [("ord-2", D(1), D(11))]
    assert ("ORDER_CANCELLED", "ord-1") in order_kinds(events)


# -- partial fills, fees, slippage --------------------------------------------------------------


def test_volume_cap_splits_a_market_order_over_bars_with_an_exact_average_price():
    rows = [FLAT, (10, 10, 10, 10, 10), (11, 11, 11, 11, 10), (12, 12, 12, 12, 10)]
    engine = start(rows, max_volume_share=D("0.1"))
    engine.submit_order(buy(3))
    assert order_kinds(step(engine)) == [("ORDER_PARTIALLY_FILLED", "ord-1")]
    step(engine)
    assert order_kinds(step(engine)) == [("ORDER_FILLED", "ord-1")]
    assert engine.order("ord-1").average_fill_price == D(11)
    assert [f.price for f in engine.fills()] == [D(10), D(11), D(12)]


def test_binance_preset_charges_a_tenth_of_a_percent_of_notional():
    engine = start([FLAT, (10.5, 12, 10, 11)], platform_preset="binance")
    engine.submit_order(buy(2))
    step(engine)
    (fill,) = engine.fills()
    assert (fill.commission, fill.commission_currency) == (D("0.0210"), "USDT")
    assert engine.account().cash == D("978.979")
    assert engine.account().total_commission == D("0.021")


def test_alpaca_preset_charges_nothing():
    engine = start([FLAT, (10.5, 12, 10, 11)], platform_preset="alpaca")
    engine.submit_order(buy(2))
    step(engine)
    assert engine.fills()[0].commission == 0


def test_per_share_commission_is_raised_to_the_minimum():
    commission = Commission(per_share=D("0.005"), minimum=D(1))
    engine = start([FLAT, FLAT], commission=commission, initial_cash=D(5000))
    engine.submit_order(buy(100))
    step(engine)
    assert engine.fills()[0].commission == D(1)
    assert engine.account().cash == D(3999)


def test_slippage_moves_the_price_against_the_buyer_within_the_bar():
    engine = start([FLAT, (10, 10.5, 9.5, 10)], slippage_bps=D(10))
    engine.submit_order(buy(1))
    step(engine)
    (fill,) = engine.fills()
    assert (fill.base_price, fill.price) == (D(10), D("10.010"))


def test_slippage_never_pushes_a_fill_outside_the_bars_range():
    engine = start([FLAT, (10, 10, 9.5, 9.8)], slippage_bps=D(50))
    engine.submit_order(buy(1))
    step(engine)
    assert engine.fills()[0].price == D(10)


# -- rejections ---------------------------------------------------------------------------------


def test_cash_account_rejects_a_buy_beyond_its_cash_and_records_the_rejected_order():
    engine = start([FLAT, FLAT])
    with pytest.raises(OrderRejected) as caught:
        engine.submit_order(buy(101))
    assert caught.value.reject_code == "INSUFFICIENT_FUNDS"
    assert caught.value.as_dict()["code"] == "ORDER_REJECTED"
    rejected = engine.order("ord-1")
    assert (rejected.status, rejected.reject_reason) == (
        "REJECTED",
        RejectReason.INSUFFICIENT_BALANCE,
    )
    assert order_kinds(engine.drain_events()) == [("ORDER_REJECTED", "ord-1")]


def test_open_buy_orders_reserve_cash():
    engine = start([FLAT, FLAT])
    engine.submit_order(buy(60, limit_price=10))
    with pytest.raises(OrderRejected):
        engine.submit_order(buy(50, limit_price=10))


def test_cash_account_rejects_short_selling():
    engine = start([FLAT, FLAT])
    with pytest.raises(OrderRejected) as caught:
        engine.submit_order(sell(1))
    assert caught.value.reject_code == "SHORT_SELLING_NOT_ALLOWED"


def test_reduce_only_order_that_would_open_a_position_is_rejected():
    engine = start([FLAT, FLAT])
    with pytest.raises(OrderRejected) as caught:
        engine.submit_order(buy(1, reduce_only=True))
    assert caught.value.reject_code == "REDUCE_ONLY_VIOLATED"


def test_unknown_symbol_is_rejected_as_invalid_symbol():
    engine = start([FLAT, FLAT])
    with pytest.raises(OrderRejected) as caught:
        engine.submit_order(buy(1, symbol="ZZZ"))
    assert caught.value.reject_code == "INVALID_SYMBOL"


def test_a_buy_that_can_no_longer_be_paid_at_the_fill_is_rejected_then():
    engine = start([FLAT, (20, 21, 19, 20)])
    engine.submit_order(buy(99))  # 990 at the last close; the market gaps to 20
    events = step(engine)
    assert order_kinds(events) == [("ORDER_REJECTED", "ord-1")]
    assert engine.account().cash == D(1000)


# -- margin and shorting ------------------------------------------------------------------------


def test_margin_account_sells_short_and_books_pnl_when_covering():
    engine = start([FLAT, (10, 10, 9, 9), (9, 9, 8, 8.5)], account_type="margin", leverage=D(2))
    engine.submit_order(sell(10))
    step(engine)
    position = engine.position("AAA")
    assert (position.side, position.quantity, position.unrealized_pnl) == (
        PositionSide.SHORT,
        D(10),
        D(10),
    )
    assert engine.account().cash == D(1100)
    assert engine.account().equity == D(1010)
    assert engine.account().margin_used == D(45)
    engine.submit_order(buy(10))
    step(engine)
    assert engine.positions() == []
    assert engine.account().realized_pnl == D(10)
    assert engine.account().equity == D(1010)


def test_margin_account_rejects_exposure_beyond_equity_times_leverage():
    engine = start([FLAT, FLAT], account_type="margin", leverage=D(2))
    engine.submit_order(sell(200))
    with pytest.raises(OrderRejected) as caught:
        engine.submit_order(sell(201))
    assert caught.value.reject_code == "INSUFFICIENT_MARGIN"


def test_a_fill_larger_than_the_position_flips_it_on_margin():
    engine = start([FLAT, FLAT, (12, 12, 12, 12)], account_type="margin", leverage=D(2))
    engine.submit_order(buy(2))
    step(engine)
    engine.submit_order(sell(5))
    step(engine)
    position = engine.position("pos-AAA")
    assert (position.side, position.quantity, position.average_entry_price) == (
        PositionSide.SHORT,
        D(3),
        D(12),
    )
    assert engine.account().realized_pnl == D(4)


# -- modify, cancel, idempotency -----------------------------------------------------------------


def test_modify_moves_a_limit_price_in_place():
    engine = start([FLAT, (10, 10.5, 9.4, 10)])
    engine.submit_order(buy(1, limit_price=9))
    modified, previous = engine.modify_order("ord-1", limit_price=D("9.5"))
    assert (modified.id, modified.limit_price, previous) == ("ord-1", D("9.5"), None)
    assert order_kinds(engine.drain_events()) == [
        ("ORDER_CREATED", "ord-1"),
        ("ORDER_MODIFIED", "ord-1"),
    ]
    assert fill_prices(step(engine)) == [("ord-1", D(1), D("9.5"))]


def test_modify_refuses_a_price_the_order_type_does_not_have():
    engine = start([FLAT, FLAT])
    engine.submit_order(buy(1, limit_price=9))
    with pytest.raises(OrderValidationError) as caught:
        engine.modify_order("ord-1", stop_price=D(9))
    assert caught.value.details == {"field": "stop_price", "provided": "9"}


def test_cancel_then_cancel_again_is_not_modifiable():
    engine = start([FLAT, FLAT])
    engine.submit_order(buy(1, limit_price=9))
    assert engine.cancel_order("ord-1").status is OrderStatus.CANCELLED
    with pytest.raises(OrderNotModifiable):
        engine.cancel_order("ord-1")
    with pytest.raises(OrderNotFound):
        engine.cancel_order("ord-99")


def test_cancel_all_cancels_every_open_order_of_the_symbol():
    engine = start([FLAT, FLAT])
    engine.submit_order(buy(1, limit_price=9))
    engine.submit_order(buy(1, limit_price=8))
    assert [o.id for o in engine.cancel_all("AAA")] == ["ord-1", "ord-2"]


def test_a_second_submit_with_the_same_client_order_id_returns_the_first_order():
    engine = start([FLAT, FLAT])
    first = engine.submit_order(buy(1, limit_price=9, client_order_id="abc"))
    second = engine.submit_order(buy(5, limit_price=8, client_order_id="abc"))
    assert second == first
    assert len(engine.orders()) == 1
    assert engine.order_by_client_id("abc") == first


def test_decimal_quantities_are_exact():
    engine = start([FLAT, (10.5, 12, 10, 11)])
    engine.submit_order(buy(Decimal("0.1")))
    step(engine)
    assert engine.account().cash == D("998.95")


def test_trailing_buy_stop_protects_a_short_by_trailing_the_lowest_low():
    rows = [FLAT, FLAT, (10, 10.2, 8, 8.5), (8.6, 9.6, 8.4, 9.5)]
    engine = start(rows, account_type="margin", leverage=D(1))
    engine.submit_order(sell(1))
    step(engine)
    trailing = engine.submit_order(buy(1, trailing_distance=1, trailing_type=TrailingType.ABSOLUTE))
    assert trailing.stop_price == D(11)
    step(engine)
    assert engine.order(trailing.id).stop_price == D(9)  # low 8 + 1
    assert fill_prices(step(engine)) == [(trailing.id, D(1), D(9))]
    assert engine.account().realized_pnl == D(1)


def test_modifying_a_trailing_distance_moves_the_level_from_the_extreme_seen():
    engine = start([FLAT, FLAT, (10, 12, 9.5, 11.5)])
    engine.submit_order(buy(1))
    step(engine)
    trailing = engine.submit_order(
        sell(1, trailing_distance=1, trailing_type=TrailingType.ABSOLUTE)
    )
    modified, _ = engine.modify_order(trailing.id, trailing_distance=D("0.5"))
    assert modified.stop_price == D("9.5")


def test_a_reduce_only_order_is_capped_at_the_position_when_it_fills():
    engine = start([FLAT, FLAT, FLAT])
    engine.submit_order(buy(3))
    step(engine)
    engine.submit_order(sell(2, reduce_only=True))
    engine.submit_order(sell(2, reduce_only=True))
    events = step(engine)
    assert fill_prices(events) == [("ord-2", D(2), D(10)), ("ord-3", D(1), D(10))]
    assert engine.order("ord-3").status is OrderStatus.PARTIALLY_FILLED
    assert engine.positions() == []


def test_a_flip_reopens_the_position_at_the_flip_time():
    engine = start([FLAT, FLAT, (12, 12, 12, 12)], account_type="margin", leverage=D(2))
    engine.submit_order(buy(1))
    step(engine)
    engine.submit_order(sell(2))
    step(engine)
    assert engine.position("AAA").opened_at == engine.now


def test_closing_a_short_announces_a_closed_short_position():
    engine = start([FLAT, FLAT, FLAT], account_type="margin", leverage=D(1))
    engine.submit_order(sell(1))
    step(engine)
    engine.close_position("AAA")
    (closed,) = [e for e in step(engine) if isinstance(e, PositionEvent)]
    assert (closed.kind, closed.position.side, closed.position.quantity) == (
        "POSITION_CLOSED",
        PositionSide.SHORT,
        D(0),
    )
