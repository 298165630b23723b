"""A completed backtest run by the session host stores its trade analysis with its result: every
round trip (one list of values each), and per-symbol results, monthly returns and the benchmark,
consistent with the fills and the equity it stored alongside; an analysis that fails loses
nothing else."""

from __future__ import annotations

from decimal import Decimal

import pytest

from runtimes.core.trade_analysis import ROUND_TRIP_FIELDS
from runtimes.hosting import host
from tests.runtimes.conftest import SYMBOL, wait_for_state
from tests.runtimes.results import run_in_process
from tests.runtimes.shell.test_backtest_end_to_end import in_thread, sma_cross

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


async def test_the_host_stores_round_trips_and_the_analysis_of_a_completed_backtest(
    daphne_url, start_backtest, trader_key
):
    session = await in_thread(start_backtest)()
    await sma_cross(f"{daphne_url}/sessions/{session.id}", trader_key)
    session = await in_thread(wait_for_state)(session, {"completed", "failed"})
    row = await in_thread(lambda: session.result)()

    trips = [dict(zip(ROUND_TRIP_FIELDS, values, strict=True)) for values in row.round_trips]
    fills = row.trades
    analysis = row.analysis
    assert session.state == "completed" and len(trips) >= 2
    assert analysis["round_trips"]["count"] == len(trips)
    assert analysis["round_trips"]["closed"] == row.metrics["number_of_trades"]
    # Each fill opens or closes a trip (0.1 a time, no reversal): entries and exits alternate.
    assert [t["entry_time"] for t in trips] == [f["timestamp"] for f in fills[0::2]]
    assert [t["exit_time"] for t in trips if t["exit_reason"] == "signal"] == [
        f["timestamp"] for f in fills[1::2]]
    gained = Decimal(row.equity[-1][1]) - Decimal(100_000)
    assert sum(Decimal(t["net_pnl"]) for t in trips) == gained
    assert [s["symbol"] for s in analysis["symbols"]] == [SYMBOL]
    benchmark = analysis["benchmark"]
    assert benchmark["weights"] == {SYMBOL: "1"}
    # the benchmark annualises with the calendar the run's metrics were computed with
    assert benchmark["days_per_year"] == {"stocks": 252, "crypto": 365}[row.metrics["calendar"]]
    assert benchmark["curve"]["value"][0] != "" and len(benchmark["curve"]["time"]) <= 2000


def test_a_failing_analysis_loses_nothing_else_of_the_result(
    owner, workspace, dataset, monkeypatch, caplog
):
    # The host stores a completed run with store_completed_result; here it runs in this
    # process whatever the topology (a worker process would not see the patch).
    def broken(*args, **kwargs):
        raise ArithmeticError("a bug in the report")

    monkeypatch.setattr(host, "analyse_result", broken)
    session = run_in_process(workspace=workspace, by=owner, dataset=dataset)
    row = session.result

    assert row.trades and row.equity and row.metrics["number_of_trades"] > 0
    assert (row.round_trips, row.analysis) == ([], {})
    assert f"trade analysis of session {session.pk} failed" in caplog.text
