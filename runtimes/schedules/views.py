"""Dashboard pages of backtest schedules: the list (next and last run), the create form, a
schedule's page with its run history, and its buttons (pause, resume, run now, delete).

Thin: rows are reached through the current workspace (a foreign id is a 404), the form checks the
input's shape, `runtimes.schedules.services` keeps schedules and starts runs.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.models import Membership
from accounts.views import workspace_page
from config.errors import ApiError
from runtimes.schedules import services as schedules
from runtimes.schedules.forms import ScheduleForm
from runtimes.schedules.models import BacktestSchedule, RunStatus
from strategies.models import Dataset, StrategyVersion

RUNS_PER_PAGE = 25


def _trading_allowed(membership: Membership) -> None:
    if not membership.can_trade():
        raise PermissionDenied("Viewers cannot schedule backtests; ask an owner for the member "
                               "role.")


@workspace_page
def schedule_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    schedules = (BacktestSchedule.objects.for_workspace(membership.workspace).with_last_run()
                 .select_related("version__strategy", "dataset", "periodic_task"))
    now = timezone.now()
    rows = [{"schedule": s, "next_run_at": s.next_run_at(now=now),
             "last_run": s.latest_runs[0] if s.latest_runs else None} for s in schedules]
    return render(request, "runtimes/schedules.html", {"rows": rows})


@workspace_page
def schedule_create(request: HttpRequest, membership: Membership) -> HttpResponse:
    """A new schedule; `?version=<id>` preselects the version (the version page links here)."""
    _trading_allowed(membership)
    workspace = membership.workspace
    form = ScheduleForm(request.POST if request.method == "POST" else None,
                        initial={"version": request.GET.get("version")},
                        versions=StrategyVersion.objects.for_workspace(workspace)
                        .select_related("strategy"),
                        datasets=Dataset.objects.for_workspace(workspace))
    if request.method == "POST" and form.is_valid():
        try:
            schedule = schedules.create_schedule(workspace=workspace, created_by=request.user,
                                                 **form.schedule_settings())
        except ApiError as exc:
            form.add_service_error(exc.details.get("field"), exc.message)
        else:
            messages.success(request, f"Schedule {schedule.name} created.")
            return redirect("schedule_detail", schedule.pk)
    return render(request, "runtimes/schedule_form.html", {"form": form},
                  status=400 if request.method == "POST" else 200)


def _schedule(membership: Membership, schedule_id: uuid.UUID) -> BacktestSchedule:
    return get_object_or_404(
        BacktestSchedule.objects.for_workspace(membership.workspace)
        .select_related("version__strategy", "dataset", "periodic_task", "created_by"),
        pk=schedule_id)


@workspace_page
def schedule_detail(request: HttpRequest, membership: Membership,
                    schedule_id: uuid.UUID) -> HttpResponse:
    schedule = _schedule(membership, schedule_id)
    runs = Paginator(schedule.runs.select_related("session"), RUNS_PER_PAGE)
    return render(request, "runtimes/schedule_detail.html", {
        "schedule": schedule, "next_run_at": schedule.next_run_at(now=timezone.now()),
        "runs": runs.get_page(request.GET.get("page"))})


@require_POST
@workspace_page
def schedule_action(request: HttpRequest, membership: Membership, schedule_id: uuid.UUID,
                    action: str) -> HttpResponse:
    """The buttons of a schedule's page: pause, resume, run now, delete."""
    _trading_allowed(membership)
    schedule = _schedule(membership, schedule_id)
    if action in ("pause", "resume"):
        schedules.set_paused(schedule=schedule, paused=action == "pause")
        messages.success(request, f"Schedule {'paused' if action == 'pause' else 'resumed'}.")
    elif action == "run":
        run = schedules.run_schedule_now(schedule=schedule, now=timezone.now(),
                                         even_if_paused=True)
        if run is not None and run.status == RunStatus.FAILED:
            messages.error(request, f"The backtest could not be started: {run.error}")
        else:
            messages.success(request, "Backtest started.")
    elif action == "delete":
        schedules.delete_schedule(schedule=schedule)
        messages.success(request, f"Schedule {schedule.name} deleted.")
        return redirect("schedule_list")
    else:
        raise Http404("No such action.")
    return redirect("schedule_detail", schedule.pk)
