"""Dashboard pages: sign-up, login, logout, password change, login throttling, workspaces, keys."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import SESSION_KEY
from django.urls import reverse

from accounts.models import ApiKey, Membership, Role, User, Workspace
from tests.conftest import PASSWORD

pytestmark = pytest.mark.usefixtures("fast_password_hasher")


def _login(client, email, password=PASSWORD, ip="10.0.0.1"):
    return client.post(reverse("login"), {"username": email, "password": password},
                       REMOTE_ADDR=ip)


def test_landing_page_says_what_the_platform_does(client):
    response = client.get(reverse("landing"))
    text = response.content.decode()
    assert response.status_code == 200
    assert all(word in text for word in ("Backtest", "Alpaca", "Binance", "tektii", "Parity"))


def test_sign_up_creates_a_personal_workspace_and_logs_in(client, db):
    response = client.post(reverse("signup"), {
        "email": "New.Person@Example.com", "password1": PASSWORD, "password2": PASSWORD})

    assert response.status_code == 302 and response["Location"] == reverse("dashboard")
    user = User.objects.get(email="new.person@example.com")
    membership = Membership.objects.get(user=user)
    assert (membership.role, membership.workspace.personal) == (Role.OWNER, True)
    assert client.session[SESSION_KEY] == str(user.pk)
    dashboard = client.get(reverse("dashboard"))
    assert dashboard.status_code == 200 and "Personal" in dashboard.content.decode()


def test_sign_up_keeps_input_and_shows_errors_next_to_fields(client, db):
    response = client.post(reverse("signup"), {
        "email": "someone@example.com", "password1": PASSWORD, "password2": "different-pass-1"})

    text = response.content.decode()
    assert response.status_code == 200
    assert 'value="someone@example.com"' in text
    assert "The two passwords differ." in text
    assert not User.objects.exists()


def test_sign_up_refuses_a_taken_email_and_a_weak_password(client, owner):
    taken = client.post(reverse("signup"), {
        "email": "OWNER@example.com", "password1": PASSWORD, "password2": PASSWORD})
    weak = client.post(reverse("signup"), {
        "email": "weak@example.com", "password1": "12345678", "password2": "12345678"})

    assert "An account with this email already exists." in taken.content.decode()
    assert "too short" in weak.content.decode()
    assert User.objects.count() == 1


def test_login_with_the_right_password_lands_on_the_dashboard(client, owner):
    response = _login(client, "Owner@Example.com")
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")
    assert client.session[SESSION_KEY] == str(owner.pk)


def test_login_with_a_wrong_password_keeps_the_email(client, owner):
    response = _login(client, "owner@example.com", "wrong-password")
    text = response.content.decode()
    assert response.status_code == 200
    assert 'value="owner@example.com"' in text
    assert "Please enter a correct email and password" in text
    assert SESSION_KEY not in client.session


def test_logout_ends_the_session(client, owner):
    client.force_login(owner)
    response = client.post(reverse("logout"))
    assert response.status_code == 302 and response["Location"] == reverse("landing")
    assert client.get(reverse("dashboard")).status_code == 302


def test_password_change_keeps_the_user_logged_in(client, owner):
    client.force_login(owner)
    response = client.post(reverse("password_change"), {
        "old_password": PASSWORD, "new_password1": "a-brand-new-passphrase",
        "new_password2": "a-brand-new-passphrase"})

    assert response.status_code == 302
    assert client.get(reverse("dashboard")).status_code == 200
    owner.refresh_from_db()
    assert owner.check_password("a-brand-new-passphrase")


def test_login_is_throttled_per_ip_and_email_without_checking_the_password(client, owner,
                                                                           settings):
    settings.LOGIN_THROTTLE_ATTEMPTS = 3
    settings.LOGIN_THROTTLE_WINDOW_SECONDS = 300
    for _ in range(3):
        _login(client, "owner@example.com", "wrong-password")

    blocked = _login(client, "owner@example.com")  # the right password, yet refused

    assert blocked.status_code == 200
    assert "Too many attempts; try again in 5 minutes." in blocked.content.decode()
    assert SESSION_KEY not in client.session
    assert _login(client, "owner@example.com", ip="10.0.0.2").status_code == 302


def test_a_successful_login_resets_the_failure_count(client, owner, settings):
    settings.LOGIN_THROTTLE_ATTEMPTS = 2
    _login(client, "owner@example.com", "wrong-password")
    assert _login(client, "owner@example.com").status_code == 302
    client.logout()
    _login(client, "owner@example.com", "wrong-password")
    assert _login(client, "owner@example.com").status_code == 302


def test_pages_need_a_login(client, db):
    for name in ("dashboard", "api_keys", "api_key_create", "workspace_members",
                 "workspace_create", "password_change"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_creating_and_switching_workspaces(client, owner, stranger_workspace):
    client.force_login(owner)
    client.post(reverse("workspace_create"), {"name": "Quant Lab"})
    lab = Workspace.objects.get(name="Quant Lab")
    assert "Quant Lab" in client.get(reverse("dashboard")).content.decode()

    personal = Workspace.objects.for_user(owner).get(personal=True)
    client.post(reverse("workspace_switch"), {"workspace_id": str(personal.pk)})
    assert client.session["workspace_id"] == str(personal.pk)
    assert client.post(reverse("workspace_switch"),
                       {"workspace_id": str(stranger_workspace.pk)}).status_code == 404
    assert client.post(reverse("workspace_switch"), {"workspace_id": "nope"}).status_code == 404
    assert client.session["workspace_id"] == str(personal.pk)
    assert lab.memberships.get().role == Role.OWNER


def test_api_key_page_shows_the_secret_once_with_the_sdk_example(client, owner):
    client.force_login(owner)
    response = client.post(reverse("api_key_create"), {"name": "laptop", "scopes": ["read"]})

    text = response.content.decode()
    plaintext = re.search(r"prt_[0-9A-Za-z]{12}_[0-9A-Za-z]{40}", text).group(0)
    assert f"export PARITY_API_KEY='{plaintext}'" in text
    assert 'TEKTII_TRADING_GATEWAY_API_KEY="$PARITY_API_KEY"' in text
    assert "python3 sma_crossover.py" in text and "PARITY_STRATEGY_PARAMS=" in text
    assert 'data-copy-target="new-key"' in text and 'data-copy-target="laptop-example"' in text
    listing = client.get(reverse("api_keys")).content.decode()
    assert plaintext not in listing and plaintext[:17] in listing


def test_api_key_form_keeps_input_on_error(client, viewer, workspace):
    client.force_login(viewer)
    client.post(reverse("workspace_switch"), {"workspace_id": str(workspace.pk)})
    response = client.post(reverse("api_key_create"),
                           {"name": "bot", "scopes": ["read", "trade:paper"]})
    text = response.content.decode()
    assert "Your role (viewer) may use only: read; not trade:paper." in text
    assert 'value="bot"' in text
    assert not ApiKey.objects.exists()


def test_revoking_a_key_from_the_dashboard(client, owner, make_api_key):
    personal = Workspace.objects.for_user(owner).get(personal=True)
    key, _ = make_api_key(owner, personal)
    client.force_login(owner)
    client.post(reverse("api_key_revoke", args=[key.pk]))
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_a_key_of_another_workspace_cannot_be_revoked_from_the_dashboard(
    client, stranger, owner, workspace, make_api_key
):
    key, _ = make_api_key(owner, workspace)
    client.force_login(stranger)
    assert client.post(reverse("api_key_revoke", args=[key.pk])).status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_sign_up_from_an_invitation_link_returns_to_it(client, db):
    response = client.post(reverse("signup") + "?next=/invitations/abc/", {
        "email": "x@example.com", "password1": PASSWORD, "password2": PASSWORD})
    assert response["Location"] == "/invitations/abc/"
    evil = client.post(reverse("signup"), {"email": "y@example.com", "password1": PASSWORD,
                                           "password2": PASSWORD, "next": "https://evil.test/"})
    assert evil["Location"] == reverse("dashboard")


def test_every_page_renders_for_an_owner(client, owner, teammate, workspace, make_api_key):
    make_api_key(owner, workspace)
    client.force_login(owner)
    client.post(reverse("workspace_switch"), {"workspace_id": str(workspace.pk)})
    for name in ("landing", "dashboard", "api_keys", "api_key_create", "workspace_members",
                 "workspace_create", "password_change"):
        response = client.get(reverse(name))
        assert response.status_code == 200, name
        assert "Acme" in response.content.decode(), name  # the workspace switcher
    client.logout()
    for name in ("signup", "login"):
        assert client.get(reverse(name)).status_code == 200


def test_admin_pages_render_without_secrets(client, owner, workspace, make_api_key):
    from accounts.models import User

    key, _ = make_api_key(owner, workspace)
    admin = User.objects.create_superuser("admin@example.com", PASSWORD)
    client.force_login(admin)
    pages = ["/admin/accounts/user/", f"/admin/accounts/user/{owner.pk}/change/",
             "/admin/accounts/user/add/", "/admin/accounts/apikey/",
             f"/admin/accounts/apikey/{key.pk}/change/",
             f"/admin/accounts/workspace/{workspace.pk}/change/",
             "/admin/accounts/invitation/", "/admin/accounts/brokercredential/"]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        assert key.hashed_secret not in response.content.decode(), page
    created = client.post("/admin/accounts/user/add/", {
        "email": "added@example.com", "password1": PASSWORD, "password2": PASSWORD,
        "usable_password": "true"})
    assert created.status_code == 302
    assert User.objects.filter(email="added@example.com").exists()
