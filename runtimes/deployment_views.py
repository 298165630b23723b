"""Dashboard pages of deployments: the workspace's list, the "New deployment" form, and a
deployment's page, which is its live session page (state, equity, positions, orders, fills,
logs, connection state, fed by the live view's socket) with its start/stop/pause/resume buttons
and, for a paper deployment of a version that has a completed backtest, the two side by side.
A live platform's deployment is marked on every page (templates/runtimes/_live_banner.html).

Thin: deployments are reached through the current workspace (a foreign id is a 404); refusals
of `runtimes.deployments` show as form errors or messages, never a 500.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.models import BrokerCredential, Membership
from accounts.views import workspace_page
from config.errors import ApiError
from runtimes import deployments, result_pages
from runtimes.core.platforms import PLATFORMS
from runtimes.forms import ConfirmForm, DeploymentForm
from runtimes.models import (
    Deployment,
    DeploymentState,
    Platform,
    SessionResult,
    Source,
    State,
    TradingSession,
)
from strategies.models import StrategyVersion

ACTIONS = ("start", "stop", "pause", "resume")
# The buttons a deployment's page offers in each state (the services decide; these only hide
# what would surely be refused).
BUTTONS: dict[str, tuple[tuple[str, str], ...]] = {
    DeploymentState.STOPPED: (("start", "Start"),),
    DeploymentState.FAILED: (("start", "Start again"),),
    DeploymentState.STARTING: (("stop", "Stop"),),
    DeploymentState.RUNNING: (("pause", "Pause"), ("stop", "Stop")),
    DeploymentState.PAUSED: (("resume", "Resume"), ("stop", "Stop")),
    DeploymentState.STOPPING: (),
}


def _deployment(membership: Membership, deployment_id: uuid.UUID) -> Deployment:
    found = get_object_or_404(
        Deployment.objects.for_workspace(membership.workspace)
        .select_related("strategy_version__strategy", "current_session", "connection"),
        pk=deployment_id)
    return deployments.sync_with_session(found)


@workspace_page
def deployment_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    rows = [deployments.sync_with_session(d) for d in
            Deployment.objects.for_workspace(membership.workspace)
            .select_related("strategy_version__strategy", "current_session")[:200]]
    return render(request, "runtimes/deployment_list.html", {
        "deployments": rows, "live_ids": {d.pk for d in rows
                                          if getattr(PLATFORMS.get(d.platform), "live", False)}})


@workspace_page
def deployment_new(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The "New deployment" form; a valid one records the deployment (and starts it when asked)
    and leads to its page. Service refusals stay in the form, with what was typed."""
    versions = (StrategyVersion.objects.for_workspace(membership.workspace)
                .select_related("strategy").order_by("strategy__name", "-number"))
    form = DeploymentForm(request.POST or None, versions=versions,
                          connections=BrokerCredential.objects.for_workspace(membership.workspace),
                          initial={"version": request.GET.get("version")})
    if request.method == "POST":
        if not membership.can_trade():
            raise PermissionDenied("Your role does not allow deploying strategies.")
        if form.is_valid():
            try:
                deployment = deployments.create_deployment(
                    workspace=membership.workspace, created_by=request.user,
                    role=membership.role, **form.service_arguments())
            except ApiError as error:
                _form_error(form, error)
            else:
                if form.cleaned_data["start_now"]:
                    _act(request, membership, deployment, "start")
                return redirect("deployment_detail", deployment.pk)
    return render(request, "runtimes/deployment_new.html", {"form": form})


def _form_error(form: DeploymentForm, error: ApiError) -> None:
    details = error.details or {}
    field = details.get("field")
    named = [key for key in details if key in form.fields]
    if field in form.fields:
        form.add_error(field, error.message)
    elif named:
        for key in named:
            form.add_error(key, "; ".join(map(str, details[key])))
    else:
        form.add_error(None, error.message)


def _act(request: HttpRequest, membership: Membership, deployment: Deployment,
         action: str) -> None:
    """Run `action`; a refusal (illegal transition, unavailable platform…) becomes a message."""
    now, role = timezone.now(), membership.role
    try:
        if action == "start":
            deployments.start_deployment(deployment=deployment, started_by=request.user,
                                         role=role, now=now)
        elif action == "stop":
            deployments.stop_deployment(deployment=deployment, now=now)
        elif action == "pause":
            deployments.pause_deployment(deployment=deployment)
        else:
            deployments.resume_deployment(deployment=deployment, role=role)
    except ApiError as error:
        messages.error(request, error.message)


@require_POST
@workspace_page
def deployment_action(request: HttpRequest, membership: Membership,
                      deployment_id: uuid.UUID, action: str) -> HttpResponse:
    """Start, stop, pause or resume; on a live platform, starting or resuming needs the
    deployment's name typed again."""
    if action not in ACTIONS:
        return redirect("deployment_detail", deployment_id)
    if not membership.can_trade():
        raise PermissionDenied("Your role does not allow running deployments.")
    deployment = _deployment(membership, deployment_id)
    spec = PLATFORMS.get(deployment.platform)
    typed = ConfirmForm(request.POST)
    confirmed = typed.is_valid() and typed.cleaned_data["confirm_name"].strip() == deployment.name
    if spec is not None and spec.live and action in ("start", "resume") and not confirmed:
        messages.error(request, f"{spec.label} trades real money: type the deployment's name, "
                                f"{deployment.name!r}, to {action} it.")
    else:
        _act(request, membership, deployment, action)
    return redirect("deployment_detail", deployment.pk)


@require_POST
@workspace_page
def deployment_delete(request: HttpRequest, membership: Membership,
                      deployment_id: uuid.UUID) -> HttpResponse:
    if not membership.can_trade():
        raise PermissionDenied("Your role does not allow deleting deployments.")
    deployment = _deployment(membership, deployment_id)
    try:
        deployments.delete_deployment(deployment=deployment)
    except ApiError as error:
        messages.error(request, error.message)
        return redirect("deployment_detail", deployment.pk)
    messages.success(request, f"Deleted the deployment {deployment.name!r}.")
    return redirect("deployment_list")


@workspace_page
def deployment_detail(request: HttpRequest, membership: Membership,
                      deployment_id: uuid.UUID) -> HttpResponse:
    deployment = _deployment(membership, deployment_id)
    session = deployment.current_session
    if session is not None:
        session = (TradingSession.objects.select_related("strategy_version__strategy")
                   .get(pk=session.pk))
    result = None if session is None else SessionResult.objects.filter(session=session).first()
    spec = PLATFORMS.get(deployment.platform)
    return render(request, "runtimes/deployment_detail.html", {
        "deployment": deployment,
        "connection": deployment.connection,
        "spec": spec,
        "session": session,
        "history": deployment.sessions.order_by("-created_at")[:20],
        "cards": None if result is None else result_pages.metric_cards(result.metrics),
        "backtest": _paper_comparison(deployment, spec),
        "base_url": None if session is None else request.build_absolute_uri(
            f"/sessions/{session.pk}"),
        "can_trade": membership.can_trade(),
        "buttons": [{"action": action, "label": label,
                     "confirm": bool(spec and spec.live) and action in ("start", "resume")}
                    for action, label in BUTTONS.get(deployment.state, ())],
    })


def _paper_comparison(deployment: Deployment, spec: Any) -> dict[str, Any] | None:
    """The newest completed backtest of the deployment's version and its metric cards, for a
    paper deployment (None otherwise, or when the version has none)."""
    if spec is None or spec.live or deployment.strategy_version_id is None:
        return None
    backtest = (TradingSession.objects.for_workspace(deployment.workspace)
                .filter(strategy_version_id=deployment.strategy_version_id,
                        platform=Platform.BACKTEST, source=Source.HOSTED,
                        state=State.COMPLETED, result__isnull=False)
                .select_related("dataset", "result").order_by("-finished_at").first())
    if backtest is None:
        return None
    return {"session": backtest, "cards": result_pages.metric_cards(backtest.result.metrics)}
