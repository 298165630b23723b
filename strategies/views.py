"""Dashboard pages of the strategies app: strategies and their versions (upload, code, download),
datasets (upload, list, preview chart), the example strategies shipped with Parity, backtest
schedules (list, create, run history, pause, resume, run now, delete), and the comparison of
finished backtests.

Thin: rows are reached through the current workspace (a foreign id is a 404), forms check the
input's shape, `strategies.services` checks uploads and stores them, `strategies.schedules` keeps
schedules, `runtimes.comparison` reads backtests side by side.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.db.models import Count, Max, Sum
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.models import Membership
from accounts.views import workspace_page
from config.errors import ApiError
from runtimes import comparison
from runtimes.core.datasets import DatasetError
from strategies import schedules, services
from strategies.forms import DatasetUploadForm, ScheduleForm, StrategyUploadForm
from strategies.highlight import highlighted
from strategies.models import BacktestSchedule, Dataset, RunStatus, Strategy, StrategyVersion
from strategies.previews import dataset_candles

CONTENT_TYPES = {"py": "text/x-python; charset=utf-8", "zip": "application/zip"}
RUNS_PER_PAGE = 25


def _uploads_allowed(request: HttpRequest, membership: Membership) -> None:
    if not membership.can_upload():
        raise PermissionDenied("Viewers cannot upload; ask an owner for the member role.")


def _posted(request: HttpRequest) -> tuple[Any, Any]:
    return (request.POST, request.FILES) if request.method == "POST" else (None, None)


@workspace_page
def strategy_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    strategies = (Strategy.objects.for_workspace(membership.workspace)
                  .annotate(version_count=Count("versions"), latest=Max("versions__number"),
                            updated_at=Max("versions__created_at")))
    return render(request, "strategies/strategy_list.html", {"strategies": strategies})


@workspace_page
def strategy_upload(request: HttpRequest, membership: Membership,
                    strategy_id: uuid.UUID | None = None) -> HttpResponse:
    """A new strategy (name + first version) or, with `strategy_id`, its next version."""
    _uploads_allowed(request, membership)
    workspace = membership.workspace
    strategy = (get_object_or_404(Strategy.objects.for_workspace(workspace), pk=strategy_id)
                if strategy_id else None)
    form = StrategyUploadForm(*_posted(request), new_strategy=strategy is None)
    problems: list[dict[str, object]] = []
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            version = services.upload_strategy_version(
                workspace=workspace, author=request.user, note=form.cleaned_data["note"],
                strategy=strategy or form.cleaned_data["name"], filename=upload.name or "",
                content=upload.read())
        except services.StrategyUploadError as exc:
            problems = exc.problems
        except ApiError as exc:
            form.add_error("name" if exc.details.get("field") == "name" else None, exc.message)
        else:
            messages.success(request, f"{version.strategy.name} version {version.number} "
                                      "uploaded.")
            return redirect("version_detail", version.strategy_id, version.number)
    return render(request, "strategies/strategy_upload.html",
                  {"form": form, "strategy": strategy, "problems": problems},
                  status=400 if request.method == "POST" else 200)


@workspace_page
def strategy_detail(request: HttpRequest, membership: Membership,
                    strategy_id: uuid.UUID) -> HttpResponse:
    strategy = get_object_or_404(
        Strategy.objects.for_workspace(membership.workspace).select_related("created_by"),
        pk=strategy_id)
    versions = strategy.versions.select_related("author").order_by("-number")
    return render(request, "strategies/strategy_detail.html",
                  {"strategy": strategy, "versions": versions})


def _version(membership: Membership, strategy_id: uuid.UUID, number: int) -> StrategyVersion:
    return get_object_or_404(
        StrategyVersion.objects.for_workspace(membership.workspace)
        .select_related("strategy", "author"), strategy_id=strategy_id, number=number)


@workspace_page
def version_detail(request: HttpRequest, membership: Membership, strategy_id: uuid.UUID,
                   number: int) -> HttpResponse:
    version = _version(membership, strategy_id, number)
    files = [{"path": path, "html": highlighted(path, text), "lines": text.count("\n") + 1}
             for path, text in services.strategy_source(version).items()]
    files.sort(key=lambda f: f["path"] != version.entry_point)  # the entry point first
    return render(request, "strategies/version_detail.html",
                  {"version": version, "strategy": version.strategy, "files": files})


@workspace_page
def version_download(request: HttpRequest, membership: Membership, strategy_id: uuid.UUID,
                     number: int) -> FileResponse:
    version = _version(membership, strategy_id, number)
    return FileResponse(default_storage.open(version.storage_name, "rb"), as_attachment=True,
                        filename=version.filename, content_type=CONTENT_TYPES[version.kind])


def examples(request: HttpRequest) -> HttpResponse:
    """The example strategies shipped with Parity, public like the rest of their documentation."""
    listed = [{"name": name, "filename": filename, "description": description}
              for name, (filename, description) in services.DEMO_STRATEGIES.items()]
    return render(request, "strategies/examples.html", {"examples": listed})


def example_download(request: HttpRequest, filename: str) -> FileResponse:
    shipped = {f for f, _ in services.DEMO_STRATEGIES.values()}
    if filename not in shipped:
        raise Http404("No such example.")
    return FileResponse((services.EXAMPLES_DIR / filename).open("rb"), filename=filename,
                        content_type=CONTENT_TYPES["py"])


@workspace_page
def dataset_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    datasets = (Dataset.objects.for_workspace(membership.workspace)
                .annotate(symbol_count=Count("files"), bars=Sum("files__rows"))
                .prefetch_related("files"))
    return render(request, "strategies/dataset_list.html", {"datasets": datasets})


@workspace_page
def dataset_upload(request: HttpRequest, membership: Membership) -> HttpResponse:
    _uploads_allowed(request, membership)
    form = DatasetUploadForm(*_posted(request))
    problems: list[dict[str, object]] = []
    if request.method == "POST" and form.is_valid():
        try:
            dataset = services.upload_dataset(
                workspace=membership.workspace, by=request.user, name=form.cleaned_data["name"],
                files=form.files_by_symbol(), timeframe=form.cleaned_data["timeframe"] or None)
        except services.DatasetUploadError as exc:
            problems = exc.problems
        else:
            messages.success(request, f"Dataset {dataset.name} uploaded.")
            return redirect("dataset_detail", dataset.pk)
    return render(request, "strategies/dataset_upload.html", {"form": form, "problems": problems},
                  status=400 if request.method == "POST" else 200)


@workspace_page
def dataset_detail(request: HttpRequest, membership: Membership,
                   dataset_id: uuid.UUID) -> HttpResponse:
    dataset = get_object_or_404(
        Dataset.objects.for_workspace(membership.workspace).select_related("created_by"),
        pk=dataset_id)
    try:
        candles, unreadable = dataset_candles(dataset), ""
    except (DatasetError, OSError) as exc:
        candles, unreadable = {}, str(exc)
    return render(request, "strategies/dataset_detail.html", {
        "dataset": dataset, "files": dataset.files.order_by("symbol"), "candles": candles,
        "unreadable": unreadable})


# -- backtest schedules --------------------------------------------------------------------------


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
    return render(request, "strategies/schedules.html", {"rows": rows})


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
    return render(request, "strategies/schedule_form.html", {"form": form},
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
    return render(request, "strategies/schedule_detail.html", {
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


# -- comparing backtests -------------------------------------------------------------------------


@workspace_page
def backtest_compare(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Finished backtests (`?ids=a,b` or repeated `ids`, from the list's checkboxes) overlaid:
    normalised equity curves and metrics side by side."""
    try:
        ids = comparison.parse_ids(request.GET.getlist("ids"))
        sessions = comparison.compared_sessions(workspace=membership.workspace, ids=ids)
    except ApiError as exc:
        return render(request, "strategies/backtest_compare.html", {"problem": exc.message},
                      status=400)
    return render(request, "strategies/backtest_compare.html", {
        "runs": comparison.chart_runs(sessions), "rows": comparison.metric_rows(sessions)})
