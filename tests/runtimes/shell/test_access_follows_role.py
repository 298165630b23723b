"""Authorisation follows the person, not just the key: every Trading API request and every open
socket is allowed by the credential's scope AND its creator's current role in the workspace.
Revoking a key, its expiry, removing or demoting its creator closes the sockets it opened within
a second, with a close code and a DISCONNECTING frame that says why (the SDK yields it)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from functools import partial

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.runtimes.conftest import ask_for_worker, wait_for_state
from tests.runtimes.shell import test_distributed_topology as distributed
from tests.runtimes.shell import test_session_live as live_view
from tests.runtimes.shell.test_session_websocket import next_frame, open_socket, ws_url

in_thread = partial(sync_to_async, thread_sensitive=False)
# Fixtures of other modules: the owner's session waiting for its strategy; a daphne process.
live_session = live_view.live_session
daphne_process_url = distributed.daphne_process_url
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

CLOSE_DEADLINE_S = 1.0
DEMOTED_KEY = (
    "The key's creator is a viewer of this workspace now, "
    "and a viewer may not use the 'trade:paper' scope."
)
ORDER = {"symbol": "BTCUSDT", "side": "buy", "order_type": "market", "quantity": "0.01"}


@pytest.fixture
async def teammate_key(teammate, workspace, make_api_key) -> tuple[object, str]:
    """The teammate's (a member's) key that may trade paper: (ApiKey, plaintext)."""
    return await in_thread(make_api_key)(teammate, workspace, ("read", "trade:paper"))


def demote(workspace, user, owner, role: str = "viewer") -> None:
    from accounts.models import Membership
    from accounts.services import change_member_role

    membership = Membership.objects.get(workspace=workspace, user=user)
    change_member_role(membership=membership, role=role, by=owner)


def remove(workspace, user, owner) -> None:
    from accounts.models import Membership
    from accounts.services import remove_member

    remove_member(membership=Membership.objects.get(workspace=workspace, user=user), by=owner)


def revoke(key, owner) -> None:
    from accounts.services import revoke_api_key

    revoke_api_key(key=key, by=owner)


async def post_order(daphne_url: str, session, raw_key: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"{daphne_url}/sessions/{session.id}") as client:
        return await client.post(
            "/v1/orders", json=ORDER, headers={"Authorization": f"Bearer {raw_key}"}, timeout=10
        )


async def closing_frames(ws) -> tuple[list[dict], float]:
    """Every frame until the server closes the socket, and how long that took (at most the
    deadline: a socket still open then fails the test)."""
    frames: list[dict] = []
    started = time.monotonic()
    try:
        async with asyncio.timeout(CLOSE_DEADLINE_S):
            async for text in ws:
                frames.append(json.loads(text))
    except TimeoutError:
        raise AssertionError(f"still open {CLOSE_DEADLINE_S} s later; got {frames}") from None
    except ConnectionClosed:
        pass
    return frames, time.monotonic() - started


# -- REST -------------------------------------------------------------------------------------


async def test_a_demoted_members_order_is_refused_with_403_and_the_envelope(
    daphne_url, live_session, teammate, teammate_key, owner, workspace
):
    _, raw = teammate_key
    assert (await post_order(daphne_url, live_session, raw)).status_code == 201

    await in_thread(demote)(workspace, teammate, owner)
    refused = await post_order(daphne_url, live_session, raw)

    assert refused.status_code == 403
    assert refused.json() == {
        "code": "FORBIDDEN",
        "message": DEMOTED_KEY,
        "details": {"required_scope": "trade:paper", "role": "viewer"},
    }


async def test_a_removed_members_key_is_refused_with_401(
    daphne_url, live_session, teammate, teammate_key, owner, workspace
):
    await in_thread(remove)(workspace, teammate, owner)
    refused = await post_order(daphne_url, live_session, teammate_key[1])
    assert (refused.status_code, refused.json()["code"]) == (401, "UNAUTHORIZED")


# -- opening a socket -------------------------------------------------------------------------


async def test_a_demoted_members_socket_handshake_is_refused_with_403(
    daphne_url, live_session, teammate, teammate_key, owner, workspace
):
    await in_thread(demote)(workspace, teammate, owner)
    with pytest.raises(InvalidStatus) as refused:
        async with open_socket(ws_url(daphne_url, live_session), teammate_key[1]):
            pass
    assert refused.value.response.status_code == 403


# -- an open socket closes within a second ----------------------------------------------------


async def closed_after(url: str, raw: str, change) -> tuple[str, int, float]:
    """Open a socket with `raw`, read the first frame, run `change` (sync, in a thread), and
    return (the DISCONNECTING frame's reason, the close code, seconds from change to close)."""
    async with open_socket(url, raw) as ws:
        await next_frame(ws)
        await in_thread(change)()
        frames, took = await closing_frames(ws)
    assert (frames[-1]["type"], frames[-1]["event"]) == ("connection", "DISCONNECTING")
    return frames[-1]["error"], ws.close_code, took


async def test_revoking_the_key_closes_its_open_socket_within_a_second(
    daphne_url, live_session, teammate_key, owner
):
    key, raw = teammate_key
    reason, code, took = await closed_after(
        ws_url(daphne_url, live_session), raw, lambda: revoke(key, owner)
    )
    assert (reason, code, took < CLOSE_DEADLINE_S) == ("This API key was revoked.", 4001, True)


async def test_demoting_the_keys_creator_to_viewer_closes_its_open_socket(
    daphne_url, live_session, teammate, teammate_key, owner, workspace
):
    reason, code, _ = await closed_after(
        ws_url(daphne_url, live_session),
        teammate_key[1],
        lambda: demote(workspace, teammate, owner),
    )
    assert (reason, code) == (DEMOTED_KEY, 4003)


async def test_demoting_an_owner_to_member_keeps_a_paper_socket_open(
    daphne_url, live_session, owner, teammate, workspace, make_api_key
):
    _, raw = await in_thread(make_api_key)(owner, workspace, ("trade:paper",))
    await in_thread(demote)(workspace, teammate, owner, "owner")
    async with open_socket(ws_url(daphne_url, live_session), raw) as ws:
        await next_frame(ws)
        await in_thread(demote)(workspace, owner, teammate, "member")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), CLOSE_DEADLINE_S)  # nothing: still allowed


async def test_removing_the_keys_creator_closes_its_open_socket(
    daphne_url, live_session, teammate, teammate_key, owner, workspace
):
    reason, code, _ = await closed_after(
        ws_url(daphne_url, live_session),
        teammate_key[1],
        lambda: remove(workspace, teammate, owner),
    )
    assert (reason, code) == ("The key's creator is no longer a member of this workspace.", 4001)


async def test_a_socket_closes_when_its_key_expires(
    daphne_url, live_session, teammate, workspace, make_api_key
):
    from django.utils import timezone

    expires_at = timezone.now() + timedelta(seconds=1.5)
    _, raw = await in_thread(make_api_key)(
        teammate, workspace, ("trade:paper",), expires_at=expires_at
    )

    def wait_for_expiry():  # the change here is time passing
        time.sleep(max(0.0, (expires_at - timezone.now()).total_seconds()))

    reason, code, _ = await closed_after(ws_url(daphne_url, live_session), raw, wait_for_expiry)
    assert (reason, code) == ("This API key has expired.", 4001)


# -- hosted runs: the session token acts for the user who started the run ---------------------


@pytest.fixture
async def teammates_session_token(start_backtest, teammate):
    """(session, token plaintext) of a session the teammate started, waiting for its strategy."""
    from django.utils import timezone

    from runtimes.services import cancel_session
    from runtimes.transport.authentication import mint_session_token

    def start():
        session = start_backtest(created_by=teammate)
        ask_for_worker(session)
        return session, mint_session_token(session=session, lifetime=timedelta(minutes=5))

    session, token = await in_thread(start)()
    await in_thread(wait_for_state)(session, {"waiting"})
    yield session, token
    await in_thread(lambda: cancel_session(session=session, now=timezone.now()))()
    await in_thread(wait_for_state)(session, {"cancelled", "completed", "failed"})


async def test_a_hosted_runs_token_follows_its_starters_role(
    daphne_url, teammates_session_token, teammate, owner, workspace
):
    session, token = teammates_session_token
    reason, code, _ = await closed_after(
        ws_url(daphne_url, session), token, lambda: demote(workspace, teammate, owner)
    )
    assert (reason, code) == (
        "The run's starter is a viewer of this workspace now, "
        "and a viewer may not use the 'trade:paper' scope.",
        4003,
    )
    refused = await post_order(daphne_url, session, token)
    assert (refused.status_code, refused.json()["details"]) == (
        403,
        {"required_scope": "trade:paper", "role": "viewer"},
    )


async def test_revoking_a_hosted_runs_tokens_closes_its_socket(daphne_url, teammates_session_token):
    from runtimes.transport.authentication import revoke_session_tokens

    session, token = teammates_session_token
    reason, code, _ = await closed_after(
        ws_url(daphne_url, session), token, lambda: revoke_session_tokens(session=session)
    )
    assert (reason, code) == ("This session token was revoked.", 4001)


# -- the dashboard's live view ----------------------------------------------------------------


async def test_removing_a_member_closes_their_dashboard_socket(
    daphne_url, live_session, teammate, owner, workspace
):
    cookie = await in_thread(live_view.login_cookie)(teammate)
    async with live_view.open_live(
        live_view.live_url(daphne_url, live_session), cookie=cookie, origin=daphne_url
    ) as ws:
        assert json.loads(await ws.recv())["type"] == "snapshot"
        await in_thread(remove)(workspace, teammate, owner)
        frames, _ = await closing_frames(ws)
    assert frames[-1] == {
        "type": "access_lost",
        "reason": "You are no longer a member of this workspace.",
    }
    assert ws.close_code == 4003


# -- distributed: the change and the socket in different processes ---------------------------


@pytest.mark.skipif(
    settings.TOPOLOGY != "distributed",
    reason="needs DATABASE_URL and REDIS_URL (the second run of .ci/run)",
)
async def test_revoking_in_one_process_closes_the_socket_served_by_another(
    daphne_process_url, live_session, teammate_key, owner
):
    key, raw = teammate_key
    listeners_before = await in_thread(access_listeners)()

    def revoke_once_the_web_process_listens():
        # Its first socket starts its listener; everything before that is re-checked anyway,
        # which would pass this test without the Redis path.
        deadline = time.monotonic() + 5
        while access_listeners() == listeners_before:
            assert time.monotonic() < deadline, "the web process never subscribed"
            time.sleep(0.01)
        revoke(key, owner)

    url = ws_url(daphne_process_url, live_session)
    reason, code, took = await closed_after(url, raw, revoke_once_the_web_process_listens)
    assert (reason, code, took < CLOSE_DEADLINE_S) == ("This API key was revoked.", 4001, True)


def access_listeners() -> int:
    """How many processes listen for access changes on Redis."""
    import redis

    from accounts.access_events import CHANNEL

    client = redis.Redis.from_url(settings.REDIS_URL)
    return int(dict(client.pubsub_numsub(CHANNEL))[CHANNEL.encode()])


# -- what the SDK makes of it -----------------------------------------------------------------


async def test_the_sdk_yields_the_reason_then_raises_the_refused_reconnect(
    daphne_url, live_session, teammate_key, owner
):
    from tektii import AsyncTradingGateway
    from tektii.models import CandleEvent, ConnectionEvent

    key, raw = teammate_key
    seen: list = []
    base_url = f"{daphne_url}/sessions/{live_session.id}"
    gateway = AsyncTradingGateway(base_url=base_url, api_key=raw, max_retries=0)
    async with gateway as gw, gw.stream() as events:
        with pytest.raises(InvalidStatus) as refused:
            async for event in events:
                seen.append(event)
                if isinstance(event, CandleEvent) and len(seen) == 1:
                    await in_thread(revoke)(key, owner)
    assert isinstance(seen[-1], ConnectionEvent)
    assert (seen[-1].event, seen[-1].error) == ("DISCONNECTING", "This API key was revoked.")
    assert refused.value.response.status_code == 403
