"""The SMA crossover example, unchanged, on a backtest and on an `alpaca-paper` session on the
fake Alpaca, over the same prices (the first minutes of the AAPL sample): the same decisions,
in the same order. On Alpaca the bars arrive through the data stream as the fake pushes them;
each buy fills at Alpaca at once (market open), before the strategy sees the next candle."""

from __future__ import annotations

import csv
import gzip
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from runtimes.core.bars import Bar
from runtimes.models import SessionEvent, TradingSession
from runtimes.services import create_live_session
from tests.fakes.alpaca.server import KEY_ID, SECRET, FakeAlpaca
from tests.runtimes.conftest import wait_for_state
from tests.runtimes.connections import stored_connection
from tests.runtimes.shell.test_mock_sessions import Example, run_on_backtest, start_example

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(90),
    pytest.mark.skipif(not settings.CELERY_EMBEDDED_WORKER,
                       reason="needs the embedded worker (BROKER_URLS is set in this process)"),
]

ROWS = 60
SERIES = "stocks-1m/AAPL.csv"  # the sample (config/sample_data.py adds the .gz)
PARAMS = {"symbol": "AAPL", "fast": 2, "slow": 3, "quantity": "1"}
DATA = Path(__file__).resolve().parents[4] / "data"


def sample_bars() -> list[Bar]:
    """The first ROWS 1m bars of the AAPL sample, as the backtest's dataset has them."""
    with gzip.open(DATA / f"{SERIES}.gz", "rt", newline="") as source:
        rows = [row for _, row in zip(range(ROWS), csv.DictReader(source), strict=False)]
    return [Bar("AAPL", "1m", datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")),
                Decimal(r["open"]), Decimal(r["high"]), Decimal(r["low"]), Decimal(r["close"]),
                Decimal(r["volume"])) for r in rows]


@pytest.fixture
def fake(settings) -> Iterator[FakeAlpaca]:
    bars = sample_bars()
    started = FakeAlpaca(cash=Decimal(100_000)).start()
    first = bars[0]
    started.set_quote("AAPL", bid=first.open, ask=first.open, at=first.timestamp)
    settings.BROKER_URLS = {**settings.BROKER_URLS, "alpaca-paper": dict(started.urls)}
    yield started
    started.stop()


def poll(condition, what: str, seconds: float = 30) -> None:
    """Another process's progress, seen through the database: polled."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def acked_candles(session_id) -> int:
    return SessionEvent.objects.filter(session_id=session_id, acked=True,
                                       frame__contains='"type":"candle"').count()


def test_the_sma_example_decides_the_same_on_a_backtest_and_on_alpaca_paper(
    daphne_url, celery_worker, trader_key, owner, workspace, tmp_path, fake
):
    example = Example({"AAPL": SERIES}, ROWS, PARAMS, ["AAPL"], PARAMS)
    backtest_id, _ = run_on_backtest("sma_crossover.py", example, daphne_url=daphne_url,
                                     key=trader_key, owner=owner, workspace=workspace,
                                     tmp_path=tmp_path)
    backtest = TradingSession.objects.get(pk=backtest_id)
    decided = [order["side"] for order in backtest.result.orders]
    assert len(decided) >= 2, decided  # the sample crosses both ways in its first hour

    credential = stored_connection(workspace, owner, key_id=KEY_ID, secret=SECRET)
    session = create_live_session(
        workspace=workspace, created_by=owner, platform="alpaca-paper", symbols=["AAPL"],
        timeframe="1m", timeframes=[], initial_cash=Decimal(100_000), options={},
        connect_timeout_s=30, connection=credential)
    process = start_example("sma_crossover.py", base_url=f"{daphne_url}/sessions/{session.id}",
                            key=trader_key, params=PARAMS)
    try:
        wait_for_state(session, {"running"}, timeout=30)  # its socket is attached
        for bar in sample_bars():
            fake.push_bar(bar)
        poll(lambda: acked_candles(session.id) == ROWS, "the strategy saw every candle")
        assert [o["side"].upper() for o in fake.orders()] == decided, decided
        assert all(o["status"] == "filled" for o in fake.orders())
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=15)
        httpx.post(f"{daphne_url}/api/v1/workspaces/{workspace.id}/sessions/{session.id}/"
                   "cancel", headers={"Authorization": f"Bearer {trader_key}"})
    assert "Traceback" not in stderr and " ERROR " not in stderr, stderr[-3000:]
