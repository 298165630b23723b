"""Share links: a session URL that carries its own credential, for clients that cannot send
headers. The unmodified SDK, sync and async, given only that URL, runs every call and the
stream; revoked or expired links are 401s; live platforms never get one; one workspace's link
never opens another's session; the token stays out of logs and error messages."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import timedelta
from decimal import Decimal
from functools import partial

import httpx
import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient
from tektii import (
    AsyncTradingGateway,
    AuthenticationError,
    OrderStatus,
    TradingGateway,
)

from tests.runtimes.conftest import SYMBOL, new_backtest_session, wait_for_state
from tests.runtimes.shell.sdk_client import act_on_candles

in_thread = partial(sync_to_async, thread_sensitive=False)


def links_url(session) -> str:
    return f"/api/v1/workspaces/{session.workspace_id}/sessions/{session.id}/share-links"


def share(client, session, **body):
    return client.post(links_url(session), body, format="json")


@pytest.fixture
def stranger_dataset(stranger_workspace, btc_csv):
    from strategies.services import register_dataset

    return register_dataset(workspace=stranger_workspace, name="BTC 1m", files={SYMBOL: btc_csv})


@pytest.fixture
def no_key_in_the_environment(monkeypatch):
    for name in ("TEKTII_TRADING_GATEWAY_API_KEY", "TRADING_GATEWAY_API_KEY",
                 "TEKTII_TRADING_GATEWAY_URL", "TRADING_GATEWAY_URL"):
        monkeypatch.delenv(name, raising=False)


# -- the management API ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_link_is_made_listed_and_revoked_and_its_url_is_shown_once(
    owner_client, owner, workspace, dataset
):
    session = new_backtest_session(workspace, owner, dataset)
    made = share(owner_client, session, label="grafana", expires_in_s=3600)
    assert made.status_code == 201, made.json()
    body = made.json()
    token = body["url"].removeprefix("http://testserver/share/")
    assert token.startswith(body["prefix"] + "_") and len(token) == 4 + 12 + 1 + 40
    assert (body["label"], body["made_with"], body["revoked_at"]) == ("grafana", "api_key", None)

    listed = owner_client.get(links_url(session)).json()
    assert [(link["id"], "url" in link) for link in listed] == [(body["id"], False)]
    assert token not in json.dumps(listed)

    revoked = owner_client.delete(f"{links_url(session)}/{body['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    answer = APIClient().get(f"/share/{token}/v1/account")
    assert answer.status_code == 401
    assert answer.json() == {"code": "UNAUTHORIZED", "details": {"code": "INVALID_API_KEY"},
                             "message": "Invalid, revoked or expired share link."}
    assert token not in answer.content.decode()


@pytest.mark.django_db
def test_an_expired_link_is_a_401_with_the_envelope(owner_client, owner, workspace, dataset):
    from django.utils import timezone

    from runtimes.models import ShareLink

    session = new_backtest_session(workspace, owner, dataset)
    url = share(owner_client, session).json()["url"].removeprefix("http://testserver")
    assert APIClient().get(url + "/v1/account").status_code == 200
    ShareLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = APIClient().get(url + "/v1/account")
    assert (expired.status_code, expired.json()["code"]) == (401, "UNAUTHORIZED")


@pytest.mark.django_db
def test_a_link_expires_in_24_hours_by_default_and_never_later_than_a_week(
    owner_client, owner, workspace, dataset
):
    from datetime import datetime

    session = new_backtest_session(workspace, owner, dataset)
    body = share(owner_client, session).json()
    lifetime = (datetime.fromisoformat(body["expires_at"])
                - datetime.fromisoformat(body["created_at"]))
    assert lifetime == timedelta(hours=24)
    too_long = share(owner_client, session, expires_in_s=7 * 86400 + 1)
    assert (too_long.status_code, too_long.json()["code"]) == (400, "VALIDATION_ERROR")


@pytest.mark.django_db
@pytest.mark.parametrize("platform", ["alpaca-live", "binance-live"])
def test_a_live_platforms_session_refuses_a_link_with_a_reason(
    owner_client, owner, workspace, dataset, platform
):
    from runtimes.models import TradingSession

    session = new_backtest_session(workspace, owner, dataset)
    TradingSession.objects.filter(pk=session.pk).update(platform=platform)
    refused = share(owner_client, session)
    assert refused.status_code == 400
    assert refused.json()["code"] == "SHARE_NOT_ALLOWED"
    assert "real money" in refused.json()["message"]
    assert not session.share_links.exists()


@pytest.mark.django_db
def test_making_a_link_needs_trade_paper(owner, workspace, dataset, make_api_key):
    session = new_backtest_session(workspace, owner, dataset)
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(owner, workspace)[1]}")
    assert share(reader, session).status_code == 403
    assert reader.get(links_url(session)).status_code == 403


@pytest.mark.django_db
def test_another_workspaces_link_never_opens_this_session(
    owner_client, stranger_client, owner, workspace, dataset, stranger, stranger_workspace,
    stranger_dataset
):
    mine = new_backtest_session(workspace, owner, dataset)
    theirs = new_backtest_session(stranger_workspace, stranger, stranger_dataset)
    assert share(stranger_client, mine).status_code == 404
    assert stranger_client.get(links_url(mine)).status_code == 404
    mine_link = share(owner_client, mine).json()
    assert stranger_client.delete(f"{links_url(mine)}/{mine_link['id']}").status_code == 404
    assert stranger_client.delete(f"{links_url(theirs)}/{mine_link['id']}").status_code == 404

    their_url = share(stranger_client, theirs).json()["url"].removeprefix("http://testserver")
    assert APIClient().get(their_url + "/v1/session").json()["id"] == str(theirs.id)
    token = their_url.removeprefix("/share/")
    # Not a key: the token opens nothing but its own URL.
    for header in ("HTTP_AUTHORIZATION", "HTTP_X_API_KEY"):
        value = f"Bearer {token}" if header == "HTTP_AUTHORIZATION" else token
        answer = APIClient().get(f"/sessions/{mine.id}/v1/account", **{header: value})
        assert answer.status_code == 401, header
    assert [link["id"] for link in owner_client.get(links_url(mine)).json()] == [mine_link["id"]]


@pytest.mark.django_db
def test_a_link_acts_with_its_makers_access_now(
    owner_client, owner, teammate, workspace, dataset, make_api_key
):
    from accounts.models import Membership, Role
    from accounts.services import change_member_role, revoke_api_key

    session = new_backtest_session(workspace, owner, dataset)
    key, plaintext = make_api_key(teammate, workspace, scopes=("read", "trade:paper"))
    teammate_client = APIClient()
    teammate_client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    url = share(teammate_client, session).json()["url"].removeprefix("http://testserver")
    assert APIClient().get(url + "/v1/account").status_code == 200

    membership = Membership.objects.get(workspace=workspace, user=teammate)
    change_member_role(membership=membership, role=Role.VIEWER, by=owner)
    demoted = APIClient().get(url + "/v1/account")
    assert (demoted.status_code, demoted.json()["details"]) == (
        403, {"required_scope": "trade:paper", "role": "viewer"})

    change_member_role(membership=membership, role=Role.MEMBER, by=owner)
    assert APIClient().get(url + "/v1/account").status_code == 200
    revoke_api_key(key=key, by=owner)
    assert APIClient().get(url + "/v1/account").status_code == 401


@pytest.mark.django_db
def test_health_and_unknown_routes_under_a_link_answer_as_a_session_does(
    owner_client, owner, workspace, dataset
):
    session = new_backtest_session(workspace, owner, dataset)
    url = share(owner_client, session).json()["url"].removeprefix("http://testserver")
    health = APIClient().get(url + "/health").json()
    assert health["providers"] == [{"platform": "backtest", "connected": False,
                                    "stale_instruments": []}]
    for path in (url + "/v1/nope", "/share/psl_nope/v1/account", "/share/"):
        answer = APIClient().get(path)
        assert answer["Content-Type"] == "application/json", path
        assert answer.status_code in (401, 404), path


# -- out of logs ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_token_is_kept_out_of_the_logs_and_the_access_log(
    owner_client, owner, workspace, dataset
):
    import logging

    from config.logging import RedactingAccessLog, RedactSecretsFilter

    session = new_backtest_session(workspace, owner, dataset)
    token = share(owner_client, session).json()["url"].removeprefix("http://testserver/share/")

    stream = io.StringIO()
    RedactingAccessLog(stream)("http", "complete", {
        "client": "127.0.0.1:5000", "method": "GET", "path": f"/share/{token}/v1/account",
        "status": 200, "size": 10})
    RedactingAccessLog(stream)("websocket", "connecting", {
        "client": "127.0.0.1:5000", "path": f"/share/{token}/v1/ws"})
    written = stream.getvalue()
    assert token not in written and written.count("/share/***REDACTED***/v1/") == 2

    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1,
                               "Unauthorized: %s", (f"/share/{token}/v1/account",), None)
    RedactSecretsFilter().filter(record)
    assert record.getMessage() == "Unauthorized: /share/***REDACTED***/v1/account"


# -- the unmodified SDK, given only the URL ------------------------------------------------------


def sync_calls(url: str, state: dict) -> None:
    """The sync client, from a plain thread, with the share URL and no key."""
    with TradingGateway(base_url=url, max_retries=0) as gw:
        assert gw.get_health().status.value == "connected"
        assert Decimal(gw.get_account().equity) > 0
        assert [p.quantity for p in gw.list_positions()] == ["0.5"]
        assert gw.get_order(state["entry"]).status == OrderStatus.FILLED
        assert len(gw.get_bars(SYMBOL, "1m", limit=3)) == 3
        state["sync"] = True


async def every_call(gw: AsyncTradingGateway, step: int, state: dict) -> None:
    if step == 10:
        assert (await gw.get_health()).status.value == "connected"
        assert (await gw.get_capabilities()).position_mode.value == "NETTING"
        assert (await gw.get_status()).connected is True
        assert Decimal((await gw.get_account()).equity) == Decimal(100_000)
        state["entry"] = (await gw.submit_order(SYMBOL, "buy", "0.5")).id
        return
    assert (await gw.get_order(state["entry"])).status == OrderStatus.FILLED
    assert [o.id for o in await gw.get_order_history()] == [state["entry"]]
    [position] = await gw.list_positions()
    assert (await gw.get_position(position.id)).quantity == "0.5"
    assert [t.order_id for t in await gw.list_trades()] == [state["entry"]]
    quote = await gw.get_quote(SYMBOL)
    assert len(await gw.get_bars(SYMBOL, "1m", limit=5)) == 5
    limit = await gw.submit_order(SYMBOL, "buy", "0.1", order_type="limit",
                                  limit_price=str(Decimal(quote.last) / 2))
    assert [o.id for o in await gw.list_orders()] == [limit.id]
    assert (await gw.modify_order(limit.id, limit_price="1100")).order.limit_price == "1100"
    assert (await gw.cancel_order(limit.id)).success
    assert (await gw.cancel_all_orders()).cancelled_count == 0
    assert (await gw.get_circuit_breakers()).adapter.state == "closed"
    assert (await gw.reset_circuit_breakers()).exit_order.failure_count == 0
    await asyncio.to_thread(sync_calls, state["url"], state)
    assert (await gw.close_position(position.id)).status in (OrderStatus.PENDING,
                                                             OrderStatus.OPEN)
    assert len(await gw.close_all_positions()) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_the_sdk_given_only_the_share_url_runs_every_call_and_the_stream(
    daphne_url, start_backtest, trader_key, no_key_in_the_environment
):
    session = await in_thread(start_backtest)()
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {trader_key}"}) as manage:
        made = await manage.post(f"{daphne_url}{links_url(session)}", json={})
    url = made.json()["url"]
    assert url.startswith(f"{daphne_url}/share/psl_")
    state: dict = {"url": url}
    gw = AsyncTradingGateway(base_url=url, max_retries=0)
    candles = await act_on_candles(gw, (10, 11), lambda candle: every_call(gw, candle, state))
    session = await in_thread(wait_for_state)(session, {"completed", "failed"})
    assert (session.state, candles, state.get("sync")) == ("completed", 300, True)
    async with AsyncTradingGateway(base_url=url, max_retries=0) as after:  # the final state
        assert [o.status for o in await after.get_order_history()] == [
            OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.FILLED]


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_revoking_a_link_closes_its_socket_and_refuses_its_calls(
    daphne_url, start_backtest, no_key_in_the_environment
):
    """Raw WebSocket: a browser's socket (no headers) on the share URL; the revocation closes it
    with 4001 after a DISCONNECTING frame saying why, and the URL then opens nothing."""
    from django.utils import timezone
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    from runtimes.models import ShareLink
    from runtimes.transport.share_links import create_share_link, revoke_share_link

    session = await in_thread(start_backtest)()
    link, raw = await in_thread(lambda: create_share_link(
        session=session, created_by=session.created_by, api_key=None))()
    ws_url = f"{daphne_url.replace('http', 'ws', 1)}/share/{raw}/v1/ws"
    frames: list[dict] = []
    async with connect(ws_url) as ws:
        first = json.loads(await ws.recv())
        assert first["type"] == "candle"
        await in_thread(lambda: revoke_share_link(link=ShareLink.objects.get(pk=link.pk),
                                                  now=timezone.now()))()
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(5):
                async for text in ws:
                    frames.append(json.loads(text))
        assert ws.close_code == 4001
    assert (frames[-1]["type"], frames[-1]["error"]) == ("connection",
                                                        "This share link was revoked.")
    with pytest.raises(InvalidStatus) as handshake:
        async with connect(ws_url):
            pass
    assert handshake.value.response.status_code == 403
    async with AsyncTradingGateway(base_url=f"{daphne_url}/share/{raw}", max_retries=0) as gw:
        with pytest.raises(AuthenticationError) as refused:
            await gw.get_account()
    assert refused.value.details == {"code": "INVALID_API_KEY"}


@pytest.mark.django_db
def test_a_link_ignores_any_key_sent_with_it(owner_client, owner, workspace, dataset):
    """A client configured with a stale key in its environment still reaches the session."""
    session = new_backtest_session(workspace, owner, dataset)
    url = share(owner_client, session).json()["url"].removeprefix("http://testserver")
    for header, value in (("HTTP_AUTHORIZATION", "Bearer prt_abcdefghijkl_" + "x" * 40),
                          ("HTTP_X_API_KEY", "stale")):
        answer = APIClient().get(url + "/v1/account", **{header: value})
        assert (answer.status_code, answer.json()["equity"]) == (200, "100000"), header
