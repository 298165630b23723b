"""Fixtures of the runtimes shell tests: a short real dataset and a backtest session a strategy
can connect to. The real daphne server (`daphne_url`) comes from tests/plugins/live_server.py,
shared with the other test directories (one per test session)."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from config.sample_data import head_of
from tests.plugins.live_server import free_port as _free_port  # noqa: F401 (used by shell tests)

DATA = "crypto-1m/BTCUSDT.csv"
ROWS = 300
SYMBOL = "BTCUSDT"


@pytest.fixture
def btc_csv(tmp_path: Path) -> Path:
    """The first ROWS one-minute bars of BTCUSDT (April 2021), as a file of their own."""
    return head_of(DATA, ROWS, tmp_path / "BTCUSDT.csv")


@pytest.fixture
def dataset(workspace, btc_csv):
    from strategies.services import register_dataset

    return register_dataset(workspace=workspace, name="BTC 1m", files={SYMBOL: btc_csv})


@pytest.fixture
def trader_key(owner, workspace, make_api_key) -> str:
    """The plaintext of an owner's key that may trade paper (and so run backtests)."""
    return make_api_key(owner, workspace, scopes=("read", "trade:paper"))[1]


def new_backtest_session(workspace, user, dataset, **overrides):
    """A new remote backtest session over all of `dataset` (sync); its host starts at the
    strategy's first request or socket (or `ask_for_worker`)."""
    from runtimes.services import create_backtest_session

    options = {
        "symbols": None, "timeframe": None, "start": None, "end": None,
        "initial_cash": Decimal(100_000), "commission": {}, "slippage_bps": Decimal(0),
        "connect_timeout_s": 30, "idle_timeout_s": 30, **overrides,
    }
    return create_backtest_session(workspace=workspace, created_by=user, dataset=dataset,
                                   **options)


@pytest.fixture
def start_backtest(owner, workspace, dataset, celery_worker):
    """start_backtest(**overrides) -> the owner's `new_backtest_session` (`created_by` may be
    overridden)."""

    def start(*, created_by=owner, **overrides):
        return new_backtest_session(workspace, created_by, dataset, **overrides)

    return start


@pytest.fixture
def owner_client(api_client, trader_key):
    """The management and Trading API as the owner's trading key."""
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {trader_key}")
    return api_client


@pytest.fixture
def stranger_client(stranger, stranger_workspace, make_api_key):
    """The same as a trading key of the stranger's own workspace."""
    from rest_framework.test import APIClient

    client = APIClient()
    _, key = make_api_key(stranger, stranger_workspace, scopes=("read", "trade:paper"))
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def wait_for_state(session, states, timeout: float = 10.0):
    """Poll the row until its state is one of `states` (sync; wrap with sync_to_async)."""
    deadline = time.monotonic() + timeout
    while True:
        session.refresh_from_db()
        if session.state in states:
            return session
        if time.monotonic() > deadline:
            raise AssertionError(f"session stayed {session.state}, wanted {states}")
        time.sleep(0.05)


def ask_for_worker(session):
    """What a strategy's first request does: queue the session for a worker (sync)."""
    from django.utils import timezone

    from runtimes.hosting.dispatch import request_worker

    request_worker(session=session, now=timezone.now())
    return session
