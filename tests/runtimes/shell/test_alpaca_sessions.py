"""The same strategy file on `backtest` and on `alpaca-paper`, over the real server: on the same
prices it makes the same decisions.

The Alpaca session trades through a workspace connection against the fake Alpaca
(tests/fakes/alpaca) driven by the real alpaca-py inside the host; the example runs in its own
process with the unmodified SDK, as on a laptop. The fake's market data stream delivers the
dataset's 1m bars one at a time: each is pushed once the strategy has acknowledged every event
before it (its acks follow its handler, so an order it decided on is at the broker by then), and
the orders the fake received meanwhile are that bar's decisions. The backtest's decisions are
read from its journal: each ORDER_CREATED after the candle it followed.

The fake's URLs are set in this process's settings: these tests need the embedded worker."""

from __future__ import annotations

import csv
import json
import queue
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from websockets.sync.client import connect

from config.sample_data import head_of
from runtimes.core.bars import Bar
from runtimes.models import SessionEvent, TradingSession
from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.alpaca.server import KEY_ID, SECRET
from tests.runtimes.conftest import wait_for_state
from tests.runtimes.connections import stored_connection
from tests.runtimes.shell.examples import Example, journaled, run_on_backtest, start_example

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(180),
    pytest.mark.skipif(not settings.CELERY_EMBEDDED_WORKER,
                       reason="needs the embedded worker (the fake's URLs are this process's)"),
]

SYMBOL = "AAPL"
SERIES = "stocks-1m/AAPL.csv"
ROWS = 240
PARAMS = {"symbol": SYMBOL, "fast": 10, "slow": 30, "quantity": "5"}
SMA = Example({SYMBOL: SERIES}, ROWS, PARAMS, [SYMBOL], PARAMS)
WAIT_S = 15.0
Decision = tuple[str, str, Decimal]  # (the candle's bar time, side, quantity)


@pytest.fixture
def fake_alpaca(settings) -> Iterator[FakeAlpaca]:
    with FakeAlpaca(symbols=[SYMBOL]).start() as fake:
        settings.BROKER_URLS = {**settings.BROKER_URLS, "alpaca-paper": dict(fake.urls)}
        yield fake


def dataset_bars(tmp_path: Path) -> list[Bar]:
    """The rows the backtest's dataset holds, as the bars the fake's stream pushes."""
    with head_of(SERIES, ROWS, tmp_path / "bars.csv").open(newline="") as rows:
        return [Bar(SYMBOL, "1m", datetime.fromisoformat(row["timestamp"]),
                    *(Decimal(row[c]) for c in ("open", "high", "low", "close", "volume")))
                for row in csv.DictReader(rows)]


# -- decisions ------------------------------------------------------------------------------------


def backtest_decisions(session_id: str) -> list[Decision]:
    """Each order the strategy created, after the candle it followed (the journal's order)."""
    decisions: list[Decision] = []
    last_candle = None
    for frame in SessionEvent.objects.filter(session_id=session_id).order_by("sequence"):
        body = json.loads(frame.frame)
        if body["type"] == "candle":
            last_candle = body["bar"]["timestamp"]
        elif body["type"] == "order" and body["event"] == "ORDER_CREATED":
            order = body["order"]
            decisions.append((last_candle, order["side"], Decimal(order["quantity"])))
    return decisions


class Observer:
    """A second client of the session's stream that never acks (the strategy does): it sees
    every frame, so the test knows when a candle went out."""

    def __init__(self, url: str, key: str) -> None:
        self.candles: queue.Queue[str] = queue.Queue()
        self.socket = connect(url, additional_headers={"Authorization": f"Bearer {key}"})
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for text in self.socket:
                frame = json.loads(text)
                if frame["type"] == "candle":
                    self.candles.put(frame["bar"]["timestamp"])
        except Exception:  # the socket closed at the end of the test
            return

    def candle(self) -> str:
        return self.candles.get(timeout=WAIT_S)

    def close(self) -> None:
        self.socket.close()
        self.thread.join(timeout=5)


def settled(base: str, key: str) -> None:
    """Wait until the strategy has acked every event the session sent (polled: the host
    answers /v1/session from memory)."""
    deadline = time.monotonic() + WAIT_S
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}) as client:
        while True:
            info = client.get(f"{base}/v1/session").json()
            if info["events_acked"] >= info["events_sent"]:
                return
            assert time.monotonic() < deadline, info
            time.sleep(0.01)


def alpaca_decisions(fake: FakeAlpaca, bars: list[Bar], *, base: str, ws_url: str,
                     key: str) -> list[Decision]:
    observer = Observer(ws_url, key)
    decisions: list[Decision] = []
    try:
        seen = 0
        for bar in bars:
            fake.push_bar(bar)
            stamp = observer.candle()
            assert stamp == timestamp_of(bar.timestamp)
            settled(base, key)
            orders = fake.orders()
            for order in orders[seen:]:
                decisions.append((stamp, order["side"].upper(), Decimal(order["qty"])))
            seen = len(orders)
    finally:
        observer.close()
    return decisions


def timestamp_of(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# -- the test -------------------------------------------------------------------------------------


def create_alpaca_session(daphne_url: str, key: str, workspace, connection) -> str:
    created = httpx.post(
        f"{daphne_url}/api/v1/workspaces/{workspace.id}/sessions",
        headers={"Authorization": f"Bearer {key}"},
        json={"platform": "alpaca-paper", "connection": str(connection.id),
              "symbols": [SYMBOL], "timeframe": "1m"})
    assert created.status_code == 201, created.json()
    return str(created.json()["id"])


def test_the_sma_example_decides_the_same_on_backtest_and_alpaca_paper(
    daphne_url, celery_worker, fake_alpaca, trader_key, owner, workspace, tmp_path
):
    bars = dataset_bars(tmp_path)
    backtest_id, _ = run_on_backtest("sma_crossover.py", SMA, daphne_url=daphne_url,
                                     key=trader_key, owner=owner, workspace=workspace,
                                     tmp_path=tmp_path)
    expected = backtest_decisions(backtest_id)
    assert len(expected) >= 4  # crossings both ways: buys and the sells that close them

    connection = stored_connection(workspace, owner, key_id=KEY_ID, secret=SECRET)
    session_id = create_alpaca_session(daphne_url, trader_key, workspace, connection)
    base = f"{daphne_url}/sessions/{session_id}"
    process = start_example("sma_crossover.py", base_url=base, key=trader_key, params=PARAMS)
    try:
        fake_alpaca.wait_for(lambda: SYMBOL in fake_alpaca.subscriptions().get("bars", []),
                             timeout=WAIT_S)
        ws_url = base.replace("http://", "ws://") + "/v1/ws"
        decided = alpaca_decisions(fake_alpaca, bars, base=base, ws_url=ws_url, key=trader_key)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert decided == expected
    assert [o["status"] for o in fake_alpaca.orders()] == ["filled"] * len(expected)

    httpx.post(f"{daphne_url}/api/v1/workspaces/{workspace.id}/sessions/{session_id}/cancel",
               headers={"Authorization": f"Bearer {trader_key}"})
    session = wait_for_state(TradingSession.objects.get(pk=session_id), {"cancelled", "failed"})
    assert (session.state, session.failure_reason) == ("cancelled", "cancelled")
    assert journaled(session_id, "error") == 0
