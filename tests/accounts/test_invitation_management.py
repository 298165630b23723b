"""Invitations after they are sent: the link's page says what it is (who invites, to which
workspace, with which role, until when); owners revoke (the link then says so) and resend (a
new link and expiry; the old link is dead) from the members page and the API; teammates
cannot, strangers get a 404."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.urls import reverse
from rest_framework.exceptions import PermissionDenied

from accounts.models import Invitation, Membership
from accounts.services import (
    INVITATION_LIFETIME,
    accept_invitation,
    find_invitation,
    invite_member,
    resend_invitation,
    revoke_invitation,
    sign_up,
)
from config.errors import ApiError
from tests.conftest import PASSWORD

pytestmark = pytest.mark.usefixtures("fast_password_hasher")


@pytest.fixture
def invited(owner, workspace):
    """(invitation, token) of friend@example.com as a viewer of Acme."""
    return invite_member(workspace=workspace, invited_by=owner, email="friend@example.com",
                         role="viewer", accept_url_base="http://testserver/")


@pytest.fixture
def friend(db):
    return sign_up(email="friend@example.com", password=PASSWORD)


def _token_in(message) -> str:
    return re.search(r"/invitations/([^/\s]+)/", message.body).group(1)


def _error(excinfo) -> tuple[str, int, str]:
    return excinfo.value.error_code, excinfo.value.status_code, excinfo.value.message


def test_the_link_page_says_who_invites_to_which_workspace_with_which_role_until_when(
        client, invited, friend):
    invitation, token = invited
    client.force_login(friend)

    page = client.get(reverse("invitation_accept", args=[token])).content.decode()

    expires = f"{invitation.expires_at:%Y-%m-%d %H:%M}"
    assert ("<strong>owner@example.com</strong> invited <strong>friend@example.com</strong> to "
            "the Parity workspace <strong>Acme</strong> as <strong>viewer</strong>.") in page
    assert "A viewer sees the workspace's strategies, datasets and results" in page
    assert "Accepting adds you to Acme: it appears in your workspace switcher" in page
    assert f"This link expires on {expires} UTC and works once." in page
    assert "Accept and join Acme</button>" in page


def test_the_link_page_of_someone_else_says_whose_it_is_without_an_accept_button(
        client, invited, stranger):
    client.force_login(stranger)

    page = client.get(reverse("invitation_accept", args=[invited[1]])).content.decode()

    assert ("You are signed in as stranger@example.com; this invitation is for "
            "friend@example.com.") in page
    assert "Accept and join" not in page


def test_an_expired_link_says_when_it_expired_and_whom_to_ask(client, invited, friend):
    invitation, token = invited
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC))
    client.force_login(friend)

    response = client.get(reverse("invitation_accept", args=[token]))

    assert response.status_code == 410
    assert ("The invitation to Acme expired on 2026-01-02 03:04 UTC; ask owner@example.com for "
            "a new one.") in response.content.decode()


def test_revoking_kills_the_link_which_then_says_it_was_revoked(client, owner, invited, friend):
    invitation, token = invited
    now = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)

    revoke_invitation(invitation=invitation, by=owner, now=now)

    with pytest.raises(ApiError) as excinfo:
        find_invitation(token=token, now=now)
    assert _error(excinfo) == (
        "INVITATION_REVOKED", 410, "The invitation to Acme was revoked on 2026-03-04 05:06 UTC; "
                                   "ask owner@example.com for a new one if you still need it.")
    with pytest.raises(ApiError):
        accept_invitation(token=token, user=friend, now=now)
    assert not Membership.objects.filter(user=friend, workspace=invitation.workspace).exists()
    client.force_login(friend)
    response = client.post(reverse("invitation_accept", args=[token]))
    assert response.status_code == 410 and "was revoked on 2026-03-04" in response.content.decode()


def test_an_invitation_cannot_be_revoked_twice(owner, invited):
    revoke_invitation(invitation=invited[0], by=owner)

    with pytest.raises(ApiError) as excinfo:
        revoke_invitation(invitation=invited[0], by=owner)

    assert excinfo.value.error_code == "INVITATION_NOT_PENDING"
    assert excinfo.value.status_code == 409


def test_resending_mails_a_new_link_with_a_new_expiry_and_the_old_link_is_dead(
        owner, invited, friend):
    invitation, old_token = invited
    later = invitation.expires_at + timedelta(days=1)  # even after the first link expired

    renewed, new_token = resend_invitation(invitation=invitation, by=owner,
                                           accept_url_base="http://testserver/", now=later)

    assert new_token != old_token and _token_in(mail.outbox[-1]) == new_token
    assert len(mail.outbox) == 2 and mail.outbox[-1].to == ["friend@example.com"]
    assert renewed.expires_at == later + INVITATION_LIFETIME
    assert Invitation.objects.get(pk=invitation.pk).expires_at == later + INVITATION_LIFETIME
    with pytest.raises(ApiError) as excinfo:
        find_invitation(token=old_token, now=later)
    assert _error(excinfo)[:2] == ("INVITATION_INVALID", 404)
    assert "a newer link replaced it" in excinfo.value.message
    membership = accept_invitation(token=new_token, user=friend, now=later)
    assert (membership.workspace_id, membership.role) == (invitation.workspace_id, "viewer")


def test_an_accepted_or_revoked_invitation_cannot_be_resent(owner, invited, friend):
    invitation, token = invited
    accept_invitation(token=token, user=friend)

    with pytest.raises(ApiError) as excinfo:
        resend_invitation(invitation=invitation, by=owner)

    assert excinfo.value.error_code == "INVITATION_NOT_PENDING"
    assert len(mail.outbox) == 1


def test_only_owners_revoke_or_resend(teammate, invited):
    with pytest.raises(PermissionDenied):
        revoke_invitation(invitation=invited[0], by=teammate)
    with pytest.raises(PermissionDenied):
        resend_invitation(invitation=invited[0], by=teammate)

    assert Invitation.objects.get().revoked_at is None and len(mail.outbox) == 1


# --- the members page ---------------------------------------------------------------------------

def test_the_members_page_lists_open_invitations_with_resend_and_revoke(
        sign_in, owner, workspace, invited):
    invitation, _ = invited
    expired, _ = invite_member(workspace=workspace, invited_by=owner, email="late@example.com",
                               role="member")
    Invitation.objects.filter(pk=expired.pk).update(
        expires_at=datetime(2026, 1, 1, tzinfo=UTC))

    page = sign_in(owner, workspace).get(reverse("workspace_members")).content.decode()

    for i in (invitation, expired):  # an expired one may be resent, or revoked to clear it
        assert f'action="{reverse("invitation_action", args=[i.pk, "resend"])}"' in page
        assert f'action="{reverse("invitation_action", args=[i.pk, "revoke"])}"' in page
    assert '<span class="badge badge-off">expired</span> 2026-01-01 00:00 UTC' in page


def test_revoke_from_the_members_page(sign_in, owner, workspace, invited):
    invitation, _ = invited

    response = sign_in(owner, workspace).post(
        reverse("invitation_action", args=[invitation.pk, "revoke"]), follow=True)

    page = response.content.decode()
    assert "Invitation to friend@example.com revoked; its link no longer works." in page
    assert "data-invitation=\"friend@example.com\"" not in page
    assert Invitation.objects.get().revoked_at is not None


def test_resend_from_the_members_page(sign_in, owner, workspace, invited):
    invitation, old_token = invited

    response = sign_in(owner, workspace).post(
        reverse("invitation_action", args=[invitation.pk, "resend"]), follow=True)

    assert ("A new invitation link was sent to friend@example.com; the previous one no longer "
            "works.") in response.content.decode()
    new_token = _token_in(mail.outbox[-1])
    assert new_token != old_token
    assert find_invitation(token=new_token).pk == invitation.pk


def test_a_teammate_pressing_revoke_gets_the_refusal_and_changes_nothing(
        sign_in, teammate, workspace, invited):
    response = sign_in(teammate, workspace).post(
        reverse("invitation_action", args=[invited[0].pk, "revoke"]), follow=True)

    assert "Only an owner of this workspace can do that." in response.content.decode()
    assert Invitation.objects.get().revoked_at is None


def test_an_invitation_of_another_workspace_is_a_404_from_the_members_page(
        sign_in, stranger, stranger_workspace, invited):
    for action in ("revoke", "resend"):
        response = sign_in(stranger, stranger_workspace).post(
            reverse("invitation_action", args=[invited[0].pk, action]))
        assert response.status_code == 404
    assert Invitation.objects.get().revoked_at is None and len(mail.outbox) == 1


def test_invitation_buttons_need_a_post(sign_in, owner, workspace, invited):
    response = sign_in(owner, workspace).get(
        reverse("invitation_action", args=[invited[0].pk, "revoke"]))

    assert response.status_code == 405


# --- the management API -------------------------------------------------------------------------

def _api(api_client, user):
    api_client.force_login(user)
    return api_client


def test_the_api_revokes_with_delete_and_lists_the_revocation(api_client, owner, workspace,
                                                               invited):
    url = f"/api/v1/workspaces/{workspace.pk}/invitations/{invited[0].pk}/"

    response = _api(api_client, owner).delete(url)

    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    listed = api_client.get(f"/api/v1/workspaces/{workspace.pk}/invitations/").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert [row["revoked_at"] is not None for row in rows] == [True]
    again = api_client.delete(url)
    assert again.status_code == 409 and again.json()["code"] == "INVITATION_NOT_PENDING"


def test_the_api_resends_with_a_new_expiry(api_client, owner, workspace, invited):
    invitation, old_token = invited

    response = _api(api_client, owner).post(
        f"/api/v1/workspaces/{workspace.pk}/invitations/{invitation.pk}/resend/")

    assert response.status_code == 200
    assert response.json()["expires_at"] != invitation.expires_at.isoformat()
    assert _token_in(mail.outbox[-1]) != old_token
    with pytest.raises(ApiError):
        find_invitation(token=old_token)


def test_the_api_refuses_teammates_and_hides_invitations_from_strangers(
        api_client, teammate, stranger, workspace, invited):
    url = f"/api/v1/workspaces/{workspace.pk}/invitations/{invited[0].pk}/"

    assert _api(api_client, teammate).delete(url).status_code == 403
    refused = _api(api_client, stranger).post(url + "resend/")

    assert refused.status_code == 404
    assert set(refused.json()) == {"code", "message", "details"}
    assert Invitation.objects.get().revoked_at is None and len(mail.outbox) == 1


def test_inviting_an_address_again_replaces_its_expired_invitation_too(owner, workspace):
    first, _ = invite_member(workspace=workspace, invited_by=owner, email="late@example.com",
                             role="owner")
    Invitation.objects.filter(pk=first.pk).update(expires_at=datetime(2026, 1, 1, tzinfo=UTC))

    second, _ = invite_member(workspace=workspace, invited_by=owner, email="late@example.com",
                              role="member")

    assert list(Invitation.objects.filter(email="late@example.com")) == [second]


def test_an_expired_invitation_is_revoked_to_clear_it(owner, workspace):
    expired, _ = invite_member(workspace=workspace, invited_by=owner, email="late@example.com",
                               role="member")
    Invitation.objects.filter(pk=expired.pk).update(expires_at=datetime(2026, 1, 1, tzinfo=UTC))

    revoke_invitation(invitation=expired, by=owner)

    assert not Invitation.objects.for_workspace(workspace).open().exists()
