"""Writes of the accounts app: sign-up, workspaces, members, invitations, API keys, credentials.

Every function takes keyword-only arguments, checks the actor's role itself (views only parse
and render), and raises `config.errors.ApiError` / DRF `PermissionDenied` so the API renders the
JSON envelope and the web pages can show the same message.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify
from rest_framework.exceptions import PermissionDenied, ValidationError

from accounts import access_events, auth_cache, keys
from accounts.crypto import seal_credential
from accounts.models import (
    API_KEY_SCOPES,
    ApiKey,
    BrokerCredential,
    Invitation,
    Membership,
    Role,
    User,
    Workspace,
    normalize_email,
    role_allows_scope,
    scope_refusal,
)
from config.errors import ApiError

INVITATION_LIFETIME = timedelta(days=7)
# last_used_at is a hint for people, not an audit log: one write a minute per key at most.
LAST_USED_RESOLUTION = timedelta(minutes=1)


# --- users and workspaces ------------------------------------------------------------------

def sign_up(*, email: str, password: str) -> User:
    """Create an active user and their personal workspace (as owner) at once.

    For fixtures and operators: the dashboard's sign-up confirms the address by email first
    (accounts/registration.py). Raises ApiError EMAIL_TAKEN (409) and ValidationError for a
    password the policy refuses.
    """
    email = normalize_email(email)
    if User.objects.filter(email=email).exists():
        raise ApiError("EMAIL_TAKEN", "An account with this email already exists.", status_code=409)
    check_new_password(email=email, password=password)
    with transaction.atomic():
        user = User.objects.create_user(email, password)
        open_personal_workspace(owner=user)
    return user


def check_new_password(*, email: str, password: str) -> None:
    """Raises ValidationError {"password": [...]} for a password the policy refuses."""
    try:
        password_validation.validate_password(password, User(email=email))
    except DjangoValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None


def open_personal_workspace(*, owner: User) -> Workspace:
    """The workspace every new user starts with, owned by them."""
    return _new_workspace(owner=owner, name="Personal", personal=True)


def create_workspace(*, owner: User, name: str) -> Workspace:
    """A shared (non-personal) workspace with `owner` as its first owner."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": ["A workspace needs a name."]})
    with transaction.atomic():
        return _new_workspace(owner=owner, name=name, personal=False)


def _new_workspace(*, owner: User, name: str, personal: bool) -> Workspace:
    base = slugify(name)[:48] or "workspace"
    workspace = Workspace.objects.create(
        name=name, personal=personal, slug=f"{base}-{secrets.token_hex(4)}"
    )
    Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
    return workspace


def ensure_demo_account(*, email: str, password: str) -> tuple[User, Workspace]:
    """Idempotently create (or reset the password of) the demo user; returns its personal workspace.

    Skips the password policy on purpose: the demo password is chosen by the operator.
    """
    email = normalize_email(email)
    with transaction.atomic():
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(email, password)
        elif not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        workspace = Workspace.objects.for_user(user).filter(personal=True).first()
        if workspace is None:
            workspace = _new_workspace(owner=user, name="Demo", personal=True)
    return user, workspace


def membership_for(*, workspace: Workspace, user: User) -> Membership | None:
    return Membership.objects.filter(workspace=workspace, user=user).first()


def _require_manager(*, workspace: Workspace, user: User) -> Membership:
    membership = membership_for(workspace=workspace, user=user)
    if membership is None or not membership.can_manage():
        raise PermissionDenied("Only an owner of this workspace can do that.")
    return membership


def _validate_role(role: str) -> str:
    if role not in Role.values:
        raise ValidationError({"role": [f"Choose one of {', '.join(Role.values)}."]})
    return role


# --- members and invitations ---------------------------------------------------------------

def invite_member(
    *, workspace: Workspace, invited_by: User, email: str, role: str, accept_url_base: str = ""
) -> tuple[Invitation, str]:
    """Invite `email` with `role` and email them a link; returns (invitation, token) once.

    Owner only. A newer invitation to the same address replaces a pending one.
    Raises PermissionDenied, ValidationError, ApiError ALREADY_MEMBER (409).
    """
    _require_manager(workspace=workspace, user=invited_by)
    email, role = normalize_email(email), _validate_role(role)
    if Membership.objects.for_workspace(workspace).filter(user__email=email).exists():
        raise ApiError("ALREADY_MEMBER", "That person is already a member.", status_code=409)
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        # Expired ones too: resent later, an old one would be a second live link, maybe with
        # another role.
        Invitation.objects.for_workspace(workspace).filter(email=email).open().delete()
        invitation = Invitation.objects.create(
            workspace=workspace, email=email, role=role, invited_by=invited_by,
            token_hash=keys.keyed_hash(token), created_at=now, expires_at=now + INVITATION_LIFETIME,
        )
    _mail_invitation(invitation, token=token, accept_url_base=accept_url_base)
    return invitation, token


def _mail_invitation(invitation: Invitation, *, token: str, accept_url_base: str) -> None:
    workspace = invitation.workspace
    link = f"{accept_url_base.rstrip('/')}/invitations/{token}/"
    send_mail(
        subject=f"You are invited to {workspace.name} on Parity",
        message=(f"{invitation.invited_by.email} invited you to the workspace {workspace.name!r} "
                 f"as {invitation.role}.\n\n"
                 f"Accept (sign in as {invitation.email}): {link}\n\n"
                 f"The link expires in 7 days, on "
                 f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC."),
        from_email=None,
        recipient_list=[invitation.email],
    )


def revoke_invitation(*, invitation: Invitation, by: User, now: datetime | None = None
                      ) -> Invitation:
    """Owner only. The link then says it was revoked; an expired one may be revoked too (it
    leaves the open invitations). Raises PermissionDenied, and ApiError INVITATION_NOT_PENDING
    (409) for one already accepted or revoked."""
    _require_manager(workspace=invitation.workspace, user=by)
    now = now or timezone.now()
    revoked = Invitation.objects.filter(pk=invitation.pk).open().update(revoked_at=now)
    if revoked != 1:
        raise _not_pending(invitation)
    invitation.revoked_at = now
    return invitation


def resend_invitation(*, invitation: Invitation, by: User, accept_url_base: str = "",
                      now: datetime | None = None) -> tuple[Invitation, str]:
    """Owner only: a new token and a new 7-day expiry, mailed again; the old link stops working
    at once. An expired invitation may be resent, an accepted or revoked one not (ApiError
    INVITATION_NOT_PENDING, 409). Returns (invitation, token) once."""
    _require_manager(workspace=invitation.workspace, user=by)
    now = now or timezone.now()
    token = secrets.token_urlsafe(32)
    renewed = Invitation.objects.filter(
        pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True,
    ).update(token_hash=keys.keyed_hash(token), expires_at=now + INVITATION_LIFETIME)
    if renewed != 1:
        raise _not_pending(invitation)
    invitation.refresh_from_db(fields=["token_hash", "expires_at"])
    _mail_invitation(invitation, token=token, accept_url_base=accept_url_base)
    return invitation, token


def _not_pending(invitation: Invitation) -> ApiError:
    return ApiError("INVITATION_NOT_PENDING",
                    f"The invitation to {invitation.email} is no longer pending "
                    f"(accepted, revoked, or expired: an expired one can be resent).",
                    status_code=409)


def find_invitation(*, token: str, now: datetime | None = None) -> Invitation:
    """The pending invitation for `token`. Otherwise ApiError: INVITATION_INVALID (404) for an
    unknown token (never issued, or replaced by a resend) or a used one; INVITATION_REVOKED
    and INVITATION_EXPIRED (410), whose message names the workspace and who to ask."""
    now = now or timezone.now()
    invitation = (Invitation.objects.select_related("workspace", "invited_by")
                  .filter(token_hash=keys.keyed_hash(token)).first())
    if invitation is None:
        raise ApiError("INVITATION_INVALID", "This invitation link is not valid: it was never "
                       "issued, or a newer link replaced it.", status_code=404)
    if invitation.accepted_at is not None:
        raise ApiError("INVITATION_INVALID", "This invitation was already used.",
                       status_code=404)
    ask = f"ask {invitation.invited_by.email} for a new one"
    where = f"The invitation to {invitation.workspace.name}"
    if invitation.revoked_at is not None:
        raise ApiError("INVITATION_REVOKED",
                       f"{where} was revoked on {invitation.revoked_at:%Y-%m-%d %H:%M} UTC; "
                       f"{ask} if you still need it.", status_code=410)
    if invitation.expires_at <= now:
        raise ApiError("INVITATION_EXPIRED",
                       f"{where} expired on {invitation.expires_at:%Y-%m-%d %H:%M} UTC; {ask}.",
                       status_code=410)
    return invitation


def accept_invitation(*, token: str, user: User, now: datetime | None = None) -> Membership:
    """Join the invitation's workspace. The signed-in user must own the invited address."""
    now = now or timezone.now()
    invitation = find_invitation(token=token, now=now)
    if normalize_email(user.email) != invitation.email:
        raise ApiError("INVITATION_EMAIL_MISMATCH",
                       f"This invitation is for {invitation.email}; sign in with that address.",
                       status_code=403)
    with transaction.atomic():
        # Pending and still this token: a revoke or resend in between wins.
        claimed = (Invitation.objects.filter(pk=invitation.pk, token_hash=invitation.token_hash)
                   .pending(now).update(accepted_at=now))
        if claimed != 1:
            raise ApiError("INVITATION_INVALID", "This invitation was already used, revoked "
                           "or renewed.", status_code=404)
        membership, _ = Membership.objects.get_or_create(
            workspace=invitation.workspace, user=user, defaults={"role": invitation.role})
    return membership


def change_member_role(*, membership: Membership, role: str, by: User) -> Membership:
    """Owner only; the last owner cannot be demoted (ApiError LAST_OWNER, 409)."""
    _require_manager(workspace=membership.workspace, user=by)
    role = _validate_role(role)
    with transaction.atomic():
        if membership.role == Role.OWNER and role != Role.OWNER:
            _refuse_last_owner(membership)
        membership.role = role
        membership.save(update_fields=["role"])
        auth_cache.invalidate_all()  # the save's signal does too; the key acts with this role
    return membership


def remove_member(*, membership: Membership, by: User) -> None:
    """Owner only. Revokes the member's keys too, so a later re-invitation does not revive them."""
    _require_manager(workspace=membership.workspace, user=by)
    with transaction.atomic():
        if membership.role == Role.OWNER:
            _refuse_last_owner(membership)
        ApiKey.objects.for_workspace(membership.workspace).filter(
            created_by=membership.user_id, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        membership.delete()
        auth_cache.invalidate_all()  # takes effect at once


def _refuse_last_owner(membership: Membership) -> None:
    # Lock every owner row so two concurrent demotions cannot both pass this check.
    owner_ids = set(Membership.objects.select_for_update().for_workspace(membership.workspace)
                    .filter(role=Role.OWNER).values_list("pk", flat=True))
    if not owner_ids - {membership.pk}:
        raise ApiError("LAST_OWNER", "A workspace needs at least one owner.", status_code=409)


# --- API keys ------------------------------------------------------------------------------

def validate_scopes(scopes: Iterable[str]) -> list[str]:
    """Sorted, de-duplicated scopes; ValidationError for unknown or missing ones."""
    chosen = sorted(set(scopes))
    unknown = [scope for scope in chosen if scope not in API_KEY_SCOPES]
    if unknown or not chosen:
        raise ValidationError({"scopes": [f"Choose one or more of {', '.join(API_KEY_SCOPES)}."]})
    return chosen


def create_api_key(
    *, workspace: Workspace, created_by: User, name: str, scopes: Iterable[str],
    expires_at: datetime | None = None, acting_key: ApiKey | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return (key, plaintext); the plaintext is never stored or shown again.

    A role grants the scopes it may use (`accounts.models.ROLE_SCOPES`): viewers `read`,
    members `trade:paper` too, owners `trade:live` too. A key creating a key (`acting_key`)
    cannot create one that out-scopes it (scopes it may not use now) or outlives it (a later
    expiry, or none when it has one). Raises PermissionDenied and ValidationError.
    """
    scopes = validate_scopes(scopes)
    membership = membership_for(workspace=workspace, user=created_by)
    if membership is None:
        raise PermissionDenied("You are not a member of this workspace.")
    for scope in scopes:
        if not role_allows_scope(membership.role, scope):
            raise PermissionDenied(scope_refusal(membership.role, scope, who="Your role"))
    if acting_key is not None:
        _refuse_outliving_or_outscoping(acting_key, scopes=scopes, expires_at=expires_at)
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": ["The expiry must be in the future."]})
    prefix, plaintext = keys.generate_key()
    key = ApiKey.objects.create(
        workspace=workspace, created_by=created_by, name=name.strip() or "API key", prefix=prefix,
        hashed_secret=keys.keyed_hash(plaintext), scopes=scopes, expires_at=expires_at,
    )
    return key, plaintext


def _refuse_outliving_or_outscoping(acting_key: ApiKey, *, scopes: list[str],
                                     expires_at: datetime | None) -> None:
    if not all(acting_key.allows(scope) for scope in scopes):
        raise PermissionDenied("An API key cannot grant scopes it does not hold.")
    limit = acting_key.expires_at
    if limit is not None and (expires_at is None or expires_at > limit):
        raise ValidationError({"expires_at": [
            f"A key that expires at {limit.isoformat()} cannot create a key that outlives it: "
            "choose an expiry no later than that."]})


def revoke_api_key(*, key: ApiKey, by: User) -> ApiKey:
    """Revoke at once (idempotent), closing the sockets it opened. Allowed for the key's creator
    and the workspace's owners."""
    if key.created_by_id != by.pk:
        _require_manager(workspace=key.workspace, user=by)
    now = timezone.now()
    revoked = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now)
    auth_cache.invalidate_all()  # takes effect at once, also for a cached success
    access_events.publish(access_events.key_subject(key.pk))  # its open sockets close
    if revoked == 1:
        key.revoked_at = now
    else:
        key.refresh_from_db(fields=["revoked_at"])
    return key


def authenticate_api_key(raw: str, *, now: datetime | None = None) -> ApiKey | None:
    """The usable key matching `raw`, or None (malformed, unknown, wrong secret, revoked, expired,
    creator inactive or no longer a member). Sets `key.creator_role` to the creator's current role.

    A success is cached for a few seconds under the key's HMAC (accounts/auth_cache.py); every
    write that could make a key unusable invalidates the cache at once, expiry is checked here.
    """
    prefix = keys.parse_prefix(raw)
    if prefix is None:
        return None
    now = now or timezone.now()
    digest = keys.keyed_hash(raw.strip())
    key, epoch = auth_cache.lookup("api-key", digest)
    if key is not None:
        if not key.is_usable(now):
            return None
        _touch_stale(key, now=now)  # on the cached object itself: later hits see the touch
        return key  # type: ignore[no-any-return]
    key = (ApiKey.objects.select_related("workspace", "created_by").with_creator_role()
           .filter(prefix=prefix).first())
    if key is None or not keys.hashes_match(key.hashed_secret, digest):
        return None
    if not key.is_usable(now) or not key.created_by.is_active or key.creator_role is None:
        return None
    _touch_stale(key, now=now)
    auth_cache.store("api-key", digest, key, epoch=epoch)
    return key


def _touch_stale(key: ApiKey, *, now: datetime) -> bool:
    """touch_api_key; True when `key.last_used_at` was stale. Afterwards it reads `now` even if
    another process won the write (that one is under a minute old), so the cached copy does not
    retry the write on every request."""
    if key.last_used_at is not None and key.last_used_at > now - LAST_USED_RESOLUTION:
        return False
    touch_api_key(key, now=now)
    key.last_used_at = now
    return True


def touch_api_key(key: ApiKey, *, now: datetime) -> bool:
    """Record use, at most once per LAST_USED_RESOLUTION (a conditional UPDATE, no read-modify)."""
    if key.last_used_at is not None and key.last_used_at > now - LAST_USED_RESOLUTION:
        return False
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
    updated = ApiKey.objects.filter(stale, pk=key.pk).update(last_used_at=now) == 1
    if updated:
        key.last_used_at = now
    return updated


# --- broker credentials --------------------------------------------------------------------

def require_owner(*, workspace: Workspace, user: User) -> Membership:
    """The owner's membership; PermissionDenied for anyone else (for checks made before work
    that only an owner may cause, such as calling a broker with keys to store)."""
    return _require_manager(workspace=workspace, user=user)


def store_broker_credential(
    *, workspace: Workspace, by: User, platform: str, label: str, secret: dict[str, Any],
    key_hint: str = "", options: dict[str, Any] | None = None,
    account_summary: dict[str, Any] | None = None, validated_at: datetime | None = None,
) -> BrokerCredential:
    """Encrypt and store broker credentials (owner only); the secret is bound to this row.
    `key_hint`, `options` and `account_summary` are stored in the clear: nothing secret.

    `platform` is an id the caller has checked against the platform registry, which this app
    cannot import, and the keys are checked against the broker there: store credentials through
    `runtimes.credentials.add_broker_credential`.
    """
    _require_manager(workspace=workspace, user=by)
    credential = BrokerCredential(
        workspace=workspace, platform=platform, label=label.strip(), key_hint=key_hint[-4:],
        options=options or {}, account_summary=account_summary or {},
        validated_at=validated_at)
    seal_credential(credential, secret)
    credential.save(force_insert=True)
    return credential
