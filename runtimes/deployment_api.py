"""Management API of deployments (/api/v1/workspaces/{ws}/deployments...): list, create, show,
delete (when stopped), start, stop, pause, resume.

Thin, as runtimes/api_views.py: WorkspaceScopedMixin scopes every row to the URL's workspace (a
stranger gets 404); a live platform also needs the key's `trade:live` scope; the serializer
checks shapes, `runtimes.deployments` decides (409 INVALID_TRANSITION for an illegal move).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api_permissions import WorkspaceScopedMixin, require_scope
from accounts.models import BrokerCredential
from config.api_schema import OBJECT_LIST, error_response
from config.decimal_fields import DecimalField
from runtimes import deployments
from runtimes.api_views import RiskLimitsSerializer, _origin
from runtimes.core.platforms import PLATFORMS
from runtimes.models import Deployment
from strategies.models import StrategyVersion

CONFLICT = error_response("The deployment's state does not allow this (INVALID_TRANSITION).")


class DeploymentCreateSerializer(RiskLimitsSerializer):
    name = serializers.CharField(max_length=100)
    platform = serializers.CharField(max_length=20, help_text="A platform id but backtest.")
    version = serializers.UUIDField(required=False, allow_null=True,
                                    help_text="The strategy version to run in the sandbox; "
                                              "absent: a remote strategy (API key).")
    connection = serializers.UUIDField(
        required=False, allow_null=True,
        help_text="The id of one of this workspace's broker connections on the same platform: "
                  "required on a broker platform (alpaca-paper, alpaca-live, ...), refused on "
                  "others.")
    symbols = serializers.ListField(child=serializers.CharField(max_length=32),
                                    allow_empty=False, max_length=deployments.MAX_SYMBOLS)
    timeframes = serializers.ListField(child=serializers.CharField(max_length=8),
                                       allow_empty=False, max_length=20)
    params = serializers.DictField(required=False, default=dict,
                                   help_text="Passed to the strategy as PARITY_STRATEGY_PARAMS.")
    initial_cash = DecimalField(max_digits=24, decimal_places=8, min_value=Decimal("0.01"),
                                default=Decimal(100_000))


def _require_platform_scope(request: Request, platform_id: str) -> None:
    # A live platform's key needs trade:live on top of the write scope every POST needs.
    spec = PLATFORMS.get(platform_id)
    if spec is not None:
        require_scope(request, spec.scope)


class DeploymentListCreate(WorkspaceScopedMixin, generics.GenericAPIView):
    """GET: the workspace's deployments, newest first. POST: create one (stopped; start it)."""

    scoped_model = Deployment
    write_check = "can_trade"
    serializer_class = DeploymentCreateSerializer

    def get_queryset(self) -> Any:
        return deployments.listed(super().get_queryset())

    @extend_schema(operation_id="deployments_list", responses={200: OBJECT_LIST})
    def get(self, request: Request, workspace_id: Any) -> Response:
        rows = [deployments.sync_with_session(d) for d in self.get_queryset()[:100]]
        return Response([deployments.deployment_json(d, origin=_origin(request)) for d in rows])

    @extend_schema(operation_id="deployments_create", responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, workspace_id: Any) -> Response:
        serializer = DeploymentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        _require_platform_scope(request, data["platform"])
        version = None
        if data.get("version") is not None:
            version = get_object_or_404(
                StrategyVersion.objects.for_workspace(self.workspace).select_related("strategy"),
                pk=data["version"])
        connection = None
        if data.get("connection") is not None:
            connection = get_object_or_404(BrokerCredential.objects.for_workspace(self.workspace),
                                           pk=data["connection"])
        deployment = deployments.create_deployment(
            workspace=self.workspace, created_by=request.user, role=self.membership.role,
            name=data["name"], platform=data["platform"], version=version, connection=connection,
            symbols=data["symbols"], timeframes=data["timeframes"], params=data["params"],
            risk_limits=serializer.risk_limits(), initial_cash=data["initial_cash"])
        return Response(deployments.deployment_json(deployment, origin=_origin(request)),
                        status=status.HTTP_201_CREATED)


class DeploymentScoped(WorkspaceScopedMixin, generics.GenericAPIView):
    scoped_model = Deployment
    write_check = "can_trade"

    def deployment(self, deployment_id: Any) -> Deployment:
        found = get_object_or_404(deployments.listed(self.get_queryset()), pk=deployment_id)
        return deployments.sync_with_session(found)

    def answer(self, request: Request, deployment: Deployment) -> Response:
        deployment.refresh_from_db()
        return Response(deployments.deployment_json(deployment, origin=_origin(request)))


class DeploymentDetail(DeploymentScoped):
    """GET: one deployment and its current session. DELETE: remove a stopped (or failed) one."""

    @extend_schema(operation_id="deployments_retrieve", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, workspace_id: Any, deployment_id: Any) -> Response:
        return Response(deployments.deployment_json(self.deployment(deployment_id),
                                                    origin=_origin(request)))

    @extend_schema(operation_id="deployments_destroy", responses={204: None, 409: CONFLICT})
    def delete(self, request: Request, workspace_id: Any, deployment_id: Any) -> Response:
        deployments.delete_deployment(deployment=self.deployment(deployment_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeploymentAction(DeploymentScoped):
    """POST: start, stop, pause or resume (`action`, set in the URL conf)."""

    action_name = "start"

    @extend_schema(request=None, responses={
        200: OpenApiTypes.OBJECT, 409: CONFLICT,
        400: error_response("The platform or the sandbox is unavailable here "
                            "(PLATFORM_UNAVAILABLE, SANDBOX_UNAVAILABLE).")})
    def post(self, request: Request, workspace_id: Any, deployment_id: Any) -> Response:
        deployment = self.deployment(deployment_id)
        if self.action_name in ("start", "resume"):  # acting again: a live platform's scope
            _require_platform_scope(request, deployment.platform)
        role, now = self.membership.role, timezone.now()
        if self.action_name == "start":
            deployments.start_deployment(deployment=deployment, started_by=request.user,
                                         role=role, now=now)
        elif self.action_name == "stop":
            deployments.stop_deployment(deployment=deployment, now=now)
        elif self.action_name == "pause":
            deployments.pause_deployment(deployment=deployment)
        else:
            deployments.resume_deployment(deployment=deployment, role=role)
        return self.answer(request, deployment)
