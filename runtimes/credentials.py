"""Broker connections of a workspace: checked against the one platform registry and against the
broker itself before anything is stored, and deleted only once nothing runs on them.

accounts seals and stores them (accounts/crypto.py) but cannot import this app, so the
credential's platform is a plain id there; this is where an id is accepted: a platform of the
registry (runtimes/core/platforms.py) that connects to a broker whose family this build knows
(runtimes/hosting/brokers.py FAMILIES). Checking the keys calls the broker while a person waits
(the one broker call made in a request, on purpose: nothing wrong may be stored), with a short
timeout (settings BROKER_VALIDATION_TIMEOUT_SECONDS).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from accounts import services as accounts_services
from accounts.models import BrokerCredential, User, Workspace
from config.errors import ApiError
from runtimes.core.connection import ConnectionRejected
from runtimes.core.platforms import PLATFORMS, PlatformSpec
from runtimes.hosting import brokers
from runtimes.models import LIVE_STATES, Deployment, TradingSession

MAX_KEY_LENGTH: Final = 256


def broker_platforms() -> list[str]:
    """The ids of the platforms that need a broker credential, in registry order."""
    return [spec.id for spec in PLATFORMS.values() if spec.needs_connection]


def connectable_platforms() -> list[str]:
    """The broker platforms whose keys this build can check (and so store), in registry order."""
    return [p for p in broker_platforms() if brokers.family_of(p) is not None]


def add_broker_credential(
    *, workspace: Workspace, by: User, platform: str, label: str, key_id: str, secret: str,
    options: dict[str, Any] | None = None, now: datetime | None = None,
) -> BrokerCredential:
    """Check `key_id`/`secret` against the broker's account endpoint, then seal and store them
    as a connection of `workspace` on `platform` (owner only), with the key's last four
    characters, the options and what the broker said of the account.

    Raises PermissionDenied for anyone but an owner (before the broker is called);
    ValidationError naming the field for an unknown platform, one whose keys this build cannot
    check, a missing label or key, unknown options; ApiError VALIDATION_ERROR (400) with the
    broker's refusal as a sentence (wrong keys, an account that cannot trade, the broker
    unreachable). Nothing is stored unless everything passed."""
    accounts_services.require_owner(workspace=workspace, user=by)
    family = _checked_family(platform)
    key_id, secret, label = key_id.strip(), secret.strip(), label.strip()
    _require_fields(label=label, key_id=key_id, secret=secret)
    chosen = checked_options(family, options or {})
    connection = brokers.unsaved_connection(platform=platform, key_id=key_id, secret=secret,
                                            options=chosen)
    try:
        summary = brokers.validator_for(platform)(
            connection, timeout=float(settings.BROKER_VALIDATION_TIMEOUT_SECONDS))
    except ConnectionRejected as refusal:
        raise ApiError("VALIDATION_ERROR", str(refusal),
                       details={"keys": [str(refusal)]}) from None
    return accounts_services.store_broker_credential(
        workspace=workspace, by=by, platform=platform, label=label,
        secret={"key_id": key_id, "secret": secret}, key_hint=key_id[-4:], options=chosen,
        account_summary=summary, validated_at=now or timezone.now())


def _checked_family(platform: str) -> brokers.BrokerFamily:
    if platform not in broker_platforms():
        raise ValidationError({"platform": [f"Choose one of {', '.join(broker_platforms())}."]})
    family = brokers.family_of(platform)
    if family is None:
        raise ValidationError({"platform": [
            f"{PLATFORMS[platform].label} connections are not available in this build yet; "
            f"choose one of {', '.join(connectable_platforms())}."]})
    return family


def _require_fields(*, label: str, key_id: str, secret: str) -> None:
    problems: dict[str, list[str]] = {}
    if not label:
        problems["label"] = ["A label, e.g. 'Paper account'."]
    for name, value in (("key_id", key_id), ("secret", secret)):
        if not value or len(value) > MAX_KEY_LENGTH:
            problems[name] = [f"Required, at most {MAX_KEY_LENGTH} characters."]
    if problems:
        raise ValidationError(problems)


def checked_options(family: brokers.BrokerFamily, options: dict[str, Any]) -> dict[str, Any]:
    """`options` with every option of `family` (its default where absent); ValidationError
    {"options": [...]} for an unknown option or a value it does not allow."""
    unknown = sorted(set(options) - set(family.options))
    if unknown:
        raise ValidationError({"options": [f"Unknown option(s): {', '.join(unknown)}."]})
    chosen: dict[str, Any] = {}
    for name, (allowed, default, _label) in family.options.items():
        value = options.get(name, default)
        if value not in allowed:
            raise ValidationError({"options": [f"{name} must be one of {', '.join(allowed)}."]})
        chosen[name] = value
    return chosen


def users_of(credential: BrokerCredential) -> tuple[list[str], int]:
    """What runs on `credential` now: the names of its active deployments, and how many of its
    sessions are live (a deployment's included)."""
    names = list(Deployment.objects.for_workspace(credential.workspace).active()
                 .filter(connection=credential).order_by("name").values_list("name", flat=True))
    live = (TradingSession.objects.for_workspace(credential.workspace)
            .filter(connection=credential, state__in=LIVE_STATES).count())
    return names, live


def delete_broker_credential(*, credential: BrokerCredential, by: User) -> None:
    """Delete a connection (owner only) once nothing runs on it; stopped deployments and past
    sessions lose it (they keep their history). Raises PermissionDenied; ApiError
    CONNECTION_IN_USE (409) naming the active deployments (and counting live sessions)."""
    accounts_services.require_owner(workspace=credential.workspace, user=by)
    with transaction.atomic():
        # The row lock orders this against a deployment starting on it (runtimes/deployments.py
        # locks the same row before it copies the connection onto a new session).
        locked = BrokerCredential.objects.select_for_update().filter(pk=credential.pk).first()
        if locked is None:
            return
        names, live = users_of(locked)
        if names or live:
            raise _in_use(locked, names, live)
        locked.delete()


def _in_use(credential: BrokerCredential, names: list[str], live: int) -> ApiError:
    parts = []
    if names:
        parts.append("the active deployment" + ("s " if len(names) > 1 else " ")
                     + ", ".join(repr(n) for n in names))
    if live:
        parts.append(f"{live} live session{'s' if live > 1 else ''}")
    return ApiError("CONNECTION_IN_USE", f"The connection {credential.label!r} is in use by "
                    f"{' and '.join(parts)}: stop {'them' if live + len(names) > 1 else 'it'} "
                    "first.", status_code=409,
                    details={"deployments": names, "live_sessions": live})


def check_connection(*, spec: PlatformSpec, workspace: Workspace,
                     connection: BrokerCredential | None) -> None:
    """A broker platform needs a connection of `workspace` on that very platform; any other
    platform takes none. Raises ApiError NOT_FOUND (404) for another workspace's connection
    (as for any foreign id) and VALIDATION_ERROR (400) on `connection` otherwise."""
    if connection is not None and connection.workspace_id != workspace.pk:
        raise ApiError("NOT_FOUND", "No such connection.", status_code=404)
    if not spec.needs_connection:
        if connection is not None:
            raise _invalid_connection(f"{spec.label} needs no broker connection.")
        return
    if connection is None:
        raise _invalid_connection(f"{spec.label} trades through a broker connection: choose "
                       f"one of this workspace's {spec.label} connections.")
    if connection.platform != spec.id:
        other = PLATFORMS.get(connection.platform)
        raise _invalid_connection(f"The connection {connection.label!r} is for "
                       f"{other.label if other else connection.platform}, not {spec.label}.")


def _invalid_connection(message: str) -> ApiError:
    return ApiError("VALIDATION_ERROR", "The request has invalid fields; see details.",
                    details={"connection": [message]})


def connection_in(workspace: Workspace, connection_id: Any) -> BrokerCredential | None:
    """The connection `connection_id` of `workspace` (None for None). Raises ApiError
    NOT_FOUND (404) for an id this workspace has no connection of, another workspace's
    included."""
    if connection_id is None:
        return None
    found = BrokerCredential.objects.for_workspace(workspace).filter(pk=connection_id).first()
    if found is None:
        raise ApiError("NOT_FOUND", "No such connection.", status_code=404)
    return found
