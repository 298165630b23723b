"""Probes: /livez, /readyz and /health."""

from __future__ import annotations

import pytest
from django.test import Client

from config import health


@pytest.mark.django_db
def test_livez_answers_ok_without_authentication(client: Client) -> None:
    response = client.get("/livez")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.django_db
def test_readyz_is_ready_when_the_database_answers(client: Client, settings: object) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["ready"] is True
    assert response.json()["components"]["database"] is True


@pytest.mark.django_db
def test_readyz_is_503_when_the_database_is_down(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "_database_ok", lambda: (False, "OperationalError"))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "ready": False,
        "components": {"database": False, "redis": response.json()["components"]["redis"]},
    }


@pytest.mark.django_db
def test_readyz_is_503_when_configured_redis_is_unreachable(
    client: Client, settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # type: ignore[attr-defined]
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["components"]["redis"] is False


@pytest.mark.django_db
def test_health_reports_version_and_components(client: Client, settings: object) -> None:
    body = client.get("/health").json()
    assert body["version"] == "0.1.0"
    assert body["status"] == "ok"
    assert set(body["components"]) == {"database", "redis"}
    assert body["topology"] == settings.TOPOLOGY  # type: ignore[attr-defined]
