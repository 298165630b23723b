"""Session tokens: the credential the platform mints for one hosted run (`pst_<12>_<40>`).

A token authenticates as the session's creator and is good for its own session's Trading API only
(REST and WebSocket); any other session looks absent (404), the management API refuses it (401).
Minted when the sandboxed process starts, revoked when the run ends.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts import access_events, auth_cache, keys
from accounts.models import User
from config.errors import ApiError
from runtimes.models import SessionToken, TradingSession

TOKEN_TYPE = "pst"  # noqa: S105 (a type tag, not a secret)
_TOKEN_RE = re.compile(
    rf"^{TOKEN_TYPE}_([0-9A-Za-z]{{{keys.PREFIX_LENGTH}}})_([0-9A-Za-z]{{{keys.SECRET_LENGTH}}})$"
)
INVALID_TOKEN_MESSAGE = "Invalid, revoked or expired session token."  # noqa: S105


def looks_like_session_token(raw: str) -> bool:
    return raw.startswith(f"{TOKEN_TYPE}_")


def mint_session_token(*, session: TradingSession, lifetime: timedelta,
                       now: datetime | None = None) -> str:
    """A new token for `session`, valid for `lifetime` unless revoked first; returns the
    plaintext (shown to nobody but the sandboxed process)."""
    now = now or timezone.now()
    prefix = keys.random_base62(keys.PREFIX_LENGTH)
    raw = f"{TOKEN_TYPE}_{prefix}_{keys.random_base62(keys.SECRET_LENGTH)}"
    SessionToken.objects.create(session=session, prefix=prefix, hashed_secret=keys.keyed_hash(raw),
                                created_at=now, expires_at=now + lifetime)
    return raw


def revoke_session_tokens(*, session: TradingSession, now: datetime | None = None) -> int:
    """Revoke every live token of `session` (when its run ends); returns how many. Sockets
    opened with one close within a second (runtimes/access.py)."""
    revoked = SessionToken.objects.filter(session=session, revoked_at__isnull=True).update(
        revoked_at=now or timezone.now())
    auth_cache.invalidate_all()  # takes effect at once, also for a cached success
    access_events.publish(access_events.session_tokens_subject(session.pk))
    return revoked


def authenticate_session_token(raw: str, *, now: datetime | None = None) -> SessionToken | None:
    """The usable token matching `raw` (with its session, the session's creator and that
    creator's current role as `creator_role`), or None: malformed, unknown, wrong secret,
    revoked, expired, or a creator no longer active or no longer a member of the workspace.

    A success is cached for a few seconds under the token's HMAC (accounts/auth_cache.py); a
    revocation or a state transition of the session (`TradingSession.transition`) invalidates
    the cache at once, so views reading `token.session.state` see the change."""
    match = _TOKEN_RE.match(raw.strip())
    if match is None:
        return None
    now = now or timezone.now()
    digest = keys.keyed_hash(raw.strip())
    token, epoch = auth_cache.lookup("session-token", digest)
    if token is not None:
        return token if token.is_usable(now) else None  # type: ignore[no-any-return]
    token = (SessionToken.objects.select_related("session", "session__created_by")
             .with_creator_role().filter(prefix=match.group(1)).first())
    if token is None or not keys.hashes_match(token.hashed_secret, digest):
        return None
    creator = token.session.created_by
    if (not token.is_usable(now) or creator is None or not creator.is_active
            or token.creator_role is None):
        return None
    auth_cache.store("session-token", digest, token, epoch=epoch)
    return token


def presented_token(request: Request) -> str | None:
    """The session token a request carries (`Authorization: Bearer pst_…` or `X-API-Key`)."""
    raw = keys.credential_in(request.META.get("HTTP_AUTHORIZATION", ""),
                             request.META.get("HTTP_X_API_KEY", ""),
                             accepts=looks_like_session_token)
    return raw if raw is not None and looks_like_session_token(raw) else None


class SessionTokenAuthentication(authentication.BaseAuthentication):
    """DRF: `request.user` is the session's creator, `request.auth` the SessionToken. Requests
    without a session token are left to the next class; a bad one is 401."""

    def authenticate(self, request: Request) -> tuple[User, SessionToken] | None:
        raw = presented_token(request)
        if raw is None:
            return None
        token = authenticate_session_token(raw)
        if token is None:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN_MESSAGE)
        assert token.session.created_by is not None
        return token.session.created_by, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


# -- the hook of the Trading API (trading_views.py; sockets: access.py) --------------------------


def token_session(request: Request, session_id: Any) -> TradingSession | None:
    """For a request authenticated by a session token: its session if that is `session_id`,
    else ApiError NOT_FOUND (another session looks absent). None for any other credential."""
    token = request.auth
    if not isinstance(token, SessionToken):
        return None
    if str(token.session_id) != str(session_id):
        raise ApiError("NOT_FOUND", "No such session.", status_code=404)
    return token.session
