"""A SimulatedExchange saved to JSON and loaded into a fresh one carries on exactly."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from runtimes.core.domain import TimeInForce, TrailingType
from runtimes.core.engine import BacktestConfig, BacktestEngine
from runtimes.core.exchange_snapshot import exchange_to_json, restore_exchange
from runtimes.core.market_data import MarketData
from tests.runtimes.core.scenario import D, bars, buy, sell, step

ROWS = [
    (10, 10.5, 9.5, 10, 40),
    (10, 11, 9.8, 10.8, 40),
    (10.8, 11.2, 10.6, 11, 40),
    (11, 11.4, 10.9, 11.3, 40),
    (11.3, 11.5, 10.2, 10.4, 40),
    (10.4, 10.6, 9.1, 9.3, 40),
    (9.3, 12.5, 9.2, 12.4, 40),
    (12.4, 12.6, 11.9, 12, 40),
]


def engine() -> BacktestEngine:
    config = BacktestConfig(initial_cash=D(1000), max_volume_share=D("0.25"))
    made = BacktestEngine(MarketData.from_bars(bars(ROWS)), config)
    made.next_batch()
    return made


def test_restored_exchange_has_the_same_book_and_makes_the_same_fills() -> None:
    original = engine()
    original.submit_order(buy(30, stop_loss="9.5", take_profit="12", client_order_id="entry"))
    original.submit_order(buy(5, limit_price="9.9", time_in_force=TimeInForce.DAY))
    step(original)  # the entry fills 10 of 30 (volume share), its legs are placed
    original.submit_order(sell(4, trailing_distance="0.5", trailing_type=TrailingType.ABSOLUTE))
    original.submit_order(buy(2, stop_price="11.9", limit_price="12.1"))
    step(original)
    saved = json.loads(json.dumps(exchange_to_json(original.exchange)))

    copy = engine()
    for _ in range(2):
        step(copy)
    restore_exchange(copy.exchange, saved)

    assert copy.all_orders() == original.all_orders()
    assert copy.fills() == original.fills()
    assert copy.positions() == original.positions()
    assert copy.account() == original.account()
    assert copy.order_by_client_id("entry") == original.order_by_client_id("entry")
    assert any(o.filled_quantity not in (0, o.quantity) for o in original.all_orders())
    for _ in range(len(ROWS) - 3):
        assert step(copy) == step(original)
    assert copy.all_orders() == original.all_orders()
    assert copy.account() == original.account()
    assert len(original.fills()) >= 4


def test_a_snapshot_of_another_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version 99"):
        restore_exchange(engine().exchange, {"version": 99})


def test_decimals_keep_their_exponent_through_json() -> None:
    made = engine()
    made.submit_order(buy(Decimal("1.50"), limit_price="9.90"))
    saved = json.loads(json.dumps(exchange_to_json(made.exchange)))
    copy = engine()
    restore_exchange(copy.exchange, saved)
    assert str(copy.all_orders()[0].limit_price) == "9.90"
    assert str(copy.all_orders()[0].quantity) == "1.50"
