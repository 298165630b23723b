"""404s: the JSON envelope for API clients, a readable page for people."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from config.errors import error_body


@pytest.mark.django_db
def test_an_unknown_api_path_answers_the_json_envelope(client: Client) -> None:
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"code": "NOT_FOUND", "message": "No such resource.", "details": {}}


@pytest.mark.django_db
def test_an_unknown_page_answers_a_page_for_a_browser(client: Client) -> None:
    response = client.get("/no-such-page", HTTP_ACCEPT="text/html,application/xhtml+xml")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert "We could not find that page" in response.content.decode()


@pytest.mark.django_db
def test_a_json_client_gets_json_anywhere(client: Client) -> None:
    response = client.get("/no-such-page", HTTP_ACCEPT="application/json")
    assert response.json()["code"] == "NOT_FOUND"


# --- every error under /api/ and /sessions/ is the envelope, with DEBUG on or off -------------

DEBUG_ON_AND_OFF = pytest.mark.parametrize("debug", [True, False], ids=["debug", "no-debug"])
NOT_FOUND = {"code": "NOT_FOUND", "message": "No such resource.", "details": {}}
INTERNAL = {"code": "INTERNAL_ERROR", "message": "Internal error.", "details": {}}


def assert_envelope(response, status: int, body: dict) -> None:
    assert (response.status_code, response["Content-Type"]) == (status, "application/json")
    assert response.json() == body


@pytest.fixture
def unguarded_client(owner, workspace, make_api_key) -> Client:
    """The owner's API client, answering a view's exception the way a server does: a 500."""
    _, plaintext = make_api_key(owner, workspace)
    return Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {plaintext}")


@DEBUG_ON_AND_OFF
@pytest.mark.parametrize(
    "path",
    ["/api/v1/no-such-thing", "/api/no-such-thing", "/api/v1/workspaces/not-a-uuid/strategies/"],
)
@pytest.mark.django_db
def test_an_unknown_api_route_answers_the_envelope_not_the_debug_url_list(
    settings, client: Client, debug: bool, path: str
) -> None:
    settings.DEBUG = debug
    assert_envelope(client.get(path), 404, NOT_FOUND)


@DEBUG_ON_AND_OFF
@pytest.mark.django_db
def test_a_method_the_schema_view_does_not_allow_answers_the_json_envelope(
    settings, client: Client, debug: bool
) -> None:
    settings.DEBUG = debug
    not_allowed = error_body("METHOD_NOT_ALLOWED", 'Method "PATCH" not allowed.')
    assert_envelope(client.patch("/api/schema/"), 405, not_allowed)


@DEBUG_ON_AND_OFF
@pytest.mark.django_db
def test_a_method_an_api_view_does_not_allow_answers_the_envelope(
    settings, unguarded_client: Client, debug: bool
) -> None:
    settings.DEBUG = debug
    not_allowed = error_body("METHOD_NOT_ALLOWED", 'Method "PUT" not allowed.')
    assert_envelope(unguarded_client.put("/api/v1/workspaces/"), 405, not_allowed)


@DEBUG_ON_AND_OFF
@pytest.mark.django_db
def test_an_unsupported_media_type_answers_the_envelope(
    settings, owner, workspace, sign_in, debug: bool
) -> None:
    settings.DEBUG = debug
    client = sign_in(owner, workspace)
    response = client.post(
        f"/api/v1/workspaces/{workspace.pk}/strategies/", data="name=x", content_type="text/plain"
    )
    unsupported = error_body(
        "UNSUPPORTED_MEDIA_TYPE", 'Unsupported media type "text/plain" in request.'
    )
    assert_envelope(response, 415, unsupported)


def _explode(*args: object, **kwargs: object) -> None:
    raise RuntimeError("a bug in a view")


CRASHING_VIEWS = pytest.mark.parametrize(
    ("target", "path"),
    [
        ("accounts.api_views.WorkspaceListCreate.get", "/api/v1/workspaces/"),
        (
            "runtimes.transport.views.find_session",
            "/sessions/00000000-0000-0000-0000-000000000001/v1/account",
        ),
    ],
    ids=["management-api", "trading-api"],
)


@DEBUG_ON_AND_OFF
@CRASHING_VIEWS
@pytest.mark.django_db
def test_a_crash_in_an_api_view_answers_the_envelope_not_a_debug_page(
    settings, monkeypatch, unguarded_client: Client, debug: bool, target: str, path: str
) -> None:
    settings.DEBUG = debug
    monkeypatch.setattr(target, _explode)
    assert_envelope(unguarded_client.get(path), 500, INTERNAL)


@DEBUG_ON_AND_OFF
@pytest.mark.django_db
def test_a_page_outside_the_apis_keeps_its_html_error(
    settings, client: Client, debug: bool
) -> None:
    settings.DEBUG = debug
    response = client.get("/no-such-page", HTTP_ACCEPT="text/html")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@DEBUG_ON_AND_OFF
@pytest.mark.django_db
async def test_a_crash_behind_the_trading_apis_own_middleware_chain_answers_the_envelope(
    settings, monkeypatch, debug: bool
) -> None:
    # The test client runs settings.MIDDLEWARE; the server runs the Trading API's own chain.
    from runtimes.transport import views as trading_views
    from tests.config.test_asgi import _get

    settings.DEBUG = debug
    monkeypatch.setattr(trading_views, "token_session", _explode)
    status, headers, body = await _get("/sessions/00000000-0000-0000-0000-000000000001/health")
    assert (status, headers[b"Content-Type"]) == (500, b"application/json")
    assert json.loads(body) == INTERNAL


@pytest.fixture
def trading_client(owner, workspace, make_api_key) -> tuple[Client, str]:
    """A client with the owner's trading key, and the Trading API base of a session of theirs."""
    from runtimes.models import TradingSession

    session = TradingSession.objects.create(workspace=workspace, created_by=owner)
    _, plaintext = make_api_key(owner, workspace, scopes=("read", "trade:paper", "trade:live"))
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client, f"/sessions/{session.pk}"


TRADING_API_MISTAKES = pytest.mark.parametrize(
    ("method", "path", "body", "status", "envelope"),
    [
        (
            "put",
            "/v1/orders",
            None,
            405,
            error_body("METHOD_NOT_ALLOWED", 'Method "PUT" not allowed.'),
        ),
        (
            "post",
            "/v1/orders",
            "symbol=X",
            400,  # the reference's answer to a body that is not JSON
            error_body("INVALID_REQUEST", "Invalid JSON: the body must be application/json."),
        ),
        ("get", "/v2/orders", None, 404, error_body("NOT_FOUND", "No such route.")),
    ],
    ids=["method", "media-type", "route"],
)


@DEBUG_ON_AND_OFF
@TRADING_API_MISTAKES
@pytest.mark.django_db
def test_the_trading_api_answers_a_wrong_method_media_type_or_route_with_the_envelope(
    settings, trading_client, debug, method, path, body, status, envelope
) -> None:
    settings.DEBUG = debug
    client, base = trading_client
    kwargs = {} if body is None else {"data": body, "content_type": "text/plain"}
    assert_envelope(getattr(client, method)(base + path, **kwargs), status, envelope)
