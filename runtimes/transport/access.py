"""Whether a credential may use a session's Trading API now, and whether an open socket may stay.

One rule for REST requests, socket handshakes and open sockets: the credential (an API key of the
session's workspace, the session token of its hosted run, or a share link of the session) must
hold the scope the session's platform needs (runtimes/core/platforms.py) AND the person it acts
for (the key's creator, the run's starter, the link's maker) must have a role in the workspace
that allows that scope now (`accounts.models.ROLE_SCOPES`). Requests read the
role from the credential cache (accounts/auth_cache.py), so the check costs no query.

An open socket is guarded (`guard`): it re-checks from the database when accounts/access_events.py
says its key, its creator's membership, the user or the run's tokens changed, when its credential
expires, and every RECHECK_EVERY_S as a backstop. A refusal sends a `connection`/`DISCONNECTING`
frame whose `error` says why (the SDK yields it as a ConnectionEvent) and closes with
CLOSE_CREDENTIAL_INVALID (revoked, expired, creator gone: what REST answers 401) or
CLOSE_FORBIDDEN (the role no longer allows it: REST's 403); the SDK's reconnect is then refused
with 403, which it raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from channels.db import database_sync_to_async
from django.utils import timezone

from accounts import access_events, auth_cache
from accounts.api_permissions import key_scope_denial, scope_denial
from accounts.models import SCOPE_TRADE_LIVE, ApiKey, Membership
from accounts.services import authenticate_api_key
from config.errors import ApiError
from runtimes.core.platforms import PLATFORMS
from runtimes.core.wire import connection_frame, encode_frame
from runtimes.models import LIVE_STATES, SessionToken, ShareLink, TradingSession
from runtimes.transport import share_links
from runtimes.transport.authentication import authenticate_session_token, looks_like_session_token

logger = logging.getLogger(__name__)

FIND_SESSION_TTL_S = 2.0
RECHECK_EVERY_S = 60.0  # backstop for a change nobody published (a bulk update, a lost message)
RETRY_AFTER_ERROR_S = 1.0
EXPIRY_SLACK_S = 0.02  # re-check just after the expiry, when `expires_at > now` no longer holds
CLOSE_CREDENTIAL_INVALID = 4001
CLOSE_FORBIDDEN = 4003

Credential = ApiKey | SessionToken | ShareLink


def required_scope(session: TradingSession) -> str:
    """The scope trading on `session` needs: the registry's for its platform (paper platforms
    trade:paper, live ones trade:live); an unknown platform is taken as live."""
    spec = PLATFORMS.get(session.platform)
    return SCOPE_TRADE_LIVE if spec is None else spec.scope


def denial(credential: Credential, session: TradingSession) -> ApiError | None:
    """The 403 for a credential that may not trade on `session` now, or None."""
    scope = required_scope(session)
    if isinstance(credential, ShareLink):
        return share_links.share_denial(credential, scope)
    if isinstance(credential, SessionToken):
        return scope_denial(
            scope=scope, granted=True, role=credential.creator_role, acting_for="The run's starter"
        )
    return key_scope_denial(credential, scope)


def find_session(key: ApiKey, session_id: Any) -> TradingSession | None:
    """The session if `key` may use it: same workspace only (anything else looks absent).

    A found session is cached for FIND_SESSION_TTL_S under (workspace, session id) with the
    credential cache (accounts/auth_cache.py): every state transition, save or delete of a
    session invalidates it at once, so views reading `session.state` never see a stale one."""
    digest = f"{key.workspace_id}:{session_id}"
    session, epoch = auth_cache.lookup("session", digest)
    if session is not None:
        return session  # type: ignore[no-any-return]
    session = (
        TradingSession.objects.defer("output", "output_tail")
        .filter(pk=session_id, workspace_id=key.workspace_id)
        .first()
    )
    if session is not None:
        auth_cache.store("session", digest, session, epoch=epoch, ttl=FIND_SESSION_TTL_S)
    return session


# -- sockets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """What a socket was opened with: the credential to re-check (`recheck(grant)`), the
    subjects whose changes make it re-check, and when the credential expires."""

    session_id: str
    credential: Credential | None  # None for the dashboard (a login session)
    subjects: tuple[str, ...]
    expires_at: datetime | None
    epoch: str  # of the credential cache when it was checked: a later one may hide a change
    workspace_id: Any = None
    user_id: Any = None


@dataclass(frozen=True)
class Refusal:
    close_code: int
    reason: str


def socket_grant(raw: str | None, session_id: str) -> Grant | None:
    """For the strategy socket's handshake: a usable credential of this live session that may
    trade on it now, or None (the handshake is refused: 403)."""
    epoch = auth_cache.current_epoch()
    if raw is None:
        return None
    if looks_like_session_token(raw):
        token = authenticate_session_token(raw)
        if token is None or str(token.session_id) != str(session_id):
            return None
        session = token.session
        credential: Credential = token
        subjects = (
            access_events.session_tokens_subject(session.pk),
            access_events.member_subject(session.workspace_id, session.created_by_id),
            access_events.user_subject(session.created_by_id),
        )
    else:
        key = authenticate_api_key(raw)
        found = find_session(key, session_id) if key is not None else None
        if key is None or found is None:
            return None
        session, credential = found, key
        subjects = (
            access_events.key_subject(key.pk),
            access_events.member_subject(key.workspace_id, key.created_by_id),
            access_events.user_subject(key.created_by_id),
        )
    if session.state not in LIVE_STATES or denial(credential, session) is not None:
        return None
    return Grant(
        session_id=str(session_id),
        credential=credential,
        subjects=subjects,
        expires_at=credential.expires_at,
        epoch=epoch,
    )


def share_grant(raw_token: str) -> Grant | None:
    """For a socket opened at `/share/<token>/v1/ws`: a usable link of a live session whose
    creator (and key) may trade on it now, or None (the handshake is refused: 403)."""
    epoch = auth_cache.current_epoch()
    link = share_links.authenticate_share_link(raw_token)
    if link is None:
        return None
    session = link.session
    if session.state not in LIVE_STATES or denial(link, session) is not None:
        return None
    subjects = [share_links.share_link_subject(link.pk),
                access_events.member_subject(session.workspace_id, link.created_by_id),
                access_events.user_subject(link.created_by_id)]
    if link.api_key_id is not None:
        subjects.append(access_events.key_subject(link.api_key_id))
    expiries = [link.expires_at] + ([link.api_key.expires_at] if link.api_key is not None
                                    and link.api_key.expires_at is not None else [])
    return Grant(session_id=str(session.pk), credential=link, subjects=tuple(subjects),
                 expires_at=min(expiries), epoch=epoch)


def _recheck_share_link(link_id: Any, now: datetime) -> Refusal | None:
    link = (ShareLink.objects.select_related("session", "created_by", "api_key")
            .with_creator_role().filter(pk=link_id).first())
    if link is None:
        return Refusal(CLOSE_CREDENTIAL_INVALID, "This share link was revoked.")
    if (reason := share_links.unusable_reason(link, now)) is not None:
        return Refusal(CLOSE_CREDENTIAL_INVALID, reason)
    return _forbidden(link, link.session)


def recheck(grant: Grant, now: datetime | None = None) -> Refusal | None:
    """Whether the socket's credential may still trade on its session, from the database (not
    the cache: this runs because something changed). None when it may."""
    now = now or timezone.now()
    credential = grant.credential
    if isinstance(credential, ShareLink):
        return _recheck_share_link(credential.pk, now)
    if isinstance(credential, SessionToken):
        token = (
            SessionToken.objects.select_related("session", "session__created_by")
            .with_creator_role()
            .filter(pk=credential.pk)
            .first()
        )
        if token is None:
            return Refusal(CLOSE_CREDENTIAL_INVALID, "This session token was revoked.")
        return _unusable(
            token,
            now,
            token.session.created_by,
            noun="session token",
            acting_for="The run's starter",
        ) or _forbidden(token, token.session)
    assert isinstance(credential, ApiKey)
    key = (
        ApiKey.objects.select_related("created_by")
        .with_creator_role()
        .filter(pk=credential.pk)
        .first()
    )
    if key is None:
        return Refusal(CLOSE_CREDENTIAL_INVALID, "This API key was revoked.")
    session = TradingSession.objects.filter(pk=grant.session_id).only("platform").first()
    return _unusable(key, now, key.created_by, noun="API key", acting_for="The key's creator") or (
        _forbidden(key, session) if session is not None else None
    )


def _unusable(
    credential: Credential, now: datetime, creator: Any, *, noun: str, acting_for: str
) -> Refusal | None:
    # The person first: removing a member also revokes their keys, and their leaving is the
    # reason worth telling.
    if creator is None or not creator.is_active:
        return Refusal(CLOSE_CREDENTIAL_INVALID, f"{acting_for} was deactivated.")
    if credential.creator_role is None:
        return Refusal(
            CLOSE_CREDENTIAL_INVALID, f"{acting_for} is no longer a member of this workspace."
        )
    if credential.revoked_at is not None:
        return Refusal(CLOSE_CREDENTIAL_INVALID, f"This {noun} was revoked.")
    if not credential.is_usable(now):
        return Refusal(CLOSE_CREDENTIAL_INVALID, f"This {noun} has expired.")
    return None


def _forbidden(credential: Credential, session: TradingSession) -> Refusal | None:
    refused = denial(credential, session)
    return None if refused is None else Refusal(CLOSE_FORBIDDEN, refused.message)


def dashboard_grant(user: Any, session: TradingSession, *, epoch: str) -> Grant:
    """For the dashboard's live view of `session` by a logged-in member (checked after the
    credential cache's `epoch` was read): watch their membership and their user row."""
    return Grant(
        session_id=str(session.pk),
        credential=None,
        expires_at=None,
        epoch=epoch,
        subjects=(
            access_events.member_subject(session.workspace_id, user.pk),
            access_events.user_subject(user.pk),
        ),
        workspace_id=session.workspace_id,
        user_id=user.pk,
    )


def recheck_dashboard(grant: Grant) -> Refusal | None:
    """The live view may stay while its user is active and a member (any role may watch)."""
    if Membership.objects.filter(
        workspace_id=grant.workspace_id, user_id=grant.user_id, user__is_active=True
    ).exists():
        return None
    return Refusal(CLOSE_FORBIDDEN, "You are no longer a member of this workspace.")


def disconnect_notice(refusal: Refusal) -> str:
    """The frame sent before closing: the SDK yields it as a ConnectionEvent (DISCONNECTING)
    whose `error` is the reason (daphne does not send a close frame's reason)."""
    return encode_frame(
        connection_frame("DISCONNECTING", timestamp=timezone.now(), error=refusal.reason)
    )


async def guard(
    grant: Grant,
    check: Callable[[Grant], Refusal | None],
    on_refused: Callable[[Refusal], Awaitable[None]],
) -> None:
    """Run for an open socket: re-check with `check` whenever a watched subject changes, the
    credential expires, or RECHECK_EVERY_S passes; on the first refusal call `on_refused`."""
    changed = asyncio.Event()
    watch = access_events.watch(grant.subjects, changed.set)
    try:
        # A change between the handshake's check and the watch above was not heard: the
        # credential cache's epoch tells whether anything changed since.
        try:
            if await database_sync_to_async(auth_cache.current_epoch)() != grant.epoch:
                changed.set()
        except Exception:  # the cache is unreachable: check rather than assume
            changed.set()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), _next_check_in(grant))
            changed.clear()
            try:
                refusal = await database_sync_to_async(check)(grant)
            except Exception:  # a database hiccup must not leave the socket unguarded
                logger.exception("re-checking a socket's access failed; trying again soon")
                await asyncio.sleep(RETRY_AFTER_ERROR_S)
                changed.set()
                continue
            if refusal is not None:
                await on_refused(refusal)
                return
    finally:
        watch.cancel()


def _next_check_in(grant: Grant) -> float:
    if grant.expires_at is None:
        return RECHECK_EVERY_S
    until_expiry = (grant.expires_at - timezone.now()).total_seconds() + EXPIRY_SLACK_S
    return max(0.0, min(RECHECK_EVERY_S, until_expiry))
