"""The management API of broker connections (/api/v1/workspaces/{ws}/connections): owners add
(checked against the fake Alpaca first) and delete, every member lists and reads, no answer
carries the secret or the key id, and another workspace's connections are 404 everywhere."""

from __future__ import annotations

import logging

import pytest
from rest_framework.test import APIClient

from accounts.models import BrokerCredential
from tests.fakes.alpaca.server import KEY_ID, SECRET, FakeAlpaca
from tests.runtimes.connections import KEY_ID as STORED_KEY_ID
from tests.runtimes.connections import SECRET as STORED_SECRET
from tests.runtimes.connections import deployment_started_on, stored_connection

pytestmark = pytest.mark.django_db

WRONG_SECRET = "not-the-secret-but-close-000000000000000"
BODY = {"label": "Paper", "platform": "alpaca-paper", "key_id": KEY_ID, "secret": SECRET,
        "options": {"feed": "iex"}}
FIELDS = ["id", "label", "platform", "live", "key_hint", "options", "validated_at",
          "account_summary", "health", "health_at", "created_at"]


def url(workspace, connection=None):
    base = f"/api/v1/workspaces/{workspace.pk}/connections"
    return base if connection is None else f"{base}/{connection}"


@pytest.fixture
def client_for(make_api_key):
    def make(user, workspace, scopes=("read", "trade:paper")):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(user, workspace, scopes)[1]}")
        return client

    return make


@pytest.fixture
def alpaca(settings):
    with FakeAlpaca() as fake:
        settings.BROKER_URLS = {p: dict(fake.urls) for p in ("alpaca-paper", "alpaca-live")}
        yield fake


def secrets_in(response) -> list[str]:
    text = response.content.decode()
    return [s for s in (SECRET, KEY_ID, WRONG_SECRET, STORED_SECRET, STORED_KEY_ID) if s in text]


def test_an_owner_adds_a_connection_the_broker_accepted(owner, workspace, client_for, alpaca):
    response = client_for(owner, workspace).post(url(workspace), BODY, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    credential = BrokerCredential.objects.get()
    assert list(body) == FIELDS
    assert (body["id"], body["label"], body["platform"], body["live"], body["key_hint"],
            body["options"]) == (str(credential.pk), "Paper", "alpaca-paper", False, "WXYZ",
                                 {"feed": "iex"})
    assert body["account_summary"]["status"] == "ACTIVE"
    assert secrets_in(response) == []


def test_wrong_keys_are_a_400_that_says_so_and_store_nothing(owner, workspace, client_for,
                                                             alpaca, caplog):
    caplog.set_level(logging.DEBUG)
    response = client_for(owner, workspace).post(url(workspace), {**BODY,
                                                                  "secret": WRONG_SECRET},
                                                 format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Alpaca refused these keys (40")
    assert body["details"] == {"keys": [body["message"]]}
    assert secrets_in(response) == []
    assert not BrokerCredential.objects.exists()
    assert "Bad Request" in caplog.text  # the refusal was logged, without the keys
    assert WRONG_SECRET not in caplog.text and KEY_ID not in caplog.text


def test_live_keys_need_a_key_that_may_trade_live(owner, workspace, client_for, alpaca):
    response = client_for(owner, workspace).post(url(workspace),
                                                 {**BODY, "platform": "alpaca-live"},
                                                 format="json")

    assert (response.status_code, response.json()["details"]) == (
        403, {"required_scope": "trade:live"})
    assert alpaca.requests == []


def test_members_list_and_read_but_do_not_add_or_delete(owner, teammate, workspace, client_for):
    credential = stored_connection(workspace, owner)
    member = client_for(teammate, workspace)

    listed = member.get(url(workspace))
    shown = member.get(url(workspace, credential.pk))
    added = member.post(url(workspace), BODY, format="json")
    deleted = member.delete(url(workspace, credential.pk))

    assert listed.status_code == 200
    assert [row["id"] for row in listed.json()] == [str(credential.pk)]
    assert (shown.status_code, shown.json()["key_hint"]) == (200, "WXYZ")
    assert (added.status_code, deleted.status_code) == (403, 403)
    assert secrets_in(listed) == [] and secrets_in(shown) == []
    assert BrokerCredential.objects.count() == 1


def test_an_owner_deletes_an_unused_connection(owner, workspace, client_for):
    credential = stored_connection(workspace, owner)

    response = client_for(owner, workspace).delete(url(workspace, credential.pk))

    assert response.status_code == 204
    assert not BrokerCredential.objects.exists()


def test_deleting_a_connection_in_use_is_a_409_naming_the_deployment(owner, workspace,
                                                                     client_for):
    credential = stored_connection(workspace, owner)
    deployment_started_on(credential, workspace, owner)

    response = client_for(owner, workspace).delete(url(workspace, credential.pk))

    assert response.status_code == 409
    assert response.json() == {
        "code": "CONNECTION_IN_USE",
        "message": "The connection 'Paper account' is in use by the active deployment "
                   "'SMA paper' and 1 live session: stop them first.",
        "details": {"deployments": ["SMA paper"], "live_sessions": 1}}


def test_another_workspace_cannot_list_read_or_delete_a_connection(
        owner, workspace, stranger, stranger_workspace, client_for):
    credential = stored_connection(workspace, owner)
    theirs = client_for(stranger, stranger_workspace)

    listed = theirs.get(url(workspace))
    read = theirs.get(url(workspace, credential.pk))
    through_their_workspace = theirs.get(url(stranger_workspace, credential.pk))
    deleted = theirs.delete(url(stranger_workspace, credential.pk))
    own_list = theirs.get(url(stranger_workspace))

    assert [r.status_code for r in (listed, read, through_their_workspace, deleted)] == [
        404, 404, 404, 404]
    assert (own_list.status_code, own_list.json()) == (200, [])
    assert BrokerCredential.objects.filter(pk=credential.pk).exists()


def test_the_schema_documents_the_connection_endpoints(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    paths = schema["paths"]
    base = "/api/v1/workspaces/{workspace_id}/connections"
    assert sorted(paths[base]) == ["get", "post"]
    assert sorted(paths[base + "/{connection_id}"]) == ["delete", "get"]
    create = schema["components"]["schemas"]["ConnectionCreate"]
    assert create["properties"]["secret"]["writeOnly"] is True
    assert "secret" not in schema["components"]["schemas"]["Connection"]["properties"]


def test_binance_live_keys_need_a_key_that_may_trade_live_before_binance_is_asked(
        owner, workspace, client_for, settings):
    settings.BROKER_URLS = {"binance-live": {"api": "http://127.0.0.1:9/api"}}  # never called
    body = {"label": "Live", "platform": "binance-live", "key_id": KEY_ID, "secret": SECRET,
            "options": {"key_type": "hmac"}}

    response = client_for(owner, workspace).post(url(workspace), body, format="json")

    assert (response.status_code, response.json()["details"]) == (
        403, {"required_scope": "trade:live"})
    assert not BrokerCredential.objects.exists()


def test_a_binance_key_type_must_be_one_binance_signs_with(owner, workspace, client_for):
    body = {"label": "Testnet", "platform": "binance-testnet", "key_id": KEY_ID,
            "secret": SECRET, "options": {"key_type": "rsa"}}

    response = client_for(owner, workspace).post(url(workspace), body, format="json")

    assert (response.status_code, response.json()["details"]) == (
        400, {"options": ["key_type must be one of hmac, ed25519."]})
    assert secrets_in(response) == []
