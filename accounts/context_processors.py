"""Template context: the current workspace and the user's workspaces (for the switcher)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.current import current_membership, user_memberships


def workspaces(request: HttpRequest) -> dict[str, Any]:
    membership = current_membership(request)
    return {
        "current_membership": membership,
        "current_workspace": membership.workspace if membership else None,
        "user_memberships": user_memberships(request),
    }
