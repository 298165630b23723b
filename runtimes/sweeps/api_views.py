"""Management API of parameter sweeps (/api/v1/workspaces/{ws}/sweeps…): create, list, detail
(points, best points, walk-forward, a heatmap on request), cancel and delete.

Thin: WorkspaceScopedMixin scopes every row to the URL's workspace (a stranger's id is a 404 in
the error envelope), the serializer checks shapes, `runtimes.sweeps.services` does the rest.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api_permissions import WorkspaceScopedMixin
from config.api_schema import OBJECT_LIST
from config.errors import ApiError
from runtimes.api_views import version_and_dataset
from runtimes.sweeps import services
from runtimes.sweeps.models import Sweep
from runtimes.sweeps.presenting import heatmap_request, sweep_json
from runtimes.sweeps.results import progress_by_sweep
from runtimes.sweeps.serializers import SweepCreateSerializer

LIST_LIMIT = 100


class SweepMixin(WorkspaceScopedMixin):
    scoped_model = Sweep
    write_check = "can_trade"

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related("version__strategy", "dataset")

    def sweep(self) -> Sweep:
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["sweep_id"])


class SweepListCreate(SweepMixin, generics.GenericAPIView):
    """GET: the workspace's sweeps, newest first, with their progress. POST: start one."""

    serializer_class = SweepCreateSerializer

    @extend_schema(operation_id="sweeps_list", responses={200: OBJECT_LIST})
    def get(self, request: Request, workspace_id: Any) -> Response:
        sweeps = list(self.get_queryset()[:LIST_LIMIT])
        progress = progress_by_sweep(sweeps)
        return Response([sweep_json(s, detail=False, progress=progress[s.pk]) for s in sweeps])

    @extend_schema(operation_id="sweeps_create", request=SweepCreateSerializer,
                   responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, workspace_id: Any) -> Response:
        serializer = SweepCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        version, dataset = version_and_dataset(self.workspace, data)
        sweep = services.create_sweep(workspace=self.workspace, created_by=request.user,
                                      version=version, dataset=dataset,
                                      **services.sweep_arguments(data, version=version))
        return Response(sweep_json(sweep, detail=True), status=status.HTTP_201_CREATED)


class SweepDetail(SweepMixin, generics.GenericAPIView):
    """GET: one sweep with its points, the best points by its metric (or `?metric=`), the
    walk-forward pairs and, given `?x=&y=`, a heatmap of the metric over those parameters."""

    @extend_schema(operation_id="sweeps_retrieve", responses={200: OpenApiTypes.OBJECT},
                   parameters=[OpenApiParameter(n, str, required=False)
                               for n in ("metric", "x", "y", "aggregate")])
    def get(self, request: Request, workspace_id: Any, sweep_id: Any) -> Response:
        sweep = self.sweep()
        return Response(sweep_json(sweep, detail=True,
                                   view=heatmap_request(sweep, request.query_params)))

    @extend_schema(operation_id="sweeps_destroy", responses={204: None})
    def delete(self, request: Request, workspace_id: Any, sweep_id: Any) -> Response:
        """Delete an ended sweep with its points' backtests (409 INVALID_TRANSITION while it
        runs: cancel it first)."""
        services.delete_sweep(sweep=self.sweep())
        return Response(status=status.HTTP_204_NO_CONTENT)


class SweepCancel(SweepMixin, generics.GenericAPIView):
    """POST: cancel the sweep as a whole (409 SWEEP_ENDED when it had ended)."""

    @extend_schema(operation_id="sweeps_cancel", request=None,
                   responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, workspace_id: Any, sweep_id: Any) -> Response:
        sweep = self.sweep()
        if not services.cancel_sweep(sweep=sweep, now=timezone.now()):
            raise ApiError("SWEEP_ENDED", f"The sweep has ended ({sweep.state}).",
                           status_code=409, details={"state": sweep.state})
        return Response(sweep_json(sweep, detail=True))
