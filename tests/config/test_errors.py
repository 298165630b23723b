"""404s: the JSON envelope for API clients, a readable page for people."""

from __future__ import annotations

import pytest
from django.test import Client


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
