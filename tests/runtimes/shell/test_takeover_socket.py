"""A strategy socket of a session that moved to another host (the reaper requeued it, or its
worker drained it): its watchdog closes it cleanly (1000), so the client reconnects at once (the
SDK does on a clean close) and reaches the next host."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

import pytest
from asgiref.sync import sync_to_async
from websockets.exceptions import ConnectionClosed

from tests.runtimes.shell.test_session_websocket import nothing_arrives, open_socket, ws_url

in_thread = partial(sync_to_async, thread_sensitive=False)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


async def test_a_socket_of_a_session_requeued_by_the_reaper_closes_with_going_away(
    daphne_url, trader_key, owner, workspace, monkeypatch
):
    from django.utils import timezone

    import runtimes.transport.consumers
    from runtimes.hosting.leases import reap_lost_sessions
    from runtimes.models import State, TradingSession

    monkeypatch.setattr(runtimes.transport.consumers, "ENDED_CHECK_SECONDS", 0.2)
    monkeypatch.setattr("runtimes.hosting.leases.ask_for_a_worker", lambda: None)
    session = await in_thread(TradingSession.objects.create)(
        workspace=workspace, created_by=owner, platform="mock", symbols=["AAPL"],
        timeframe="1m", state=State.RUNNING, lease_fence=3,
        lease_expires_at=timezone.now() - timedelta(seconds=1))

    async with open_socket(ws_url(daphne_url, session), trader_key) as ws:
        assert await nothing_arrives(ws, 0.5)  # its host is gone, nobody answers
        assert await in_thread(reap_lost_sessions)() == [str(session.id)]
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)

    assert closed.value.rcvd.code == 1000  # the SDK reconnects at once
    session = await in_thread(TradingSession.objects.get)(pk=session.pk)
    assert (session.state, session.lease_fence) == ("queued", 4)
