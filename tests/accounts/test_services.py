"""Services and role rules: demo bootstrap, owners, member removal, scopes, role methods."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import ValidationError

from accounts.models import ApiKey, Membership, Role, Workspace
from accounts.services import (
    change_member_role,
    create_workspace,
    ensure_demo_account,
    remove_member,
    validate_scopes,
)
from config.errors import ApiError


def test_ensure_demo_account_is_idempotent(db, fast_password_hasher):
    user, workspace = ensure_demo_account(email="demo@parity.test", password="demo")
    again, same = ensure_demo_account(email="Demo@Parity.test", password="demo2")

    assert (again.pk, same.pk) == (user.pk, workspace.pk)
    assert workspace.personal and again.check_password("demo2")
    assert Workspace.objects.for_user(user).count() == 1


def test_the_last_owner_cannot_be_demoted_or_removed(owner, workspace):
    mine = Membership.objects.get(workspace=workspace, user=owner)
    for action in (lambda: change_member_role(membership=mine, role="member", by=owner),
                   lambda: remove_member(membership=mine, by=owner)):
        with pytest.raises(ApiError) as error:
            action()
        assert error.value.error_code == "LAST_OWNER"


def test_removing_a_member_revokes_their_keys(owner, teammate, workspace, make_api_key):
    key, _ = make_api_key(teammate, workspace, scopes=["read"])
    remove_member(membership=Membership.objects.get(workspace=workspace, user=teammate),
                  by=owner)
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


def test_validate_scopes_sorts_dedupes_and_refuses_unknown_ones():
    assert validate_scopes(["trade:paper", "read", "read"]) == ["read", "trade:paper"]
    for bad in ([], ["admin"]):
        with pytest.raises(ValidationError):
            validate_scopes(bad)


def test_create_workspace_needs_a_name(owner):
    with pytest.raises(ValidationError):
        create_workspace(owner=owner, name="  ")


@pytest.mark.parametrize("role,can", [
    (Role.OWNER, (True, True, True, True)),
    (Role.MEMBER, (True, True, True, False)),
    (Role.VIEWER, (False, False, False, False)),
])
def test_role_methods(role, can):
    membership = Membership(role=role)
    assert (membership.can_edit(), membership.can_trade(), membership.can_upload(),
            membership.can_manage()) == can


def test_workspaces_for_an_anonymous_user_are_none(db):
    from django.contrib.auth.models import AnonymousUser

    assert list(Workspace.objects.for_user(AnonymousUser())) == []
