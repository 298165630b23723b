"""A real daphne server for the whole test session, shared by every test directory that drives the
platform over the network (the runtimes shell tests, the example strategies).

Daphne runs in a background thread (twisted's reactor cannot be restarted, so there is exactly one
per test session); it shares the in-memory SQLite test database with the test thread and with the
embedded Celery worker's threads, so tests that use it need `django_db(transaction=True)`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from django.db.backends.signals import connection_created


def _shared_cache_reads_take_no_locks(sender, connection, **kwargs) -> None:
    # The in-memory test database is SQLite's shared cache, where a reader's table lock makes a
    # concurrent writer (the session host) fail at once with "database table is locked"
    # (SQLITE_LOCKED ignores the busy timeout). Read-uncommitted readers take no such locks.
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        connection.cursor().execute("PRAGMA read_uncommitted = 1")


connection_created.connect(_shared_cache_reads_take_no_locks)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def daphne_url(django_db_setup: None) -> Iterator[str]:
    """`http://127.0.0.1:<port>`: the platform's ASGI application served by daphne."""
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server

    from config.asgi import application

    port = free_port()
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
