"""The Trading API of a session over HTTP (`/sessions/{id}/v1/...`, trading-api.md section 3).

Each view authenticates (an API key of the session's workspace; a foreign key sees 404), checks
the key's scope and its creator's current role (transport/access.py), parses with `wire_parse`
so malformed input is answered here, and sends one command over the session bus to the host,
which owns the engine. A session no host runs (queued, or ended) answers reads at once from its
stored state (transport/stored_state.py). No CSRF (key-authenticated), no trailing slashes, JSON
errors. A hosted run's session token (transport/authentication.py) is good for its own session
only; a share link (transport/share_links.py) is a base URL `/share/<token>` that serves the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from rest_framework.exceptions import (
    APIException,
    MethodNotAllowed,
    NotAuthenticated,
    UnsupportedMediaType,
)
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_permissions import request_api_key
from accounts.authentication import ApiKeyAuthentication
from config.errors import ApiError, error_body
from config.parsers import JSONParser
from runtimes.core import wire
from runtimes.core.errors import TradingError
from runtimes.core.wire_parse import (
    parse_close_position_request,
    parse_modify_request,
    parse_order_request,
)
from runtimes.hosting.bus import BusUnavailable, Reply, get_bus
from runtimes.hosting.dispatch import queue_position, request_worker
from runtimes.models import TERMINAL_STATES, WORKER_STATES, State, TradingSession
from runtimes.transport.access import denial, find_session
from runtimes.transport.authentication import SessionTokenAuthentication, token_session
from runtimes.transport.routes import command_query
from runtimes.transport.share_links import INVALID_LINK_MESSAGE, authenticate_share_link
from runtimes.transport.stored_state import READABLE_OPS, FinalStateLost, stored_reply

SESSION_ID = "session_id"  # the URL names the session: /sessions/<id>/...
SHARE_TOKEN = "share_token"  # noqa: S105 (the URL carries the credential: /share/<token>/...)
COMMAND_TIMEOUT_S = 10.0
# A view waiting holds asgiref's one sync thread (every sync view shares it): a strategy's first
# action queues its session and waits this long for a free worker to claim it (a read answers at
# once from the configured state); an action on a queued session is answered at once (503 with
# its place in line and a Retry-After).
FIRST_CONTACT_WAIT_S = 1.0
CLAIM_POLL_S = 0.02
QUEUED_RETRY_AFTER_S = 1
# Parsing here answers a 400 without a trip to the host; the host parses the same JSON again.
VALIDATORS: dict[str, Callable[[object], object]] = {
    "submit_order": parse_order_request,
    "modify_order": parse_modify_request,
    "close_position": parse_close_position_request,
}


class TradingApiView(APIView):
    """Base: resolves `self.session` for the credential; core errors render as their envelope.

    Reached as `/sessions/<id>/...` with a key in the headers, or as `/share/<token>/...`
    (runtimes/transport/share_links.py), where the URL is the credential and headers are not
    read at all."""

    authentication_classes = [SessionTokenAuthentication, ApiKeyAuthentication]
    permission_classes: list[Any] = []
    # Rate limits of a session belong to its runtime (risk limits), not the management API's.
    throttle_classes: list[Any] = []
    parser_classes = [JSONParser]
    schema = None  # the Trading API is documented by trading-api.md, not the management schema
    ops: dict[str, str] = {}
    session: TradingSession

    def get_authenticators(self) -> list[Any]:
        if SHARE_TOKEN in getattr(self, "kwargs", {}):
            return []  # the link is the credential; a header must not make it fail
        return super().get_authenticators()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        session, credential = resolve_session(request, kwargs)
        # Scope AND the current role of the person the credential acts for.
        if (refused := denial(credential, session)) is not None:
            raise refused
        self.session = session

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, TradingError):
            return Response(exc.as_dict(), status=exc.status)
        if isinstance(exc, UnsupportedMediaType):
            # The reference: a body that is not JSON is a 400 INVALID_REQUEST, not a 415.
            exc = ApiError("INVALID_REQUEST", "Invalid JSON: the body must be application/json.")
        return super().handle_exception(exc)

    def operate(self, request: Request, path: dict[str, str]) -> Response:
        op = self.ops.get(request.method.lower())
        if op is None:
            raise MethodNotAllowed(request.method)
        body = request.data or None  # JSON only; no body arrives as an empty mapping
        if op in VALIDATORS:
            VALIDATORS[op](body)
        query = command_query(request.query_params.lists())
        state = self.session.state
        if state == State.CREATED:
            # Reads answer at once from the configured state; an action waits briefly for a
            # worker, so a strategy's first order is not refused for want of a second.
            state = first_contact(self.session, wait=op not in READABLE_OPS)
        if state not in WORKER_STATES:
            return self.without_host(op, path, query, state)
        # An action carries when its wait ends: a host that reads it later (the session moved
        # to another worker meanwhile) drops it rather than act after its caller got a 503.
        command = {"op": op, "path": path, "query": query, "body": body,
                   "expires_at": time.time() + COMMAND_TIMEOUT_S}
        try:
            reply = get_bus().request(str(self.session.id), command, timeout=COMMAND_TIMEOUT_S)
        except BusUnavailable:
            # Ended between the state read and the request? Then the final state answers.
            state = current_state(self.session)
            if state in TERMINAL_STATES:
                return self.without_host(op, path, query, state)
            raise ApiError("PROVIDER_UNAVAILABLE", "The session is not running.",
                           status_code=503) from None
        return Response(reply.body, status=reply.status, headers=retry_after_of(reply))

    def without_host(self, op: str, path: dict[str, str], query: dict[str, str],
                     state: str) -> Response:
        """A session no host runs (queued, or ended): reads from its stored state, never a wait;
        anything else is refused with why."""
        self.session.state = state
        ended = state in TERMINAL_STATES
        if op in READABLE_OPS:
            extra = ended_info(self.session) if ended else queue_info(self.session)
            try:
                return Response(stored_reply(self.session, op, path, query, extra_info=extra))
            except FinalStateLost:
                raise ApiError("SHUTTING_DOWN", f"The session has {state}; its final state was "
                               "not recorded.", status_code=503, details={"state": state}) from None
        if not ended:
            return queued_answer(self.session)
        raise ApiError("SHUTTING_DOWN", f"The session has {state}.",
                       status_code=503, details={"state": state})

    def get(self, request: Request, **kwargs: Any) -> Response:
        return self.operate(request, route_path(kwargs))

    def post(self, request: Request, **kwargs: Any) -> Response:
        return self.operate(request, route_path(kwargs))

    def patch(self, request: Request, **kwargs: Any) -> Response:
        return self.operate(request, route_path(kwargs))

    def delete(self, request: Request, **kwargs: Any) -> Response:
        return self.operate(request, route_path(kwargs))


def route_path(kwargs: dict[str, Any]) -> dict[str, str]:
    """The operation's path parameters: the route's, without what names the session."""
    return {k: v for k, v in kwargs.items() if k not in (SESSION_ID, SHARE_TOKEN)}


def resolve_session(request: Request, kwargs: dict[str, Any]) -> tuple[TradingSession, Any]:
    """The session the request addresses and the credential it acts with. 401 for a missing,
    bad, revoked or expired credential; 404 for a session the credential may not see."""
    if SHARE_TOKEN in kwargs:
        link = authenticate_share_link(kwargs[SHARE_TOKEN])
        if link is None:
            raise ApiError("UNAUTHORIZED", INVALID_LINK_MESSAGE, status_code=401,
                           details={"code": "INVALID_API_KEY"})
        return link.session, link
    # A hosted run's token reaches its own session only (else 404).
    session = token_session(request, kwargs[SESSION_ID])
    if session is None:
        key = request_api_key(request)
        if key is None:
            raise NotAuthenticated("An API key is required (Authorization: Bearer or X-API-Key).")
        session = find_session(key, kwargs[SESSION_ID])
        if session is None:
            raise ApiError("NOT_FOUND", "No such session.", status_code=404)
    return session, request.auth


class SessionHealth(TradingApiView):
    """`GET {base}/health`: answered from the session row, without the host. Open, as the
    reference leaves it: without a usable credential, the status and nothing else (the fields
    the SDK's model requires are there, empty)."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        try:
            super().initial(request, *args, **kwargs)
        except APIException:
            self.session = None  # type: ignore[assignment]

    def get(self, request: Request, **kwargs: Any) -> Response:
        if self.session is None:
            state = (TradingSession.objects.filter(pk=kwargs[SESSION_ID])
                     .values_list("state", flat=True).first() if SESSION_ID in kwargs else None)
            return Response({"status": "connected" if state in WORKER_STATES else "degraded",
                             "version": "", "git_sha": "", "providers": []})
        return Response(health_body(self.session.platform,
                                    up=self.session.state in WORKER_STATES))


def health_body(platform: str, *, up: bool) -> dict[str, Any]:
    """`GET {base}/health` for a credential that may see the session: the web tier's answer
    from the row, and a running host's over the local channel."""
    return {
        "status": "connected" if up else "degraded",
        "version": settings.VERSION,
        "git_sha": getattr(settings, "GIT_SHA", "unknown"),
        "providers": [{"platform": platform, "connected": up, "stale_instruments": []}],
    }


def retry_after_of(reply: Reply) -> dict[str, str] | None:
    """A Retry-After header for a 429 or 503 whose envelope says when to retry (a broker's
    rate limit, an open circuit breaker): the SDK waits that long before it retries."""
    if reply.status not in (429, 503) or not isinstance(reply.body, dict):
        return None
    wait = (reply.body.get("details") or {}).get("retry_after_seconds")
    return {"Retry-After": str(wait)} if isinstance(wait, int) else None


def current_state(session: TradingSession) -> str:
    return str(TradingSession.objects.filter(pk=session.pk).values_list("state", flat=True).get())


def first_contact(session: TradingSession, *, wait: bool) -> str:
    """The strategy's first request: queue the session for a worker (runtimes/dispatch.py) and,
    when `wait`, wait briefly for one to claim it. Returns the state then (queued when every
    slot is busy)."""
    request_worker(session=session, now=timezone.now())
    deadline = time.monotonic() + (FIRST_CONTACT_WAIT_S if wait else 0.0)
    while True:
        state = current_state(session)
        if state != State.QUEUED or time.monotonic() >= deadline:
            return state
        time.sleep(CLAIM_POLL_S)


def queue_info(session: TradingSession) -> dict[str, Any]:
    return {"queue_position": queue_position(TradingSession(pk=session.pk, state=State.QUEUED))}


def ended_info(session: TradingSession) -> dict[str, Any]:
    row = (TradingSession.objects.filter(pk=session.pk)
           .values("failure_reason", "finished_at").first()) or {}
    finished = row.get("finished_at")
    return {"failure_reason": row.get("failure_reason", ""),
            "finished_at": None if finished is None else wire.timestamp_str(finished)}


def queued_answer(session: TradingSession) -> Response:
    """What a queued session answers to anything that needs its host: 503 with its place in
    line and a Retry-After (nothing is run later; the SDK retries GETs after Retry-After)."""
    position = queue_info(session)["queue_position"]
    where = f" (number {position} in line)" if position else ""
    return Response(
        error_body("PROVIDER_UNAVAILABLE",
                   f"The session is queued for a worker{where}; retry in a moment.",
                   {"state": State.QUEUED, "queue_position": position,
                    "retry_after_seconds": QUEUED_RETRY_AFTER_S}),
        status=503, headers={"Retry-After": str(QUEUED_RETRY_AFTER_S)})


def operation(**ops: str) -> Callable[..., Any]:
    """A view for one path: HTTP method -> host command name."""
    return TradingApiView.as_view(ops=ops)


def unknown_route(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Every other path under `/sessions/`: the envelope, never Django's HTML page."""
    return JsonResponse(error_body("NOT_FOUND", "No such route."), status=404)
