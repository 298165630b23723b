"""The three example strategies, each run as a real process (exactly as on a laptop) against a
backtest session on a live server: they finish cleanly and trade."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtimes.conftest import wait_for_state

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "strategies"
STOCKS = ("AAPL", "MSFT", "NVDA", "JPM", "XOM")

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def run_example(script: str, *, base_url: str, key: str, params: dict):
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("TEKTII_", "TRADING_GATEWAY_"))}
    env.update(TEKTII_TRADING_GATEWAY_URL=base_url, TEKTII_TRADING_GATEWAY_API_KEY=key,
               PARITY_STRATEGY_PARAMS=json.dumps(params))
    return subprocess.run([sys.executable, str(EXAMPLES / script)], env=env, capture_output=True,
                          text=True, timeout=100, check=False)


def run_to_completion(script, dataset, *, daphne_url, start_session, trader_key, params=None):
    session = start_session(dataset)
    process = run_example(script, base_url=f"{daphne_url}/sessions/{session.id}", key=trader_key,
                          params=params or {})
    assert process.returncode == 0, process.stderr[-3000:]
    session = wait_for_state(session, {"completed", "failed", "cancelled"})
    assert (session.state, session.failure_reason) == ("completed", ""), process.stderr[-3000:]
    return session, process


@pytest.fixture
def trader_key(owner, workspace, make_api_key) -> str:
    return make_api_key(owner, workspace, scopes=("read", "trade:paper"))[1]


def test_sma_crossover_trades_one_symbol_and_exits_cleanly(
    daphne_url, make_dataset, start_session, trader_key
):
    dataset = make_dataset("BTC 1m", {"BTCUSDT": "crypto-1m/BTCUSDT.csv"}, rows=300)

    session, process = run_to_completion(
        "sma_crossover.py", dataset, daphne_url=daphne_url, start_session=start_session,
        trader_key=trader_key, params={"fast": 10, "slow": 30, "quantity": "0.5"})

    orders = session.result.orders
    assert len(orders) > 0
    assert {o["symbol"] for o in orders} == {"BTCUSDT"}
    assert {o["quantity"] for o in orders} == {"0.5"}
    assert "backtest complete" in process.stderr


def test_rsi_mean_reversion_places_bracket_orders(
    daphne_url, make_dataset, start_session, trader_key
):
    dataset = make_dataset("BTC 1m", {"BTCUSDT": "crypto-1m/BTCUSDT.csv"}, rows=600)

    session, process = run_to_completion(
        "rsi_mean_reversion.py", dataset, daphne_url=daphne_url, start_session=start_session,
        trader_key=trader_key, params={"quantity": "0.5", "stop_loss_pct": "0.3",
                                       "take_profit_pct": "0.3"})

    entries = [o for o in session.result.orders if o.get("stop_loss")]
    assert entries, process.stderr[-3000:]
    assert all(o["take_profit"] and o["side"] == "BUY" for o in entries)
    assert "backtest complete" in process.stderr


def test_momentum_rotation_holds_the_top_symbols_of_several(
    daphne_url, make_dataset, start_session, trader_key
):
    dataset = make_dataset("Stocks daily", {s: f"stocks-daily/{s}.csv" for s in STOCKS},
                           rows=120)

    session, process = run_to_completion(
        "momentum_rotation.py", dataset, daphne_url=daphne_url, start_session=start_session,
        trader_key=trader_key, params={"lookback": 20, "rebalance_every": 5, "top_k": 2})

    orders = session.result.orders
    assert len({o["symbol"] for o in orders}) >= 3, process.stderr[-3000:]
    assert {o["side"] for o in orders} == {"BUY", "SELL"}
    assert "backtest complete" in process.stderr
