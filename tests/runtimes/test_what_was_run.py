"""What a backtest was run with, in words: its inputs in the order of the form, the execution
contract as sentences that follow the run's settings, and the inputs that differ between runs
set side by side ("all inputs equal" when none do)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from runtimes import what_was_run
from runtimes.core.costs import Commission
from runtimes.core.execution import BacktestConfig
from runtimes.models import Source, TradingSession
from strategies.services import upload_strategy_version

pytestmark = pytest.mark.django_db


def test_the_contract_reads_as_sentences_that_follow_the_runs_costs():
    config = BacktestConfig(initial_cash=Decimal(5000), slippage_bps=Decimal(2),
                            commission=Commission(percent=Decimal("0.1"), fixed=Decimal(1),
                                                  minimum=Decimal(2)))

    sentences = what_was_run.contract_sentences(config.execution_contract())

    assert sentences == [
        "A cash account in USD starting with 5,000: buys need cash for their notional and "
        "commission (open buy orders reserve it); sells only reduce a long position: no short "
        "selling.",
        "An order placed while the strategy sees a bar acts from the next bar: bars are stamped "
        "with their open time and seen once they closed.",
        "Market orders fill at the next bar's open, moved 2 bps against the order by slippage "
        "(kept within the bar's low and high).",
        "Limit orders fill at the open when it is at or better than the limit, else at the "
        "limit when the bar reaches it.",
        "Stop orders fill at the open when the bar gaps through the stop, else at the stop when "
        "the bar reaches it.",
        "Commission: 0.1% of the notional + 1 per fill, at least 2 per fill.",
        "Orders fill in full whatever the bar's volume.",
        "When one bar could reach both the stop and the target of a bracket (or the two orders "
        "of an OCO group), the stop is taken to fill first: the pessimistic choice.",
        "Day orders end with the trading day in UTC; equity is cash plus positions at the last "
        "close, after every bar.",
    ]


def test_a_margin_account_without_costs_and_a_volume_cap_say_so():
    config = BacktestConfig(account_type="margin", leverage=Decimal(2),
                            max_volume_share=Decimal("0.25"), stop_take_same_bar="optimistic")

    sentences = what_was_run.contract_sentences(config.execution_contract())

    assert sentences[0] == ("A margin account in USD starting with 100,000: exposure may reach "
                            "2 times equity; short selling is allowed.")
    assert sentences[2] == "Market orders fill at the next bar's open, with no slippage."
    assert sentences[5] == "Commission: none."
    assert sentences[6] == ("All fills of a bar take at most 25% of its volume; the rest keeps "
                            "working.")
    assert sentences[7].endswith("the target is taken to fill first: the optimistic choice.")


def _run(owner, workspace, dataset, version, **fields):
    return TradingSession.objects.create(
        workspace=workspace, created_by=owner, dataset=dataset, symbols=["BTCUSDT"],
        timeframe="1m", source=Source.HOSTED, strategy_version=version, **fields)


@pytest.fixture
def version(owner, workspace):
    return upload_strategy_version(workspace=workspace, author=owner, strategy="SMA",
                                   filename="main.py", content=b"x = 1\n")


def test_the_inputs_of_a_run_in_the_order_of_the_form(owner, workspace, dataset, version):
    run = _run(owner, workspace, dataset, version, params={"fast": 5, "qty": "0.5"},
               start=datetime(2021, 4, 2, 1, tzinfo=UTC), initial_cash=Decimal("2500.5"),
               commission={"percent": "0.1"}, slippage_bps=Decimal("1.5"))

    assert what_was_run.inputs(run) == [
        ("Strategy", "SMA v1"), ("Parameters", 'fast=5, qty="0.5"'), ("Dataset", "BTC 1m"),
        ("Symbols", "BTCUSDT"), ("Timeframe", "1m"),
        ("Range", "from 2021-04-02 01:00 UTC to the dataset's end"), ("Initial cash", "2,500.5"),
        ("Commission", "0.1% of the notional"), ("Slippage", "1.5 bps")]


def test_only_the_inputs_that_differ_are_listed_parameters_key_by_key(
        owner, workspace, dataset, version):
    v2 = upload_strategy_version(workspace=workspace, author=owner, strategy="SMA",
                                 filename="main.py", content=b"x = 2\n")
    first = _run(owner, workspace, dataset, version, params={"fast": 5, "slow": 20})
    second = _run(owner, workspace, dataset, v2, params={"fast": 8, "slow": 20, "qty": 1},
                  slippage_bps=Decimal(2))

    assert what_was_run.differing_inputs([first, second]) == [
        {"label": "Strategy", "values": ["SMA v1", "SMA v2"]},
        {"label": "Parameter fast", "values": ["5", "8"]},
        {"label": "Parameter qty", "values": ["—", "1"]},
        {"label": "Slippage", "values": ["0 bps", "2 bps"]},
    ]
    assert what_was_run.differing_inputs([first, first]) == []
