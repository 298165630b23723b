"""Dashboard pages: sign-up (by emailed link), login, logout, password change, login
throttling, workspaces, keys."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core import mail
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


def _sign_up(client, email, password=PASSWORD, next_url=""):
    query = f"?next={next_url}" if next_url else ""
    return client.post(reverse("signup") + query, {
        "email": email, "password1": password, "password2": password})


def _link_in(message) -> str:
    """The path of the sign-up link in an email (the test client's host is testserver)."""
    found = re.search(r"http://testserver(/signup/confirm/\S+)", message.body)
    assert found, message.body
    return found.group(1)


def test_sign_up_emails_a_link_that_opens_the_new_users_own_workspace(client, db):
    response = _sign_up(client, "New.Person@Example.com")

    assert response.status_code == 200
    assert "Check your email" in response.content.decode()
    assert SESSION_KEY not in client.session
    [message] = mail.outbox
    assert message.to == ["new.person@example.com"]
    assert message.subject == "Finish signing up for Parity"
    link = _link_in(message)
    assert "Finish signing up" in client.get(link).content.decode()  # a GET changes nothing
    assert not User.objects.get(email="new.person@example.com").is_active

    finished = client.post(link)

    assert finished.status_code == 302 and finished["Location"] == reverse("dashboard")
    user = User.objects.get(email="new.person@example.com")
    assert user.is_active and user.check_password(PASSWORD)
    membership = Membership.objects.get(user=user)
    assert (membership.role, membership.workspace.personal) == (Role.OWNER, True)
    assert client.session[SESSION_KEY] == str(user.pk)
    dashboard = client.get(reverse("dashboard"))
    assert dashboard.status_code == 200 and "Personal" in dashboard.content.decode()


def test_sign_up_answers_the_same_for_a_new_and_a_taken_email(client, owner):
    new = _sign_up(client, "newcomer@example.com")
    taken = _sign_up(client, "OWNER@example.com")

    assert new.status_code == taken.status_code == 200
    assert (new.content.decode().replace("newcomer@example.com", "ADDRESS")
            == taken.content.decode().replace("owner@example.com", "ADDRESS"))
    notice = mail.outbox[1]
    assert notice.to == ["owner@example.com"]
    assert notice.subject == "Signing up for Parity"
    assert "already has an account" in notice.body and "http://testserver/login/" in notice.body
    assert "/signup/confirm/" not in notice.body
    owner.refresh_from_db()
    assert owner.is_active and owner.check_password(PASSWORD)
    assert Membership.objects.filter(user=owner).count() == 1


def test_sign_up_hashes_the_password_once_for_a_new_and_a_taken_email(client, owner, settings):
    # The expensive step (PBKDF2 in production) on both paths: the time taken tells nothing.
    settings.PASSWORD_HASHERS = ["tests.accounts.test_web.CountingHasher"]
    CountingHasher.calls = 0
    _sign_up(client, "newcomer@example.com")
    after_new = CountingHasher.calls
    _sign_up(client, "owner@example.com")

    assert (after_new, CountingHasher.calls - after_new) == (1, 1)


class CountingHasher(MD5PasswordHasher):
    calls = 0

    def encode(self, password, salt):
        CountingHasher.calls += 1
        return super().encode(password, salt)


def test_sign_up_keeps_input_and_shows_errors_next_to_fields(client, db):
    response = client.post(reverse("signup"), {
        "email": "someone@example.com", "password1": PASSWORD, "password2": "different-pass-1"})

    text = response.content.decode()
    assert response.status_code == 200
    assert 'value="someone@example.com"' in text
    assert "The two passwords differ." in text
    assert not User.objects.exists() and not mail.outbox


def test_sign_up_refuses_a_weak_password_whatever_the_email(client, owner):
    weak = _sign_up(client, "weak@example.com", "12345678")
    weak_taken = _sign_up(client, "owner@example.com", "12345678")

    assert "too short" in weak.content.decode() and "too short" in weak_taken.content.decode()
    assert "already exists" not in weak_taken.content.decode()
    assert User.objects.count() == 1 and not mail.outbox


def test_a_sign_up_link_works_once(client, db):
    _sign_up(client, "once@example.com")
    link = _link_in(mail.outbox[0])
    assert client.post(link).status_code == 302
    client.logout()

    again = client.post(link)

    assert again.status_code == 400
    assert "This sign-up link is invalid or has expired" in again.content.decode()
    assert SESSION_KEY not in client.session


def test_a_tampered_sign_up_link_is_refused(client, db):
    _sign_up(client, "tamper@example.com")
    link = _link_in(mail.outbox[0])

    response = client.post(link.replace("/confirm/", "/confirm/x"))

    assert response.status_code == 400
    assert not User.objects.get(email="tamper@example.com").is_active


def test_signing_up_again_before_confirming_replaces_the_password_and_the_link(client, db):
    _sign_up(client, "twice@example.com", "first-passphrase-1")
    _sign_up(client, "twice@example.com", "second-passphrase-2")
    first, second = (_link_in(message) for message in mail.outbox)

    assert client.post(first).status_code == 400
    assert client.post(second).status_code == 302
    user = User.objects.get(email="twice@example.com")
    assert user.check_password("second-passphrase-2")


def test_an_unconfirmed_account_cannot_log_in(client, db):
    _sign_up(client, "pending@example.com")

    response = _login(client, "pending@example.com")

    assert "Please enter a correct email and password" in response.content.decode()
    assert SESSION_KEY not in client.session


def test_sign_up_never_reactivates_a_deactivated_account(client, owner):
    owner.is_active = False
    owner.save(update_fields=["is_active"])

    _sign_up(client, "owner@example.com", "an-attackers-passphrase")

    owner.refresh_from_db()
    assert not owner.is_active and owner.check_password(PASSWORD)
    assert "/signup/confirm/" not in mail.outbox[0].body


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
    response = client.post(reverse("api_key_create"), {"name": "laptop", "scopes": ["read"]},
                           follow=True)

    text = response.content.decode()
    plaintext = re.search(r"prt_[0-9A-Za-z]{12}_[0-9A-Za-z]{40}", text).group(0)
    assert f"export PARITY_API_KEY='{plaintext}'" in text
    assert 'TEKTII_TRADING_GATEWAY_API_KEY="$PARITY_API_KEY"' in text
    assert "python3 sma_crossover.py" in text and "PARITY_STRATEGY_PARAMS=" in text
    assert 'data-copy-target="new-key"' in text and 'data-copy-target="laptop-example"' in text
    listing = client.get(reverse("api_keys")).content.decode()
    assert plaintext not in listing and plaintext[:17] in listing


BARS = (b"timestamp,open,high,low,close,volume\n2021-01-01T00:00:00Z,10,11,9,10,5\n"
        b"2021-01-02T00:00:00Z,10,12,9,11,5\n")


def test_the_sdk_example_runs_on_a_one_symbol_dataset_of_the_current_workspace_only(
        sign_in, owner, workspace, stranger, stranger_workspace):
    from strategies.services import upload_dataset

    single = upload_dataset(workspace=workspace, by=owner, name="SPY daily",
                            files={"SPY": ("SPY.csv", BARS)})
    upload_dataset(workspace=workspace, by=owner, name="Pair daily",
                   files={"SPY": ("SPY.csv", BARS), "QQQ": ("QQQ.csv", BARS)})
    theirs = upload_dataset(workspace=stranger_workspace, by=stranger, name="Their daily",
                            files={"IWM": ("IWM.csv", BARS)})

    text = sign_in(owner, workspace).post(
        reverse("api_key_create"), {"name": "laptop", "scopes": ["read"]},
        follow=True).content.decode()

    assert "on <strong>SPY daily</strong>" in text
    assert f'{{"dataset": "{single.pk}"}}' in text
    assert str(theirs.pk) not in text and "Their daily" not in text


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
    _sign_up(client, "x@example.com", next_url="/invitations/abc/")
    response = client.post(_link_in(mail.outbox[0]))
    assert response["Location"] == "/invitations/abc/"
    client.logout()
    client.post(reverse("signup"), {"email": "y@example.com", "password1": PASSWORD,
                                    "password2": PASSWORD, "next": "https://evil.test/"})
    evil = client.post(_link_in(mail.outbox[1]))
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
