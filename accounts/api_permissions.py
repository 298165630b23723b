"""Workspace scoping for every DRF view of every app: the one way API code reaches tenant rows.

Usage (strategies, sessions, … reuse this):

    class StrategyList(WorkspaceScopedMixin, generics.ListCreateAPIView):
        scoped_model = Strategy                 # its manager has .for_workspace(ws)
        write_check = "can_upload"              # Membership method required for POST/PUT/…

with the URL `workspaces/<uuid:workspace_id>/strategies/`. Before the handler runs, the mixin
resolves `self.workspace` and `self.membership` through the user's memberships: a stranger (or an
API key of another workspace) gets 404, never 403, so ids do not leak; a role or key-scope
shortfall in one's own workspace gets 403. An API key acts with its creator's current role and
is limited by its scopes: reads need `read_scope` ("read"), writes `write_scope`
("trade:paper" by default: the scope that lets a key act rather than only look; live trading
views set "trade:live"). Views without a workspace in the URL use `accessible_workspaces()`.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import Model, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request

from accounts.models import (
    SCOPE_READ,
    SCOPE_TRADE_PAPER,
    ApiKey,
    Membership,
    Workspace,
    role_allows_scope,
)
from config.errors import ApiError


def request_api_key(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def accessible_workspaces(request: Request) -> Any:
    """Workspaces this request may see: the user's, narrowed to the key's one for API keys."""
    workspaces = Workspace.objects.for_user(request.user)
    key = request_api_key(request)
    return workspaces.filter(pk=key.workspace_id) if key else workspaces


def resolve_membership(request: Request, workspace_id: UUID | str) -> Membership:
    """The requester's membership of `workspace_id`, or 404 (stranger, or key of another ws)."""
    key = request_api_key(request)
    if key is not None and str(key.workspace_id) != str(workspace_id):
        raise Http404("No such workspace.")  # the same answer a stranger gets
    return get_object_or_404(
        Membership.objects.for_user(request.user).select_related("workspace"),
        workspace_id=workspace_id,
    )


def scope_denial(*, scope: str, granted: bool, role: str | None,
                 acting_for: str) -> ApiError | None:
    """The 403 for a credential that may not use `scope` now, or None: it must have been
    granted the scope AND the role of the person it acts for (`acting_for`, e.g. "The key's
    creator") must allow it today (`accounts.models.role_allows_scope`)."""
    if not granted:
        return ApiError("FORBIDDEN", f"This API key lacks the {scope!r} scope.", status_code=403,
                        details={"required_scope": scope})
    if role_allows_scope(role, scope):
        return None
    if role is None:
        message = f"{acting_for} is no longer a member of this workspace."
    else:
        message = (f"{acting_for} is a {role} of this workspace now, and a {role} may not use "
                   f"the {scope!r} scope.")
    return ApiError("FORBIDDEN", message, status_code=403,
                    details={"required_scope": scope, "role": role})


def key_scope_denial(key: ApiKey, scope: str) -> ApiError | None:
    """`scope_denial` for an authenticated API key (which carries `creator_role`)."""
    return scope_denial(scope=scope, granted=key.has_scope(scope), role=key.creator_role,
                        acting_for="The key's creator")


def require_scope(request: Request, scope: str) -> None:
    """403 when the request is made with an API key that may not use `scope` now (not granted,
    or its creator's current role does not allow it); sessions are unscoped."""
    key = request_api_key(request)
    if key is not None and (denial := key_scope_denial(key, scope)) is not None:
        raise denial


def require_role(membership: Membership, check: str) -> None:
    """403 unless `getattr(membership, check)()` holds (can_edit, can_trade, can_manage, …)."""
    if not getattr(membership, check)():
        raise PermissionDenied(f"Your role ({membership.role}) does not allow this.")


class WorkspaceScopedMixin:
    """Resolve `self.workspace`/`self.membership` from the URL and enforce role and key scope."""

    workspace_url_kwarg = "workspace_id"
    read_scope = SCOPE_READ
    write_scope = SCOPE_TRADE_PAPER
    # Membership method an unsafe method needs; None leaves the decision to the service.
    write_check: str | None = "can_edit"

    # get_queryset() returns scoped_model.objects.for_workspace(self.workspace).
    scoped_model: type[Model] | None = None

    workspace: Workspace
    membership: Membership

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        self.membership = resolve_membership(request, kwargs[self.workspace_url_kwarg])
        self.workspace = self.membership.workspace
        if request.method in SAFE_METHODS:
            require_scope(request, self.read_scope)
            return
        require_scope(request, self.write_scope)
        if self.write_check is not None:
            require_role(self.membership, self.write_check)

    def get_queryset(self) -> QuerySet[Any]:
        assert self.scoped_model is not None, "set scoped_model or override get_queryset()"
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular builds views unscoped
            return self.scoped_model._default_manager.none()
        return self.scoped_model._default_manager.for_workspace(self.workspace)  # type: ignore[attr-defined]
