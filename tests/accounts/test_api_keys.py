"""API keys: format, storage as a keyed hash only, authentication, scopes, last use, throttling."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from accounts import auth_cache, keys
from accounts.models import ApiKey, Membership, Role
from accounts.services import (
    authenticate_api_key,
    change_member_role,
    remove_member,
    revoke_api_key,
)

KEY_FORMAT = re.compile(r"^prt_[0-9A-Za-z]{12}_[0-9A-Za-z]{40}$")


def _create_by_api(api_client, user, workspace, **body):
    api_client.force_login(user)
    body = {"name": "laptop", "scopes": ["read", "trade:paper"], **body}
    return api_client.post(f"/api/v1/workspaces/{workspace.pk}/keys/", body, format="json")


def _unauthorized(response):
    assert response.status_code == 401
    assert response.json() == {"code": "UNAUTHORIZED",
                               "message": "Invalid, revoked or expired API key.",
                               "details": {"code": "INVALID_API_KEY"}}


def test_create_returns_the_secret_once_in_the_recognisable_format(api_client, owner, workspace):
    response = _create_by_api(api_client, owner, workspace)

    assert response.status_code == 201
    body = response.json()
    assert KEY_FORMAT.match(body["key"])
    assert body["prefix"] == body["key"][:17]
    assert body["scopes"] == ["read", "trade:paper"]
    assert response["Cache-Control"] == "no-store"
    shown = api_client.get(f"/api/v1/workspaces/{workspace.pk}/keys/{body['id']}/").json()
    listed = api_client.get(f"/api/v1/workspaces/{workspace.pk}/keys/").json()
    assert "key" not in shown and body["key"] not in str(listed)
    assert set(shown) == {"id", "name", "prefix", "scopes", "created_by", "created_at",
                          "expires_at", "last_used_at", "revoked_at"}


def test_plaintext_is_in_no_column_of_the_stored_row(owner, workspace, make_api_key, settings):
    key, plaintext = make_api_key(owner, workspace, scopes=["read"])
    secret = plaintext.rsplit("_", 1)[1]

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apikey WHERE id = %s", [key.pk.hex])
        row = cursor.fetchone()
    assert row is not None
    assert not any(secret in str(value) or plaintext in str(value) for value in row)
    expected = hmac.new(settings.API_KEY_PEPPER.encode(), plaintext.encode(),
                        hashlib.sha256).hexdigest()
    assert ApiKey.objects.get(pk=key.pk).hashed_secret == expected


@pytest.mark.parametrize("header", ["HTTP_AUTHORIZATION", "HTTP_X_API_KEY"])
def test_bearer_and_x_api_key_headers_both_authenticate(api_client, owner, workspace,
                                                        make_api_key, header):
    _, plaintext = make_api_key(owner, workspace, scopes=["read"])
    value = f"Bearer {plaintext}" if header == "HTTP_AUTHORIZATION" else plaintext

    response = api_client.get(f"/api/v1/workspaces/{workspace.pk}/", **{header: value})

    assert response.status_code == 200
    assert response.json()["role"] == "owner"


def test_revoked_key_is_rejected_at_once(api_client, owner, workspace, make_api_key):
    key, plaintext = make_api_key(owner, workspace, scopes=["read"])
    url = f"/api/v1/workspaces/{workspace.pk}/keys/"
    assert api_client.get(url, HTTP_X_API_KEY=plaintext).status_code == 200

    api_client.force_login(owner)
    assert api_client.delete(f"{url}{key.pk}/").json()["revoked_at"] is not None
    api_client.logout()

    _unauthorized(api_client.get(url, HTTP_X_API_KEY=plaintext))


def _cached(plaintext):
    return auth_cache.lookup("api-key", keys.keyed_hash(plaintext))[0]


def _all_cache_keys() -> list[str]:
    """Every key in the configured cache: LocMem when embedded, Redis when distributed."""
    backend = cache._cache
    if isinstance(backend, dict):
        return list(backend)
    return [k.decode() for k in backend.get_client().keys("*")]


def test_a_success_is_cached_under_the_keyed_hash_never_the_plaintext(owner, workspace,
                                                                        make_api_key):
    _, plaintext = make_api_key(owner, workspace, scopes=["read"])
    assert _cached(plaintext) is None
    assert authenticate_api_key(plaintext) is not None

    assert _cached(plaintext).creator_role == "owner"
    assert not [name for name in _all_cache_keys() if plaintext in name]
    assert authenticate_api_key(plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")) is None


def test_a_revoked_key_is_refused_on_the_next_request_after_a_cached_success(
    api_client, owner, workspace, make_api_key
):
    key, plaintext = make_api_key(owner, workspace, scopes=["read"])
    url = f"/api/v1/workspaces/{workspace.pk}/keys/"
    assert api_client.get(url, HTTP_X_API_KEY=plaintext).status_code == 200
    assert api_client.get(url, HTTP_X_API_KEY=plaintext).status_code == 200
    assert _cached(plaintext) is not None

    revoke_api_key(key=key, by=owner)

    _unauthorized(api_client.get(url, HTTP_X_API_KEY=plaintext))


def test_a_role_change_or_removal_is_seen_at_once_after_a_cached_success(
    api_client, owner, teammate, workspace, make_api_key
):
    _, plaintext = make_api_key(teammate, workspace, scopes=["read"])
    assert authenticate_api_key(plaintext).creator_role == "member"
    membership = Membership.objects.get(workspace=workspace, user=teammate)

    change_member_role(membership=membership, role=Role.VIEWER, by=owner)
    assert _cached(plaintext) is None
    assert authenticate_api_key(plaintext).creator_role == "viewer"

    remove_member(membership=membership, by=owner)
    _unauthorized(api_client.get("/api/v1/workspaces/", HTTP_X_API_KEY=plaintext))


def test_a_cached_key_still_expires_on_time(owner, workspace, make_api_key):
    expires = timezone.now() + timedelta(minutes=5)
    _, plaintext = make_api_key(owner, workspace, scopes=["read"], expires_at=expires)
    assert authenticate_api_key(plaintext) is not None
    assert _cached(plaintext) is not None

    assert authenticate_api_key(plaintext, now=expires) is None


def test_a_deactivated_creator_is_seen_at_once_after_a_cached_success(owner, workspace,
                                                                      make_api_key):
    _, plaintext = make_api_key(owner, workspace, scopes=["read"])
    assert authenticate_api_key(plaintext) is not None
    owner.is_active = False
    owner.save()

    assert authenticate_api_key(plaintext) is None


def test_expired_key_is_rejected(api_client, owner, workspace, make_api_key):
    key, plaintext = make_api_key(owner, workspace, scopes=["read"])
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    _unauthorized(api_client.get("/api/v1/workspaces/", HTTP_AUTHORIZATION=f"Bearer {plaintext}"))


@pytest.mark.parametrize("mangle", ["wrong_secret", "unknown_prefix", "malformed"])
def test_wrong_key_is_rejected_without_echoing_it(api_client, owner, workspace, make_api_key,
                                                  mangle):
    _, plaintext = make_api_key(owner, workspace, scopes=["read"])
    wrong = {
        "wrong_secret": plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B"),
        "unknown_prefix": "prt_" + "Z" * 12 + plaintext[16:],
        "malformed": "not-a-key",
    }[mangle]

    response = api_client.get("/api/v1/workspaces/", HTTP_X_API_KEY=wrong)

    _unauthorized(response)
    assert wrong not in response.content.decode()
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_no_credentials_is_401_in_the_envelope(api_client):
    response = api_client.get("/api/v1/workspaces/")
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"


def test_key_without_the_needed_scope_is_forbidden(api_client, owner, workspace, make_api_key):
    _, read_only = make_api_key(owner, workspace, scopes=["read"])
    _, paper_only = make_api_key(owner, workspace, scopes=["trade:paper"])
    url = f"/api/v1/workspaces/{workspace.pk}/keys/"

    write = api_client.post(url, {"name": "x", "scopes": ["read"]}, format="json",
                            HTTP_X_API_KEY=read_only)
    read = api_client.get(url, HTTP_X_API_KEY=paper_only)

    assert write.status_code == 403
    assert write.json() == {"code": "FORBIDDEN", "message": "This API key lacks the 'trade:paper' "
                            "scope.", "details": {"required_scope": "trade:paper"}}
    assert read.status_code == 403
    assert read.json()["details"] == {"required_scope": "read"}


def test_a_key_cannot_grant_scopes_it_does_not_hold(api_client, owner, workspace, make_api_key):
    _, plaintext = make_api_key(owner, workspace, scopes=["read", "trade:paper"])
    response = api_client.post(f"/api/v1/workspaces/{workspace.pk}/keys/",
                               {"name": "x", "scopes": ["trade:live"]}, format="json",
                               HTTP_X_API_KEY=plaintext)
    assert response.status_code == 403


def test_only_an_owner_can_grant_trade_live(api_client, owner, teammate, workspace):
    assert _create_by_api(api_client, teammate, workspace, scopes=["trade:live"]).status_code == 403
    assert _create_by_api(api_client, owner, workspace, scopes=["trade:live"]).status_code == 201


def test_viewer_may_create_read_only_keys_but_not_trading_keys(api_client, viewer, workspace):
    assert _create_by_api(api_client, viewer, workspace, scopes=["read"]).status_code == 201
    assert _create_by_api(api_client, viewer, workspace).status_code == 403


def test_unknown_scope_is_a_validation_error(api_client, owner, workspace):
    response = _create_by_api(api_client, owner, workspace, scopes=["admin"])
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert "scopes" in response.json()["details"]


def test_expiry_in_the_past_is_refused(api_client, owner, workspace):
    past = (timezone.now() - timedelta(hours=1)).isoformat()
    response = _create_by_api(api_client, owner, workspace, expires_at=past)
    assert response.status_code == 400
    assert "expires_at" in response.json()["details"]


def test_last_used_is_recorded_at_most_once_a_minute(owner, workspace, make_api_key,
                                                     django_assert_num_queries):
    key, plaintext = make_api_key(owner, workspace, scopes=["read"])
    start = timezone.now()

    assert authenticate_api_key(plaintext, now=start).last_used_at == start
    with django_assert_num_queries(0):  # a cached success: no lookup, no UPDATE in the minute
        authenticate_api_key(plaintext, now=start + timedelta(seconds=30))
    cache.clear()
    with django_assert_num_queries(1):  # the lookup only: no UPDATE within the minute
        authenticate_api_key(plaintext, now=start + timedelta(seconds=59))
    assert ApiKey.objects.get(pk=key.pk).last_used_at == start
    authenticate_api_key(plaintext, now=start + timedelta(seconds=61))
    assert ApiKey.objects.get(pk=key.pk).last_used_at == start + timedelta(seconds=61)


def test_a_request_with_a_key_updates_last_used(api_client, owner, workspace, make_api_key):
    key, plaintext = make_api_key(owner, workspace, scopes=["read"])
    api_client.get("/api/v1/workspaces/", HTTP_X_API_KEY=plaintext)
    assert ApiKey.objects.get(pk=key.pk).last_used_at is not None


def test_key_stops_working_when_its_creator_leaves(api_client, owner, teammate, workspace,
                                                   make_api_key):
    _, plaintext = make_api_key(teammate, workspace, scopes=["read"])
    Membership.objects.filter(workspace=workspace, user=teammate).delete()

    _unauthorized(api_client.get("/api/v1/workspaces/", HTTP_X_API_KEY=plaintext))


def test_key_acts_with_its_creators_current_role(api_client, teammate, workspace, make_api_key):
    _, plaintext = make_api_key(teammate, workspace, scopes=["read", "trade:paper"])
    url = f"/api/v1/workspaces/{workspace.pk}/keys/"
    body = {"name": "x", "scopes": ["read"]}
    assert api_client.post(url, body, format="json", HTTP_X_API_KEY=plaintext).status_code == 201

    Membership.objects.filter(workspace=workspace, user=teammate).update(role=Role.VIEWER)
    body["scopes"] = ["trade:paper"]
    assert api_client.post(url, body, format="json", HTTP_X_API_KEY=plaintext).status_code == 403


def test_revoking_someone_elses_key_needs_an_owner(owner, teammate, workspace, make_api_key):
    from rest_framework.exceptions import PermissionDenied

    key, _ = make_api_key(owner, workspace, scopes=["read"])
    with pytest.raises(PermissionDenied):
        revoke_api_key(key=key, by=teammate)
    own, _ = make_api_key(teammate, workspace, scopes=["read"])
    assert revoke_api_key(key=own, by=teammate).revoked_at is not None
    assert revoke_api_key(key=own, by=owner).revoked_at is not None  # idempotent


def test_per_key_throttle_answers_429_in_the_envelope(api_client, owner, workspace, make_api_key,
                                                      settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"api_key": "2/min"}}
    _, first = make_api_key(owner, workspace, scopes=["read"])
    _, second = make_api_key(owner, workspace, scopes=["read"])
    url = "/api/v1/workspaces/"

    statuses = [api_client.get(url, HTTP_X_API_KEY=first).status_code for _ in range(3)]
    limited = api_client.get(url, HTTP_X_API_KEY=first)

    assert statuses == [200, 200, 429]
    assert limited.json()["code"] == "RATE_LIMITED"
    assert limited.json()["details"]["retry_after_seconds"] >= 1
    assert int(limited["Retry-After"]) >= 1
    assert api_client.get(url, HTTP_X_API_KEY=second).status_code == 200  # per key, not global


def test_session_users_are_not_throttled_per_key(api_client, owner, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"api_key": "1/min"}}
    api_client.force_login(owner)
    assert [api_client.get("/api/v1/workspaces/").status_code for _ in range(3)] == [200] * 3


def test_openapi_schema_renders_and_lists_the_management_endpoints(api_client):
    response = api_client.get("/api/schema/?format=json")

    assert response.status_code == 200
    schema = response.json()
    assert {"/api/v1/workspaces/", "/api/v1/workspaces/{workspace_id}/",
            "/api/v1/workspaces/{workspace_id}/members/",
            "/api/v1/workspaces/{workspace_id}/members/{member_id}/",
            "/api/v1/workspaces/{workspace_id}/invitations/",
            "/api/v1/workspaces/{workspace_id}/keys/",
            "/api/v1/workspaces/{workspace_id}/keys/{key_id}/"} <= set(schema["paths"])
    assert set(schema["paths"]["/api/v1/workspaces/{workspace_id}/keys/{key_id}/"]) >= {
        "get", "delete"}
    assert set(schema["components"]["securitySchemes"]) >= {"ApiKeyBearer", "ApiKeyHeader"}


def test_api_docs_page_renders(api_client):
    response = api_client.get("/api/docs/")
    assert response.status_code == 200
    assert b"/api/schema/" in response.content


# -- a key never creates a key that outlives or out-scopes it -----------------------------------


def _create_with_key(api_client, workspace, plaintext, **body):
    body = {"name": "child", "scopes": ["read"], **body}
    return api_client.post(f"/api/v1/workspaces/{workspace.pk}/keys/", body, format="json",
                           HTTP_X_API_KEY=plaintext)


def test_a_key_with_an_expiry_cannot_create_a_key_without_one(api_client, owner, workspace,
                                                               make_api_key):
    expires = timezone.now() + timedelta(hours=1)
    _, parent = make_api_key(owner, workspace, scopes=["read", "trade:paper"], expires_at=expires)

    response = _create_with_key(api_client, workspace, parent)

    assert response.status_code == 400
    assert response.json() == {
        "code": "VALIDATION_ERROR", "message": "The request has invalid fields; see details.",
        "details": {"expires_at": [
            f"A key that expires at {expires.isoformat()} cannot create a key that outlives it: "
            "choose an expiry no later than that."]}}


def test_a_key_with_an_expiry_cannot_create_a_key_that_expires_later(api_client, owner, workspace,
                                                                     make_api_key):
    expires = timezone.now() + timedelta(hours=1)
    _, parent = make_api_key(owner, workspace, scopes=["read", "trade:paper"], expires_at=expires)
    later = (expires + timedelta(seconds=1)).isoformat()
    assert _create_with_key(api_client, workspace, parent, expires_at=later).status_code == 400


def test_a_key_may_create_a_key_that_expires_with_it_or_sooner(api_client, owner, workspace,
                                                               make_api_key):
    expires = timezone.now() + timedelta(hours=1)
    _, parent = make_api_key(owner, workspace, scopes=["read", "trade:paper"], expires_at=expires)
    for child_expiry in (expires, expires - timedelta(minutes=30)):
        response = _create_with_key(api_client, workspace, parent,
                                    expires_at=child_expiry.isoformat())
        assert response.status_code == 201, response.json()
        assert response.json()["expires_at"] == child_expiry.isoformat().replace("+00:00", "Z")


def test_a_key_without_an_expiry_may_create_one_without(api_client, owner, workspace,
                                                        make_api_key):
    _, parent = make_api_key(owner, workspace, scopes=["read", "trade:paper"])
    assert _create_with_key(api_client, workspace, parent).status_code == 201


def test_a_signed_in_user_may_create_a_key_without_an_expiry(api_client, owner, workspace):
    assert _create_by_api(api_client, owner, workspace).json()["expires_at"] is None


def test_a_key_of_a_demoted_creator_cannot_create_a_key_beyond_the_new_role(
    api_client, owner, teammate, workspace, make_api_key
):
    _, parent = make_api_key(teammate, workspace, scopes=["read", "trade:paper"])
    membership = Membership.objects.get(workspace=workspace, user=teammate)
    change_member_role(membership=membership, role=Role.VIEWER, by=owner)

    response = _create_with_key(api_client, workspace, parent, scopes=["read"])

    assert response.status_code == 403  # the parent cannot act (write) as a viewer at all
    assert response.json()["details"] == {"required_scope": "trade:paper", "role": "viewer"}


# -- one rule: which scopes a role may use --------------------------------------------------


@pytest.mark.parametrize(("role", "allowed"), [
    (Role.VIEWER, {"read"}),
    (Role.MEMBER, {"read", "trade:paper"}),
    (Role.OWNER, {"read", "trade:paper", "trade:live"}),
])
def test_a_role_may_use_only_its_own_scopes(role, allowed):
    from accounts.models import API_KEY_SCOPES, role_allows_scope

    assert {scope for scope in API_KEY_SCOPES if role_allows_scope(role, scope)} == allowed
    assert not role_allows_scope(None, "read")  # no membership: nothing


def test_a_demoted_owners_live_key_no_longer_grants_trade_live(owner, teammate, workspace,
                                                               make_api_key):
    _, plaintext = make_api_key(owner, workspace, scopes=["read", "trade:live"])
    assert authenticate_api_key(plaintext).allows("trade:live")
    change_member_role(membership=Membership.objects.get(workspace=workspace, user=teammate),
                       role=Role.OWNER, by=owner)
    change_member_role(membership=Membership.objects.get(workspace=workspace, user=owner),
                       role=Role.MEMBER, by=teammate)
    key = authenticate_api_key(plaintext)
    assert (key.has_scope("trade:live"), key.allows("trade:live"), key.allows("read")) == (
        True, False, True)
