"""The same strategy file on `backtest` and on a broker's paper platform (its fake), fed the same
bars, compared decision by decision: shared by test_alpaca_sessions.py and
test_binance_sessions.py.

The example runs in its own process with the unmodified SDK, as on a laptop. The fake's market
data stream delivers the dataset's 1m bars one at a time: each is pushed once the strategy has
acknowledged every event before it (the SDK acks after its handler, so an order it decided on is
at the broker by then; a second client of the stream, which never acks, sees the candle go out),
and the orders the fake received meanwhile are that bar's decisions. The backtest's decisions are
read from its journal: each ORDER_CREATED after the candle it followed.
"""

from __future__ import annotations

import csv
import json
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

from config.sample_data import head_of
from runtimes.core.bars import Bar
from runtimes.models import SessionEvent, TradingSession
from tests.runtimes.conftest import wait_for_state
from tests.runtimes.shell.examples import Example, journaled, run_on_backtest, start_example

WAIT_S = 15.0
SCRIPT = "sma_crossover.py"
Decision = tuple[str, str, Decimal]  # (the candle's bar time, side, quantity)


@dataclass(frozen=True)
class Broker:
    """How the test drives one fake: push a bar to its stream, read the orders it received as
    (side, quantity), and know when the session's provider has subscribed."""

    platform: str
    push: Callable[[Bar], None]
    orders: Callable[[], list[tuple[str, Decimal]]]
    subscribed: Callable[[], None]  # blocks until the provider's market data is subscribed


def dataset_bars(series: str, symbol: str, rows: int, tmp_path: Path) -> list[Bar]:
    """The rows a backtest dataset of `rows` rows of `series` holds, as bars to push."""
    with head_of(series, rows, tmp_path / "bars.csv").open(newline="") as source:
        return [Bar(symbol, "1m", datetime.fromisoformat(row["timestamp"]),
                    *(Decimal(row[c]) for c in ("open", "high", "low", "close", "volume")))
                for row in csv.DictReader(source)]


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


def timestamp_of(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def broker_decisions(broker: Broker, bars: list[Bar], *, base: str, key: str) -> list[Decision]:
    """Push `bars` one at a time, each once the strategy settled; the orders the broker got
    after each are that bar's decisions."""
    observer = Observer(base.replace("http://", "ws://") + "/v1/ws", key)
    decisions: list[Decision] = []
    try:
        seen = 0
        for bar in bars:
            broker.push(bar)
            stamp = observer.candle()
            assert stamp == timestamp_of(bar.timestamp)
            settled(base, key)
            orders = broker.orders()
            decisions += [(stamp, side, quantity) for side, quantity in orders[seen:]]
            seen = len(orders)
    finally:
        observer.close()
    return decisions


def create_session(daphne_url: str, key: str, workspace: Any, *, platform: str,
                   connection: Any, symbol: str) -> str:
    created = httpx.post(
        f"{daphne_url}/api/v1/workspaces/{workspace.id}/sessions",
        headers={"Authorization": f"Bearer {key}"},
        json={"platform": platform, "connection": str(connection.id), "symbols": [symbol],
              "timeframe": "1m"})
    assert created.status_code == 201, created.json()
    return str(created.json()["id"])


def same_decisions(broker: Broker, example: Example, bars: list[Bar], *, connection: Any,
                   daphne_url: str, key: str, owner: Any, workspace: Any,
                   tmp_path: Path) -> list[Decision]:
    """Run the SMA example on a backtest of `example`'s dataset, then on a session of
    `broker.platform` fed `bars`; assert the same decisions bar by bar (returned), a clean exit
    of the strategy and of the session, and no error event."""
    backtest_id, _ = run_on_backtest(SCRIPT, example, daphne_url=daphne_url, key=key,
                                     owner=owner, workspace=workspace, tmp_path=tmp_path)
    expected = backtest_decisions(backtest_id)
    assert len(expected) >= 4  # crossings both ways: buys and the sells that close them

    [symbol] = example.mock_symbols
    session_id = create_session(daphne_url, key, workspace, platform=broker.platform,
                                connection=connection, symbol=symbol)
    base = f"{daphne_url}/sessions/{session_id}"
    process = start_example(SCRIPT, base_url=base, key=key, params=example.backtest_params)
    try:
        broker.subscribed()
        decided = broker_decisions(broker, bars, base=base, key=key)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert decided == expected

    httpx.post(f"{daphne_url}/api/v1/workspaces/{workspace.id}/sessions/{session_id}/cancel",
               headers={"Authorization": f"Bearer {key}"})
    session = wait_for_state(TradingSession.objects.get(pk=session_id), {"cancelled", "failed"})
    assert (session.state, session.failure_reason) == ("cancelled", "cancelled")
    assert journaled(session_id, "error") == 0
    return decided
