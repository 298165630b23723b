"""Share links: a session URL that carries its own credential (`{origin}/share/psl_<12>_<40>`).

For clients that cannot send headers (a browser's WebSocket, an alerting service that can only
call a URL, a quick script): `{origin}/share/<token>` is a base URL, so the unmodified SDK keeps
the prefix and reaches `/share/<token>/v1/...` and `/share/<token>/v1/ws`, served exactly as
`/sessions/<id>/...`. Opt-in per session, never for a live platform; a link expires (default
24 h, at most SHARE_LINK_MAX_LIFETIME), can be revoked, and acts with the access of whoever made
it: the API key (which must stay usable and keep its scope) or the member who made it from a
login, their role re-checked on every use. Only the keyed hash of the token is stored, and
config/logging.py redacts the `psl_` type from every log line, the access log included.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from accounts import access_events, keys
from accounts.api_permissions import scope_denial
from accounts.models import ApiKey, User
from config.errors import ApiError
from runtimes.core.platforms import PLATFORMS
from runtimes.models import ShareLink, TradingSession

TOKEN_TYPE = "psl"  # noqa: S105 (a type tag, not a secret)
_TOKEN_RE = re.compile(
    rf"^{TOKEN_TYPE}_([0-9A-Za-z]{{{keys.PREFIX_LENGTH}}})_([0-9A-Za-z]{{{keys.SECRET_LENGTH}}})$"
)
SHARE_LINK_DEFAULT_LIFETIME = timedelta(hours=24)
SHARE_LINK_MIN_LIFETIME = timedelta(minutes=1)
SHARE_LINK_MAX_LIFETIME = timedelta(days=7)
INVALID_LINK_MESSAGE = "Invalid, revoked or expired share link."


def share_link_subject(link_id: Any) -> str:
    """The access_events subject a socket opened with this link watches (revocation)."""
    return f"share-link:{link_id}"


def shareable_refusal(session: TradingSession) -> str | None:
    """Why `session` may not have a share link (a live or unknown platform), or None."""
    spec = PLATFORMS.get(session.platform)
    if spec is None:
        return f"The platform {session.platform!r} is unknown; it cannot be shared."
    if spec.live:
        return (f"{spec.label} trades real money: its sessions cannot have a share link; "
                f"use an API key.")
    return None


def create_share_link(*, session: TradingSession, created_by: User, api_key: ApiKey | None,
                      lifetime: timedelta = SHARE_LINK_DEFAULT_LIFETIME, label: str = "",
                      now: datetime | None = None) -> tuple[ShareLink, str]:
    """A new link to `session` acting as `api_key` (or as `created_by` when made from a login);
    returns it and the plaintext token, shown once. Raises ApiError 400 SHARE_NOT_ALLOWED for a
    live platform, VALIDATION_ERROR for a lifetime out of bounds."""
    if (refusal := shareable_refusal(session)) is not None:
        raise ApiError("SHARE_NOT_ALLOWED", refusal, status_code=400,
                       details={"platform": session.platform})
    if not SHARE_LINK_MIN_LIFETIME <= lifetime <= SHARE_LINK_MAX_LIFETIME:
        raise ApiError("VALIDATION_ERROR", "expires_in_s must be between "
                       f"{int(SHARE_LINK_MIN_LIFETIME.total_seconds())} and "
                       f"{int(SHARE_LINK_MAX_LIFETIME.total_seconds())} seconds.",
                       details={"field": "expires_in_s"})
    now = now or timezone.now()
    prefix = keys.random_base62(keys.PREFIX_LENGTH)
    raw = f"{TOKEN_TYPE}_{prefix}_{keys.random_base62(keys.SECRET_LENGTH)}"
    link = ShareLink.objects.create(
        session=session, created_by=created_by, api_key=api_key, label=label, prefix=prefix,
        hashed_secret=keys.keyed_hash(raw), created_at=now, expires_at=now + lifetime)
    return link, raw


def revoke_share_link(*, link: ShareLink, now: datetime | None = None) -> bool:
    """Revoke `link` (its open sockets close within a second); False if it already was."""
    revoked = ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(
        revoked_at=now or timezone.now()) == 1
    if revoked:
        link.refresh_from_db(fields=["revoked_at"])
        access_events.publish(share_link_subject(link.pk))
    return revoked


def looks_like_share_token(raw: str) -> bool:
    return raw.startswith(f"{TOKEN_TYPE}_")


def authenticate_share_link(raw: str, *, now: datetime | None = None) -> ShareLink | None:
    """The usable link matching `raw` (its session, creator and key loaded, the creator's role
    now as `creator_role`), or None: malformed, unknown, wrong secret, revoked, expired, its key
    revoked or expired, its creator deactivated or no longer a member. Read from the database
    each time (no cache), so a revocation holds from the next request."""
    match = _TOKEN_RE.match(raw)
    if match is None:
        return None
    link = (ShareLink.objects.select_related("session", "created_by", "api_key")
            .with_creator_role().filter(prefix=match.group(1)).first())
    if link is None or not keys.hashes_match(link.hashed_secret, keys.keyed_hash(raw)):
        return None
    return link if unusable_reason(link, now or timezone.now()) is None else None


def unusable_reason(link: ShareLink, now: datetime) -> str | None:
    """Why `link` may not be used at all now (REST answers 401), or None."""
    creator = link.created_by
    if not creator.is_active or link.creator_role is None:
        return "The link's creator is no longer a member of this workspace."
    if link.revoked_at is not None:
        return "This share link was revoked."
    if not link.is_usable(now):
        return "This share link has expired."
    if link.api_key is not None and not link.api_key.is_usable(now):
        return "The API key this share link was made with was revoked or has expired."
    return None


def share_denial(link: ShareLink, scope: str) -> ApiError | None:
    """The 403 for a link whose key or creator may not use `scope` now, or None."""
    granted = link.api_key is None or link.api_key.has_scope(scope)
    acting_for = "The key's creator" if link.api_key is not None else "The link's creator"
    return scope_denial(scope=scope, granted=granted, role=link.creator_role,
                        acting_for=acting_for)


def share_link_json(link: ShareLink, *, origin: str, raw: str | None = None) -> dict[str, Any]:
    """The management API's view of a link; `url` only when just made (`raw`): never again."""
    def stamp(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat().replace("+00:00", "Z")

    body: dict[str, Any] = {
        "id": link.pk, "session": str(link.session_id), "label": link.label,
        "prefix": f"{TOKEN_TYPE}_{link.prefix}", "created_at": stamp(link.created_at),
        "expires_at": stamp(link.expires_at), "revoked_at": stamp(link.revoked_at),
        "made_with": "api_key" if link.api_key_id is not None else "login",
    }
    if raw is not None:
        body["url"] = f"{origin}/share/{raw}"
    return body
