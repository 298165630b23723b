"""Management API views (/api/v1/) for workspaces, members, invitations and API keys.

Thin: scoping and role/scope checks come from WorkspaceScopedMixin, decisions from services.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import services
from accounts.api_permissions import (
    WorkspaceScopedMixin,
    accessible_workspaces,
    request_api_key,
    require_scope,
)
from accounts.models import SCOPE_READ, ApiKey, Invitation, Membership
from accounts.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    InvitationSerializer,
    InviteSerializer,
    MembershipSerializer,
    RoleChangeSerializer,
    WorkspaceCreateSerializer,
    WorkspaceSerializer,
)
from config.api_schema import error_response
from config.errors import ApiError

NOT_PENDING = error_response("The invitation was accepted or revoked already, or (revoke only) "
                             "it expired (INVITATION_NOT_PENDING).")


def _valid(serializer_class: type, request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _roles(request: Request) -> dict[Any, str]:
    return dict(Membership.objects.for_user(request.user).values_list("workspace_id", "role"))


class WorkspaceListCreate(generics.ListAPIView):
    """Your workspaces (an API key sees its own only); POST creates a shared workspace."""

    serializer_class = WorkspaceSerializer

    def get_queryset(self) -> Any:
        require_scope(self.request, SCOPE_READ)
        return accessible_workspaces(self.request)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "roles": _roles(self.request)}

    @extend_schema(request=WorkspaceCreateSerializer, responses={201: WorkspaceSerializer})
    def post(self, request: Request) -> Response:
        if request_api_key(request) is not None:
            raise ApiError("FORBIDDEN", "API keys cannot create workspaces; sign in instead.",
                           status_code=403)
        workspace = services.create_workspace(
            owner=request.user, **_valid(WorkspaceCreateSerializer, request))
        body = WorkspaceSerializer(workspace, context={"roles": _roles(request)}).data
        return Response(body, status=status.HTTP_201_CREATED)


class WorkspaceDetail(WorkspaceScopedMixin, generics.GenericAPIView):
    serializer_class = WorkspaceSerializer

    def get_queryset(self) -> Any:
        return accessible_workspaces(self.request)

    def get(self, request: Request, workspace_id: Any) -> Response:
        roles = {self.workspace.pk: self.membership.role}
        return Response(WorkspaceSerializer(self.workspace, context={"roles": roles}).data)


class MemberListInvite(WorkspaceScopedMixin, generics.ListAPIView):
    """Members of the workspace; POST invites someone by email (owners only)."""

    scoped_model = Membership
    serializer_class = MembershipSerializer
    write_check = "can_manage"

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related("user")

    @extend_schema(request=InviteSerializer, responses={201: InvitationSerializer})
    def post(self, request: Request, workspace_id: Any) -> Response:
        invitation, _token = services.invite_member(
            workspace=self.workspace, invited_by=request.user,
            accept_url_base=request.build_absolute_uri("/"), **_valid(InviteSerializer, request))
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)


class MemberDetail(WorkspaceScopedMixin, generics.RetrieveAPIView):
    """One member; PATCH changes the role, DELETE removes them (owners only)."""

    scoped_model = Membership
    serializer_class = MembershipSerializer
    lookup_url_kwarg = "member_id"
    write_check = "can_manage"

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related("user", "workspace")

    @extend_schema(request=RoleChangeSerializer, responses={200: MembershipSerializer})
    def patch(self, request: Request, workspace_id: Any, member_id: Any) -> Response:
        membership = services.change_member_role(
            membership=self.get_object(), by=request.user, **_valid(RoleChangeSerializer, request))
        return Response(MembershipSerializer(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, workspace_id: Any, member_id: Any) -> Response:
        services.remove_member(membership=self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationList(WorkspaceScopedMixin, generics.ListAPIView):
    scoped_model = Invitation
    serializer_class = InvitationSerializer

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related("invited_by")


class InvitationDetail(WorkspaceScopedMixin, generics.RetrieveAPIView):
    """One invitation; DELETE revokes it (owners only): its link then says it was revoked."""

    scoped_model = Invitation
    serializer_class = InvitationSerializer
    lookup_url_kwarg = "invitation_id"
    write_check = "can_manage"

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related("invited_by", "workspace")

    @extend_schema(responses={200: InvitationSerializer, 409: NOT_PENDING})
    def delete(self, request: Request, workspace_id: Any, invitation_id: Any) -> Response:
        invitation = services.revoke_invitation(invitation=self.get_object(), by=request.user)
        return Response(InvitationSerializer(invitation).data)


class InvitationResend(InvitationDetail):
    """POST mails a new link with a new 7-day expiry (owners only); the old link stops working."""

    http_method_names = ["post", "options"]

    @extend_schema(request=None, responses={200: InvitationSerializer, 409: NOT_PENDING})
    def post(self, request: Request, workspace_id: Any, invitation_id: Any) -> Response:
        invitation, _token = services.resend_invitation(
            invitation=self.get_object(), by=request.user,
            accept_url_base=request.build_absolute_uri("/"))
        return Response(InvitationSerializer(invitation).data)


class KeyListCreate(WorkspaceScopedMixin, generics.ListAPIView):
    """The workspace's API keys (never their secrets); POST creates one and returns it ONCE."""

    scoped_model = ApiKey
    serializer_class = ApiKeySerializer
    write_check = None  # viewers may create read-only keys; services.create_api_key decides

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related("created_by")

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def post(self, request: Request, workspace_id: Any) -> Response:
        key, plaintext = services.create_api_key(
            workspace=self.workspace, created_by=request.user,
            acting_key=request_api_key(request), **_valid(ApiKeyCreateSerializer, request))
        body = ApiKeyCreatedSerializer(key, context={"plaintext": plaintext}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class KeyDetail(WorkspaceScopedMixin, generics.RetrieveAPIView):
    """One API key; DELETE revokes it at once (its creator or an owner)."""

    scoped_model = ApiKey
    serializer_class = ApiKeySerializer
    lookup_url_kwarg = "key_id"
    write_check = None  # services.revoke_api_key allows the creator or an owner

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related("created_by", "workspace")

    @extend_schema(responses={200: ApiKeySerializer})
    def delete(self, request: Request, workspace_id: Any, key_id: Any) -> Response:
        key = services.revoke_api_key(key=self.get_object(), by=request.user)
        return Response(ApiKeySerializer(key).data)
