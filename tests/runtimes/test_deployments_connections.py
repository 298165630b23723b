"""Deployments on broker platforms name a broker connection of their own workspace on the same
platform; starting copies it onto the session; a live platform also needs its risk limits; a
connection cannot be deleted while an active deployment (or a live session) trades on it.

The Alpaca providers are another branch's: tests make `alpaca-paper`/`alpaca-live` available as
the registry will (an entry in FACTORIES) and never start a real Alpaca session: a remote
deployment's session waits for its strategy, so no provider is built."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rest_framework.exceptions import PermissionDenied
from rest_framework.test import APIClient

from accounts.models import BrokerCredential
from config.errors import ApiError
from runtimes import credentials, deployments
from runtimes.hosting.risk import RiskLimits
from runtimes.models import Deployment, State, TradingSession
from runtimes.providers import registry
from tests.runtimes.connections import stored_connection

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
LIVE_LIMITS = RiskLimits(max_position_quantity=Decimal(10), daily_loss_limit=Decimal(500))


@pytest.fixture(autouse=True)
def alpaca_available(monkeypatch):
    for platform in ("alpaca-paper", "alpaca-live"):
        monkeypatch.setitem(registry.FACTORIES, platform, "runtimes.providers.alpaca:build")


@pytest.fixture
def paper(owner, workspace):
    return stored_connection(workspace, owner)


def deploy(workspace, owner, **overrides):
    options = {"name": "paper demo", "platform": "alpaca-paper", "version": None,
               "symbols": ["AAPL"], "timeframes": ["1m"], **overrides}
    return deployments.create_deployment(workspace=workspace, created_by=owner, role="owner",
                                         **options)


def refusal(call, *args, **kwargs):
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)
    error = caught.value
    return error.status_code, error.error_code, error.message, error.details


def test_a_broker_deployment_keeps_its_connection_and_its_session_gets_it(owner, workspace,
                                                                          paper):
    deployment = deploy(workspace, owner, connection=paper)
    session = deployments.start_deployment(deployment=deployment, started_by=owner,
                                           role="owner", now=NOW)

    assert Deployment.objects.get().connection_id == paper.pk
    assert TradingSession.objects.get(pk=session.pk).connection_id == paper.pk
    assert deployments.deployment_json(deployment, origin="http://testserver")[
        "connection"] == str(paper.pk)


def test_a_broker_platform_needs_a_connection(owner, workspace):
    assert refusal(deploy, workspace, owner) == (
        400, "VALIDATION_ERROR", "The request has invalid fields; see details.",
        {"connection": ["Alpaca (paper) trades through a broker connection: choose one of this "
                        "workspace's Alpaca (paper) connections."]})
    assert not Deployment.objects.exists()


def test_the_connection_must_be_on_the_deployments_platform(owner, workspace):
    live = stored_connection(workspace, owner, platform="alpaca-live", label="Live money")

    assert refusal(deploy, workspace, owner, connection=live)[3] == {
        "connection": ["The connection 'Live money' is for Alpaca (live), not Alpaca (paper)."]}


def test_mock_takes_no_connection(owner, workspace, paper):
    assert refusal(deploy, workspace, owner, platform="mock", connection=paper)[3] == {
        "connection": ["Mock market needs no broker connection."]}


def test_another_workspaces_connection_is_not_found(owner, workspace, stranger,
                                                    stranger_workspace):
    theirs = stored_connection(stranger_workspace, stranger)

    assert refusal(deploy, workspace, owner, connection=theirs)[:3] == (
        404, "NOT_FOUND", "No such connection.")


def test_a_live_deployment_needs_a_position_limit_and_a_daily_loss_limit(owner, workspace):
    live = stored_connection(workspace, owner, platform="alpaca-live")
    only_loss = RiskLimits(daily_loss_limit=Decimal(500))

    assert refusal(deploy, workspace, owner, platform="alpaca-live", connection=live) == (
        400, "VALIDATION_ERROR",
        "Alpaca (live) trades real money: set a maximum position size and a daily loss limit.",
        {"max_position_quantity": ["Required on a live platform."],
         "daily_loss_limit": ["Required on a live platform."]})
    assert refusal(deploy, workspace, owner, platform="alpaca-live", connection=live,
                   risk_limits=only_loss)[3] == {
        "max_position_quantity": ["Required on a live platform."]}
    deployment = deploy(workspace, owner, platform="alpaca-live", connection=live,
                        risk_limits=LIVE_LIMITS)
    assert deployment.risk_limits["max_position_quantity"] == "10"


def test_a_live_deployment_without_its_limits_does_not_start(owner, workspace):
    live = stored_connection(workspace, owner, platform="alpaca-live")
    deployment = deploy(workspace, owner, platform="alpaca-live", connection=live,
                        risk_limits=LIVE_LIMITS)
    Deployment.objects.filter(pk=deployment.pk).update(risk_limits={})  # as an old row
    deployment = Deployment.objects.get()

    status, code, _, details = refusal(deployments.start_deployment, deployment=deployment,
                                       started_by=owner, role="owner", now=NOW)

    assert (status, code, sorted(details)) == (400, "VALIDATION_ERROR",
                                               ["daily_loss_limit", "max_position_quantity"])
    assert not TradingSession.objects.exists()


def test_a_connection_in_use_cannot_be_deleted_and_names_the_deployments(owner, workspace,
                                                                         paper):
    first = deploy(workspace, owner, connection=paper, name="Alpha")
    second = deploy(workspace, owner, connection=paper, name="Beta")
    for deployment in (first, second):
        deployments.start_deployment(deployment=deployment, started_by=owner, role="owner",
                                     now=NOW)

    assert refusal(credentials.delete_broker_credential, credential=paper, by=owner) == (
        409, "CONNECTION_IN_USE", "The connection 'Paper account' is in use by the active "
        "deployments 'Alpha', 'Beta' and 2 live sessions: stop them first.",
        {"deployments": ["Alpha", "Beta"], "live_sessions": 2})
    assert BrokerCredential.objects.filter(pk=paper.pk).exists()


def test_a_stopped_deployment_loses_a_deleted_connection_and_cannot_start(owner, workspace,
                                                                          paper):
    deployment = deploy(workspace, owner, connection=paper)
    session = deployments.start_deployment(deployment=deployment, started_by=owner,
                                           role="owner", now=NOW)
    deployments.stop_deployment(deployment=Deployment.objects.get(), now=NOW)
    assert TradingSession.objects.get(pk=session.pk).state == State.CANCELLED

    credentials.delete_broker_credential(credential=paper, by=owner)

    deployment = Deployment.objects.get()
    assert (deployment.state, deployment.connection_id) == ("stopped", None)
    assert TradingSession.objects.get(pk=session.pk).connection_id is None
    assert refusal(deployments.start_deployment, deployment=deployment, started_by=owner,
                   role="owner", now=NOW)[3] == {
        "connection": ["Alpaca (paper) trades through a broker connection: choose one of this "
                       "workspace's Alpaca (paper) connections."]}


def test_only_owners_delete_connections(owner, teammate, workspace, paper):
    with pytest.raises(PermissionDenied):
        credentials.delete_broker_credential(credential=paper, by=teammate)
    assert BrokerCredential.objects.filter(pk=paper.pk).exists()


# -- the management API ------------------------------------------------------------------------


def api(user, workspace, make_api_key, scopes=("read", "trade:paper")):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(user, workspace, scopes)[1]}")
    return client


BODY = {"name": "paper demo", "platform": "alpaca-paper", "symbols": ["AAPL"],
        "timeframes": ["1m"]}


def test_the_api_creates_a_deployment_with_its_connection(owner, workspace, paper,
                                                          make_api_key):
    response = api(owner, workspace, make_api_key).post(
        f"/api/v1/workspaces/{workspace.pk}/deployments", {**BODY, "connection": str(paper.pk)},
        format="json")

    assert response.status_code == 201, response.json()
    assert (response.json()["connection"], response.json()["platform"]) == (
        str(paper.pk), "alpaca-paper")


def test_the_api_refuses_another_workspaces_connection_as_not_found(
        owner, workspace, stranger, stranger_workspace, make_api_key):
    theirs = stored_connection(stranger_workspace, stranger)

    response = api(owner, workspace, make_api_key).post(
        f"/api/v1/workspaces/{workspace.pk}/deployments",
        {**BODY, "connection": str(theirs.pk)}, format="json")

    assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")
    assert not Deployment.objects.exists()


def test_the_api_says_which_field_is_missing(owner, workspace, make_api_key):
    response = api(owner, workspace, make_api_key).post(
        f"/api/v1/workspaces/{workspace.pk}/deployments", BODY, format="json")

    assert response.status_code == 400
    assert response.json()["details"] == {"connection": [
        "Alpaca (paper) trades through a broker connection: choose one of this workspace's "
        "Alpaca (paper) connections."]}


# -- Binance: the same rules (the provider is another branch's: the registry is patched) -------


@pytest.fixture
def binance_available(monkeypatch):
    for platform in ("binance-testnet", "binance-live"):
        monkeypatch.setitem(registry.FACTORIES, platform, "runtimes.providers.binance:build")


def test_a_binance_deployment_needs_a_binance_connection_of_its_own_workspace(
        owner, workspace, stranger, stranger_workspace, paper, binance_available):
    testnet = stored_connection(workspace, owner, platform="binance-testnet", label="Testnet")
    theirs = stored_connection(stranger_workspace, stranger, platform="binance-testnet")
    options = {"platform": "binance-testnet", "symbols": ["BTCUSDT"]}

    assert refusal(deploy, workspace, owner, **options)[3] == {"connection": [
        "Binance (testnet) trades through a broker connection: choose one of this workspace's "
        "Binance (testnet) connections."]}
    assert refusal(deploy, workspace, owner, connection=paper, **options)[3] == {"connection": [
        "The connection 'Paper account' is for Alpaca (paper), not Binance (testnet)."]}
    assert refusal(deploy, workspace, owner, connection=theirs, **options)[:3] == (
        404, "NOT_FOUND", "No such connection.")
    deployment = deploy(workspace, owner, connection=testnet, **options)
    session = deployments.start_deployment(deployment=deployment, started_by=owner,
                                           role="owner", now=NOW)
    assert TradingSession.objects.get(pk=session.pk).connection_id == testnet.pk


def test_a_binance_live_deployment_needs_its_risk_limits(owner, workspace, binance_available):
    live = stored_connection(workspace, owner, platform="binance-live")
    options = {"platform": "binance-live", "symbols": ["BTCUSDT"], "connection": live}

    assert refusal(deploy, workspace, owner, **options)[:3] == (
        400, "VALIDATION_ERROR",
        "Binance (live) trades real money: set a maximum position size and a daily loss limit.")
    assert deploy(workspace, owner, risk_limits=LIVE_LIMITS, **options).platform == "binance-live"
