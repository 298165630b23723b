"""The two transports of a hosted backtest give the same run, byte for byte: each example
strategy, on several datasets, hosted once over the WebSocket path (sandbox relay, daphne, the
bus) and once over the local channel (runtimes/sandbox/shim.py, runtimes/hosting/channel.py);
their journals (every frame's exact text, sequence and ack), orders, fills, equity and metrics
are equal."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from runtimes.sandbox.runner import probe_bubblewrap
from tests.runtimes.conftest import wait_for_state

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "strategies"
SUPPORT = probe_bubblewrap()
ENDED = {"completed", "failed", "cancelled"}
STOCKS = ("AAPL", "MSFT", "NVDA", "JPM", "XOM")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(180),
    pytest.mark.skipif(not django_settings.CELERY_EMBEDDED_WORKER,
                       reason="needs the embedded worker (settings are overridden in-process)"),
    pytest.mark.skipif(not SUPPORT.available,
                       reason=f"bubblewrap unavailable here: {SUPPORT.reason}"),
]

# (example file, its parameters, dataset: symbol -> (sample series, rows))
RUNS = {
    "sma-btc-1m": ("sma_crossover.py", {"fast": 10, "slow": 30, "quantity": "0.5"},
                   {"BTCUSDT": ("crypto-1m/BTCUSDT.csv", 400)}),
    "sma-aapl-1m": ("sma_crossover.py", {"fast": 5, "slow": 20, "quantity": "10"},
                    {"AAPL": ("stocks-1m/AAPL.csv", 400)}),
    "rsi-btc-1m": ("rsi_mean_reversion.py",
                   {"quantity": "0.5", "stop_loss_pct": "0.3", "take_profit_pct": "0.3"},
                   {"BTCUSDT": ("crypto-1m/BTCUSDT.csv", 600)}),
    "rsi-eth-1m": ("rsi_mean_reversion.py", {"quantity": "2", "period": 7, "oversold": 40},
                   {"ETHUSDT": ("crypto-1m/ETHUSDT.csv", 600)}),
    "momentum-stocks-daily": ("momentum_rotation.py",
                              {"lookback": 20, "rebalance_every": 5, "top_k": 2},
                              {s: (f"stocks-daily/{s}.csv", 120) for s in STOCKS}),
}


@pytest.fixture
def run_hosted(owner, workspace, celery_worker, daphne_url, settings, tmp_path):
    """run_hosted(run name, transport) -> the ended session of that example, hosted."""
    from config.sample_data import head_of
    from runtimes.services import create_hosted_backtest
    from strategies.services import register_dataset, upload_strategy_version

    settings.PLATFORM_INTERNAL_URL = daphne_url

    def run(name: str, transport: str):
        settings.HOSTED_BACKTEST_TRANSPORT = transport
        script, params, files = RUNS[name]
        folder = tmp_path / transport
        folder.mkdir()
        copies = {symbol: head_of(series, rows, folder / f"{symbol}.csv")
                  for symbol, (series, rows) in files.items()}
        dataset = register_dataset(workspace=workspace, name=f"{name} {transport}",
                                   files=copies)
        version = upload_strategy_version(workspace=workspace, author=owner, strategy=name,
                                          filename="main.py",
                                          content=(EXAMPLES / script).read_bytes())
        session = create_hosted_backtest(workspace=workspace, created_by=owner,
                                         version=version, dataset=dataset, params=params,
                                         initial_cash=Decimal(100_000),
                                         commission={"percent": Decimal("0.1")})
        return wait_for_state(session, ENDED, timeout=90)

    return run


def journal_of(session) -> list[tuple[int, str, str, bool]]:
    return list(session.events.order_by("sequence")
                .values_list("sequence", "event_id", "frame", "acked"))


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_channel_and_the_websocket_give_byte_identical_runs(run_hosted, name):
    over_websocket = run_hosted(name, "websocket")
    over_channel = run_hosted(name, "channel")

    for session in (over_websocket, over_channel):
        assert (session.state, session.failure_reason) == ("completed", ""), session.output_tail
    assert over_channel.result.orders, "the run placed no order: it would prove little"
    assert journal_of(over_channel) == journal_of(over_websocket)
    for part in ("orders", "trades", "equity", "metrics", "account", "positions"):
        assert getattr(over_channel.result, part) == getattr(over_websocket.result, part), part
    assert (over_channel.events_sent, over_channel.events_acked) == (
        over_websocket.events_sent, over_websocket.events_acked)
