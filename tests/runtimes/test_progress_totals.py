"""Progress of a backtest over some of a dataset's symbols counts those symbols' bars only
(TradingSession.progress_total / progress_percent, the host's total_batches), so a run over
BTC of a BTC & ETH dataset, where ETH runs longer, reaches 100 %."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runtimes.hosting.provision import settings_for
from runtimes.models import State, TradingSession
from runtimes.providers.backtest import build_backtest

HEADER = "timestamp,open,high,low,close,volume\n"


def hourly(hours: int) -> str:
    first = datetime(2021, 4, 2, tzinfo=UTC)
    return "".join(f"{(first + timedelta(hours=h)):%Y-%m-%dT%H:%M:%SZ},10,11,9,10,1\n"
                   for h in range(hours))


@pytest.fixture
def btc_and_eth(workspace, tmp_path: Path):
    """BTC: 40 hourly bars; ETH: 100, from the same first hour."""
    from strategies.services import register_dataset

    (tmp_path / "BTCUSDT.csv").write_text(HEADER + hourly(40))
    (tmp_path / "ETHUSDT.csv").write_text(HEADER + hourly(100))
    return register_dataset(workspace=workspace, name="BTC & ETH",
                            files={s: tmp_path / f"{s}.csv" for s in ("BTCUSDT", "ETHUSDT")})


def session_over(workspace, owner, dataset, symbols, **fields) -> TradingSession:
    created = TradingSession.objects.create(
        workspace=workspace, created_by=owner, dataset=dataset, symbols=symbols,
        timeframe="1h", state=State.RUNNING, **fields)
    return TradingSession.objects.with_total_bars().get(pk=created.pk)


def test_the_host_counts_the_batches_of_the_chosen_symbols_only(workspace, owner,
                                                                btc_and_eth):
    btc = session_over(workspace, owner, btc_and_eth, ["BTCUSDT"])
    both = session_over(workspace, owner, btc_and_eth, ["BTCUSDT", "ETHUSDT"])
    period = session_over(workspace, owner, btc_and_eth, ["ETHUSDT"],
                          start=datetime(2021, 4, 3, tzinfo=UTC),
                          end=datetime(2021, 4, 3, 9, tzinfo=UTC))

    totals = [build_backtest(settings_for(s)).steps_total for s in (btc, both, period)]

    assert totals == [40, 100, 10]


def test_a_run_over_one_symbol_reaches_100_percent_of_its_own_bars(workspace, owner,
                                                                  btc_and_eth):
    btc = session_over(workspace, owner, btc_and_eth, ["BTCUSDT"], batches=40,
                       total_batches=40)

    assert (btc.progress_total(), btc.progress_percent()) == (40, 100)


def test_before_its_host_counted_a_run_over_some_symbols_has_no_total(workspace, owner,
                                                                      btc_and_eth):
    # The dataset's largest file (ETH, 100 bars) is not BTC's: no guess rather than a wrong one.
    btc = session_over(workspace, owner, btc_and_eth, ["BTCUSDT"], batches=20)
    both = session_over(workspace, owner, btc_and_eth, ["BTCUSDT", "ETHUSDT"], batches=20)
    period = session_over(workspace, owner, btc_and_eth, ["BTCUSDT", "ETHUSDT"], batches=5,
                          start=datetime(2021, 4, 3, tzinfo=UTC))

    assert [(s.progress_total(), s.progress_percent()) for s in (btc, both, period)] == [
        (None, None), (100, 20), (None, None)]


def test_the_status_panel_shows_the_percentage_of_the_runs_own_bars(sign_in, owner, workspace,
                                                                    btc_and_eth):
    btc = session_over(workspace, owner, btc_and_eth, ["BTCUSDT"], batches=30,
                       total_batches=40)

    panel = sign_in(owner, workspace).get(f"/app/backtests/{btc.pk}/progress/").content.decode()

    assert "75% · 30 of 40 bars" in panel
