"""The Trading API's hot calls on daphne's event loop (embedded topology, in-process bus).

`/sessions/<id>/v1/<route>` with a credential whose grant was verified within GRANT_TTL_S is
parsed here, and its command posted to the session's host and awaited without a thread hop (the
Django path spends ~1 ms of an order handing it to a request thread and back, through the
middleware, DRF and authentication). The answer is the view's own: status, headers, JSON body.
Everything this layer is not certain to answer exactly as `TradingApiView` does (no grant yet or
an old one, a body it cannot parse or validate, an unusual header, a session no host serves here,
the Redis bus, a share link) goes to Django unchanged, the body it read replayed.

A grant is verified off the loop with the view's own rules (the credential as DRF picks it,
`authenticate_session_token`/`authenticate_api_key`, `find_session`, `denial`, a session a host
runs), after Django accepted that credential for that session. It is dropped at once when the
credential cache's epoch moved (accounts/auth_cache.py: a revoked key, a removed or demoted
creator, a session's transition), re-verified while in use from GRANT_REFRESH_S, and never used
past GRANT_TTL_S (a change nobody published is seen within a second) or the credential's expiry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from types import SimpleNamespace
from typing import Any, Final

from channels.db import database_sync_to_async
from django.conf import settings
from django.http import QueryDict
from django.http.request import split_domain_port, validate_host
from rest_framework.renderers import JSONRenderer

from accounts import auth_cache, keys
from accounts.authentication import presented_key
from accounts.services import authenticate_api_key
from config.errors import error_body
from runtimes.core.json_limits import nested_deeper_than
from runtimes.hosting.bus import BusUnavailable, InProcessBus, Reply, get_bus
from runtimes.models import TERMINAL_STATES, WORKER_STATES, TradingSession
from runtimes.transport.access import denial, find_session
from runtimes.transport.authentication import authenticate_session_token, presented_token
from runtimes.transport.routes import HEALTH, command_query, match_route
from runtimes.transport.views import COMMAND_TIMEOUT_S, VALIDATORS, retry_after_of

logger = logging.getLogger(__name__)
request_logger = logging.getLogger("django.request")  # where Django logs its 4xx and 5xx

GRANT_TTL_S: Final = 1.0  # a grant is never used longer after its check began
GRANT_REFRESH_S: Final = 0.5  # a grant in use is checked again from this age (in the background)
MAX_GRANTS: Final = 4096  # (credential, session) pairs kept; the oldest go first
MAX_VERIFYING: Final = 8  # checks in flight at once (each is a thread hop and a cache read)
MAX_FAST_BODY_BYTES: Final = 64 * 1024  # a larger body (no order is) goes to Django
MAX_IN_FLIGHT: Final = 256  # commands awaited here at once; beyond, requests go to Django
# Django's `<uuid:session_id>` converter, then the path relative to the session's base.
SESSION_PATH: Final = re.compile(
    r"/sessions/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/(v1/.+)\Z")
JSON_TYPES: Final = frozenset({"application/json", "application/json; charset=utf-8",
                               "application/json;charset=utf-8"})
ACCEPTED: Final = frozenset({None, "*/*", "application/json"})  # what DRF's negotiation passes
# Every Trading API view defines get, post, patch and delete (Django adds head, DRF options).
ALLOW: Final = b"GET, POST, PATCH, DELETE, HEAD, OPTIONS"
READ_HEADERS: Final = frozenset({b"authorization", b"x-api-key", b"accept", b"content-type",
                                 b"content-length", b"host"})

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class FastGrant:
    """A credential may trade on a session: checked from `checked_at` (monotonic) on, after the
    credential cache's `epoch` was read; good until the credential's own expiry (`expires_at`,
    epoch seconds) if it has one."""

    checked_at: float
    expires_at: float | None
    epoch: str


@dataclass(frozen=True, slots=True)
class Call:
    """A request this layer may answer, once its grant is usable and its body parses."""

    session_id: str
    op: str
    params: dict[str, str]
    grant_key: tuple[str, str]
    meta: dict[str, str]
    query_string: str
    content_type: str | None
    content_length: int | None


def check_grant(meta: dict[str, str], session_id: str, *,
                monotonic: Callable[[], float] = time.monotonic) -> FastGrant | None:
    """The view's checks (views.resolve_session, access.denial) for the credential these
    headers present, from the database or the credential cache: a grant if it may trade on
    `session_id` now and a host runs that session, else None (sync)."""
    checked_at, epoch = monotonic(), auth_cache.current_epoch()
    request = SimpleNamespace(META=meta)
    raw_token = presented_token(request)  # type: ignore[arg-type]
    if raw_token is not None:  # DRF tries the session token first
        token = authenticate_session_token(raw_token)
        if token is None or str(token.session_id) != session_id:
            return None
        credential: Any = token
        session: TradingSession | None = token.session
    else:
        raw_key = presented_key(request)  # type: ignore[arg-type]
        credential = None if raw_key is None else authenticate_api_key(raw_key)
        session = None if credential is None else find_session(credential, session_id)
    if session is None or session.state not in WORKER_STATES:
        return None
    if denial(credential, session) is not None:
        return None
    expires = credential.expires_at
    return FastGrant(checked_at, None if expires is None else expires.timestamp(), epoch)


class Grants:
    """Grants by (credential headers' keyed hash, session id): bounded, with the checks in
    flight, so one pair is checked at most once at a time and a flood of pairs is not."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic,
                 epoch: Callable[[], str] = auth_cache.current_epoch) -> None:
        # The epoch lives in this process's memory cache whenever the bus is in-process (no
        # REDIS_URL): reading it on the loop blocks on nothing.
        self.monotonic, self.epoch = monotonic, epoch
        self._grants: dict[tuple[str, str], FastGrant] = {}
        self._checking: set[tuple[str, str]] = set()

    def usable(self, key: tuple[str, str]) -> tuple[bool, bool]:
        """(may the request use the grant now, should it be checked again)."""
        grant = self._grants.get(key)
        if grant is None:
            return False, False
        age = self.monotonic() - grant.checked_at
        if (age >= GRANT_TTL_S or grant.epoch != self.epoch()
                or (grant.expires_at is not None and time.time() >= grant.expires_at)):
            del self._grants[key]
            return False, False
        return True, age >= GRANT_REFRESH_S

    async def check(self, key: tuple[str, str], meta: dict[str, str], session_id: str) -> None:
        """Check the pair off the loop (at most MAX_VERIFYING at once) and keep or drop it."""
        if key in self._checking or len(self._checking) >= MAX_VERIFYING:
            return
        self._checking.add(key)
        try:
            grant = await database_sync_to_async(check_grant)(
                meta, session_id, monotonic=self.monotonic)
        except Exception:  # the database or the cache failed: no grant, Django answers
            logger.exception("checking a Trading API grant failed")
            grant = None
        finally:
            self._checking.discard(key)
        if grant is None:
            self._grants.pop(key, None)
            return
        if key not in self._grants and len(self._grants) >= MAX_GRANTS:
            del self._grants[next(iter(self._grants))]
        self._grants[key] = grant


class TradingApiFastPath:
    """ASGI: the Trading API's calls it is certain of, here; the rest to `django`."""

    def __init__(self, django: App, *, grants: Grants | None = None) -> None:
        self.django = django
        self.grants = grants or Grants()
        self._tasks: set[asyncio.Task[None]] = set()
        self.in_flight = 0
        # Django's host check, and middleware settings that change an answer this layer renders
        # the same way regardless: with any of them on, everything goes to Django.
        self.allowed_hosts = settings.ALLOWED_HOSTS or (
            [".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
        self.enabled = not (settings.SECURE_SSL_REDIRECT or settings.USE_X_FORWARDED_HOST
                            or settings.PREPEND_WWW or settings.DISALLOWED_USER_AGENTS)
        self.static_headers = _static_headers()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = self._call(scope)
        if call is None:
            return await self.django(scope, receive, send)
        usable, stale = self.grants.usable(call.grant_key)
        if not usable:
            return await self._through_django(call, scope, receive, send)
        if stale:
            self._spawn(self.grants.check(call.grant_key, call.meta, call.session_id))
        bus = get_bus()
        if not isinstance(bus, InProcessBus) or self.in_flight >= MAX_IN_FLIGHT:
            return await self.django(scope, receive, send)
        read = await _read_body(receive)
        if read is None:
            return  # the client went away (Django answers nothing either)
        messages, body = read
        replay = _replaying(messages, receive)
        command = None if body is None else self._command(call, body)
        future = None if command is None else bus.submit(call.session_id, command)
        if future is None:
            return await self.django(scope, replay, send)
        self.in_flight += 1
        try:
            reply = await asyncio.wait_for(asyncio.wrap_future(future), COMMAND_TIMEOUT_S)
        except BusUnavailable:  # the host ended before it ran the command: as if never posted
            return await self.django(scope, replay, send)
        except TimeoutError:
            future.cancel()
            unanswered = await self._unanswered(call)
            if unanswered is None:
                return await self.django(scope, replay, send)
            reply = unanswered
        finally:
            self.in_flight -= 1
        await self._answer(send, reply)
        if reply.status >= 400:  # as Django's handler logs it (log_response)
            request_logger.log(logging.ERROR if reply.status >= 500 else logging.WARNING,
                               "%s: %s", HTTPStatus(reply.status).phrase, scope["path"],
                               extra={"status_code": reply.status})

    # -- what a request is ------------------------------------------------------------------------

    def _call(self, scope: Scope) -> Call | None:
        if (not self.enabled or scope["type"] != "http" or scope.get("root_path")
                or scope.get("scheme", "http") != "http"):
            return None
        found = SESSION_PATH.match(scope["path"])
        route = None if found is None else match_route(found.group(2))
        if found is None or route is None:
            return None
        op = route.ops.get(scope["method"].lower())
        headers = _headers(scope)
        if op is None or op == HEALTH or headers is None or headers.get(b"accept") not in ACCEPTED:
            return None
        if not self._host_allowed(headers.get(b"host")):
            return None
        authorization = headers.get(b"authorization", "")
        api_key = headers.get(b"x-api-key", "")
        if not authorization and not api_key:
            return None
        try:
            query_string = scope.get("query_string", b"").decode()
            length = headers.get(b"content-length")
            content_length = None if length is None else int(length)
        except ValueError:
            return None
        meta = {"HTTP_AUTHORIZATION": authorization, "HTTP_X_API_KEY": api_key}
        session_id = found.group(1)
        digest = keys.keyed_hash(f"{authorization}\n{api_key}")  # no plaintext kept
        return Call(session_id, op, route.params, (digest, session_id), meta, query_string,
                    headers.get(b"content-type"), content_length)

    def _host_allowed(self, host: str | None) -> bool:
        if host is None:
            return False
        domain, _ = split_domain_port(host)
        return bool(domain) and validate_host(domain, self.allowed_hosts)

    def _command(self, call: Call, body: bytes) -> dict[str, Any] | None:
        """The command the view would post, or None where the view would answer itself (a 400)
        or this layer is not sure how DRF would read the request."""
        try:
            data = _request_data(body, call.content_type, call.content_length)
            query = QueryDict(call.query_string)
            if call.op in VALIDATORS:
                VALIDATORS[call.op](data)
        except Exception:  # any refusal is the view's to answer, as it does
            return None
        return {"op": call.op, "path": dict(call.params),
                "query": command_query(query.lists()),
                "body": data, "expires_at": time.time() + COMMAND_TIMEOUT_S}

    # -- answers ----------------------------------------------------------------------------------

    async def _through_django(self, call: Call, scope: Scope, receive: Receive,
                              send: Send) -> None:
        """Django answers; if it accepted the credential for the session (neither 401, 403
        nor 404), the pair is checked for a grant for the next request."""
        status: list[int] = []

        async def watching(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self.django(scope, receive, watching)
        if status and status[0] not in (401, 403, 404) and isinstance(get_bus(), InProcessBus):
            self._spawn(self.grants.check(call.grant_key, call.meta, call.session_id))

    async def _unanswered(self, call: Call) -> Reply | None:
        """No reply within COMMAND_TIMEOUT_S: the view's answer (503), or None when the session
        has ended meanwhile (Django answers from its stored state, posting nothing)."""
        state = await database_sync_to_async(_state_of)(call.session_id)
        if state in TERMINAL_STATES:
            return None
        return Reply(503, error_body("PROVIDER_UNAVAILABLE", "The session is not running."))

    async def _answer(self, send: Send, reply: Reply) -> None:
        content = JSONRenderer().render(reply.body)
        headers = [(b"Content-Type", b"application/json")] if content else []
        retry_after = retry_after_of(reply)
        if retry_after is not None:
            headers.append((b"Retry-After", retry_after["Retry-After"].encode()))
        headers += [(b"Allow", ALLOW), self.static_headers[0],
                    (b"Content-Length", str(len(content)).encode()), *self.static_headers[1:]]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)


def _static_headers() -> list[tuple[bytes, bytes]]:
    """The headers the Trading API's middleware adds to a plain-HTTP JSON answer, in their
    order: X-Frame-Options (clickjacking), then SecurityMiddleware's (after Content-Length)."""
    headers = [(b"X-Frame-Options", settings.X_FRAME_OPTIONS.upper().encode())]
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append((b"X-Content-Type-Options", b"nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        text = policy if isinstance(policy, str) else ",".join(policy)
        headers.append((b"Referrer-Policy", text.encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append((b"Cross-Origin-Opener-Policy",
                        settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode()))
    return headers


def _headers(scope: Scope) -> dict[bytes, str] | None:
    """The headers this layer reads (latin-1, as Django decodes them); None when one of them
    is repeated (Django would join them: not a case worth a fast answer)."""
    found: dict[bytes, str] = {}
    for name, value in scope.get("headers", ()):
        name = name.lower()
        if name in READ_HEADERS:
            if name in found:
                return None
            found[name] = value.decode("latin1")
    return found


def _request_data(body: bytes, content_type: str | None, content_length: int | None) -> Any:
    """`request.data or None` as DRF's JSONParser (config/parsers.py) reads it; raises
    ValueError where this layer is not certain (the view then answers)."""
    if not body:
        return None
    if content_length != len(body) or content_type not in JSON_TYPES:
        raise ValueError("DRF reads this body otherwise, or refuses it")
    data = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    if nested_deeper_than(data):
        raise ValueError("too deep")
    return data or None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # DRF's strict parsing refuses NaN and Infinity


async def _read_body(receive: Receive) -> tuple[list[dict[str, Any]], bytes | None] | None:
    """The request's body messages and the body, or None for a disconnect. A body past
    MAX_FAST_BODY_BYTES stops the reading (the body is then None; Django reads the rest)."""
    messages: list[dict[str, Any]] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        messages.append(message)
        size += len(message.get("body", b""))
        if size > MAX_FAST_BODY_BYTES:
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages)


def _replaying(messages: list[dict[str, Any]], receive: Receive) -> Receive:
    """`receive` that hands out what was read already, then the rest."""
    pending = list(messages)

    async def replay() -> dict[str, Any]:
        return pending.pop(0) if pending else await receive()

    return replay


def _state_of(session_id: str) -> str | None:
    state = TradingSession.objects.filter(pk=session_id).values_list("state", flat=True).first()
    return None if state is None else str(state)
