"""Dashboard actions on one backtest, from its page or the list: rename, cancel, delete (after a
confirmation page), re-run with the same inputs, and clone into the form of a version.

Thin: the run is reached through the current workspace (a foreign id is a 404); writes need a
role that may trade; `runtimes.backtests` and `runtimes.services` decide, their refusals show
as messages.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.models import Membership
from accounts.views import workspace_page
from config.errors import ApiError
from runtimes import backtests, services
from runtimes.models import SessionAudit, SessionEvent, TradingSession
from strategies.models import StrategyVersion


def _run(membership: Membership, session_id: uuid.UUID, *, write: bool) -> TradingSession:
    session = get_object_or_404(TradingSession.objects.for_workspace(membership.workspace)
                                .select_related("dataset", "strategy_version__strategy"),
                                pk=session_id)
    if write and not membership.can_trade():
        raise PermissionDenied("Your role does not allow changing backtests.")
    return session


@require_POST
@workspace_page
def backtest_rename(request: HttpRequest, membership: Membership,
                    session_id: uuid.UUID) -> HttpResponse:
    session = _run(membership, session_id, write=True)
    try:
        backtests.rename_backtest(session=session, name=request.POST.get("name", ""))
    except ApiError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Renamed to {session.name!r}.")
    return redirect("backtest_detail", session.pk)


@require_POST
@workspace_page
def backtest_cancel(request: HttpRequest, membership: Membership,
                    session_id: uuid.UUID) -> HttpResponse:
    """Cancel a live run (the services' cancel: at once when no worker runs it, else its host
    stops within a poll interval); back to the list or the run's page."""
    session = _run(membership, session_id, write=True)
    if services.cancel_session(session=session, now=timezone.now(), reason="cancelled by "
                               "a person from the dashboard"):
        # A worker running it stops at its next poll; nobody running it: cancelled already.
        messages.success(request, f"{session.title} is cancelled." if session.is_terminal
                         else f"{session.title} is being cancelled: it stops within seconds.")
    else:
        messages.error(request, f"{session.title} had already ended.")
    if request.POST.get("next") == "list":
        return redirect("backtest_list")
    return redirect("backtest_detail", session.pk)


@workspace_page
def backtest_delete(request: HttpRequest, membership: Membership,
                    session_id: uuid.UUID) -> HttpResponse:
    """GET: the confirmation (what goes with the run, or why it cannot go yet); POST: delete."""
    session = _run(membership, session_id, write=True)
    if request.method == "POST":
        try:
            backtests.delete_backtest(session=session)
        except ApiError as error:
            messages.error(request, error.message)
            return redirect("backtest_delete", session.pk)
        messages.success(request, f"Deleted {session.title}.")
        return redirect("backtest_list")
    return render(request, "runtimes/backtest_delete.html", {
        "session": session,
        "events": SessionEvent.objects.filter(session=session).count(),
        "audits": SessionAudit.objects.filter(session=session).count(),
        "deployments": list(session.deployments.values_list("name", flat=True)[:3]),
    })


@require_POST
@workspace_page
def backtest_rerun(request: HttpRequest, membership: Membership,
                   session_id: uuid.UUID) -> HttpResponse:
    """Start a new hosted run with every input of this one (confirmed on the page)."""
    session = _run(membership, session_id, write=True)
    try:
        new = backtests.rerun_backtest(session=session, by=request.user)
    except ApiError as error:
        messages.error(request, error.message)
        return redirect("backtest_detail", session.pk)
    return redirect("backtest_detail", new.pk)


@workspace_page
def backtest_clone(request: HttpRequest, membership: Membership,
                   session_id: uuid.UUID) -> HttpResponse:
    """"Clone and edit" into `?version=` (a version of the workspace's; default: the run's
    own): the backtest form of that version, prefilled from this run."""
    session = _run(membership, session_id, write=False)
    chosen = request.GET.get("version") or session.strategy_version_id
    try:
        version = get_object_or_404(StrategyVersion.objects.for_workspace(membership.workspace),
                                    pk=uuid.UUID(str(chosen)))
    except ValueError:
        version = None
    if version is None:
        messages.error(request, "Pick a strategy version to clone the backtest into.")
        return redirect("backtest_detail", session.pk)
    url = reverse("backtest_new", args=[version.pk])
    return redirect(f"{url}?{urlencode({'from': session.pk})}")
