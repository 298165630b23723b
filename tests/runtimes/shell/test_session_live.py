"""The dashboard's live view socket (`/app/sessions/{id}/live`) over the real daphne server:
handshake refusals (no login, a stranger, no Origin, a foreign Origin), a member watching an
SDK backtest, an observer that never reads, and observers over the Redis bus."""

from __future__ import annotations

import asyncio
import json
from functools import partial

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from runtimes.dashboard_consumers import ObserverBuffer
from tests.runtimes.conftest import ROWS, ask_for_worker, wait_for_state
from tests.runtimes.shell.test_backtest_end_to_end import sma_cross
from tests.runtimes.shell.test_redis_bus import redis_bus, redis_url  # noqa: F401 (fixtures)

in_thread = partial(sync_to_async, thread_sensitive=False)
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def live_url(daphne_url: str, session) -> str:
    return f"{daphne_url.replace('http', 'ws', 1)}/app/sessions/{session.id}/live"


def login_cookie(user) -> str:
    """The `Cookie` header of a fresh login session of `user` (sync)."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def open_live(url: str, *, cookie: str | None, origin: str | None, max_queue: int | None = None):
    headers = {}
    if cookie is not None:
        headers["Cookie"] = cookie
    if origin is not None:
        headers["Origin"] = origin
    return connect(url, additional_headers=headers, open_timeout=5, max_queue=max_queue)


async def messages_until_close(ws, timeout: float = 30) -> list[dict]:
    """Every message until the server closes the socket (normally)."""
    received: list[dict] = []
    try:
        async with asyncio.timeout(timeout):
            async for text in ws:
                received.append(json.loads(text))
    except ConnectionClosed:
        pass
    return received


async def until_attached(ws, timeout: float = 5) -> list[dict]:
    """The messages up to the host's `observer_state`: its answer to the observer's attach, after
    which the observer gets a copy of every frame."""
    received: list[dict] = []
    async with asyncio.timeout(timeout):
        while not received or received[-1]["type"] != "observer_state":
            received.append(json.loads(await ws.recv()))
    return received


@pytest.fixture
async def live_session(start_backtest):
    """A session waiting for its strategy; cancelled afterwards unless it ended."""
    from django.utils import timezone

    from runtimes.services import cancel_session

    session = await in_thread(start_backtest)()
    await in_thread(ask_for_worker)(session)
    await in_thread(wait_for_state)(session, {"waiting"})
    yield session
    await in_thread(lambda: cancel_session(session=session, now=timezone.now()))()
    await in_thread(wait_for_state)(session, {"cancelled", "completed", "failed"})


async def test_handshakes_without_login_membership_or_our_origin_are_refused_with_403(
    daphne_url, live_session, owner, stranger
):
    url = live_url(daphne_url, live_session)
    member = await in_thread(login_cookie)(owner)
    foreigner = await in_thread(login_cookie)(stranger)
    refused = [
        (None, daphne_url),  # anonymous
        (foreigner, daphne_url),  # a stranger to the workspace
        (member, None),  # no Origin
        (member, "https://evil.example"),  # a foreign Origin
        (member, "http://127.0.0.1.evil.example"),
    ]
    for cookie, origin in refused:
        with pytest.raises(InvalidStatus) as refusal:
            async with open_live(url, cookie=cookie, origin=origin):
                pass
        assert refusal.value.response.status_code == 403, (cookie is member, origin)
    async with open_live(url, cookie=member, origin=daphne_url) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert first["type"] == "snapshot"
    assert (first["session"]["id"], first["session"]["state"]) == (str(live_session.id), "waiting")


async def test_a_member_watches_an_sdk_backtest_stream_to_its_end(
    daphne_url, live_session, owner, trader_key
):
    cookie = await in_thread(login_cookie)(owner)
    async with open_live(live_url(daphne_url, live_session), cookie=cookie,
                         origin=daphne_url) as ws:
        first = await until_attached(ws)  # attached before the strategy: it sees every frame
        watched = asyncio.ensure_future(messages_until_close(ws))
        seen = await sma_cross(f"{daphne_url}/sessions/{live_session.id}", trader_key)
        messages = first + await watched
    session = await in_thread(wait_for_state)(live_session, {"completed", "failed"})
    assert session.state == "completed" and seen["orders"]
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "snapshot" and "observer_state" in kinds
    frames = [m for m in messages if "event_id" in m]
    assert [f["event_id"] for f in frames] == [f"evt-{n}" for n in range(1, len(frames) + 1)]
    assert sum(f["type"] == "candle" for f in frames) == ROWS
    assert {"order", "trade", "position", "account", "backtest_complete"} <= set(kinds)
    assert "dropped" not in kinds
    assert messages[-1]["type"] == "snapshot" and messages[-1]["session"]["state"] == "completed"


async def test_an_observer_that_never_reads_does_not_gate_the_session(
    daphne_url, live_session, owner, trader_key
):
    cookie = await in_thread(login_cookie)(owner)
    # A one-message queue: the client stops reading from the socket at once (TCP backpressure).
    async with open_live(live_url(daphne_url, live_session), cookie=cookie, origin=daphne_url,
                         max_queue=1) as ws:
        await until_attached(ws)  # then it reads no more
        seen = await sma_cross(f"{daphne_url}/sessions/{live_session.id}", trader_key)
        session = await in_thread(wait_for_state)(live_session, {"completed", "failed"})
    assert (session.state, seen["candles"]) == ("completed", ROWS)
    assert session.events_sent == session.events_acked  # the strategy's acks alone


async def test_an_ended_session_sends_its_last_snapshot_and_closes(
    daphne_url, live_session, owner
):
    from django.utils import timezone

    from runtimes.services import cancel_session

    await in_thread(lambda: cancel_session(session=live_session, now=timezone.now()))()
    await in_thread(wait_for_state)(live_session, {"cancelled"})
    cookie = await in_thread(login_cookie)(owner)
    async with open_live(live_url(daphne_url, live_session), cookie=cookie,
                         origin=daphne_url) as ws:
        messages = await messages_until_close(ws, 5)
        assert ws.close_code == 1000
    assert [m["session"]["state"] for m in messages] == ["cancelled"]


async def test_the_observer_buffer_drops_the_oldest_and_counts_them():
    buffer = ObserverBuffer(limit=3)
    buffer.put(["a", "b"], None)
    buffer.put(["c", "d", "e"], None)
    assert buffer.take() == (["c", "d", "e"], 2, None)
    assert not buffer.ready.is_set()
    buffer.put(["f"], 1000)
    assert buffer.take() == (["f"], 0, 1000)


async def test_observers_get_copies_of_frames_over_the_redis_bus(
    redis_bus, daphne_url, live_session, owner, trader_key  # noqa: F811
):
    cookie = await in_thread(login_cookie)(owner)
    async with open_live(live_url(daphne_url, live_session), cookie=cookie,
                         origin=daphne_url) as ws:
        first = await until_attached(ws)
        watched = asyncio.ensure_future(messages_until_close(ws))
        await sma_cross(f"{daphne_url}/sessions/{live_session.id}", trader_key)
        messages = first + await watched
    frames = [m for m in messages if "event_id" in m]
    assert sum(f["type"] == "candle" for f in frames) == ROWS
    assert messages[-1]["session"]["state"] == "completed"


def test_the_live_page_is_for_members_of_the_sessions_workspace(
    live_session, sign_in, owner, workspace, stranger, stranger_workspace
):
    page = f"/app/backtests/{live_session.id}/live/"
    client = sign_in(owner, workspace)
    response = client.get(page)
    assert response.status_code == 200
    assert f'data-live-url="/app/sessions/{live_session.id}/live"' in response.text
    assert f'href="{page}"' in client.get(f"/app/backtests/{live_session.id}/").text
    assert sign_in(stranger, stranger_workspace).get(page).status_code == 404


async def test_an_observer_attaches_with_its_flag_and_its_redis_outbox_stays_bounded(
    redis_bus,  # noqa: F811
):
    import uuid

    from runtimes.hosting.bus_redis import OBSERVER_BACKLOG, outbox_key

    session_id = f"test-{uuid.uuid4().hex}"
    connection = redis_bus.connect(session_id, lambda texts, code: None, last_event_id=None,
                                   observer=True)
    host = redis_bus.host(session_id)
    try:
        attach = await in_thread(host.receive)(2)
        assert attach == {"kind": "attach", "connection": connection, "last_event_id": None,
                          "observer": True}
        await redis_bus.aclose()  # its relay stops reading: the outbox must not grow for ever
        for n in range(OBSERVER_BACKLOG + 50):
            host.send_observed(connection, [f'{{"n":{n}}}'])
        stored = redis_bus._client.lrange(outbox_key(session_id, connection), 0, -1)
        assert len(stored) == OBSERVER_BACKLOG and stored[0] == b'{"n":50}'
    finally:
        redis_bus._client.delete(outbox_key(session_id, connection))
        host.close()
