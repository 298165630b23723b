"""Fixtures of the backtest schedule tests: a version, a dataset of 100 daily bars, and a
recording create_hosted_backtest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

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
                        fake_create_hosted_backtest)
    return calls
