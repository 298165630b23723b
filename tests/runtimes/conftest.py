"""Fixtures of the runtimes shell tests: a real daphne server in this process, a short real
dataset, and a backtest session a strategy can connect to.

Daphne runs in a background thread for the whole test session (twisted's reactor cannot be
restarted); it shares the in-memory SQLite test database with the test thread and with the
embedded Celery worker's threads, so tests that use it need `django_db(transaction=True)`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from itertools import islice
from pathlib import Path

import pytest
from django.db.backends.signals import connection_created

from tests.shared_data import SHARED_DATA

DATA = SHARED_DATA / "crypto-1m" / "BTCUSDT.csv"
ROWS = 300
SYMBOL = "BTCUSDT"


def _shared_cache_reads_take_no_locks(sender, connection, **kwargs) -> None:
    # The in-memory test database is SQLite's shared cache, where a reader's table lock makes a
    # concurrent writer (the session host) fail at once with "database table is locked"
    # (SQLITE_LOCKED ignores the busy timeout). Read-uncommitted readers take no such locks.
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        connection.cursor().execute("PRAGMA read_uncommitted = 1")


connection_created.connect(_shared_cache_reads_take_no_locks)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def daphne_url(django_db_setup: None) -> Iterator[str]:
    """`http://127.0.0.1:<port>`: the platform's ASGI application served by daphne."""
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server

    from config.asgi import application

    port = _free_port()
    server = Server(
        application=application,
        endpoints=build_endpoint_description_strings(host="127.0.0.1", port=port),
        signal_handlers=False,
        verbosity=0,
        websocket_handshake_timeout=10,
        application_close_timeout=5,
    )
    thread = threading.Thread(target=server.run, daemon=True, name="test-daphne")
    thread.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    from twisted.internet import reactor

    reactor.callFromThread(reactor.stop)  # type: ignore[attr-defined]
    thread.join(5)


@pytest.fixture
def btc_csv(tmp_path: Path) -> Path:
    """The first ROWS one-minute bars of BTCUSDT (April 2021), as a file of their own."""
    target = tmp_path / "BTCUSDT.csv"
    with DATA.open() as source:
        target.write_text("".join(islice(source, ROWS + 1)))
    return target


@pytest.fixture
def dataset(workspace, btc_csv):
    from strategies.services import register_dataset

    return register_dataset(workspace=workspace, name="BTC 1m", files={SYMBOL: btc_csv})


@pytest.fixture
def trader_key(owner, workspace, make_api_key) -> str:
    """The plaintext of an owner's key that may trade paper (and so run backtests)."""
    return make_api_key(owner, workspace, scopes=("read", "trade:paper"))[1]


@pytest.fixture
def start_backtest(owner, workspace, dataset, celery_worker):
    """start_backtest(**overrides) -> a new session whose host is being started by the worker."""
    from runtimes.services import create_backtest_session

    def start(**overrides):
        options = {
            "symbols": None, "timeframe": None, "start": None, "end": None,
            "initial_cash": Decimal(100_000), "commission": {}, "slippage_bps": Decimal(0),
            "connect_timeout_s": 30, "idle_timeout_s": 30, **overrides,
        }
        return create_backtest_session(workspace=workspace, created_by=owner, dataset=dataset,
                                       **options)

    return start


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
