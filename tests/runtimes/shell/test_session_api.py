"""The management API of sessions and the Trading API's front door: scoping, auth, envelopes."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


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
    assert len(callbacks) == 0  # no worker until its strategy's first request or socket


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


def test_an_ended_session_reads_its_final_state_and_refuses_to_act(
    owner_client, workspace, dataset
):
    created = create(owner_client, workspace, dataset).json()
    owner_client.post(f"{sessions_url(workspace)}/{created['id']}/cancel")
    response = owner_client.get(f"/sessions/{created['id']}/v1/account")
    assert (response.status_code, response.json()["equity"]) == (200, "5000")
    refused = owner_client.get(f"/sessions/{created['id']}/v1/quotes/BTCUSDT")
    assert refused.status_code == 503
    assert refused.json()["code"] == "SHUTTING_DOWN"


# -- risk limits, kill switches, results, admin ---------------------------------------------------


def session_url(workspace, session_id, tail=""):
    return f"{sessions_url(workspace)}/{session_id}{tail}"


def test_risk_limits_are_set_at_creation_and_shown(owner_client, workspace, dataset):
    body = create(owner_client, workspace, dataset, max_order_quantity="2",
                  max_order_notional="2500.50", max_open_orders=3, daily_loss_limit=100).json()
    assert body["risk_limits"] == {
        "max_order_quantity": "2", "max_order_notional": "2500.5",
        "max_position_quantity": None, "max_open_orders": 3, "max_orders_per_minute": None,
        "daily_loss_limit": "100", "allowed_symbols": ["BTCUSDT"],
    }
    assert body["kill_switch"] == {"active": False, "reason": "", "set_at": None}


@pytest.mark.parametrize("field,value", [
    ("max_order_quantity", "0"), ("max_order_notional", "-5"), ("max_position_quantity", "x"),
    ("daily_loss_limit", "0"), ("max_open_orders", 0), ("max_orders_per_minute", -1),
    ("allowed_symbols", []),
])
def test_risk_limits_must_be_positive(owner_client, workspace, dataset, field, value):
    response = create(owner_client, workspace, dataset, **{field: value})
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert list(response.json()["details"]) == [field]


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("initial_cash", "1e999999999", "must have at most 16 digits before the decimal point"),
    ("max_order_quantity", "1e-999999999", "is smaller than the precision of 12 decimal places"),
    ("slippage_bps", "Infinity", "must be a finite decimal"),
    ("commission.percent", "1" * 101, "must have at most 100 characters"),
])
def test_decimals_out_of_range_are_a_400_invalid_value_naming_the_field(
    owner_client, workspace, dataset, field, value, reason
):
    change = {"commission": {"percent": value}} if field == "commission.percent" else {field: value}
    response = create(owner_client, workspace, dataset, **change)
    assert response.status_code == 400
    shown = value if len(value) <= 40 else value[:40] + "..."
    assert response.json() == {"code": "INVALID_VALUE", "message": f"{field} {reason}",
                               "details": {"field": field, "provided": shown}}


def test_more_decimals_than_a_field_keeps_are_rounded_half_even(owner_client, workspace, dataset):
    response = create(owner_client, workspace, dataset, initial_cash="5000.123456785")
    assert response.status_code == 201, response.json()
    assert response.json()["initial_cash"] == "5000.12345678"


def test_allowed_symbols_must_be_symbols_of_the_session(owner_client, workspace, dataset):
    response = create(owner_client, workspace, dataset, allowed_symbols=["ETHUSDT"])
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert response.json()["details"] == {"allowed_symbols": ["not symbols of this session: "
                                                              "ETHUSDT"]}


def test_a_trader_kills_a_session_once_and_it_is_audited(owner_client, workspace, dataset):
    from runtimes.models import SessionAudit

    created = create(owner_client, workspace, dataset).json()
    url = session_url(workspace, created["id"], "/kill")
    killed = owner_client.post(url, {"reason": "runaway"}, format="json")
    assert killed.status_code == 200
    assert killed.json()["kill_switch"]["active"] is True
    assert killed.json()["kill_switch"]["reason"] == "runaway"
    again = owner_client.post(url, {"reason": "twice"}, format="json")
    assert again.json()["kill_switch"]["reason"] == "runaway"  # one-way, set once
    audits = SessionAudit.objects.filter(session_id=created["id"])
    assert list(audits.values_list("kind", "reject_code", "details")) == [
        ("kill_switch", "KILL_SWITCH",
         {"scope": "session", "reason": "runaway", "set_by": str(workspace.memberships.get(
             role="owner").user_id)}),
    ]


def test_only_traders_of_the_workspace_may_kill_a_session(
    owner_client, stranger_client, viewer, workspace, dataset
):
    from rest_framework.test import APIClient

    created = create(owner_client, workspace, dataset).json()
    url = session_url(workspace, created["id"], "/kill")
    assert stranger_client.post(url, {}, format="json").status_code == 404
    viewer_client = APIClient()
    viewer_client.force_login(viewer)
    assert viewer_client.post(url, {}, format="json").status_code == 403
    assert viewer_client.get(session_url(workspace, created["id"])).json()["kill_switch"][
        "active"] is False


def test_the_workspace_kill_switch_is_set_and_released(
    owner_client, stranger_client, workspace, dataset
):
    from runtimes.models import SessionAudit

    url = f"/api/v1/workspaces/{workspace.id}/kill-switch"
    assert owner_client.get(url).json() == {"active": False, "reason": "", "set_by": None,
                                            "set_at": None}
    live = create(owner_client, workspace, dataset).json()
    on = owner_client.post(url, {"active": True, "reason": "market halt"}, format="json")
    assert on.status_code == 200
    assert (on.json()["active"], on.json()["reason"]) == (True, "market halt")
    assert owner_client.get(url).json()["active"] is True
    off = owner_client.post(url, {"active": False}, format="json")
    assert (off.json()["active"], off.json()["reason"]) == (False, "")
    messages = SessionAudit.objects.filter(session_id=live["id"]).values_list("message", flat=True)
    assert list(messages) == ["workspace kill switch set", "workspace kill switch released"]
    assert stranger_client.get(url).status_code == 404
    assert stranger_client.post(url, {"active": True}, format="json").status_code == 404


def finished_session(owner_client, workspace, dataset, orders=250, trades=3):
    from runtimes.models import SessionResult, TradingSession

    created = create(owner_client, workspace, dataset).json()
    session = TradingSession.objects.get(pk=created["id"])
    session.transition(to="completed", allowed_from={"created"})
    SessionResult.objects.create(
        session=session,
        orders=[{"id": f"ord-{n}"} for n in range(1, orders + 1)],
        trades=[{"id": f"fill-{n}"} for n in range(1, trades + 1)],
        equity=[["2021-04-02T00:10:00+00:00", "5000"], ["2021-04-02T00:11:00+00:00", "5100.5"],
                ["2021-04-02T00:12:00+00:00", "4990"], ["2021-04-02T00:13:00+00:00", "5050"]],
        metrics={"total_return": "0.01", "number_of_trades": 1},
    )
    return session


def test_results_show_metrics_contract_and_an_equity_summary(owner_client, workspace, dataset):
    session = finished_session(owner_client, workspace, dataset)
    body = owner_client.get(session_url(workspace, session.id, "/results")).json()
    assert body["metrics"] == {"total_return": "0.01", "number_of_trades": 1}
    assert body["equity"] == {
        "points": 4,
        "first": {"timestamp": "2021-04-02T00:10:00Z", "equity": "5000"},
        "last": {"timestamp": "2021-04-02T00:13:00Z", "equity": "5050"},
        "high": {"timestamp": "2021-04-02T00:11:00Z", "equity": "5100.5"},
        "low": {"timestamp": "2021-04-02T00:12:00Z", "equity": "4990"},
    }
    assert (body["orders"], body["trades"], body["state"]) == (250, 3, "completed")
    contract = body["execution_contract"]
    assert contract["account"]["initial_cash"] == "5000"
    assert contract["costs"]["slippage_bps"] == "1.5"


def test_orders_of_a_result_come_a_hundred_a_page_with_a_next_link(
    owner_client, workspace, dataset
):
    session = finished_session(owner_client, workspace, dataset)
    url = session_url(workspace, session.id, "/orders")
    first = owner_client.get(url).json()
    assert (first["count"], len(first["results"]), first["results"][0]) == (250, 100,
                                                                             {"id": "ord-1"})
    assert first["next"] == f"http://testserver{url}?page=2"
    last = owner_client.get(url, {"page": 3}).json()
    assert ([o["id"] for o in last["results"]][:1], len(last["results"]), last["next"]) == (
        ["ord-201"], 50, None)
    assert owner_client.get(url, {"page": 4}).status_code == 404
    trades = owner_client.get(session_url(workspace, session.id, "/trades")).json()
    assert ([t["id"] for t in trades["results"]], trades["next"]) == (
        ["fill-1", "fill-2", "fill-3"], None)


def test_results_are_404_until_the_session_has_them_and_for_strangers(
    owner_client, stranger_client, workspace, dataset
):
    created = create(owner_client, workspace, dataset).json()
    pending = owner_client.get(session_url(workspace, created["id"], "/results"))
    assert pending.status_code == 404
    assert pending.json()["details"] == {"state": "created"}
    session = finished_session(owner_client, workspace, dataset)
    for tail in ("/results", "/orders", "/trades"):
        assert stranger_client.get(session_url(workspace, session.id, tail)).status_code == 404


def test_the_admin_shows_sessions_read_only(client, workspace, dataset, owner_client):
    from accounts.models import User

    session = finished_session(owner_client, workspace, dataset)
    admin = User.objects.create_superuser(email="admin@example.com", password="x-password-1")
    client.force_login(admin)
    for model in ("tradingsession", "sessionevent", "sessionaudit", "sessionresult",
                  "killswitch"):
        assert client.get(f"/admin/runtimes/{model}/").status_code == 200, model
        assert client.get(f"/admin/runtimes/{model}/add/").status_code == 403, model
    page = client.get(f"/admin/runtimes/tradingsession/{session.id}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content  # view only
    assert client.post(f"/admin/runtimes/tradingsession/{session.id}/delete/").status_code == 403


def test_a_cached_session_lookup_sees_the_session_end_at_once(owner_client, workspace, dataset):
    from django.utils import timezone

    from runtimes.models import State, TradingSession

    created = create(owner_client, workspace, dataset).json()
    health = f"/sessions/{created['id']}/health"
    assert owner_client.get(health).json()["status"] == "degraded"  # created: no host yet
    session = TradingSession.objects.get(pk=created["id"])
    assert session.transition(to=State.RUNNING, allowed_from={State.CREATED})
    assert owner_client.get(health).json()["status"] == "connected"
    assert owner_client.get(health).json()["status"] == "connected"  # served from the cache

    assert session.finish(to=State.COMPLETED, now=timezone.now())

    assert owner_client.get(health).json()["status"] == "degraded"
    response = owner_client.get(f"/sessions/{created['id']}/v1/session")
    assert (response.status_code, response.json()["state"]) == (200, "completed")


def test_the_role_check_costs_no_query_and_a_demotion_is_seen_on_the_next_request(
    api_client, owner, teammate, workspace, dataset, make_api_key, django_assert_num_queries
):
    from accounts.models import Membership, Role
    from accounts.services import change_member_role

    _, key = make_api_key(teammate, workspace, scopes=("read", "trade:paper"))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    created = create(api_client, workspace, dataset).json()
    health = f"/sessions/{created['id']}/health"
    assert api_client.get(health).status_code == 200
    with django_assert_num_queries(0):  # key, its creator's role and the session: all cached
        assert api_client.get(health).status_code == 200

    membership = Membership.objects.get(workspace=workspace, user=teammate)
    change_member_role(membership=membership, role=Role.VIEWER, by=owner)

    # Health stays open (the status only); what needs the scope is refused.
    assert api_client.get(health).json()["providers"] == []
    refused = api_client.get(f"/sessions/{created['id']}/v1/account")
    assert (refused.status_code, refused.json()["details"]) == (
        403, {"required_scope": "trade:paper", "role": "viewer"})
