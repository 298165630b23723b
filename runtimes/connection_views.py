"""Dashboard pages of broker connections: the workspace's list (with each one's health) and the
"Add a connection" form on the same page, and a deletion's confirmation page.

Thin: every member sees the list, owners add and delete (runtimes.credentials decides); a
refusal of the broker or of the services shows as a form error or message, never a 500. The
keys typed are never rendered back.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from rest_framework.exceptions import APIException, ValidationError

from accounts.models import BrokerCredential, Membership
from accounts.views import workspace_page
from runtimes import broker_alerts, credentials
from runtimes.core.platforms import PLATFORMS
from runtimes.forms import ConnectionForm
from runtimes.hosting import brokers

# The services' field names that the form has under another name.
FORM_FIELDS = {"options": "feed"}


def _rows(membership: Membership) -> list[dict[str, Any]]:
    rows = []
    for credential in BrokerCredential.objects.for_workspace(membership.workspace):
        spec = PLATFORMS.get(credential.platform)
        health = credential.health or {}
        rows.append({"connection": credential, "spec": spec, "health": health,
                     "streams": sorted((health.get("streams") or {}).items()),
                     "ban": _ban(credential, spec)})
    return rows


@never_cache
@workspace_page
def connection_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The list; its form (owners) adds a connection once the broker accepted the keys."""
    form = ConnectionForm(request.POST or None)
    if request.method == "POST":
        if not membership.can_manage():
            raise PermissionDenied("Only an owner of this workspace can add connections.")
        if form.is_valid():
            try:
                credential = credentials.add_broker_credential(
                    workspace=membership.workspace, by=request.user,
                    platform=form.cleaned_data["platform"], label=form.cleaned_data["label"],
                    key_id=form.cleaned_data["key_id"], secret=form.cleaned_data["secret"],
                    options=form.options())
            except APIException as exc:
                _form_error(form, exc)
            else:
                messages.success(request, f"Connection {credential.label!r} added: the broker "
                                          "accepted its keys.")
                return redirect("connection_list")
    return render(request, "runtimes/connection_list.html",
                  {"rows": _rows(membership), "form": form,
                   "can_manage": membership.can_manage()})


@workspace_page
def connection_delete(request: HttpRequest, membership: Membership,
                      connection_id: uuid.UUID) -> HttpResponse:
    """GET: the confirmation (what uses it); POST: delete it (owners)."""
    credential = get_object_or_404(BrokerCredential.objects.for_workspace(membership.workspace)
                                   .select_related("workspace"), pk=connection_id)
    if not membership.can_manage():
        raise PermissionDenied("Only an owner of this workspace can delete connections.")
    if request.method == "POST":
        try:
            credentials.delete_broker_credential(credential=credential, by=request.user)
        except APIException as exc:
            messages.error(request, _message(exc))
        else:
            messages.success(request, f"Connection {credential.label!r} deleted.")
        return redirect("connection_list")
    names, live = credentials.users_of(credential)
    return render(request, "runtimes/connection_delete.html",
                  {"connection": credential, "spec": PLATFORMS.get(credential.platform),
                   "deployments": names, "live_sessions": live})


def _ban(credential: BrokerCredential, spec: Any) -> str | None:
    """The sentence of the ban that stops this connection's sessions now, if one does."""
    family = brokers.family_of(credential.platform)
    if spec is None or family is None or not family.shared_limit_setting:
        return None
    until = broker_alerts.banned_until(credential)
    return None if until is None else broker_alerts.ban_message(family.label, until)


def _form_error(form: ConnectionForm, exc: APIException) -> None:
    """Field errors beside their fields; the broker's refusal (and the rest) above the form."""
    if isinstance(exc, ValidationError) and isinstance(exc.detail, dict):
        for field, errors in exc.detail.items():
            name = FORM_FIELDS.get(str(field), str(field))
            for error in errors:
                form.add_error(name if name in form.fields else None, str(error))
        return
    form.add_error(None, _message(exc))


def _message(exc: APIException) -> str:
    return str(getattr(exc, "message", None) or exc.detail)
