"""The same strategy file on `backtest` and on `binance-testnet`, over the real server: on the
same prices it makes the same decisions, bar by bar (tests/runtimes/shell/lockstep.py says how).

The Binance session trades through a workspace connection against the fake Binance
(tests/fakes/binance) driven by the real python-binance inside the host. The fake charges no
commission, so the sell that closes a position sells exactly what was bought, as in the
backtest. The fake's URLs are set in this process's settings: these tests need the embedded
worker."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.conf import settings

from tests.fakes.binance import FakeBinance
from tests.fakes.binance.server import KEY_ID, SECRET
from tests.runtimes.connections import stored_connection
from tests.runtimes.shell.examples import Example
from tests.runtimes.shell.lockstep import WAIT_S, Broker, dataset_bars, same_decisions

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


@pytest.fixture
def fake_binance(settings) -> Iterator[FakeBinance]:
    with FakeBinance(symbols=[SYMBOL], commission_rate=Decimal(0)).start() as fake:
        settings.BROKER_URLS = {**settings.BROKER_URLS, "binance-testnet": dict(fake.urls)}
        yield fake


def test_the_sma_example_decides_the_same_on_backtest_and_binance_testnet(
    daphne_url, celery_worker, fake_binance, trader_key, owner, workspace, tmp_path
):
    broker = Broker(
        "binance-testnet", push=fake_binance.push_kline,
        orders=lambda: [(o["side"], Decimal(o["origQty"])) for o in fake_binance.orders()],
        subscribed=lambda: fake_binance.wait_for(
            lambda: fake_binance.subscriptions().get("market", 0) > 0, timeout=WAIT_S))
    connection = stored_connection(workspace, owner, platform="binance-testnet",
                                   key_id=KEY_ID, secret=SECRET)

    decided = same_decisions(
        broker, Example({SYMBOL: SERIES}, ROWS, PARAMS, [SYMBOL], PARAMS),
        dataset_bars(SERIES, SYMBOL, ROWS, tmp_path), connection=connection,
        daphne_url=daphne_url, key=trader_key, owner=owner, workspace=workspace,
        tmp_path=tmp_path)

    assert [o["status"] for o in fake_binance.orders()] == ["FILLED"] * len(decided)
