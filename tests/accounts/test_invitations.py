"""Invitations: owners invite by email; only the invited address can accept, once, in time."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from rest_framework.exceptions import PermissionDenied

from accounts.models import Invitation, Membership, Role
from accounts.services import accept_invitation, invite_member, sign_up
from config.errors import ApiError
from tests.conftest import PASSWORD


def test_owner_invites_by_email_and_only_a_hash_of_the_token_is_stored(owner, workspace):
    invitation, token = invite_member(workspace=workspace, invited_by=owner,
                                      email="Friend@Example.com", role="viewer",
                                      accept_url_base="https://parity.test/")

    assert (invitation.email, invitation.role) == ("friend@example.com", "viewer")
    assert token not in invitation.token_hash
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["friend@example.com"]
    assert f"https://parity.test/invitations/{token}/" in mail.outbox[0].body


def test_invited_user_accepts_and_joins_with_the_invited_role(owner, workspace):
    _, token = invite_member(workspace=workspace, invited_by=owner, email="friend@example.com",
                             role="viewer")
    friend = sign_up(email="friend@example.com", password=PASSWORD)

    membership = accept_invitation(token=token, user=friend)

    assert (membership.workspace, membership.role) == (workspace, Role.VIEWER)
    with pytest.raises(ApiError) as reused:
        accept_invitation(token=token, user=friend)
    assert reused.value.error_code == "INVITATION_INVALID"


def test_accepting_requires_the_invited_email(owner, workspace, stranger):
    _, token = invite_member(workspace=workspace, invited_by=owner, email="friend@example.com",
                             role="member")
    with pytest.raises(ApiError) as mismatch:
        accept_invitation(token=token, user=stranger)
    assert (mismatch.value.error_code, mismatch.value.status_code) == (
        "INVITATION_EMAIL_MISMATCH", 403)
    assert not Membership.objects.filter(workspace=workspace, user=stranger).exists()


def test_expired_invitation_cannot_be_accepted(owner, workspace, fast_password_hasher):
    invitation, token = invite_member(workspace=workspace, invited_by=owner,
                                      email="late@example.com", role="member")
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1))
    late = sign_up(email="late@example.com", password=PASSWORD)
    with pytest.raises(ApiError):
        accept_invitation(token=token, user=late)


def test_only_owners_invite_and_members_are_not_invited_twice(owner, teammate, workspace):
    with pytest.raises(PermissionDenied):
        invite_member(workspace=workspace, invited_by=teammate, email="x@example.com",
                      role="member")
    with pytest.raises(ApiError) as already:
        invite_member(workspace=workspace, invited_by=owner, email="teammate@example.com",
                      role="member")
    assert already.value.status_code == 409


def test_a_new_invitation_replaces_the_pending_one(owner, workspace):
    invite_member(workspace=workspace, invited_by=owner, email="x@example.com", role="member")
    invite_member(workspace=workspace, invited_by=owner, email="x@example.com", role="viewer")
    assert list(Invitation.objects.for_workspace(workspace).values_list("role", flat=True)) == [
        "viewer"]


def test_invitation_page_flow_from_the_email_link(client, owner, workspace):
    client.force_login(owner)
    client.post(reverse("workspace_switch"), {"workspace_id": str(workspace.pk)})
    client.post(reverse("workspace_members"), {"email": "friend@example.com", "role": "member"})
    link = re.search(r"http://testserver(/invitations/[^/\s]+/)", mail.outbox[0].body).group(1)
    client.logout()

    assert client.get(link)["Location"].startswith(reverse("login"))
    friend = sign_up(email="friend@example.com", password=PASSWORD)
    client.force_login(friend)
    assert "Join Acme" in client.get(link).content.decode()
    response = client.post(link)

    assert response["Location"] == reverse("dashboard")
    assert Membership.objects.get(workspace=workspace, user=friend).role == Role.MEMBER
    assert client.get(link).status_code == 404


def test_invitation_page_tells_the_wrong_user_to_switch_account(client, owner, workspace,
                                                                stranger):
    _, token = invite_member(workspace=workspace, invited_by=owner, email="friend@example.com",
                             role="member")
    client.force_login(stranger)
    response = client.post(reverse("invitation_accept", args=[token]))
    assert response.status_code == 403
    assert "sign in with that address" in response.content.decode()


def test_members_page_lists_members_and_pending_invitations(client, owner, teammate, workspace):
    invite_member(workspace=workspace, invited_by=owner, email="pending@example.com",
                  role="viewer")
    client.force_login(owner)
    client.post(reverse("workspace_switch"), {"workspace_id": str(workspace.pk)})
    text = client.get(reverse("workspace_members")).content.decode()
    assert "teammate@example.com" in text and "pending@example.com" in text


def test_teammate_cannot_invite_from_the_members_page(client, teammate, workspace):
    client.force_login(teammate)
    client.post(reverse("workspace_switch"), {"workspace_id": str(workspace.pk)})
    response = client.post(reverse("workspace_members"),
                           {"email": "x@example.com", "role": "member"})
    assert "Only an owner of this workspace can do that." in response.content.decode()
    assert not Invitation.objects.exists()
