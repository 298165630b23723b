"""The management API's trailing-slash rule: every route answers with and without its slash."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse

SAMPLE_KWARGS = {
    "workspace_id": uuid.UUID(int=1),
    "member_id": uuid.UUID(int=2),
    "key_id": uuid.UUID(int=3),
    "strategy_id": uuid.UUID(int=4),
    "number": 5,
    "dataset_id": uuid.UUID(int=6),
    "schedule_id": uuid.UUID(int=7),
    "session_id": uuid.UUID(int=8),
    "link_id": 9,
    "deployment_id": uuid.UUID(int=9),
    "connection_id": uuid.UUID(int=10),
    "invitation_id": uuid.UUID(int=11),
    "sweep_id": uuid.UUID(int=12),
}


def management_routes() -> list[str]:
    """The canonical path of every named route under /api/, reversed with sample ids."""
    paths = []

    def walk(patterns: list, prefix: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, prefix + str(entry.pattern))
            elif (
                isinstance(entry, URLPattern)
                and entry.name
                and (prefix + str(entry.pattern)).startswith("api/")
            ):
                needed = entry.pattern.converters.keys()
                paths.append(reverse(entry.name, kwargs={k: SAMPLE_KWARGS[k] for k in needed}))

    walk(get_resolver().url_patterns, "")
    return paths


def the_other_form(path: str) -> str:
    return path.removesuffix("/") if path.endswith("/") else path + "/"


def test_every_management_route_resolves_with_and_without_its_trailing_slash() -> None:
    routes = management_routes()
    assert len(routes) >= 35
    for path in routes:
        assert resolve(the_other_form(path)).url_name == resolve(path).url_name, path


def test_reverse_keeps_each_routes_documented_form() -> None:
    workspace = uuid.UUID(int=1)
    assert (
        reverse("api-strategies", kwargs={"workspace_id": workspace})
        == f"/api/v1/workspaces/{workspace}/strategies/"
    )
    assert (
        reverse("api-sessions", kwargs={"workspace_id": workspace})
        == f"/api/v1/workspaces/{workspace}/sessions"
    )


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "no-debug"])
@pytest.mark.django_db
def test_creating_a_strategy_without_the_trailing_slash_creates_it(
    settings, owner, workspace, sign_in, debug: bool
) -> None:
    settings.DEBUG = debug
    client = sign_in(owner, workspace)
    response = client.post(
        f"/api/v1/workspaces/{workspace.pk}/strategies",
        data={"name": "Momentum"},
        content_type="application/json",
    )
    assert response.status_code == 201
    assert response.json()["name"] == "Momentum"


@pytest.mark.django_db
def test_listing_sessions_with_a_trailing_slash_lists_them(owner, workspace, sign_in) -> None:
    client = sign_in(owner, workspace)
    response = client.get(f"/api/v1/workspaces/{workspace.pk}/sessions/")
    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.django_db
def test_the_trading_api_keeps_its_exact_paths(client: Client) -> None:
    session = uuid.UUID(int=9)
    assert resolve(f"/sessions/{session}/v1/orders").func.view_initkwargs == {
        "ops": {"post": "submit_order", "get": "list_orders", "delete": "cancel_all_orders"}
    }
    assert resolve(f"/sessions/{session}/v1/orders/").url_name is None  # the catch-all 404
