"""The same strategy file on `backtest` and on `alpaca-paper`, over the real server: on the same
prices it makes the same decisions, bar by bar (tests/runtimes/shell/lockstep.py says how).

The Alpaca session trades through a workspace connection against the fake Alpaca
(tests/fakes/alpaca) driven by the real alpaca-py inside the host. The fake's URLs are set in
this process's settings: these tests need the embedded worker."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.conf import settings

from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.alpaca.server import KEY_ID, SECRET
from tests.runtimes.connections import stored_connection
from tests.runtimes.shell.examples import Example
from tests.runtimes.shell.lockstep import WAIT_S, Broker, dataset_bars, same_decisions

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


@pytest.fixture
def fake_alpaca(settings) -> Iterator[FakeAlpaca]:
    with FakeAlpaca(symbols=[SYMBOL]).start() as fake:
        settings.BROKER_URLS = {**settings.BROKER_URLS, "alpaca-paper": dict(fake.urls)}
        yield fake


def test_the_sma_example_decides_the_same_on_backtest_and_alpaca_paper(
    daphne_url, celery_worker, fake_alpaca, trader_key, owner, workspace, tmp_path
):
    broker = Broker(
        "alpaca-paper", push=fake_alpaca.push_bar,
        orders=lambda: [(o["side"].upper(), Decimal(o["qty"])) for o in fake_alpaca.orders()],
        subscribed=lambda: fake_alpaca.wait_for(
            lambda: SYMBOL in fake_alpaca.subscriptions().get("bars", []), timeout=WAIT_S))
    connection = stored_connection(workspace, owner, key_id=KEY_ID, secret=SECRET)

    decided = same_decisions(
        broker, Example({SYMBOL: SERIES}, ROWS, PARAMS, [SYMBOL], PARAMS),
        dataset_bars(SERIES, SYMBOL, ROWS, tmp_path), connection=connection,
        daphne_url=daphne_url, key=trader_key, owner=owner, workspace=workspace,
        tmp_path=tmp_path)

    assert [o["status"] for o in fake_alpaca.orders()] == ["filled"] * len(decided)
