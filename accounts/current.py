"""The dashboard's current workspace: chosen by the user, kept in the session, always re-checked.

The session only stores an id; every request resolves it through the user's memberships, so a
stale or forged id simply falls back to the personal workspace.
"""

from __future__ import annotations

from django.http import HttpRequest

from accounts.models import Membership, Workspace

SESSION_KEY = "workspace_id"


def user_memberships(request: HttpRequest) -> list[Membership]:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return []
    cached = getattr(request, "_parity_memberships", None)
    if cached is None:
        cached = list(
            Membership.objects.filter(user=request.user)
            .select_related("workspace")
            .order_by("-workspace__personal", "workspace__name")
        )
        request._parity_memberships = cached  # type: ignore[attr-defined]
    return cached


def current_membership(request: HttpRequest) -> Membership | None:
    """The membership of the selected workspace, else the personal one, else the first one."""
    memberships = user_memberships(request)
    if not memberships:
        return None
    wanted = request.session.get(SESSION_KEY)
    for membership in memberships:
        if str(membership.workspace_id) == wanted:
            return membership
    return memberships[0]


def select_workspace(request: HttpRequest, workspace: Workspace) -> None:
    """Remember `workspace` as current; callers have already checked the user belongs to it."""
    request.session[SESSION_KEY] = str(workspace.pk)
