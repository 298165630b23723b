"""Fixtures of the strategies tests: small real datasets copied from the bundled data, and a
backtest session (over the daphne server of tests/plugins/live_server.py) to run examples in."""

from __future__ import annotations

from decimal import Decimal

import pytest

from config.sample_data import head_of


@pytest.fixture
def make_dataset(workspace, tmp_path):
    """make_dataset(name, {symbol: "dir/FILE.csv"}, rows) -> a registered Dataset of real bars."""
    from strategies.services import register_dataset

    def make(name: str, files: dict[str, str], rows: int):
        copies = {symbol: head_of(relative, rows, tmp_path / f"{symbol}.csv")
                  for symbol, relative in files.items()}
        return register_dataset(workspace=workspace, name=name, files=copies)

    return make


@pytest.fixture
def start_session(owner, workspace, celery_worker):
    """start_session(dataset) -> a backtest session whose host the worker is starting."""
    from runtimes.services import create_backtest_session

    def start(dataset):
        return create_backtest_session(
            workspace=workspace, created_by=owner, dataset=dataset, symbols=None, timeframe=None,
            start=None, end=None, initial_cash=Decimal(100_000), commission={},
            slippage_bps=Decimal(0), connect_timeout_s=30, idle_timeout_s=30)

    return start
