"""The same strategy file on `backtest` and on `binance-testnet`, over the real server: on the same
prices it makes the same decisions.

The Binance session trades through a workspace connection against the fake Binance
(tests/fakes/binance) driven by the real python-binance inside the host; the example runs in its
own process with the unmodified SDK, as on a laptop. The fake's kline stream delivers the
dataset's 1m bars one at a time: each is pushed once the strategy has acknowledged every event
before it, and the orders the fake received meanwhile are that bar's decisions. The fake charges
no commission, so the sell that closes a position sells exactly what was bought, as in the
backtest. The backtest's decisions are read from its journal.

The fake's URLs are set in this process's settings: these tests need the embedded worker."""

from __future__ import annotations

import csv
import signal
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from config.sample_data import head_of
from runtimes.core.bars import Bar
from runtimes.models import TradingSession
from tests.fakes.binance import FakeBinance
from tests.fakes.binance.server import KEY_ID, SECRET
from tests.runtimes.conftest import wait_for_state
from tests.runtimes.connections import stored_connection
from tests.runtimes.shell.examples import Example, journaled, run_on_backtest, start_example
from tests.runtimes.shell.test_alpaca_sessions import (
    WAIT_S,
    Decision,
    Observer,
    backtest_decisions,
    settled,
    timestamp_of,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(180),
    pytest.mark.skipif(not settings.CELERY_EMBEDDED_WORKER,
                       reason="needs the embedded worker (the fake's URLs are this process's)"),
]

SYMBOL = "BTCUSDT"
SERIES = "crypto-1m/BTCUSDT.csv"
ROWS = 240
PARAMS = {"symbol": SYMBOL, "fast": 10, "slow": 30, "quantity": "0.5"}
SMA = Example({SYMBOL: SERIES}, ROWS, PARAMS, [SYMBOL], PARAMS)


@pytest.fixture
def fake_binance(settings) -> Iterator[FakeBinance]:
    with FakeBinance(symbols=[SYMBOL], commission_rate=Decimal(0)).start() as fake:
        settings.BROKER_URLS = {**settings.BROKER_URLS, "binance-testnet": dict(fake.urls)}
        yield fake


def dataset_bars(tmp_path: Path) -> list[Bar]:
    """The rows the backtest's dataset holds, as the klines the fake's stream pushes."""
    with head_of(SERIES, ROWS, tmp_path / "bars.csv").open(newline="") as rows:
        return [Bar(SYMBOL, "1m", datetime.fromisoformat(row["timestamp"]),
                    *(Decimal(row[c]) for c in ("open", "high", "low", "close", "volume")))
                for row in csv.DictReader(rows)]


def binance_decisions(fake: FakeBinance, bars: list[Bar], *, base: str, ws_url: str,
                      key: str) -> list[Decision]:
    observer = Observer(ws_url, key)
    decisions: list[Decision] = []
    try:
        seen = 0
        for bar in bars:
            fake.push_kline(bar)
            stamp = observer.candle()
            assert stamp == timestamp_of(bar.timestamp)
            settled(base, key)
            orders = fake.orders()
            for order in orders[seen:]:
                decisions.append((stamp, order["side"], Decimal(order["origQty"])))
            seen = len(orders)
    finally:
        observer.close()
    return decisions


def create_binance_session(daphne_url: str, key: str, workspace, connection) -> str:
    created = httpx.post(
        f"{daphne_url}/api/v1/workspaces/{workspace.id}/sessions",
        headers={"Authorization": f"Bearer {key}"},
        json={"platform": "binance-testnet", "connection": str(connection.id),
              "symbols": [SYMBOL], "timeframe": "1m"})
    assert created.status_code == 201, created.json()
    return str(created.json()["id"])


def test_the_sma_example_decides_the_same_on_backtest_and_binance_testnet(
    daphne_url, celery_worker, fake_binance, trader_key, owner, workspace, tmp_path
):
    bars = dataset_bars(tmp_path)
    backtest_id, _ = run_on_backtest("sma_crossover.py", SMA, daphne_url=daphne_url,
                                     key=trader_key, owner=owner, workspace=workspace,
                                     tmp_path=tmp_path)
    expected = backtest_decisions(backtest_id)
    assert len(expected) >= 4  # crossings both ways: buys and the sells that close them

    connection = stored_connection(workspace, owner, platform="binance-testnet",
                                   key_id=KEY_ID, secret=SECRET)
    session_id = create_binance_session(daphne_url, trader_key, workspace, connection)
    base = f"{daphne_url}/sessions/{session_id}"
    process = start_example("sma_crossover.py", base_url=base, key=trader_key, params=PARAMS)
    try:
        fake_binance.wait_for(lambda: fake_binance.subscriptions().get("market", 0) > 0,
                              timeout=WAIT_S)
        ws_url = base.replace("http://", "ws://") + "/v1/ws"
        decided = binance_decisions(fake_binance, bars, base=base, ws_url=ws_url,
                                    key=trader_key)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert decided == expected
    assert [o["status"] for o in fake_binance.orders()] == ["FILLED"] * len(expected)

    httpx.post(f"{daphne_url}/api/v1/workspaces/{workspace.id}/sessions/{session_id}/cancel",
               headers={"Authorization": f"Bearer {trader_key}"})
    session = wait_for_state(TradingSession.objects.get(pk=session_id), {"cancelled", "failed"})
    assert (session.state, session.failure_reason) == ("cancelled", "cancelled")
    assert journaled(session_id, "error") == 0
