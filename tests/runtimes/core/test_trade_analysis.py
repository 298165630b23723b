"""Round trips as peers report them (return, duration, MAE/MFE, exit reason, the trip open at
the end), per-symbol results and monthly returns, on engine runs computed by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from runtimes.core.costs import Commission
from runtimes.core.domain import Side
from runtimes.core.engine import BacktestConfig, BacktestEngine
from runtimes.core.market_data import MarketData
from runtimes.core.trade_analysis import (
    ROUND_TRIP_FIELDS,
    TradeAnalysis,
    YearReturns,
    analyse_backtest,
    monthly_returns,
)
from tests.runtimes.core.scenario import DAY_MINUTES, bars, buy, order, sell, step

D = Decimal


def _engine(rows, *, symbol="AAA", **config) -> BacktestEngine:
    config.setdefault("initial_cash", D(1000))
    data = MarketData.from_bars(bars(rows, symbol, minutes=DAY_MINUTES))
    engine = BacktestEngine(data, BacktestConfig(**config))
    engine.next_batch()  # the strategy has seen bar 0
    return engine


def _analyse(engine: BacktestEngine, calendar="crypto") -> TradeAnalysis:
    result = engine.result()
    return analyse_backtest(fills=result.fills, orders=result.orders,
                            equity_curve=result.equity_curve, data=engine.market_data,
                            initial_cash=engine.config.initial_cash, calendar=calendar)


def _trips(analysis: TradeAnalysis) -> list[dict]:
    return [dict(zip(ROUND_TRIP_FIELDS, row, strict=True)) for row in analysis.rows()]


LONG_RUN = [(100, 105, 95, 100), (100, 110, 90, 104), (104, 120, 100, 118),
            (118, 119, 80, 85), (85, 90, 84, 88), (88, 89, 87, 88)]


def _long_run() -> BacktestEngine:
    """Buy 2 at bar 1's open (100), sell at bar 3's (118); buy 1 at bar 4's open (85) with a
    take-profit at 89 that bar 4 reaches; buy 1 at bar 5's open (88), still held at the end."""
    engine = _engine(LONG_RUN)
    engine.submit_order(buy(2))
    step(engine), step(engine)
    engine.submit_order(sell(2))
    step(engine)
    engine.submit_order(buy(1, take_profit=89))
    step(engine)
    engine.submit_order(buy(1))
    step(engine)
    return engine


def test_a_closed_trip_has_its_return_duration_excursions_and_a_signal_exit():
    first = _trips(_analyse(_long_run()))[0]

    # Bars 1 and 2 were seen while open (low 90, high 120); bar 3 only up to its open.
    assert first == {
        "number": 1, "symbol": "AAA", "side": "LONG", "quantity": "2",
        "entry_time": "2024-01-03T14:30:00Z", "entry_price": "100",
        "exit_time": "2024-01-05T14:30:00Z", "exit_price": "118",
        "gross_pnl": "36", "fees": "0", "net_pnl": "36", "return": "0.18",
        "duration_seconds": 2 * 86400, "mae": "-20", "mae_fraction": "-0.1",
        "mfe": "40", "mfe_fraction": "0.2", "exit_reason": "signal"}


def test_a_bracket_take_profit_leg_is_a_take_profit_exit_and_sees_only_its_prices():
    second = _trips(_analyse(_long_run()))[1]

    assert (second["entry_price"], second["exit_price"], second["duration_seconds"]) == (
        "85", "89", 0)
    assert (second["mae"], second["mfe"], second["mfe_fraction"]) == ("0", "4", "0.047059")
    assert second["exit_reason"] == "take_profit"


def test_a_position_open_at_the_end_is_a_trip_valued_at_the_last_close():
    analysis = _analyse(_long_run())
    last = _trips(analysis)[2]

    assert last["exit_reason"] == "end_of_data"
    assert (last["exit_time"], last["exit_price"], last["net_pnl"]) == (
        "2024-01-07T14:30:00Z", "88", "0")
    assert (last["mae"], last["mfe"]) == ("-1", "1")  # its last bar's low 87 and high 89 count
    assert analysis.summary()["round_trips"] == {"count": 3, "closed": 2, "open": 1}


def test_the_trips_net_pnl_adds_up_to_the_equity_gained_and_the_metrics_count_closed_ones():
    engine = _long_run()
    result = engine.result()

    total = sum(D(t["net_pnl"]) for t in _trips(_analyse(engine)))

    assert total == result.metrics.final_equity - D(1000) == D(40)
    assert result.metrics.number_of_trades == 2


SHORT_RUN = [(100, 101, 99, 100), (100, 103, 97, 102), (102, 112, 101, 110),
             (110, 111, 95, 96), (96, 97, 90, 91), (91, 99, 90, 95)]


def test_a_bracket_stop_leg_is_a_stop_loss_exit_and_a_short_measures_excursions_upside_down():
    engine = _engine(SHORT_RUN, account_type="margin", leverage=D(2))
    engine.submit_order(sell(3, stop_loss=111, client_order_id="short-1"))  # 100, stopped 111
    step(engine), step(engine)
    engine.submit_order(buy(2, limit_price=95))  # a plain limit entry and exit: signal
    step(engine)
    engine.submit_order(sell(2, limit_price=98))
    step(engine), step(engine)

    short, long = _trips(_analyse(engine))

    assert (short["side"], short["net_pnl"], short["return"]) == ("SHORT", "-33", "-0.11")
    assert (short["mae"], short["mae_fraction"], short["mfe"], short["mfe_fraction"]) == (
        "-33", "-0.11", "9", "0.03")  # the stop price 111 against, bar 1's low 97 for
    assert short["exit_reason"] == "stop_loss"
    assert (long["mae"], long["mfe"], long["exit_reason"]) == ("-10", "32", "signal")


def test_a_strategys_own_stop_order_that_closes_a_trip_is_a_stop_loss_exit():
    engine = _engine(SHORT_RUN)
    engine.submit_order(buy(1))  # 100 at bar 1
    step(engine)
    engine.submit_order(sell(1, stop_price=96))  # bar 3's low 95 reaches it
    step(engine), step(engine)

    assert [t["exit_reason"] for t in _trips(_analyse(engine))] == ["stop_loss"]


def test_a_partly_closed_trip_open_at_the_end_averages_its_exit_with_the_last_close():
    engine = _engine(LONG_RUN)
    engine.submit_order(buy(2))  # 100
    step(engine), step(engine)
    engine.submit_order(sell(1))  # 118 at bar 3, one still held to the last close, 88
    step(engine), step(engine), step(engine)

    (trip,) = _trips(_analyse(engine))

    assert (trip["quantity"], trip["exit_price"], trip["net_pnl"]) == ("2", "103", "6")
    assert trip["exit_reason"] == "end_of_data" and trip["mae"] == "-40"  # bar 3's low 80


def test_per_symbol_results_count_closed_trips_and_add_the_open_ones_pnl():
    data = MarketData.from_bars(bars(LONG_RUN, "AAA", minutes=DAY_MINUTES)
                                + bars(SHORT_RUN, "BBB", minutes=DAY_MINUTES))
    engine = BacktestEngine(data, BacktestConfig(initial_cash=D(1000)))
    engine.next_batch()
    engine.submit_order(buy(2))  # AAA 100 -> 118
    engine.submit_order(buy(1, symbol="BBB"))  # BBB 100, held: last close 95
    step(engine), step(engine)
    engine.submit_order(sell(2))
    step(engine), step(engine), step(engine)

    symbols = _analyse(engine).summary()["symbols"]

    assert symbols == [
        {"symbol": "AAA", "trades": 1, "wins": 1, "win_rate": "1", "net_pnl": "36",
         "fees": "0", "return_contribution": "0.036", "open_trips": 0},
        {"symbol": "BBB", "trades": 0, "wins": 0, "win_rate": None, "net_pnl": "-5",
         "fees": "0", "return_contribution": "-0.005", "open_trips": 1}]


def test_fees_are_in_the_trips_net_pnl_and_the_symbols_fees():
    engine = _engine(LONG_RUN, commission=Commission(fixed=D(1)))
    engine.submit_order(buy(2))
    step(engine), step(engine)
    engine.submit_order(sell(2))
    step(engine)

    (trip,) = _trips(_analyse(engine))

    assert (trip["gross_pnl"], trip["fees"], trip["net_pnl"], trip["return"]) == (
        "36", "2", "34", "0.17")


def test_monthly_returns_chain_month_ends_and_compound_to_the_year():
    closes = [(date(2021, 11, 3), D(1100)), (date(2021, 11, 30), D(1050)),
              (date(2021, 12, 31), D(1155)),  # no January close: its move falls in February
              (date(2022, 2, 1), D(1270.5)), (date(2022, 2, 28), D(1386))]

    years = monthly_returns(closes, D(1000))

    none = (None,) * 10
    assert years == [
        YearReturns(2021, (*none, D("0.05"), D("0.1")), D("0.155")),
        YearReturns(2022, (None, D("0.2"), *none), D("0.2")),
    ]


def test_a_month_after_a_wiped_out_account_is_undefined_but_the_year_is_not():
    years = monthly_returns([(date(2021, 1, 5), D(0)), (date(2021, 2, 5), D(10))], D(100))

    assert years[0].months[:2] == (D(-1), None) and years[0].total == D("-0.9")


def test_the_analysis_of_a_run_without_trades_has_empty_tables():
    engine = _engine(LONG_RUN)
    step(engine)

    summary = _analyse(engine).summary()

    assert summary["round_trips"] == {"count": 0, "closed": 0, "open": 0}
    assert summary["symbols"][0]["trades"] == 0 and summary["symbols"][0]["win_rate"] is None
    assert summary["monthly"] == [{"year": 2024, "months": ["0"] + [None] * 11, "total": "0"}]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([Side.BUY, Side.SELL]),
                          st.integers(min_value=1, max_value=5)), min_size=1, max_size=5))
def test_every_fill_lands_in_a_trip_so_the_trips_add_up_to_the_equity_gained(orders):
    # Longs, shorts, partial closes and reversals, with fees: nothing is lost or counted twice.
    engine = _engine(SHORT_RUN, account_type="margin", leverage=D(4),
                     commission=Commission(percent=D("0.1"), fixed=D("0.3")))
    for side, quantity in orders:
        engine.submit_order(order(side, quantity))
        step(engine)
    result = engine.result()

    analysis = _analyse(engine)

    trips = [record.trip for record in analysis.trades]
    assert sum((t.net_pnl for t in trips), D(0)) == result.metrics.final_equity - D(1000)
    assert sum((t.fees for t in trips), D(0)) == result.account.total_commission
    assert sum(1 for r in analysis.trades if r.exit_reason != "end_of_data") == \
        result.metrics.number_of_trades
