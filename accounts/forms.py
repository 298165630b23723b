"""Forms of the dashboard's account pages; they validate input and call services in views."""

from __future__ import annotations

import math
from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts import login_throttle
from accounts.models import API_KEY_SCOPES, Role, User, normalize_email


class ThrottledLoginMixin:
    """Throttles an AuthenticationForm per (IP, email) before the password is even checked.

    Shared by the dashboard's and the admin's login forms, so both count the same failures.
    """

    request: Any
    cleaned_data: dict[str, Any]

    def clean(self) -> dict[str, Any]:
        email = self.cleaned_data.get("username") or ""
        ip = login_throttle.client_ip(self.request)
        wait = login_throttle.lockout_seconds(ip=ip, email=email)
        if wait:
            minutes = math.ceil(wait / 60)
            raise ValidationError(
                f"Too many attempts; try again in {minutes} minute{'s' if minutes != 1 else ''}.",
                code="throttled",
            )
        try:
            cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]  # the form it mixes into
        except ValidationError:
            login_throttle.record_failure(ip=ip, email=email)
            raise
        login_throttle.clear_failures(ip=ip, email=email)
        return cleaned


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    """Django's login form, throttled."""

    username = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    """The admin site's login form, throttled like the dashboard's (accounts/admin.py)."""


class SignUpForm(forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password1 = forms.CharField(
        label="Password", strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password (again)", strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean_email(self) -> str:
        # Never says whether the address has an account (accounts/registration.py).
        return normalize_email(self.cleaned_data["email"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        password1, password2 = cleaned.get("password1"), cleaned.get("password2")
        if password1 and password2 and password1 != password2:
            self.add_error("password2", "The two passwords differ.")
        elif password1:
            try:
                password_validation.validate_password(
                    password1, User(email=cleaned.get("email") or ""))
            except ValidationError as exc:
                self.add_error("password1", exc)
        return cleaned


class WorkspaceForm(forms.Form):
    name = forms.CharField(max_length=100)


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Where the key is used, e.g. 'laptop'.")
    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in API_KEY_SCOPES], initial=["read"],
        widget=forms.CheckboxSelectMultiple,
        help_text="trade:live can only be granted by an owner.",
    )
    expires_at = forms.DateTimeField(
        required=False, label="Expires (UTC, optional)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise ValidationError("The expiry must be in the future.")
        return expires_at
