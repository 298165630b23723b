"""The protocol as clients find it at its edges: `/health` without a key, the reference's
`INVALID_API_KEY`, a queued session that answers at once, and an ended session whose final
state stays readable; with the unmodified tektii SDK where a client meets them, raw HTTP where
the SDK cannot show it."""

from __future__ import annotations

import time
from decimal import Decimal
from functools import partial

import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient
from tektii import (
    AsyncTradingGateway,
    AuthenticationError,
    CandleEvent,
    OrderStatus,
    ProviderUnavailableError,
    TradingGateway,
)

from tests.runtimes.conftest import SYMBOL, new_backtest_session, wait_for_state

in_thread = partial(sync_to_async, thread_sensitive=False)
SESSION_TAIL = ("v1/session", "v1/account", "v1/positions", "v1/orders", "v1/orders/history",
                "v1/trades")


def queued(session):
    """As if every worker slot were busy: queued, and no dispatch task sent (sync)."""
    from django.utils import timezone

    from runtimes.models import TradingSession

    TradingSession.objects.filter(pk=session.pk).update(state="queued", queued_at=timezone.now())
    session.refresh_from_db()
    return session


# -- 1. health -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_health_answers_without_a_key_with_the_status_only(owner, workspace, dataset):
    session = new_backtest_session(workspace, owner, dataset)
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer not-a-key"}):
        response = APIClient().get(f"/sessions/{session.id}/health", **headers)
        assert response.status_code == 200
        assert response.json() == {"status": "degraded", "version": "", "git_sha": "",
                                   "providers": []}


@pytest.mark.django_db
def test_health_with_a_key_shows_the_provider(owner_client, owner, workspace, dataset, settings):
    session = new_backtest_session(workspace, owner, dataset)
    body = owner_client.get(f"/sessions/{session.id}/health").json()
    assert body == {"status": "degraded", "version": settings.VERSION,
                    "git_sha": getattr(settings, "GIT_SHA", "unknown"),
                    "providers": [{"platform": "backtest", "connected": False,
                                   "stale_instruments": []}]}


# -- 3. error codes ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("headers,code", [
    ({}, "MISSING_API_KEY"),
    ({"HTTP_AUTHORIZATION": "Bearer not-one-of-ours"}, "INVALID_API_KEY"),
    ({"HTTP_X_API_KEY": "garbage"}, "INVALID_API_KEY"),
    ({"HTTP_AUTHORIZATION": "Bearer prt_abcdefghijkl_" + "x" * 40}, "INVALID_API_KEY"),
])
def test_a_bad_key_is_invalid_and_only_a_missing_one_is_missing(
    owner, workspace, dataset, headers, code
):
    session = new_backtest_session(workspace, owner, dataset)
    response = APIClient().get(f"/sessions/{session.id}/v1/account", **headers)
    assert response.status_code == 401
    assert response.json() == {
        "code": "UNAUTHORIZED", "details": {"code": code},
        "message": response.json()["message"]}


@pytest.mark.django_db
def test_the_management_api_tells_a_bad_key_from_a_missing_one_too(workspace):
    url = f"/api/v1/workspaces/{workspace.id}/sessions"
    assert APIClient().get(url).json()["details"] == {"code": "MISSING_API_KEY"}
    bad = APIClient().get(url, HTTP_AUTHORIZATION="Bearer nope-nope-nope")
    assert (bad.status_code, bad.json()["details"]) == (401, {"code": "INVALID_API_KEY"})


@pytest.mark.django_db
def test_a_body_that_is_not_json_is_the_references_invalid_request(owner_client, owner,
                                                                     workspace, dataset):
    session = new_backtest_session(workspace, owner, dataset)
    response = owner_client.post(f"/sessions/{session.id}/v1/orders", "symbol=BTCUSDT",
                                 content_type="text/plain")
    assert response.status_code == 400
    assert response.json() == {"code": "INVALID_REQUEST", "details": {},
                               "message": "Invalid JSON: the body must be application/json."}


# -- 4. a queued session answers at once -----------------------------------------------------------


@pytest.mark.django_db
def test_a_queued_session_answers_reads_at_once_from_its_configured_state(
    owner_client, owner, workspace, dataset
):
    session = queued(new_backtest_session(workspace, owner, dataset,
                                          initial_cash=Decimal("2500.50")))
    base = f"/sessions/{session.id}/"
    started = time.monotonic()
    answers = {tail: owner_client.get(base + tail) for tail in SESSION_TAIL}
    elapsed = time.monotonic() - started

    assert {tail: r.status_code for tail, r in answers.items()} == dict.fromkeys(SESSION_TAIL, 200)
    assert answers["v1/account"].json() == {
        "balance": "2500.5", "equity": "2500.5", "margin_used": "0",
        "margin_available": "2500.5", "unrealized_pnl": "0", "currency": "USD"}
    info = answers["v1/session"].json()
    assert (info["state"], info["queue_position"], info["platform"], info["symbols"]) == (
        "queued", 1, "backtest", [SYMBOL])
    assert [answers[t].json() for t in SESSION_TAIL[2:]] == [[], [], [], []]
    assert elapsed < 1.0  # FIRST_CONTACT_WAIT_S is 1 s: nothing here waited for it


@pytest.mark.django_db
def test_a_created_sessions_first_read_queues_it_and_answers_at_once(
    owner_client, owner, workspace, dataset
):
    session = new_backtest_session(workspace, owner, dataset)
    started = time.monotonic()
    response = owner_client.get(f"/sessions/{session.id}/v1/positions")
    assert (response.status_code, response.json()) == (200, [])
    assert time.monotonic() - started < 0.5
    session.refresh_from_db()
    assert session.state == "queued"


@pytest.mark.django_db
def test_what_a_queued_session_cannot_do_yet_is_a_503_with_its_place_in_line(
    owner_client, owner, workspace, dataset
):
    session = queued(new_backtest_session(workspace, owner, dataset))
    response = owner_client.get(f"/sessions/{session.id}/v1/quotes/{SYMBOL}")
    assert (response.status_code, response["Retry-After"]) == (503, "1")
    assert response.json()["details"] == {"state": "queued", "queue_position": 1,
                                          "retry_after_seconds": 1}


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
def test_the_sdk_reads_a_queued_session_at_once(daphne_url, owner, workspace, dataset,
                                                 trader_key):
    session = queued(new_backtest_session(workspace, owner, dataset))
    with TradingGateway(base_url=f"{daphne_url}/sessions/{session.id}", api_key=trader_key,
                        max_retries=0) as gw:
        started = time.monotonic()
        assert Decimal(gw.get_account().equity) == Decimal(100_000)
        assert (gw.list_positions(), gw.list_orders(), gw.get_order_history(),
                gw.list_trades()) == ([], [], [], [])
        assert time.monotonic() - started < 2.0
        with pytest.raises(AuthenticationError) as bad:
            TradingGateway(base_url=f"{daphne_url}/sessions/{session.id}", api_key="wrong",
                           max_retries=0).get_account()
        assert bad.value.details == {"code": "INVALID_API_KEY"}


# -- 2. an ended session keeps its final state readable --------------------------------------------


@pytest.mark.django_db
def test_a_session_cancelled_before_it_started_answers_its_configured_state(
    owner_client, owner, workspace, dataset
):
    session = new_backtest_session(workspace, owner, dataset, initial_cash=Decimal(5000))
    owner_client.post(f"/api/v1/workspaces/{workspace.id}/sessions/{session.id}/cancel")
    account = owner_client.get(f"/sessions/{session.id}/v1/account")
    info = owner_client.get(f"/sessions/{session.id}/v1/session").json()
    assert (account.status_code, account.json()["equity"]) == (200, "5000")
    assert (info["state"], info["failure_reason"]) == ("cancelled", "cancelled")
    order = owner_client.post(f"/sessions/{session.id}/v1/orders",
                              {"symbol": SYMBOL, "side": "buy", "quantity": "1",
                               "order_type": "market"}, format="json")
    assert (order.status_code, order.json()["code"]) == (503, "SHUTTING_DOWN")


@pytest.mark.django_db
def test_an_ended_run_whose_final_state_was_lost_says_so(owner_client, owner, workspace, dataset):
    from django.utils import timezone

    session = new_backtest_session(workspace, owner, dataset)
    session.transition(to="failed", allowed_from={"created"}, started_at=timezone.now(),
                       finished_at=timezone.now(), failure_reason="internal error in the host")
    response = owner_client.get(f"/sessions/{session.id}/v1/account")
    assert response.status_code == 503
    assert response.json() == {
        "code": "SHUTTING_DOWN", "details": {"state": "failed"},
        "message": "The session has failed; its final state was not recorded."}


async def buy_then(gw: AsyncTradingGateway, events, *, stop_after: int | None) -> None:
    """Buy 0.5 on candle 3 and another 0.25 resting far below; stop reading after `stop_after`
    candles (None: to the end)."""
    candles = 0
    async for event in events:
        if isinstance(event, CandleEvent):
            candles += 1
            if candles == 3:
                await gw.submit_order(SYMBOL, "buy", "0.5", client_order_id="entry")
                await gw.submit_order(SYMBOL, "buy", "0.25", order_type="limit",
                                      limit_price="1000", client_order_id="resting")
            if candles == stop_after:
                return


async def assert_final_state_readable(gw: AsyncTradingGateway, base: str, key: str, session,
                                      *, state: str) -> None:
    import httpx

    result = await in_thread(lambda: type(session).objects.get(pk=session.pk).result)()
    account = await gw.get_account()
    assert account.model_dump(mode="json", exclude_none=True) == result.account
    [position] = await gw.list_positions()
    assert (position.symbol, position.quantity) == (SYMBOL, "0.5")
    assert (await gw.get_position(position.id)).quantity == "0.5"
    [resting] = await gw.list_orders()
    assert (resting.client_order_id, resting.status) == ("resting", OrderStatus.OPEN)
    [entry] = await gw.get_order_history()
    assert (entry.client_order_id, entry.status) == ("entry", OrderStatus.FILLED)
    assert (await gw.get_order(entry.id)).filled_quantity == "0.5"
    assert [t.order_id for t in await gw.list_trades()] == [entry.id]
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as raw:
        info = (await raw.get(f"{base}/v1/session")).json()
    assert info["state"] == state and info["events_sent"] > 3
    with pytest.raises(ProviderUnavailableError) as refused:
        await gw.submit_order(SYMBOL, "buy", "1")
    assert refused.value.code == "SHUTTING_DOWN"


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_the_sdk_reads_the_final_state_of_a_completed_backtest(
    daphne_url, start_backtest, trader_key
):
    session = await in_thread(start_backtest)()
    base = f"{daphne_url}/sessions/{session.id}"
    gw = AsyncTradingGateway(base_url=base, api_key=trader_key, max_retries=0)
    async with gw:
        async with gw.stream() as events:
            await buy_then(gw, events, stop_after=None)
        session = await in_thread(wait_for_state)(session, {"completed", "failed"})
        assert session.state == "completed"
        await assert_final_state_readable(gw, base, trader_key, session, state="completed")


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_the_sdk_reads_the_final_state_of_a_cancelled_backtest(
    daphne_url, start_backtest, trader_key
):
    from django.utils import timezone

    from runtimes.services import cancel_session

    session = await in_thread(start_backtest)()
    base = f"{daphne_url}/sessions/{session.id}"
    gw = AsyncTradingGateway(base_url=base, api_key=trader_key, max_retries=0)
    async with gw:
        async with gw.stream() as events:
            await buy_then(gw, events, stop_after=6)
            await in_thread(lambda: cancel_session(session=session, now=timezone.now()))()
            session = await in_thread(wait_for_state)(session, {"cancelled"})
        await assert_final_state_readable(gw, base, trader_key, session, state="cancelled")
