"""Dashboard pages of parameter sweeps: the list, the "Sweep parameters" form of a strategy
version, a sweep's page (progress, sortable point table, best points, heatmap, walk-forward)
its cancel button and its deletion (a confirmation page, then a POST).

Thin: rows are reached through the current workspace (a foreign id is a 404), the form checks
shapes, `runtimes.sweeps.services` starts and cancels, `runtimes.sweeps.presenting` shows.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.models import Membership
from accounts.views import workspace_page
from config.errors import ApiError
from runtimes.services import hosted_runs_support
from runtimes.sweeps import presenting, results, services
from runtimes.sweeps.forms import SweepForm
from runtimes.sweeps.models import Sweep, SweepState
from strategies.models import Dataset, StrategyVersion

LIST_LIMIT = 100


def _trading_allowed(membership: Membership) -> None:
    if not membership.can_trade():
        raise PermissionDenied("Your role does not allow running backtests.")


@workspace_page
def sweep_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    sweeps = list(Sweep.objects.for_workspace(membership.workspace)
                  .select_related("version__strategy", "dataset")[:LIST_LIMIT])
    progress = results.progress_by_sweep(sweeps)
    rows = [{"sweep": s, "progress": progress[s.pk]} for s in sweeps]
    return render(request, "runtimes/sweep_list.html", {"rows": rows})


@workspace_page
def sweep_new(request: HttpRequest, membership: Membership, version_id: uuid.UUID
              ) -> HttpResponse:
    """A version's "Sweep parameters" form; a valid one starts the sweep and leads to its page.
    Refusals stay in the form with what was typed."""
    version = get_object_or_404(StrategyVersion.objects.for_workspace(membership.workspace)
                                .select_related("strategy"), pk=version_id)
    form = SweepForm(request.POST or None,
                     datasets=Dataset.objects.for_workspace(membership.workspace))
    if request.method == "POST":
        _trading_allowed(membership)
        if form.is_valid():
            try:
                sweep = services.create_sweep(
                    workspace=membership.workspace, created_by=request.user, version=version,
                    dataset=form.cleaned_data["dataset"],
                    **services.sweep_arguments(form.sweep_fields(), version=version))
            except ApiError as error:
                _add_service_error(form, error)
            else:
                return redirect("sweep_detail", sweep.pk)
    return render(request, "runtimes/sweep_new.html", {
        "form": form, "version": version, "strategy": version.strategy,
        "support": hosted_runs_support(), "allow_unsandboxed": settings.SANDBOX_ALLOW_UNSANDBOXED,
    }, status=400 if request.method == "POST" else 200)


def _add_service_error(form: SweepForm, error: ApiError) -> None:
    fields = [(key, messages) for key, messages in error.details.items()
              if isinstance(messages, list)]
    if not fields:
        form.add_error(None, error.message)
    for key, texts in fields:
        field = key.split(".")[0]
        for text in texts:
            form.add_error(field if field in form.fields else None,
                           text if field == key else f"{key}: {text}")


@workspace_page
def sweep_detail(request: HttpRequest, membership: Membership, sweep_id: uuid.UUID
                 ) -> HttpResponse:
    sweep = get_object_or_404(Sweep.objects.for_workspace(membership.workspace)
                              .select_related("version__strategy", "dataset"), pk=sweep_id)
    try:
        view = presenting.heatmap_request(sweep, request.GET)
    except ApiError:
        view = presenting.heatmap_request(sweep, {})
    rows = results.point_rows(sweep)
    return render(request, "runtimes/sweep_detail.html", {
        "sweep": sweep, "view": view, **presenting.page_context(sweep, rows, view),
        "running": sweep.state == SweepState.RUNNING,
    })


@require_POST
@workspace_page
def sweep_cancel(request: HttpRequest, membership: Membership, sweep_id: uuid.UUID
                 ) -> HttpResponse:
    _trading_allowed(membership)
    sweep = get_object_or_404(Sweep.objects.for_workspace(membership.workspace), pk=sweep_id)
    if services.cancel_sweep(sweep=sweep, now=timezone.now()):
        messages.success(request, "Sweep cancelled: waiting points dropped, running ones "
                                  "stopping.")
    else:
        messages.info(request, f"The sweep had already ended ({sweep.state}).")
    return redirect("sweep_detail", sweep.pk)


@workspace_page
def sweep_delete(request: HttpRequest, membership: Membership, sweep_id: uuid.UUID
                 ) -> HttpResponse:
    """GET: the confirmation (what goes with the sweep, or why it cannot go yet); POST: delete."""
    sweep = get_object_or_404(Sweep.objects.for_workspace(membership.workspace), pk=sweep_id)
    if request.method == "POST":
        _trading_allowed(membership)
        try:
            count = services.delete_sweep(sweep=sweep)
        except ApiError as error:
            messages.error(request, error.message)
            return redirect("sweep_delete", sweep.pk)
        messages.success(request, f"Deleted the sweep {sweep.name} and its {count} "
                                  f"backtest{'s' if count != 1 else ''}.")
        return redirect("sweep_list")
    return render(request, "runtimes/sweep_delete.html", {
        "sweep": sweep, "running": sweep.state == SweepState.RUNNING,
        "points": sweep.points.count(), "backtests": sweep.sessions.count(),
    })
