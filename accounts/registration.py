"""Sign-up by emailed link. The answer, and the time it takes, are the same whether or not an
address already has an account; an account is usable only once its address's owner opened the
link (which also proves they own the address an invitation is sent to)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from accounts import services
from accounts.models import Membership, User, normalize_email
from config.errors import ApiError


class SignUpTokenGenerator(PasswordResetTokenGenerator):
    """One-time sign-up links, valid for settings.PASSWORD_RESET_TIMEOUT (3 days by default).

    The token hashes the password hash, the last login and is_active: a newer sign-up of the
    same address, or the activation itself, voids older links."""

    key_salt = "accounts.registration.SignUpTokenGenerator"

    def _make_hash_value(self, user: User, timestamp: int) -> str:  # type: ignore[override]
        return f"{super()._make_hash_value(user, timestamp)}{user.is_active}"


tokens = SignUpTokenGenerator()


def request_sign_up(*, email: str, password: str, site_url: str, next_url: str = "") -> None:
    """Email `email` a link that finishes the sign-up (confirm_sign_up), or, if the address
    already has an account, a note saying so: the caller cannot tell which.

    An unconfirmed account of the address gets the new password and a new link (the latest
    sign-up wins, so nobody can hold an address they cannot read). `next_url` (already checked
    to stay on this site) is where the link lands. Raises ValidationError for a password the
    policy refuses, before anything else, whatever the address.
    """
    email = normalize_email(email)
    services.check_new_password(email=email, password=password)
    hashed = make_password(password)  # on every path: the time taken says nothing
    with transaction.atomic():
        user, created = User.objects.select_for_update().get_or_create(
            email=email, defaults={"password": hashed, "is_active": False}
        )
        confirmable = created or _unconfirmed(user)
        if confirmable and not created:
            user.password = hashed
            user.save(update_fields=["password"])
    site = site_url.rstrip("/")
    if confirmable:
        _send_link(user, site=site, next_url=next_url)
    else:
        _send_account_exists(email, site=site)


def pending_sign_up(*, uid: str, token: str) -> User:
    """The unconfirmed user a link is for; ApiError SIGN_UP_LINK_INVALID (400) otherwise."""
    try:
        user = User.objects.filter(pk=force_str(urlsafe_base64_decode(uid))).first()
    except (ValueError, TypeError, OverflowError, ValidationError):  # not a uuid
        user = None
    if user is None or not _unconfirmed(user) or not tokens.check_token(user, token):
        raise ApiError(
            "SIGN_UP_LINK_INVALID",
            "This sign-up link is invalid or has expired; sign up again.",
            status_code=400,
        )
    return user


def confirm_sign_up(*, uid: str, token: str) -> User:
    """Activate the link's user and open their personal workspace; the link is then void."""
    user = pending_sign_up(uid=uid, token=token)
    with transaction.atomic():
        if User.objects.filter(pk=user.pk, is_active=False).update(is_active=True) != 1:
            raise ApiError(
                "SIGN_UP_LINK_INVALID", "This sign-up link was already used.", status_code=400
            )
        services.open_personal_workspace(owner=user)
    user.is_active = True
    return user


def _unconfirmed(user: User) -> bool:
    # Never logged in, no workspace: a sign-up not finished yet (an account an operator
    # deactivated has its personal workspace, so sign-up never revives it).
    return (
        not user.is_active
        and user.last_login is None
        and not Membership.objects.filter(user=user).exists()
    )


def _send_link(user: User, *, site: str, next_url: str) -> None:
    path = reverse(
        "signup_confirm",
        args=[urlsafe_base64_encode(force_bytes(user.pk)), tokens.make_token(user)],
    )
    query = f"?{urlencode({'next': next_url})}" if next_url else ""
    send_mail(
        subject="Finish signing up for Parity",
        message=(
            f"Open this link to finish signing up for Parity as {user.email}:\n\n"
            f"{site}{path}{query}\n\nThe link works once, for {_lifetime()}. If you did "
            "not sign up, ignore this email: no account is made without it."
        ),
        from_email=None,
        recipient_list=[user.email],
    )


def _lifetime() -> str:
    hours = settings.PASSWORD_RESET_TIMEOUT // 3600
    return f"{hours // 24} days" if hours % 24 == 0 and hours >= 48 else f"{hours} hours"


def _send_account_exists(email: str, *, site: str) -> None:
    send_mail(
        subject="Signing up for Parity",
        message=(
            f"Someone, maybe you, tried to sign up for Parity as {email}, which already has "
            f"an account. Log in at {site}{reverse('login')}\n\nIf it was not you, ignore "
            "this email: nothing was changed."
        ),
        from_email=None,
        recipient_list=[email],
    )
