"""The engine steps one timestamp per batch, never shows the future, and records results."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from runtimes.core.engine import BacktestConfig, BacktestEngine, Batch, run_backtest
from runtimes.core.errors import PositionNotFound, SymbolNotFound
from runtimes.core.events import CandleEvent, OrderEvent
from runtimes.core.market_data import MarketData
from tests.runtimes.core.scenario import DAY_MINUTES, T0, D, bars, buy, sell, start, step

ROWS = [(10, 11, 9, 10), (10.5, 12, 10, 11), (11, 13, 10.5, 12), (12, 12, 8, 9)]


def two_symbols() -> MarketData:
    """BBB has no bar at the second minute."""
    aaa = bars(ROWS, "AAA")
    bbb = [b for i, b in enumerate(bars(ROWS, "BBB")) if i != 1]
    return MarketData.from_bars(aaa + bbb)


def test_each_batch_holds_the_candles_of_one_timestamp_first():
    engine = BacktestEngine(two_symbols(), BacktestConfig())
    first = engine.next_batch()
    assert first is not None
    assert (first.step, first.timestamp) == (0, T0)
    assert [(type(e).__name__, e.bar.symbol) for e in first.events] == [  # type: ignore[union-attr]
        ("CandleEvent", "AAA"),
        ("CandleEvent", "BBB"),
    ]
    second = engine.next_batch()
    assert second is not None
    assert [b.symbol for b in second.bars] == ["AAA"]
    assert engine.now == T0 + timedelta(minutes=1)


def test_fill_events_follow_the_candles_in_the_batch():
    engine = start(ROWS)
    engine.submit_order(buy(1))
    batch = engine.next_batch()
    assert batch is not None
    kinds = [type(e).__name__ for e in batch.events]
    assert kinds[:2] == ["CandleEvent", "OrderEvent"]
    assert all(e.timestamp == T0 + timedelta(minutes=1) for e in batch.events)


def test_next_batch_returns_none_when_the_data_is_exhausted():
    engine = BacktestEngine(MarketData.from_bars(bars(ROWS)), BacktestConfig())
    assert sum(1 for _ in iter(engine.next_batch, None)) == 4
    assert engine.finished
    assert engine.next_batch() is None


def test_actions_produce_events_for_drain_stamped_with_the_current_time():
    engine = start(ROWS)
    engine.submit_order(buy(1, limit_price=5))
    engine.cancel_order("ord-1")
    events = engine.drain_events()
    assert [(e.kind.value, e.timestamp) for e in events if isinstance(e, OrderEvent)] == [
        ("ORDER_CREATED", T0),
        ("ORDER_CANCELLED", T0),
    ]
    assert engine.drain_events() == []


def test_history_never_contains_a_future_bar():
    engine = start(ROWS)
    assert [b.close for b in engine.history("AAA")] == [D(10)]
    engine.next_batch()
    assert [b.close for b in engine.history("AAA")] == [D(10), D(11)]
    assert [b.close for b in engine.history("AAA", limit=1)] == [D(11)]
    assert engine.history("AAA", start=T0 + timedelta(minutes=1))[0].close == D(11)
    with pytest.raises(SymbolNotFound):
        engine.history("ZZZ")


def test_quote_is_the_last_close_seen():
    engine = start(ROWS)
    quote = engine.quote("AAA")
    assert (quote.bid, quote.ask, quote.last, quote.timestamp) == (D(10), D(10), D(10), T0)
    with pytest.raises(SymbolNotFound):
        engine.quote("ZZZ")


def test_close_position_sells_what_is_held_at_the_next_open():
    engine = start(ROWS)
    engine.submit_order(buy(2))
    step(engine)
    closing = engine.close_position("AAA")
    assert (closing.side, closing.quantity, closing.reduce_only) == ("SELL", D(2), True)
    step(engine)
    assert engine.fills()[-1].price == D(11)
    with pytest.raises(PositionNotFound):
        engine.close_position("AAA")


def test_an_order_placed_at_bar_t_never_fills_on_bar_t():
    engine = start([(10, 10, 5, 10), (10, 10, 10, 10)])
    engine.submit_order(buy(1, limit_price=6))  # bar 0 touched 6, but that is the past
    assert step(engine) == []


def test_run_backtest_calls_back_once_per_batch_and_builds_the_result():
    seen: list[int] = []

    def strategy(engine: BacktestEngine, batch: Batch) -> None:
        seen.append(batch.step)
        if batch.step == 0:
            engine.submit_order(buy(2))
        if batch.step == 2:
            engine.submit_order(sell(2))

    # daily bars: metrics annualise, and four minutes of +0.3 % would not fit a CAGR
    data = MarketData.from_bars(bars(ROWS, minutes=DAY_MINUTES))
    result = run_backtest(data, BacktestConfig(initial_cash=D(1000)), on_batch=strategy)
    assert seen == [0, 1, 2, 3]
    assert [p.equity for p in result.equity_curve] == [D(1000), D(1001), D(1003), D(1003)]
    (trip,) = result.round_trips
    assert (trip.side, trip.quantity, trip.entry_price, trip.exit_price) == (
        "LONG",
        D(2),
        D("10.5"),
        D(12),
    )
    assert (trip.gross_pnl, trip.net_pnl) == (D(3), D(3))
    assert result.metrics.total_return == D("0.003")
    assert [d for _, d in result.drawdown] == [D(0)] * 4


def test_the_execution_contract_is_json_and_names_every_assumption():
    config = BacktestConfig(platform_preset="binance", slippage_bps=D(2))
    result = run_backtest(MarketData.from_bars(bars(ROWS)), config)
    contract = json.loads(json.dumps(result.execution_contract))
    assert contract["costs"]["commission"]["percent_of_notional"] == "0.1"
    assert contract["costs"]["slippage_bps"] == "2"
    assert contract["same_bar_stop_and_target"]["rule"] == "pessimistic"
    assert contract["day_session_timezone"] == "UTC"
    assert set(contract["fills"]) >= {"MARKET", "LIMIT", "STOP", "STOP_LIMIT", "TRAILING_STOP"}


def test_same_inputs_give_the_same_fills_byte_for_byte():
    def strategy(engine: BacktestEngine, batch: Batch) -> None:
        if batch.step == 0:
            engine.submit_order(buy(1, stop_loss=9, take_profit=13))

    def run() -> str:
        result = run_backtest(MarketData.from_bars(bars(ROWS)), BacktestConfig(), on_batch=strategy)
        return repr((result.fills, result.orders, list(result.equity_curve)))

    assert run() == run()


def test_config_refuses_leverage_on_a_cash_account():
    with pytest.raises(ValueError, match="leverage"):
        BacktestConfig(leverage=D(2))


def test_candle_events_carry_the_bar():
    engine = BacktestEngine(MarketData.from_bars(bars(ROWS)), BacktestConfig())
    batch = engine.next_batch()
    assert batch is not None
    (candle,) = batch.events
    assert isinstance(candle, CandleEvent) and candle.bar.close == D(10)


def test_an_order_on_a_symbol_without_a_bar_at_the_next_timestamp_waits_for_its_own_next_bar():
    engine = BacktestEngine(two_symbols(), BacktestConfig(initial_cash=D(1000)))
    engine.next_batch()
    engine.submit_order(buy(1, symbol="BBB"))
    assert step(engine) == []  # BBB has no bar at minute 1
    events = step(engine)
    assert [(e.fill.symbol, e.fill.price) for e in events if type(e).__name__ == "TradeEvent"] == [
        ("BBB", D(11))
    ]


def test_equity_curve_marks_every_symbol_at_its_last_close():
    def strategy(engine: BacktestEngine, batch: Batch) -> None:
        if batch.step == 0:
            engine.submit_order(buy(1, symbol="BBB"))

    data = two_symbols()
    result = run_backtest(data, BacktestConfig(initial_cash=D(1000)), on_batch=strategy)
    # BBB bought at minute 2's open (11), closes 12 then 9
    assert [p.equity for p in result.equity_curve] == [D(1000), D(1000), D(1001), D(998)]
    assert [p.exposure for p in result.equity_curve] == [D(0), D(0), D(12), D(9)]
