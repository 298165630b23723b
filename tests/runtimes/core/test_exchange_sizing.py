"""Orders sized at the fill price (notional, equity_fraction): hand-computed backtest scenarios.

Every engine starts with 1,000 of cash and has seen one bar closing at 10.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtimes.core.costs import Commission
from runtimes.core.domain import (
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
)
from runtimes.core.errors import OrderRejected, OrderValidationError
from runtimes.core.events import OrderEvent
from runtimes.core.exchange_sizing import affordable_quantity, floor_to_step
from runtimes.core.exchange_snapshot import dataclass_from_json, dataclass_to_json
from tests.runtimes.core.scenario import D, buy, fill_prices, order_kinds, start, step

FLAT = (10, 10, 10, 10)
GAP_UP = (10.7, 11, 10.5, 10.8)


def sized(side: Side = Side.BUY, **fields: Any) -> OrderRequest:
    return OrderRequest(symbol="AAA", side=side, **fields)


# -- sizing at the fill price -----------------------------------------------------------------


def test_all_in_by_quantity_from_the_last_close_is_rejected_when_the_open_gaps_up():
    engine = start([FLAT, GAP_UP])
    engine.submit_order(buy(100))
    assert order_kinds(step(engine)) == [("ORDER_REJECTED", "ord-1")]


def test_all_in_by_equity_fraction_fills_at_the_gapped_open_with_the_quantity_cash_buys():
    engine = start([FLAT, GAP_UP])
    placed = engine.submit_order(sized(equity_fraction=D(1)))
    assert (placed.status, placed.quantity, placed.equity_fraction) == (
        OrderStatus.OPEN,
        D(0),
        D(1),
    )
    events = step(engine)
    assert fill_prices(events) == [("ord-1", D("93.45794392"), D("10.7"))]
    filled = engine.order("ord-1")
    assert (filled.status, filled.quantity, filled.filled_quantity) == (
        OrderStatus.FILLED,
        D("93.45794392"),
        D("93.45794392"),
    )
    assert engine.account().cash == D("0.000000056")


def test_the_quantity_is_rounded_down_to_the_symbols_step():
    engine = start([FLAT, GAP_UP], quantity_steps={"AAA": D(1)})
    engine.submit_order(sized(notional=D(1000)))
    assert fill_prices(step(engine)) == [("ord-1", D(93), D("10.7"))]
    assert engine.account().cash == D("4.9")


def test_an_all_in_order_with_commission_is_sized_down_so_it_never_exceeds_cash():
    engine = start([FLAT, FLAT], commission=Commission(percent=D("0.1")))
    engine.submit_order(sized(equity_fraction=D(1)))
    step(engine)
    [fill] = engine.exchange.fills
    assert (fill.quantity, fill.price, fill.commission) == (
        D("99.90009990"),
        D(10),
        D("0.99900099900"),
    )
    assert engine.account().cash == D("1.00E-9")


def test_a_notional_excludes_the_commission():
    engine = start([FLAT, FLAT], commission=Commission(percent=D("0.1")))
    engine.submit_order(sized(notional=D(500)))
    step(engine)
    [fill] = engine.exchange.fills
    assert (fill.quantity, fill.commission) == (D(50), D("0.5"))
    assert engine.account().cash == D("499.5")


def test_a_minimum_commission_is_left_room_for():
    assert affordable_quantity(D(100), D(10), Commission(minimum=D(5)), D(1)) == D(9)
    assert floor_to_step(D("9.99"), D("0.5")) == D("9.5")


def cents(low: int, high: int) -> st.SearchStrategy[D]:
    return st.integers(low, high).map(lambda n: D(n) / 100)


@given(
    cash=cents(0, 10_000_000),
    price=cents(1, 5_000_000),
    percent=st.sampled_from([D(0), D("0.1"), D("0.25"), D(1)]),
    per_share=cents(0, 100),
    fixed=cents(0, 500),
    minimum=cents(0, 1_000),
    step=st.sampled_from([D(1), D("0.001"), D("0.00000001"), D(5)]),
)
def test_the_affordable_quantity_is_the_largest_step_count_the_cash_pays_with_commission(
    cash: D, price: D, percent: D, per_share: D, fixed: D, minimum: D, step: D
) -> None:
    commission = Commission(percent=percent, per_share=per_share, fixed=fixed, minimum=minimum)
    quantity = affordable_quantity(cash, price, commission, step)

    def cost(q: D) -> D:
        return q * price + commission.fee(q, price)

    assert quantity >= 0 and quantity % step == 0
    assert quantity == 0 or cost(quantity) <= cash
    assert cost(quantity + step) > cash


def test_an_order_sized_at_fill_survives_a_snapshot():
    engine = start([FLAT, FLAT])
    placed = engine.submit_order(sized(equity_fraction=D("0.5")))
    assert dataclass_from_json(Order, dataclass_to_json(placed)) == placed


def test_an_equity_fraction_uses_the_equity_at_fill_time():
    engine = start([FLAT, FLAT, (12, 12, 12, 12), (11, 11, 11, 11)])
    engine.submit_order(buy(50))
    step(engine)
    step(engine)  # the 50 held are marked at 12: equity 500 + 600 = 1,100
    engine.submit_order(sized(equity_fraction=D("0.25")))
    assert fill_prices(step(engine)) == [("ord-2", D(25), D(11))]
    assert engine.account().cash == D(225)


def test_a_limit_order_by_notional_is_sized_at_its_limit_price():
    engine = start([FLAT, (10, 10, 9, 9.5)])
    engine.submit_order(
        sized(notional=D(500), order_type=OrderType.LIMIT, limit_price=D("9.5"))
    )
    assert fill_prices(step(engine)) == [("ord-1", D("52.63157894"), D("9.5"))]
    assert engine.account().cash == D("500.000000070")


def test_the_order_event_shows_quantity_zero_until_the_fill_sets_it():
    engine = start([FLAT, FLAT])
    engine.submit_order(sized(notional=D(100)))
    [created] = [e for e in engine.drain_events() if isinstance(e, OrderEvent)]
    assert (created.order.quantity, created.order.remaining_quantity) == (D(0), D(0))
    [filled] = [e for e in step(engine) if isinstance(e, OrderEvent)]
    assert (filled.kind, filled.order.quantity, filled.order.notional) == (
        "ORDER_FILLED",
        D(10),
        D(100),
    )


def test_a_notional_too_small_for_one_step_is_rejected_at_the_fill():
    engine = start([FLAT, FLAT], quantity_steps={"AAA": D(1)})
    engine.submit_order(sized(notional=D(5)))
    assert order_kinds(step(engine)) == [("ORDER_REJECTED", "ord-1")]
    assert engine.order("ord-1").reject_reason is RejectReason.INVALID_QUANTITY


def test_a_margin_account_may_size_up_to_its_leverage():
    engine = start([FLAT, FLAT], account_type="margin", leverage=D(2))
    engine.submit_order(sized(equity_fraction=D(2)))
    assert fill_prices(step(engine)) == [("ord-1", D(200), D(10))]


# -- submit checks ----------------------------------------------------------------------------


def test_a_notional_beyond_the_cash_is_rejected_at_submit():
    engine = start([FLAT, FLAT])
    with pytest.raises(OrderRejected) as caught:
        engine.submit_order(sized(notional=D("1000.01")))
    assert caught.value.reject_code == "INSUFFICIENT_FUNDS"


def test_an_open_sized_order_reserves_its_amount():
    engine = start([FLAT, FLAT])
    engine.submit_order(sized(notional=D(600), order_type=OrderType.LIMIT, limit_price=D(5)))
    with pytest.raises(OrderRejected):
        engine.submit_order(sized(equity_fraction=D("0.5")))


def test_an_equity_fraction_above_the_leverage_is_an_invalid_value():
    engine = start([FLAT, FLAT])
    with pytest.raises(OrderValidationError) as caught:
        engine.submit_order(sized(equity_fraction=D("1.5")))
    assert caught.value.as_dict()["details"] == {"field": "equity_fraction", "provided": "1.5"}


def test_a_sized_sell_without_a_position_is_short_selling_on_a_cash_account():
    engine = start([FLAT, FLAT])
    with pytest.raises(OrderRejected) as caught:
        engine.submit_order(sized(Side.SELL, notional=D(100)))
    assert caught.value.reject_code == "SHORT_SELLING_NOT_ALLOWED"


def test_the_quantity_of_an_order_not_yet_sized_cannot_be_modified():
    engine = start([FLAT, FLAT])
    engine.submit_order(sized(notional=D(100), order_type=OrderType.LIMIT, limit_price=D(5)))
    with pytest.raises(OrderValidationError) as caught:
        engine.modify_order("ord-1", quantity=D(3))
    assert caught.value.as_dict()["details"]["field"] == "quantity"
