"""The Trading API's fast path (runtimes/transport/fast_path.py) answers exactly what Django's
path answers, for what it serves and for everything it hands to Django; a revoked key is refused
within a second."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator

from tests.runtimes.conftest import ask_for_worker, new_backtest_session, wait_for_state

pytestmark = pytest.mark.django_db(transaction=True)

ORDER = {"symbol": "BTCUSDT", "side": "buy", "quantity": "1", "order_type": "market"}


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


class CountingApp:
    """Django's Trading API handler, counting the requests that reached it."""

    def __init__(self, app) -> None:
        self.app, self.calls = app, 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        await self.app(scope, receive, send)


async def call(app, method, path, *, key=None, body=b"", headers=()):
    scope = {"type": "http", "method": method, "path": path, "query_string": b"",
             "root_path": "", "scheme": "http", "server": ("127.0.0.1", 80),
             "client": ("127.0.0.1", 5000), "http_version": "1.1",
             "headers": [(b"host", b"localhost"), *headers,
                         *([(b"authorization", f"Bearer {key}".encode())] if key else []),
                         *([(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())] if body else [])]}
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": body})
    start = await communicator.receive_output(10)
    content = b""
    while True:
        message = await communicator.receive_output(10)
        content += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.wait(1)
    return start["status"], list(start["headers"]), content


def without_ids(content: bytes):
    data = json.loads(content) if content else None
    if isinstance(data, dict):
        data.pop("id", None)
    return data


@pytest.fixture
def paths():
    """(Django's handler alone, the fast path in front of its own Django handler, the clock)."""
    from config.asgi import TradingApiASGIHandler
    from runtimes.transport.fast_path import Grants, TradingApiFastPath

    clock = Clock()
    django = CountingApp(TradingApiASGIHandler())
    return TradingApiASGIHandler(), TradingApiFastPath(django, grants=Grants(clock)), clock


@pytest.fixture
def running(owner, workspace, dataset, celery_worker):
    """A backtest session its host runs; cancelled, and ended, after the test."""
    from django.utils import timezone

    from runtimes.services import cancel_session

    session = new_backtest_session(workspace, owner, dataset)
    ask_for_worker(session)
    yield wait_for_state(session, {"waiting", "running"})
    cancel_session(session=session, now=timezone.now())
    wait_for_state(session, {"cancelled"})


def in_process() -> bool:
    from runtimes.hosting.bus import InProcessBus, get_bus

    return isinstance(get_bus(), InProcessBus)


async def checked(fast, app, path, key):
    """A first call through Django, then the grant checks it started."""
    status, _, _ = await call(app, "GET", path + "v1/account", key=key)
    await asyncio.gather(*list(fast._tasks))
    return status


async def test_both_paths_answer_every_request_alike(
    paths, running, owner, workspace, trader_key, make_api_key, stranger, stranger_workspace
):
    django, fast, _ = paths
    base = f"/sessions/{running.id}/"
    read_only = (await sync_to_async(make_api_key)(owner, workspace, scopes=("read",)))[1]
    foreign = (await sync_to_async(make_api_key)(stranger, stranger_workspace,
                                                 scopes=("read", "trade:paper")))[1]
    assert await checked(fast, fast, base, trader_key) == 200
    reached = fast.django.calls
    matrix = [
        ("GET", "v1/account", trader_key, b""),  # served fast
        ("POST", "v1/orders", trader_key, json.dumps(ORDER).encode()),  # served fast
        ("POST", "v1/orders", trader_key, json.dumps({**ORDER, "quantity": "-1"}).encode()),
        ("GET", "v1/no-such-route", trader_key, b""),
        ("PUT", "v1/orders", trader_key, json.dumps(ORDER).encode()),
        ("GET", "v1/account", foreign, b""),
        ("GET", "v1/account", None, b""),
        ("POST", "v1/orders", read_only, json.dumps(ORDER).encode()),
        ("POST", "v1/orders", trader_key, b"{\"symbol\": "),
        ("POST", "v1/orders", trader_key, b"[" * 200 + b"]" * 200),
        ("POST", "v1/orders", trader_key,  # past what the fast path reads: Django's
         json.dumps({**ORDER, "padding": "x" * 70_000}).encode()),
    ]
    answers = []
    for method, tail, key, body in matrix:
        slow = await call(django, method, base + tail, key=key, body=body)
        quick = await call(fast, method, base + tail, key=key, body=body)
        assert (quick[0], quick[1], without_ids(quick[2])) == (
            slow[0], slow[1], without_ids(slow[2])), (method, tail)
        answers.append(slow[0])
    assert answers == [200, 201, 400, 404, 405, 404, 401, 403, 400, 400, 201]
    assert fast.django.calls - reached == (len(matrix) - 2 if in_process() else len(matrix))


async def test_a_revoked_key_is_refused_at_once(paths, running, owner, make_api_key, workspace):
    from accounts.services import revoke_api_key

    _, fast, _ = paths
    base = f"/sessions/{running.id}/"
    key, raw = await sync_to_async(make_api_key)(owner, workspace, scopes=("read", "trade:paper"))
    await checked(fast, fast, base, raw)
    reached = fast.django.calls
    assert (await call(fast, "GET", base + "v1/account", key=raw))[0] == 200
    await sync_to_async(revoke_api_key)(key=key, by=owner)  # the credential cache's epoch moves
    status, _, content = await call(fast, "GET", base + "v1/account", key=raw)
    assert (status, json.loads(content)["code"]) == (401, "UNAUTHORIZED")
    assert fast.django.calls - reached == (1 if in_process() else 2)


def revoke_unannounced(key):
    """Revoke `key` with a bulk update: no signal, so the credential cache is not told."""
    from django.utils import timezone

    from accounts.models import ApiKey

    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())


async def test_a_change_nobody_announced_is_seen_within_a_second(
    paths, running, owner, make_api_key, workspace
):
    from accounts import auth_cache

    _, fast, clock = paths
    base = f"/sessions/{running.id}/"
    key, raw = await sync_to_async(make_api_key)(owner, workspace, scopes=("read", "trade:paper"))
    await checked(fast, fast, base, raw)
    await sync_to_async(revoke_unannounced)(key)
    clock.value += 0.4  # the grant, checked before the revocation, is still used
    assert (await call(fast, "GET", base + "v1/account", key=raw))[0] == 200
    clock.value += 0.6  # a second after its check: Django answers
    await sync_to_async(auth_cache.invalidate_all)()  # its own cache would still say yes
    status, _, _ = await call(fast, "GET", base + "v1/account", key=raw)
    assert status == 401


async def test_a_grant_in_use_is_checked_again_after_half_a_second(
    paths, running, owner, make_api_key, workspace
):
    from accounts import auth_cache

    _, fast, clock = paths
    base = f"/sessions/{running.id}/"
    key, raw = await sync_to_async(make_api_key)(owner, workspace, scopes=("read", "trade:paper"))
    await checked(fast, fast, base, raw)
    await sync_to_async(revoke_unannounced)(key)
    fast.grants.epoch = lambda: "unchanged"  # nothing announced: only the re-check can see it
    fast.grants._grants = {k: replace(g, epoch="unchanged")
                           for k, g in fast.grants._grants.items()}
    await sync_to_async(auth_cache.invalidate_all)()  # the check reads the database
    clock.value += 0.5
    # Served on its grant, which it re-checks (on the Redis bus Django answers, from the rows).
    status, _, _ = await call(fast, "GET", base + "v1/account", key=raw)
    assert status == (200 if in_process() else 401)
    await asyncio.gather(*list(fast._tasks))
    assert fast.grants._grants == {}
    clock.value += 0.1
    assert (await call(fast, "GET", base + "v1/account", key=raw))[0] == 401
