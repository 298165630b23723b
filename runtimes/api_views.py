"""Management API (/api/v1/workspaces/{ws}/sessions...): create, list, show and cancel sessions.

Thin: WorkspaceScopedMixin scopes every row to the URL's workspace (a stranger gets 404), the
serializer validates, `runtimes.services` decides.
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

from accounts.api_permissions import WorkspaceScopedMixin
from runtimes import services
from runtimes.models import TradingSession
from strategies.models import Dataset


class CommissionSerializer(serializers.Serializer):
    percent = serializers.DecimalField(max_digits=12, decimal_places=6, min_value=Decimal(0),
                                       required=False)
    per_share = serializers.DecimalField(max_digits=12, decimal_places=6, min_value=Decimal(0),
                                         required=False)
    fixed = serializers.DecimalField(max_digits=16, decimal_places=6, min_value=Decimal(0),
                                     required=False)
    minimum = serializers.DecimalField(max_digits=16, decimal_places=6, min_value=Decimal(0),
                                       required=False)


class BacktestSessionCreateSerializer(serializers.Serializer):
    dataset = serializers.UUIDField()
    symbols = serializers.ListField(child=serializers.CharField(max_length=32), required=False,
                                    allow_empty=False)
    timeframe = serializers.CharField(max_length=8, required=False)
    start = serializers.DateTimeField(required=False, allow_null=True)
    end = serializers.DateTimeField(required=False, allow_null=True)
    initial_cash = serializers.DecimalField(max_digits=24, decimal_places=8,
                                            min_value=Decimal(0), default=Decimal(100_000))
    commission = CommissionSerializer(required=False)
    slippage_bps = serializers.DecimalField(max_digits=12, decimal_places=4,
                                            min_value=Decimal(0), default=Decimal(0))
    connect_timeout_s = serializers.IntegerField(min_value=1, max_value=3600, default=60)
    idle_timeout_s = serializers.IntegerField(min_value=1, max_value=86400, default=300)

    def to_internal_value(self, data: Any) -> Any:
        # The contract names the period `from`/`to`, which Python cannot name as fields.
        if isinstance(data, dict):
            data = {**data}
            for wire, field in (("from", "start"), ("to", "end")):
                if wire in data:
                    data[field] = data.pop(wire)
        return super().to_internal_value(data)


def _origin(request: Request) -> str:
    return f"{request.scheme}://{request.get_host()}"


class SessionListCreate(WorkspaceScopedMixin, generics.GenericAPIView):
    """GET: the workspace's sessions, newest first. POST: create a backtest session."""

    scoped_model = TradingSession
    write_check = "can_trade"
    serializer_class = BacktestSessionCreateSerializer

    @extend_schema(operation_id="sessions_list", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, workspace_id: Any) -> Response:
        sessions = self.get_queryset()[:100]
        return Response([services.session_json(s, origin=_origin(request)) for s in sessions])

    @extend_schema(operation_id="sessions_create", responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, workspace_id: Any) -> Response:
        serializer = BacktestSessionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        dataset = get_object_or_404(Dataset.objects.for_workspace(self.workspace),
                                    pk=data.pop("dataset"))
        session = services.create_backtest_session(
            workspace=self.workspace, created_by=request.user, dataset=dataset,
            symbols=data.get("symbols"), timeframe=data.get("timeframe"),
            start=data.get("start"), end=data.get("end"), initial_cash=data["initial_cash"],
            commission=dict(data.get("commission") or {}), slippage_bps=data["slippage_bps"],
            connect_timeout_s=data["connect_timeout_s"], idle_timeout_s=data["idle_timeout_s"],
        )
        body = services.session_json(session, origin=_origin(request))
        return Response(body, status=status.HTTP_201_CREATED)


class SessionDetail(WorkspaceScopedMixin, generics.GenericAPIView):
    scoped_model = TradingSession

    @extend_schema(operation_id="sessions_retrieve", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, workspace_id: Any, session_id: Any) -> Response:
        session = get_object_or_404(self.get_queryset(), pk=session_id)
        return Response(services.session_json(session, origin=_origin(request)))


class SessionCancel(WorkspaceScopedMixin, generics.GenericAPIView):
    scoped_model = TradingSession
    write_check = "can_trade"

    @extend_schema(operation_id="sessions_cancel", request=None,
                   responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, workspace_id: Any, session_id: Any) -> Response:
        session = get_object_or_404(self.get_queryset(), pk=session_id)
        services.cancel_session(session=session, now=timezone.now())
        session.refresh_from_db()
        return Response(services.session_json(session, origin=_origin(request)))
