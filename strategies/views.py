"""Dashboard pages of the strategies app: strategies and their versions (upload, code, download,
diff, delete), datasets (upload, list, preview chart, delete), and the example strategies shipped
with Parity.

Thin: rows are reached through the current workspace (a foreign id is a 404), forms check the
input's shape, `strategies.services` checks uploads and stores them.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.db.models import Count, Max, Sum
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from accounts.models import Membership
from accounts.views import workspace_page
from config.errors import ApiError
from runtimes.core.datasets import DatasetError
from strategies import services
from strategies.deletion import (
    dataset_deletion,
    delete_dataset,
    delete_strategy,
    strategy_deletion,
)
from strategies.diffs import version_diff
from strategies.forms import DatasetUploadForm, StrategyUploadForm, VersionDiffForm
from strategies.highlight import highlighted
from strategies.models import Dataset, Strategy, StrategyVersion
from strategies.previews import dataset_candles

CONTENT_TYPES = {"py": "text/x-python; charset=utf-8", "zip": "application/zip"}


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
def version_compare(request: HttpRequest, membership: Membership,
                    strategy_id: uuid.UUID) -> HttpResponse:
    """Two versions side by side in one unified diff (?from=1&to=2; the last two by default)."""
    strategy = get_object_or_404(Strategy.objects.for_workspace(membership.workspace),
                                 pk=strategy_id)
    numbers = list(strategy.versions.order_by("-number").values_list("number", flat=True))
    form = VersionDiffForm(request.GET or None, numbers=numbers)
    diff = None
    if form.is_valid():
        old, new = form.cleaned_data["from"], form.cleaned_data["to"]
        versions = {v.number: v for v in strategy.versions.select_related("strategy")
                    .filter(number__in=[old, new])}
        diff = version_diff(versions[old], versions[new])
    return render(request, "strategies/version_compare.html",
                  {"strategy": strategy, "form": form, "diff": diff},
                  status=400 if form.is_bound and not form.is_valid() else 200)


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


def _deletion_page(request: HttpRequest, membership: Membership, *, row: Strategy | Dataset,
                   kind: str, impact: Any, delete: Any, done: str) -> HttpResponse:
    """The confirmation (GET) and the deletion (POST) of a strategy or a dataset."""
    if not membership.can_edit():
        raise PermissionDenied("Viewers cannot delete; ask an owner for the member role.")
    error = ""
    if request.method == "POST":
        try:
            delete(membership=membership, **{kind: row})
        except ApiError as exc:
            error = exc.message
            impact = impact(row)
        else:
            messages.success(request, f"{kind.capitalize()} {row.name} deleted.")
            return redirect(done)
    else:
        impact = impact(row)
    return render(request, "strategies/confirm_delete.html",
                  {"row": row, "kind": kind, "impact": impact, "error": error},
                  status=409 if error else 200)


@workspace_page
def strategy_delete(request: HttpRequest, membership: Membership,
                    strategy_id: uuid.UUID) -> HttpResponse:
    strategy = get_object_or_404(Strategy.objects.for_workspace(membership.workspace),
                                 pk=strategy_id)
    return _deletion_page(request, membership, row=strategy, kind="strategy",
                          impact=strategy_deletion, delete=delete_strategy, done="strategy_list")


@workspace_page
def dataset_delete(request: HttpRequest, membership: Membership,
                   dataset_id: uuid.UUID) -> HttpResponse:
    dataset = get_object_or_404(Dataset.objects.for_workspace(membership.workspace),
                                pk=dataset_id)
    return _deletion_page(request, membership, row=dataset, kind="dataset",
                          impact=dataset_deletion, delete=delete_dataset, done="dataset_list")


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
    more = 0
    if request.method == "POST" and form.is_valid():
        try:
            dataset = services.upload_dataset(
                workspace=membership.workspace, by=request.user, name=form.cleaned_data["name"],
                files=form.files_by_symbol(), timeframe=form.cleaned_data["timeframe"] or None)
        except services.DatasetUploadError as exc:
            problems, more = exc.problems, exc.more
        else:
            messages.success(request, f"Dataset {dataset.name} uploaded.")
            return redirect("dataset_detail", dataset.pk)
    return render(request, "strategies/dataset_upload.html",
                  {"form": form, "problems": problems, "more": more},
                  status=400 if request.method == "POST" else 200)


@workspace_page
def dataset_detail(request: HttpRequest, membership: Membership,
                   dataset_id: uuid.UUID) -> HttpResponse:
    dataset = get_object_or_404(
        Dataset.objects.for_workspace(membership.workspace).select_related("created_by")
        .prefetch_related("files"), pk=dataset_id)
    try:
        candles, unreadable = dataset_candles(dataset), ""
    except (DatasetError, OSError) as exc:
        candles, unreadable = {}, str(exc)
    return render(request, "strategies/dataset_detail.html", {
        "dataset": dataset, "files": sorted(dataset.files.all(), key=lambda f: f.symbol),
        "span": dataset.span(), "candles": candles, "unreadable": unreadable})
