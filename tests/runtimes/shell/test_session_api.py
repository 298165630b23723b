"""The management API of sessions and the Trading API's front door: scoping, auth, envelopes."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_client(api_client, trader_key):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {trader_key}")
    return api_client


@pytest.fixture
def stranger_client(stranger, stranger_workspace, make_api_key):
    from rest_framework.test import APIClient

    client = APIClient()
    _, key = make_api_key(stranger, stranger_workspace, scopes=("read", "trade:paper"))
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def sessions_url(workspace) -> str:
    return f"/api/v1/workspaces/{workspace.id}/sessions"


def create(client, workspace, dataset, **extra):
    body = {"dataset": str(dataset.id), "from": "2021-04-02T00:10:00Z",
            "to": "2021-04-02T01:00:00Z", "initial_cash": "5000", "slippage_bps": "1.5",
            "commission": {"percent": "0.1"}, "connect_timeout_s": 5, **extra}
    return client.post(sessions_url(workspace), body, format="json")


def test_owner_creates_a_backtest_session_and_gets_its_base_url(
    owner_client, workspace, dataset, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = create(owner_client, workspace, dataset)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "created"
    assert body["base_url"] == f"http://testserver/sessions/{body['id']}"
    assert (body["symbols"], body["timeframe"], body["initial_cash"]) == (["BTCUSDT"], "1m", "5000")
    assert (body["from"], body["to"]) == ("2021-04-02T00:10:00Z", "2021-04-02T01:00:00Z")
    assert body["commission"] == {"percent": "0.1"}
    assert len(callbacks) == 1  # the host is enqueued after commit, once


def test_unknown_symbol_is_a_400_envelope(owner_client, workspace, dataset):
    response = create(owner_client, workspace, dataset, symbols=["ETHUSDT"])
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_VALUE"


def test_owner_lists_shows_and_cancels_a_session(owner_client, workspace, dataset):
    created = create(owner_client, workspace, dataset).json()
    listed = owner_client.get(sessions_url(workspace)).json()
    assert [s["id"] for s in listed] == [created["id"]]
    shown = owner_client.get(f"{sessions_url(workspace)}/{created['id']}").json()
    assert shown["id"] == created["id"]
    cancelled = owner_client.post(f"{sessions_url(workspace)}/{created['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"


def test_a_stranger_sees_404_for_another_workspaces_sessions(
    owner_client, stranger_client, workspace, dataset
):
    created = create(owner_client, workspace, dataset).json()
    assert stranger_client.get(sessions_url(workspace)).status_code == 404
    assert stranger_client.get(f"{sessions_url(workspace)}/{created['id']}").status_code == 404
    cancel = stranger_client.post(f"{sessions_url(workspace)}/{created['id']}/cancel")
    assert cancel.status_code == 404
    trading = stranger_client.get(f"/sessions/{created['id']}/v1/account")
    assert trading.status_code == 404
    assert trading.json()["code"] == "NOT_FOUND"


def test_a_stranger_cannot_start_a_session_on_another_workspaces_dataset(
    stranger_client, stranger_workspace, dataset
):
    assert create(stranger_client, stranger_workspace, dataset).status_code == 404


def test_trading_api_answers_401_envelopes_for_missing_and_bad_keys(
    owner_client, api_client, workspace, dataset
):
    from rest_framework.test import APIClient

    created = create(owner_client, workspace, dataset).json()
    url = f"/sessions/{created['id']}/v1/account"
    missing = APIClient().get(url)
    assert missing.status_code == 401
    assert missing.json()["code"] == "UNAUTHORIZED"
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer prt_abcdefgh_not-a-real-secret")
    assert bad.get(url).status_code == 401
    assert bad.get(url).json()["code"] == "UNAUTHORIZED"


def test_a_read_only_key_may_not_trade(owner, workspace, dataset, owner_client, make_api_key):
    from rest_framework.test import APIClient

    created = create(owner_client, workspace, dataset).json()
    reader = APIClient()
    reader.credentials(HTTP_X_API_KEY=make_api_key(owner, workspace, scopes=("read",))[1])
    response = reader.get(f"/sessions/{created['id']}/v1/account")
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"


def test_unknown_routes_under_a_session_are_json_404s(owner_client, workspace, dataset):
    created = create(owner_client, workspace, dataset).json()
    for path in ("v1/nope", "v1/account/", "health/extra", ""):
        response = owner_client.get(f"/sessions/{created['id']}/{path}")
        assert response.status_code == 404, path
        assert response.json()["code"] == "NOT_FOUND"


def test_an_ended_session_answers_shutting_down(owner_client, workspace, dataset):
    created = create(owner_client, workspace, dataset).json()
    owner_client.post(f"{sessions_url(workspace)}/{created['id']}/cancel")
    response = owner_client.get(f"/sessions/{created['id']}/v1/account")
    assert response.status_code == 503
    assert response.json()["code"] == "SHUTTING_DOWN"
