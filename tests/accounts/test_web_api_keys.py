"""API keys on the dashboard: creating one redirects after the POST (a reload shows the key,
never creates a second) and its secret is shown exactly once; revoking asks for confirmation
and only a POST revokes; a key of another workspace is a 404 on every page."""

from __future__ import annotations

import logging
import re

import pytest
from django.urls import reverse

from accounts.models import ApiKey
from accounts.views import NEW_KEY_SESSION

pytestmark = pytest.mark.usefixtures("fast_password_hasher")

SECRET = re.compile(r"prt_[0-9A-Za-z]{12}_[0-9A-Za-z]{40}")


def _create(client, name="laptop"):
    return client.post(reverse("api_key_create"), {"name": name, "scopes": ["read"]})


def test_creating_a_key_redirects_to_its_page_without_the_secret_in_the_url(
        sign_in, owner, workspace):
    response = _create(sign_in(owner, workspace))

    key = ApiKey.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("api_key_created", args=[key.pk])
    assert response["Location"] == f"/app/keys/{key.pk}/created/"


def test_the_page_after_the_redirect_shows_the_secret_once_and_a_reload_does_not(
        sign_in, owner, workspace, caplog):
    client = sign_in(owner, workspace)
    with caplog.at_level(logging.DEBUG):
        created = _create(client)
        first = client.get(created["Location"])
        reload = client.get(created["Location"])

    plaintext = SECRET.search(first.content.decode()).group(0)
    assert first.status_code == 200 and first["Cache-Control"].startswith("max-age=0")
    assert "no-store" in first["Cache-Control"]
    assert reload.status_code == 200
    assert SECRET.search(reload.content.decode()) is None
    assert "was shown once, when it was created, and cannot be shown again" in (
        reload.content.decode())
    assert NEW_KEY_SESSION not in client.session
    assert ApiKey.objects.count() == 1
    assert plaintext not in caplog.text
    assert ApiKey.objects.get().prefix in plaintext


def test_the_secret_is_shown_only_on_the_page_of_the_key_it_belongs_to(
        sign_in, owner, workspace, make_api_key):
    other, _ = make_api_key(owner, workspace, name="older")
    client = sign_in(owner, workspace)
    _create(client)

    page = client.get(reverse("api_key_created", args=[other.pk])).content.decode()

    assert SECRET.search(page) is None
    assert NEW_KEY_SESSION in client.session  # still waiting for its own page


def test_a_secret_whose_page_was_never_reached_is_dropped_by_the_key_list(
        sign_in, owner, workspace):
    client = sign_in(owner, workspace)
    created = _create(client)

    client.get(reverse("api_keys"))

    assert NEW_KEY_SESSION not in client.session
    assert SECRET.search(client.get(created["Location"]).content.decode()) is None


def test_the_created_page_of_a_key_of_another_workspace_is_a_404(
        sign_in, stranger, stranger_workspace, owner, workspace, make_api_key):
    key, _ = make_api_key(owner, workspace)

    response = sign_in(stranger, stranger_workspace).get(reverse("api_key_created", args=[key.pk]))

    assert response.status_code == 404


def test_revoke_asks_for_confirmation_and_a_get_revokes_nothing(sign_in, owner, workspace,
                                                                 make_api_key):
    key, _ = make_api_key(owner, workspace, name="ci bot")
    client = sign_in(owner, workspace)

    listing = client.get(reverse("api_keys")).content.decode()
    confirm = client.get(reverse("api_key_revoke", args=[key.pk]))

    assert f'href="{reverse("api_key_revoke", args=[key.pk])}">Revoke</a>' in listing
    page = confirm.content.decode()
    assert confirm.status_code == 200
    assert "Revoke the key “ci bot”?" in page
    assert '<form method="post" class="confirm-actions">' in page
    assert '<button type="submit" class="btn btn-danger">Revoke key</button>' in page
    key.refresh_from_db()
    assert key.revoked_at is None


def test_the_confirmation_post_revokes_the_key(sign_in, owner, workspace, make_api_key):
    key, _ = make_api_key(owner, workspace, name="ci bot")

    response = sign_in(owner, workspace).post(reverse("api_key_revoke", args=[key.pk]),
                                              follow=True)

    key.refresh_from_db()
    assert key.revoked_at is not None
    assert response.redirect_chain == [(reverse("api_keys"), 302)]
    assert "Key ci bot revoked." in response.content.decode()


def test_the_confirmation_of_a_revoked_key_says_so_without_a_button(sign_in, owner, workspace,
                                                                    make_api_key):
    key, _ = make_api_key(owner, workspace)
    client = sign_in(owner, workspace)
    client.post(reverse("api_key_revoke", args=[key.pk]))

    page = client.get(reverse("api_key_revoke", args=[key.pk])).content.decode()

    assert "This key was revoked on" in page and "Revoke key</button>" not in page


def test_other_methods_are_refused_on_revoke(sign_in, owner, workspace, make_api_key):
    key, _ = make_api_key(owner, workspace)

    response = sign_in(owner, workspace).put(reverse("api_key_revoke", args=[key.pk]))

    assert response.status_code == 405
    key.refresh_from_db()
    assert key.revoked_at is None


def test_the_confirmation_page_of_a_key_of_another_workspace_is_a_404(
        sign_in, stranger, stranger_workspace, owner, workspace, make_api_key):
    key, _ = make_api_key(owner, workspace)

    response = sign_in(stranger, stranger_workspace).get(reverse("api_key_revoke", args=[key.pk]))

    assert response.status_code == 404
