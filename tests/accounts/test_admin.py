"""The admin site: its login is throttled exactly like the dashboard's."""

from __future__ import annotations

import pytest
from django.contrib.auth import SESSION_KEY
from django.urls import reverse

from tests.conftest import PASSWORD

pytestmark = pytest.mark.usefixtures("fast_password_hasher")


@pytest.fixture
def staff(owner):
    owner.is_staff = True
    owner.save(update_fields=["is_staff"])
    return owner


def _admin_login(client, password, ip="10.0.0.1"):
    return client.post(
        reverse("admin:login"),
        {"username": "owner@example.com", "password": password},
        REMOTE_ADDR=ip,
    )


def test_admin_login_refuses_the_attempt_after_the_limit_like_the_dashboard_login(
    client, staff, settings
):
    settings.LOGIN_THROTTLE_ATTEMPTS = 3
    settings.LOGIN_THROTTLE_WINDOW_SECONDS = 300
    for _ in range(3):
        assert _admin_login(client, "wrong-password").status_code == 200

    blocked = _admin_login(client, PASSWORD)  # the right password, yet refused
    dashboard = client.post(
        reverse("login"),
        {"username": "owner@example.com", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.1",
    )

    assert blocked.status_code == dashboard.status_code == 200
    assert "Too many attempts; try again in 5 minutes." in blocked.content.decode()
    assert "Too many attempts; try again in 5 minutes." in dashboard.content.decode()
    assert SESSION_KEY not in client.session
    assert _admin_login(client, PASSWORD, ip="10.0.0.2").status_code == 302


def test_a_successful_admin_login_resets_the_failure_count(client, staff, settings):
    settings.LOGIN_THROTTLE_ATTEMPTS = 2
    _admin_login(client, "wrong-password")
    assert _admin_login(client, PASSWORD).status_code == 302
    client.logout()
    _admin_login(client, "wrong-password")
    assert _admin_login(client, PASSWORD).status_code == 302
