"""The management API of deployments (/api/v1/workspaces/{ws}/deployments): create, list, show,
start/stop/pause/resume, delete; 409 with the error envelope for an illegal transition, 403 for
a live platform without the trade:live scope, 404 for another workspace's deployment."""

from __future__ import annotations

import pytest

from runtimes.models import Deployment, State, TradingSession

pytestmark = pytest.mark.django_db

BODY = {"name": "demo", "platform": "mock", "symbols": ["AAPL"], "timeframes": ["1m"],
        "params": {"fast": 5}, "initial_cash": "2500", "max_open_orders": 4}


def url(workspace, deployment=None, action=None):
    path = f"/api/v1/workspaces/{workspace.pk}/deployments"
    if deployment is not None:
        path += f"/{deployment}"
    return path + (f"/{action}" if action else "")


@pytest.fixture
def client_for(make_api_key):
    from rest_framework.test import APIClient

    def make(user, workspace, scopes=("read", "trade:paper")):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(user, workspace, scopes)[1]}")
        return client

    return make


@pytest.fixture
def owner_api(owner, workspace, client_for):
    return client_for(owner, workspace)


def created(client, workspace, **overrides):
    response = client.post(url(workspace), {**BODY, **overrides}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_create_answers_the_stopped_deployment(owner_api, owner, workspace):
    body = created(owner_api, workspace)

    deployment = Deployment.objects.get()
    assert body == {
        "id": str(deployment.pk), "workspace": str(workspace.pk), "name": "demo",
        "source": "remote", "strategy": None, "version": None, "version_id": None,
        "platform": "mock", "live": False, "connection": None, "symbols": ["AAPL"],
        "timeframes": ["1m"],
        "params": {"fast": 5},
        "risk_limits": {"max_order_quantity": None, "max_order_notional": None,
                        "max_position_quantity": None, "max_open_orders": 4,
                        "max_orders_per_minute": None, "daily_loss_limit": None,
                        "allowed_symbols": None},
        "initial_cash": "2500", "state": "stopped", "failure_reason": "",
        "created_by": str(owner.pk), "created_at": body["created_at"],
        "state_changed_at": body["state_changed_at"], "session": None, "sessions": [],
    }


def test_list_and_show(owner_api, workspace):
    first = created(owner_api, workspace, name="one")
    second = created(owner_api, workspace, name="two")

    listed = owner_api.get(url(workspace)).json()
    shown = owner_api.get(url(workspace, first["id"])).json()

    assert [d["name"] for d in listed] == ["two", "one"]
    assert listed[0]["id"] == second["id"]
    assert (shown["id"], shown["name"]) == (first["id"], "one")


def test_start_pause_resume_stop_through_the_api(owner_api, workspace):
    deployment = created(owner_api, workspace)["id"]

    started = owner_api.post(url(workspace, deployment, "start"))
    assert (started.status_code, started.json()["state"]) == (200, "starting")
    session = started.json()["session"]
    assert (session["platform"], session["state"], session["base_url"]) == (
        "mock", "created", f"http://testserver/sessions/{session['id']}")
    assert started.json()["sessions"] == [session["id"]]

    TradingSession.objects.filter(pk=session["id"]).update(state=State.RUNNING)
    assert owner_api.get(url(workspace, deployment)).json()["state"] == "running"
    assert owner_api.post(url(workspace, deployment, "pause")).json()["state"] == "paused"
    assert owner_api.post(url(workspace, deployment, "resume")).json()["state"] == "running"
    TradingSession.objects.filter(pk=session["id"]).update(state=State.CREATED)
    stopped = owner_api.post(url(workspace, deployment, "stop")).json()

    assert (stopped["state"], stopped["session"]["state"]) == ("stopped", "cancelled")


def test_an_illegal_transition_is_409_with_the_envelope(owner_api, workspace):
    deployment = created(owner_api, workspace)["id"]

    response = owner_api.post(url(workspace, deployment, "pause"))

    assert response.status_code == 409
    assert response.json() == {
        "code": "INVALID_TRANSITION",
        "message": "Cannot pause the deployment 'demo': it is stopped; pause needs it running.",
        "details": {"action": "pause", "state": "stopped", "allowed_from": ["running"]},
    }


def test_delete_only_when_stopped(owner_api, workspace):
    deployment = created(owner_api, workspace)["id"]
    owner_api.post(url(workspace, deployment, "start"))

    refused = owner_api.delete(url(workspace, deployment))
    owner_api.post(url(workspace, deployment, "stop"))
    deleted = owner_api.delete(url(workspace, deployment))

    assert (refused.status_code, refused.json()["code"]) == (409, "INVALID_TRANSITION")
    assert deleted.status_code == 204
    assert not Deployment.objects.exists()


def test_a_live_platform_without_the_trade_live_scope_is_403(owner, workspace, owner_api,
                                                             client_for):
    response = owner_api.post(url(workspace), {**BODY, "platform": "binance-live"},
                              format="json")
    live_key = client_for(owner, workspace, ("read", "trade:paper", "trade:live"))
    with_scope = live_key.post(url(workspace), {**BODY, "platform": "binance-live"},
                               format="json")

    assert (response.status_code, response.json()["code"]) == (403, "FORBIDDEN")
    assert response.json()["details"] == {"required_scope": "trade:live"}
    # With the scope, it is the missing broker connection that refuses it.
    assert (with_scope.status_code, with_scope.json()["code"]) == (400, "VALIDATION_ERROR")
    assert list(with_scope.json()["details"]) == ["connection"]
    assert not Deployment.objects.exists()


def test_a_member_logged_in_cannot_deploy_live(teammate, workspace, api_client):
    api_client.force_authenticate(teammate)

    response = api_client.post(url(workspace), {**BODY, "platform": "alpaca-live"},
                               format="json")

    assert (response.status_code, response.json()["details"]) == (
        403, {"required_scope": "trade:live", "role": "member"})


def test_a_viewer_cannot_create(viewer, workspace, client_for):
    response = client_for(viewer, workspace, ("read",)).post(url(workspace), BODY, format="json")

    assert response.status_code == 403


def test_another_workspaces_deployment_is_404(owner_api, workspace, stranger,
                                              stranger_workspace, client_for):
    deployment = created(owner_api, workspace)["id"]
    stranger_api = client_for(stranger, stranger_workspace)

    own_route = stranger_api.get(url(stranger_workspace, deployment))
    their_route = stranger_api.get(url(workspace, deployment))
    start = stranger_api.post(url(stranger_workspace, deployment, "start"))
    delete = stranger_api.delete(url(stranger_workspace, deployment))

    assert [r.status_code for r in (own_route, their_route, start, delete)] == [404] * 4
    assert stranger_api.get(url(stranger_workspace)).json() == []
    assert Deployment.objects.get().state == "stopped"


def test_bad_input_is_a_400_naming_the_field(owner_api, workspace):
    response = owner_api.post(url(workspace), {**BODY, "timeframes": ["9x"]}, format="json")
    backtest = owner_api.post(url(workspace), {**BODY, "platform": "backtest"}, format="json")

    assert (response.status_code, response.json()["code"]) == (400, "VALIDATION_ERROR")
    assert list(response.json()["details"]) == ["timeframes"]
    assert (backtest.status_code, backtest.json()["code"]) == (400, "INVALID_VALUE")
