"""Management API of backtest schedules (/api/v1/workspaces/{ws}/schedules…): create, change,
pause, resume, delete, run now, and the run history.

Thin: WorkspaceScopedMixin scopes every row to the URL's workspace (a stranger gets 404, a viewer
403 on writes), serializers validate fields, `runtimes.schedules.services` keeps schedules and
their beat entries and starts runs.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api_permissions import WorkspaceScopedMixin
from config.errors import ApiError
from runtimes.schedules import services as schedules
from runtimes.schedules.models import BacktestSchedule, ScheduleRun
from runtimes.schedules.serializers import (
    ScheduleRunSerializer,
    ScheduleSerializer,
    ScheduleWriteSerializer,
)
from strategies.models import Dataset, StrategyVersion


def _valid(serializer_class: type, request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class ScheduleMixin(WorkspaceScopedMixin):
    """Schedules of the URL's workspace; writes need the role that may start backtests."""

    scoped_model = BacktestSchedule
    write_check = "can_trade"

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related(
            "version__strategy", "dataset", "periodic_task", "created_by")

    def schedule(self) -> BacktestSchedule:
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["schedule_id"])

    def answer(self, schedule: BacktestSchedule, code: int = status.HTTP_200_OK) -> Response:
        return Response(ScheduleSerializer(schedule, context={"now": timezone.now()}).data,
                        status=code)


def _in_workspace(model: type, workspace: Any, pk: Any, field: str) -> Any:
    found = model.objects.for_workspace(workspace).filter(pk=pk).first()
    if found is None:  # the same answer for another workspace's id as for a made-up one
        raise ApiError("VALIDATION_ERROR", f"No such {field} in this workspace.",
                       details={"field": field})
    return found


class ScheduleListCreate(ScheduleMixin, generics.GenericAPIView):
    """The workspace's backtest schedules; POST creates one with its beat entry."""

    serializer_class = ScheduleWriteSerializer

    @extend_schema(responses={200: ScheduleSerializer(many=True)})
    def get(self, request: Request, workspace_id: Any) -> Response:
        return Response(ScheduleSerializer(self.get_queryset(), many=True,
                                           context={"now": timezone.now()}).data)

    @extend_schema(request=ScheduleWriteSerializer, responses={201: ScheduleSerializer})
    def post(self, request: Request, workspace_id: Any) -> Response:
        fields = _valid(ScheduleWriteSerializer, request)
        fields["version"] = _in_workspace(StrategyVersion, self.workspace, fields["version"],
                                          "version")
        fields["dataset"] = _in_workspace(Dataset, self.workspace, fields["dataset"], "dataset")
        schedule = schedules.create_schedule(workspace=self.workspace, created_by=request.user,
                                             **fields)
        return self.answer(self.get_queryset().get(pk=schedule.pk), status.HTTP_201_CREATED)


class ScheduleDetail(ScheduleMixin, generics.GenericAPIView):
    """One schedule; PATCH changes its settings (and its beat entry), DELETE removes both."""

    serializer_class = ScheduleWriteSerializer

    @extend_schema(responses={200: ScheduleSerializer})
    def get(self, request: Request, workspace_id: Any, schedule_id: Any) -> Response:
        return self.answer(self.schedule())

    @extend_schema(request=ScheduleWriteSerializer, responses={200: ScheduleSerializer})
    def patch(self, request: Request, workspace_id: Any, schedule_id: Any) -> Response:
        serializer = ScheduleWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        schedule = schedules.update_schedule(schedule=self.schedule(),
                                             changes=dict(serializer.validated_data))
        return self.answer(schedule)

    def delete(self, request: Request, workspace_id: Any, schedule_id: Any) -> Response:
        schedules.delete_schedule(schedule=self.schedule())
        return Response(status=status.HTTP_204_NO_CONTENT)


class SchedulePause(ScheduleMixin, generics.GenericAPIView):
    """POST pauses (`paused=True`) or resumes the schedule: beat's entry is disabled or enabled.
    Idempotent: pausing a paused schedule answers the same."""

    paused = True

    @extend_schema(request=None, responses={200: ScheduleSerializer})
    def post(self, request: Request, workspace_id: Any, schedule_id: Any) -> Response:
        schedule = self.schedule()
        schedules.set_paused(schedule=schedule, paused=self.paused)
        return self.answer(schedule)


class RunPages(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class ScheduleRuns(ScheduleMixin, generics.ListAPIView):
    """The schedule's runs, newest first (paginated): each the backtest it started or its error."""

    serializer_class = ScheduleRunSerializer
    pagination_class = RunPages

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return ScheduleRun.objects.none()
        return self.schedule().runs.select_related("session")

    def schedule(self) -> BacktestSchedule:
        return get_object_or_404(super().get_queryset(), pk=self.kwargs["schedule_id"])


class ScheduleRunNow(ScheduleMixin, generics.GenericAPIView):
    """POST starts a run at once, paused or not; 201 with the run (status failed and its error
    when the backtest could not be started)."""

    @extend_schema(request=None, responses={201: ScheduleRunSerializer})
    def post(self, request: Request, workspace_id: Any, schedule_id: Any) -> Response:
        run = schedules.run_schedule_now(schedule=self.schedule(), now=timezone.now(),
                                         even_if_paused=True)
        return Response(ScheduleRunSerializer(run).data, status=status.HTTP_201_CREATED)
