"""Fixtures of the strategies tests: small real datasets copied from the bundled data, a
backtest session (over the daphne server of tests/plugins/live_server.py) to run examples in,
and what schedule tests share: a version, 100 daily bars, a recording create_hosted_backtest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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


FIRST_DAY = datetime(2021, 1, 1, tzinfo=UTC)
DAYS = 100  # daily bars 2021-01-01 … 2021-04-10


def daily_bars(days: int = DAYS) -> bytes:
    """A CSV of `days` daily bars from FIRST_DAY, closes 101, 102, …"""
    rows = ["timestamp,open,high,low,close,volume"]
    for day in range(days):
        price = 100 + day
        rows.append(f"{(FIRST_DAY + timedelta(days=day)):%Y-%m-%dT%H:%M:%SZ},{price},"
                    f"{price + 2},{price - 1},{price + 1},1000")
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture
def version(owner, workspace):
    from strategies.services import upload_strategy_version

    return upload_strategy_version(workspace=workspace, author=owner, strategy="Momentum",
                                   filename="main.py", content=b"import tektii\n")


@pytest.fixture
def daily_dataset(owner, workspace):
    from strategies.services import upload_dataset

    return upload_dataset(workspace=workspace, by=owner, name="SPY daily",
                          files={"SPY": ("SPY.csv", daily_bars())})


@pytest.fixture
def hosted_calls(monkeypatch, owner, workspace, daily_dataset):
    """Replace runtimes.services.create_hosted_backtest by a fake that records its keyword
    arguments and returns a fresh session row (the hosted run itself is not under test)."""
    import runtimes.services
    from runtimes.models import TradingSession

    calls = []

    def fake_create_hosted_backtest(**kwargs):
        calls.append(kwargs)
        return TradingSession.objects.create(workspace=workspace, created_by=owner,
                                             dataset=daily_dataset, symbols=["SPY"],
                                             timeframe="1d")

    monkeypatch.setattr(runtimes.services, "create_hosted_backtest",
                        fake_create_hosted_backtest, raising=False)
    return calls
