"""The example strategies run as a laptop runs them (their own process, configured by the SDK's
variables) against a session of the real server: shared by the tests that run the same file on
several platforms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from runtimes.models import SessionEvent
from tests.runtimes.conftest import wait_for_state

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "strategies"


@dataclass(frozen=True)
class Example:
    files: dict[str, str]  # the backtest's dataset: symbol -> sample series
    rows: int
    backtest_params: dict
    mock_symbols: list[str]
    mock_params: dict  # short windows: the mock run lasts seconds


def start_example(script: str, *, base_url: str, key: str, params: dict) -> subprocess.Popen:
    """The example as a laptop runs it: its own process, configured by the SDK's variables."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("TEKTII_", "TRADING_GATEWAY_"))}
    env.update(TEKTII_TRADING_GATEWAY_URL=base_url, TEKTII_TRADING_GATEWAY_API_KEY=key,
               PARITY_STRATEGY_PARAMS=json.dumps(params))
    return subprocess.Popen([sys.executable, str(EXAMPLES / script)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def backtest_dataset(workspace, tmp_path: Path, example: Example):
    from config.sample_data import head_of
    from strategies.services import register_dataset

    copies = {symbol: head_of(series, example.rows, tmp_path / f"{symbol}.csv")
              for symbol, series in example.files.items()}
    return register_dataset(workspace=workspace, name="example", files=copies)


def run_on_backtest(script, example, *, daphne_url, key, owner, workspace, tmp_path):
    from runtimes.services import create_backtest_session

    session = create_backtest_session(
        workspace=workspace, created_by=owner,
        dataset=backtest_dataset(workspace, tmp_path, example), symbols=None, timeframe=None,
        start=None, end=None, initial_cash=Decimal(100_000), commission={},
        slippage_bps=Decimal(0), connect_timeout_s=30, idle_timeout_s=30)
    process = start_example(script, base_url=f"{daphne_url}/sessions/{session.id}", key=key,
                            params=example.backtest_params)
    _, stderr = process.communicate(timeout=80)
    assert process.returncode == 0, stderr[-3000:]
    session = wait_for_state(session, {"completed", "failed", "cancelled"})
    assert (session.state, session.failure_reason) == ("completed", ""), stderr[-3000:]
    assert "backtest complete" in stderr
    assert session.result.orders, stderr[-3000:]
    return str(session.id), stderr


def journaled(session_id: str, frame_type: str) -> int:
    return SessionEvent.objects.filter(session_id=session_id,
                                       frame__contains=f'"type":"{frame_type}"').count()
