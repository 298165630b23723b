"""The session WebSocket with a raw client: handshake refusals, strict acks, bad frames, resume,
and cancellation of a running session."""

from __future__ import annotations

import asyncio
import json
from functools import partial

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.runtimes.conftest import ask_for_worker, wait_for_state

in_thread = partial(sync_to_async, thread_sensitive=False)
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def ws_url(daphne_url: str, session, cursor: str | None = None) -> str:
    url = f"{daphne_url.replace('http', 'ws', 1)}/sessions/{session.id}/v1/ws"
    return url if cursor is None else f"{url}?last_event_id={cursor}"


def open_socket(url: str, key: str | None, **headers: str):
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return connect(url, additional_headers=headers, open_timeout=5)


def ack(*ids: str) -> str:
    return json.dumps({"type": "event_ack", "correlation_id": "c", "events_processed": list(ids),
                       "timestamp": 0})


async def next_frame(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def nothing_arrives(ws, seconds: float = 0.3) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return True
    return False


@pytest.fixture
async def live_session(start_backtest):
    """A started session; cancelled afterwards so its host does not wait out its idle timeout."""
    from django.utils import timezone

    from runtimes.services import cancel_session

    session = await in_thread(start_backtest)()
    yield session
    await in_thread(lambda: cancel_session(session=session, now=timezone.now()))()
    await in_thread(wait_for_state)(session, {"cancelled", "completed", "failed"})


async def test_handshakes_without_a_usable_key_are_refused_with_403(
    daphne_url, live_session, stranger, stranger_workspace, make_api_key, owner, workspace
):
    url = ws_url(daphne_url, live_session)
    foreign = (await in_thread(make_api_key)(stranger, stranger_workspace, ("trade:paper",)))[1]
    reader = (await in_thread(make_api_key)(owner, workspace, ("read",)))[1]
    for key in (None, "prt_abcdefgh_wrong", foreign, reader):
        with pytest.raises(InvalidStatus) as refused:
            async with open_socket(url, key):
                pass
        assert refused.value.response.status_code == 403, key


async def test_acks_release_exactly_the_ids_they_name(daphne_url, live_session, trader_key):
    async with open_socket(ws_url(daphne_url, live_session), trader_key) as ws:
        first = await next_frame(ws)
        assert (first["type"], first["event_id"]) == ("candle", "evt-1")
        for useless in (ack("evt-999"), ack(), ack("evt-2")):
            await ws.send(useless)
        assert await nothing_arrives(ws)
        await ws.send(ack("evt-1"))
        assert (await next_frame(ws))["event_id"] == "evt-2"
        await ws.send(ack("evt-1"))  # repeated: releases nothing
        assert await nothing_arrives(ws)


async def test_an_invalid_frame_gets_invalid_message_and_the_socket_stays_up(
    daphne_url, live_session, trader_key
):
    async with open_socket(ws_url(daphne_url, live_session), trader_key) as ws:
        await next_frame(ws)
        for bad in ("not json", json.dumps({"type": "subscribe"}), '{"type":"event_ack"}'):
            await ws.send(bad)
            error = await next_frame(ws)
            assert (error["type"], error["code"]) == ("error", "INVALID_MESSAGE")
            assert error["event_id"].startswith("evt-")
        await ws.send(json.dumps({"type": "pong"}))
        await ws.send(ack("evt-1"))
        assert (await next_frame(ws))["type"] == "candle"


async def test_a_reconnecting_client_resumes_after_its_cursor(
    daphne_url, live_session, trader_key
):
    url = ws_url(daphne_url, live_session)
    async with open_socket(url, trader_key) as ws:
        sent = [await next_frame(ws)]
        for _ in range(2):
            await ws.send(ack(sent[-1]["event_id"]))
            sent.append(await next_frame(ws))
    assert [f["event_id"] for f in sent] == ["evt-1", "evt-2", "evt-3"]
    async with open_socket(url + "?last_event_id=evt-1", trader_key) as ws:
        assert [await next_frame(ws), await next_frame(ws)] == sent[1:]
    async with open_socket(url, trader_key, **{"Last-Event-ID": "evt-2"}) as ws:
        assert await next_frame(ws) == sent[2]
    async with open_socket(url, trader_key) as ws:  # no cursor: what is not acked yet
        assert await next_frame(ws) == sent[2]
        await ws.send(ack("evt-3"))
        assert (await next_frame(ws))["event_id"] == "evt-4"


async def test_cancelling_a_running_session_announces_and_closes_the_socket(
    daphne_url, start_backtest, trader_key
):
    from django.utils import timezone

    from runtimes.services import cancel_session

    session = await in_thread(start_backtest)()
    async with open_socket(ws_url(daphne_url, session), trader_key) as ws:
        await next_frame(ws)
        await in_thread(lambda: cancel_session(session=session, now=timezone.now()))()
        notice = await next_frame(ws)
        assert (notice["type"], notice["event"]) == ("connection", "DISCONNECTING")
        with pytest.raises(ConnectionClosed):
            await next_frame(ws)
    session = await in_thread(wait_for_state)(session, {"cancelled"}, 3)
    assert session.failure_reason == "cancelled"
    assert await in_thread(session.events.count)() == session.events_sent == 2
    with pytest.raises(InvalidStatus) as refused:  # the SDK's reconnect ends here, for good
        async with open_socket(ws_url(daphne_url, session), trader_key):
            pass
    assert refused.value.response.status_code == 403


async def test_a_session_nobody_connects_to_fails_after_its_connect_timeout(start_backtest):
    # Queued as a first request does, so its host runs and waits for a socket that never comes
    # (a session never contacted at all fails by the sweep: tests/runtimes/shell/test_fair_share).
    session = await in_thread(ask_for_worker)(await in_thread(start_backtest)(connect_timeout_s=1))
    session = await in_thread(wait_for_state)(session, {"failed"}, 5)
    assert session.failure_reason == "no strategy connected within 1 s"
    assert session.started_at is None


async def test_a_strategy_that_stops_acking_fails_the_session_after_its_idle_timeout(
    daphne_url, start_backtest, trader_key
):
    session = await in_thread(start_backtest)(idle_timeout_s=1)
    async with open_socket(ws_url(daphne_url, session), trader_key) as ws:
        await next_frame(ws)
        session = await in_thread(wait_for_state)(session, {"failed"}, 5)
        notice = await next_frame(ws)
    assert session.failure_reason == "strategy stopped acknowledging for 1 s"
    assert notice["error"] == "strategy stopped acknowledging for 1 s"
    assert (session.events_sent, session.events_acked) == (2, 0)


@pytest.mark.skipif(
    not settings.CELERY_EMBEDDED_WORKER,
    reason="the crash is injected by patching commands.HANDLERS in this process, which a "
           "separate worker process (distributed topology) never sees",
)
async def test_a_crashing_host_fails_the_session_and_releases_its_socket(
    daphne_url, start_backtest, trader_key, monkeypatch
):
    import httpx

    from runtimes.hosting import commands

    def explode(*args):
        raise RuntimeError("boom")

    monkeypatch.setitem(commands.HANDLERS, "capabilities", explode)
    session = await in_thread(start_backtest)()
    base = f"{daphne_url}/sessions/{session.id}"
    async with open_socket(ws_url(daphne_url, session), trader_key) as ws:
        await next_frame(ws)
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {trader_key}"}) as http:
            answer = await http.get(f"{base}/v1/capabilities")
        # The host ends the session before it closes its mailbox: the answer says it ended.
        assert (answer.status_code, answer.json()["code"], answer.json()["message"]) == (
            503, "SHUTTING_DOWN", "The session has failed.")
        notice = await next_frame(ws)
        assert (notice["event"], notice["error"]) == ("DISCONNECTING", "internal error in the host")
        with pytest.raises(ConnectionClosed):
            await next_frame(ws)
    session = await in_thread(wait_for_state)(session, {"failed"}, 3)
    assert session.failure_reason == "internal error in the host"


async def test_a_socket_of_a_session_whose_host_died_closes_once_the_session_is_reaped(
    daphne_url, trader_key, owner, workspace, dataset, monkeypatch
):
    from datetime import timedelta

    from django.utils import timezone

    import runtimes.transport.consumers
    from runtimes.hosting.leases import reap_lost_sessions
    from runtimes.models import State, TradingSession

    monkeypatch.setattr(runtimes.transport.consumers, "ENDED_CHECK_SECONDS", 0.2)
    session = await in_thread(TradingSession.objects.create)(
        workspace=workspace, created_by=owner, dataset=dataset, symbols=["BTCUSDT"],
        timeframe="1m", state=State.RUNNING, total_batches=300,
        lease_expires_at=timezone.now() - timedelta(seconds=1))

    async with open_socket(ws_url(daphne_url, session), trader_key) as ws:
        assert await nothing_arrives(ws, 0.5)  # accepted: its host is gone, nobody answers
        assert await in_thread(reap_lost_sessions)() == [str(session.id)]
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)

    assert closed.value.rcvd.code == 1000  # as a host closes (daphne drops the reason)
    with pytest.raises(InvalidStatus) as refused:  # the SDK's reconnect is refused: final
        async with open_socket(ws_url(daphne_url, session), trader_key):
            pass
    assert refused.value.response.status_code == 403
