"""Dashboard pages of the accounts app: sign-up/login, workspaces, members, API keys (the
workspace's home page, which draws on every app, is config/home.py).

Each page acts on the *current* workspace (accounts/current.py), resolved through the user's
memberships on every request; decisions are made by accounts.services.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.messages.views import SuccessMessageMixin
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework.exceptions import APIException, ValidationError

from accounts import registration, services
from accounts.crypto import CredentialDecryptionError, decrypt_secret, encrypt_secret
from accounts.current import current_membership, select_workspace
from accounts.forms import ApiKeyForm, InviteForm, LoginForm, SignUpForm, WorkspaceForm
from accounts.models import ApiKey, Invitation, Membership, normalize_email


def _service_error(exc: APIException, form: forms.Form | None = None) -> str:
    """Field errors go next to their fields; the rest becomes one message for the page."""
    if isinstance(exc, ValidationError) and isinstance(exc.detail, dict) and form is not None:
        for field, errors in exc.detail.items():
            for error in errors:
                form.add_error(field if field in form.fields else None, str(error))
        return ""
    return str(getattr(exc, "message", None) or exc.detail)


def _form_error(form: forms.Form, exc: APIException) -> None:
    message = _service_error(exc, form)
    if message:
        form.add_error(None, message)


def _uuid_or_404(value: str | None) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Http404("No such workspace.") from None


def workspace_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Login required; passes the current membership (its .workspace is the tenant in scope)."""
    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        membership = current_membership(request)
        if membership is None:
            return redirect("workspace_create")
        return view(request, membership, *args, **kwargs)
    return wrapper


def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/landing.html")


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("dashboard")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            registration.request_sign_up(
                email=form.cleaned_data["email"], password=form.cleaned_data["password1"],
                site_url=request.build_absolute_uri("/"), next_url=_safe_next(request, ""))
        except APIException as exc:
            _form_error(form, exc)
        else:
            # The same page whether or not the address has an account (registration.py).
            return render(request, "accounts/signup_sent.html",
                          {"email": form.cleaned_data["email"]})
    return render(request, "accounts/signup.html", {"form": form, "next": _safe_next(request, "")})


def signup_confirm(request: HttpRequest, uid: str, token: str) -> HttpResponse:
    """The emailed link: a GET shows a button (mail scanners prefetch links), its POST signs in."""
    try:
        user = registration.pending_sign_up(uid=uid, token=token)
        if request.method == "POST":
            user = registration.confirm_sign_up(uid=uid, token=token)
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Welcome to Parity. Your personal workspace is ready.")
            return redirect(_safe_next(request))
    except APIException as exc:
        return render(request, "accounts/signup_confirm.html", {"error": _service_error(exc)},
                      status=exc.status_code)
    return render(request, "accounts/signup_confirm.html", {"email": user.email})


def _safe_next(request: HttpRequest, default: str = "dashboard") -> str:
    """The `next` target of a form (e.g. an invitation link) if it stays on this site."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return default


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class PasswordChangeView(SuccessMessageMixin, auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("dashboard")
    success_message = "Your password was changed."


@login_required
def workspace_create(request: HttpRequest) -> HttpResponse:
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        workspace = services.create_workspace(owner=request.user, name=form.cleaned_data["name"])
        select_workspace(request, workspace)
        messages.success(request, f"Workspace {workspace.name} created.")
        return redirect("dashboard")
    return render(request, "accounts/workspace_form.html", {"form": form})


@login_required
@require_POST
def workspace_switch(request: HttpRequest) -> HttpResponse:
    membership = get_object_or_404(
        Membership.objects.for_user(request.user).select_related("workspace"),
        workspace_id=_uuid_or_404(request.POST.get("workspace_id")),
    )
    select_workspace(request, membership.workspace)
    return redirect(_safe_next(request))


@workspace_page
def members(request: HttpRequest, membership: Membership) -> HttpResponse:
    workspace = membership.workspace
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.invite_member(workspace=workspace, invited_by=request.user,
                                   accept_url_base=request.build_absolute_uri("/"),
                                   **form.cleaned_data)
        except APIException as exc:
            _form_error(form, exc)
        else:
            messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
            return redirect("workspace_members")
    return render(request, "accounts/members.html", {
        "form": form,
        "members": Membership.objects.for_workspace(workspace).select_related("user"),
        "invitations": Invitation.objects.for_workspace(workspace).open()
        .select_related("invited_by"),
        "now": timezone.now(),
    })


@require_POST
@workspace_page
def invitation_action(request: HttpRequest, membership: Membership, invitation_id: uuid.UUID,
                      action: str) -> HttpResponse:
    """The members page's buttons of an invitation: revoke, or resend (a new link)."""
    invitation = get_object_or_404(
        Invitation.objects.for_workspace(membership.workspace)
        .select_related("workspace", "invited_by"), pk=invitation_id)
    try:
        if action == "revoke":
            services.revoke_invitation(invitation=invitation, by=request.user)
            messages.success(request, f"Invitation to {invitation.email} revoked; its link no "
                                      f"longer works.")
        elif action == "resend":
            services.resend_invitation(invitation=invitation, by=request.user,
                                       accept_url_base=request.build_absolute_uri("/"))
            messages.success(request, f"A new invitation link was sent to {invitation.email}; "
                                      f"the previous one no longer works.")
        else:
            raise Http404("No such action.")
    except APIException as exc:
        messages.error(request, _service_error(exc))
    return redirect("workspace_members")


@workspace_page
@require_POST
def member_remove(request: HttpRequest, membership: Membership, member_id: uuid.UUID
                  ) -> HttpResponse:
    target = get_object_or_404(
        Membership.objects.for_workspace(membership.workspace).select_related("workspace"),
        pk=member_id)
    try:
        services.remove_member(membership=target, by=request.user)
    except APIException as exc:
        messages.error(request, _service_error(exc))
    else:
        messages.success(request, "Member removed; their API keys were revoked.")
    return redirect("workspace_members")


@login_required
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: a GET says what the invitation is, its POST joins the workspace."""
    try:
        invitation = services.find_invitation(token=token)
        if request.method == "POST":
            joined = services.accept_invitation(token=token, user=request.user)
            select_workspace(request, joined.workspace)
            messages.success(request, f"You joined {joined.workspace.name}.")
            return redirect("dashboard")
    except APIException as exc:
        return render(request, "accounts/invitation.html", {"error": _service_error(exc)},
                      status=exc.status_code)
    return render(request, "accounts/invitation.html", {
        "invitation": invitation,
        "signed_in_as_invited": normalize_email(request.user.email) == invitation.email})


# The session entry that carries a new key's secret from the POST to the one page that shows it.
NEW_KEY_SESSION = "new_api_key"


@workspace_page
def api_keys(request: HttpRequest, membership: Membership) -> HttpResponse:
    # A secret whose page was never reached (the redirect cut short) is not kept any longer.
    request.session.pop(NEW_KEY_SESSION, None)
    keys = ApiKey.objects.for_workspace(membership.workspace).select_related("created_by")
    return render(request, "accounts/api_keys.html", {"keys": keys, "now": timezone.now()})


@never_cache
@workspace_page
def api_key_create(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Post/Redirect/Get: a reload of the page after creating shows the key again, never a new
    one. The secret crosses the redirect in the server-side session (never a URL or a log)
    and is dropped there at its one read."""
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            key, plaintext = services.create_api_key(
                workspace=membership.workspace, created_by=request.user, **form.cleaned_data)
        except APIException as exc:
            _form_error(form, exc)
        else:
            # Sealed with the credentials key ring, bound to this workspace and key: the
            # session store (a database row) never holds the secret in the clear.
            request.session[NEW_KEY_SESSION] = {"id": str(key.pk), "sealed": encrypt_secret(
                workspace_id=membership.workspace.pk, credential_id=key.pk,
                secret={"plaintext": plaintext})}
            return redirect("api_key_created", key.pk)
    return render(request, "accounts/api_key_form.html", {"form": form})


@never_cache
@workspace_page
def api_key_created(request: HttpRequest, membership: Membership, key_id: uuid.UUID
                    ) -> HttpResponse:
    """The new key's secret, once: read from the session and dropped from it in the same
    request. Any later visit (a reload, the back button) shows the key without it."""
    key = get_object_or_404(ApiKey.objects.for_workspace(membership.workspace), pk=key_id)
    kept = request.session.get(NEW_KEY_SESSION) or {}
    plaintext = None
    if kept.get("id") == str(key.pk):
        del request.session[NEW_KEY_SESSION]
        try:
            plaintext = decrypt_secret(token=kept.get("sealed", ""), workspace_id=key.workspace_id,
                                       credential_id=key.pk)["plaintext"]
        except CredentialDecryptionError:
            plaintext = None
    return render(request, "accounts/api_key_created.html", {
        "key": key, "plaintext": plaintext,
        "origin": f"{request.scheme}://{request.get_host()}"})


@require_http_methods(["GET", "POST"])
@workspace_page
def api_key_revoke(request: HttpRequest, membership: Membership, key_id: uuid.UUID
                   ) -> HttpResponse:
    """GET asks for confirmation; only its POST revokes."""
    keys = ApiKey.objects.for_workspace(membership.workspace)
    key = get_object_or_404(keys.select_related("workspace", "created_by"), pk=key_id)
    if request.method != "POST":
        return render(request, "accounts/api_key_revoke.html", {"key": key})
    try:
        services.revoke_api_key(key=key, by=request.user)
    except APIException as exc:
        messages.error(request, _service_error(exc))
    else:
        messages.success(request, f"Key {key.name} revoked.")
    return redirect("api_keys")
