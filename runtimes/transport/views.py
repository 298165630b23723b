"""The Trading API of a session over HTTP (`/sessions/{id}/v1/...`, trading-api.md section 3).

Each view authenticates (an API key of the session's workspace; a foreign key sees 404), checks
the key's scope and its creator's current role (runtimes/access.py), parses
with `wire_parse` so malformed input is answered here, and sends one command over the session bus
to the host, which owns the engine. No CSRF (key-authenticated), no trailing slashes, JSON errors.
A hosted run's session token (runtimes/authentication.py) is good for its own session only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from rest_framework.exceptions import MethodNotAllowed, NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_permissions import request_api_key
from accounts.authentication import ApiKeyAuthentication
from config.errors import ApiError, error_body
from config.parsers import JSONParser
from runtimes.core.errors import TradingError
from runtimes.core.wire_parse import (
    parse_close_position_request,
    parse_modify_request,
    parse_order_request,
)
from runtimes.hosting.bus import BusUnavailable, get_bus
from runtimes.hosting.dispatch import queue_position, request_worker
from runtimes.models import LIVE_STATES, State, TradingSession
from runtimes.transport.access import denial, find_session
from runtimes.transport.authentication import SessionTokenAuthentication, token_session

COMMAND_TIMEOUT_S = 10.0
# A view waiting holds asgiref's one sync thread (every sync view shares it): a strategy's first
# request queues its session and waits this long for a free worker to claim it; a queued session
# is answered at once (503 with its place in line; the SDK retries GETs after Retry-After).
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
    """Base: resolves `self.session` for the key; core errors render as their envelope."""

    authentication_classes = [SessionTokenAuthentication, ApiKeyAuthentication]
    permission_classes: list[Any] = []
    # Rate limits of a session belong to its runtime (risk limits), not the management API's.
    throttle_classes: list[Any] = []
    parser_classes = [JSONParser]
    schema = None  # the Trading API is documented by trading-api.md, not the management schema
    ops: dict[str, str] = {}
    session: TradingSession

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # A hosted run's token reaches its own session only (else 404).
        session = token_session(request, kwargs["session_id"])
        if session is None:
            key = request_api_key(request)
            if key is None:
                raise NotAuthenticated(
                    "An API key is required (Authorization: Bearer or X-API-Key).")
            session = find_session(key, kwargs["session_id"])
            if session is None:
                raise ApiError("NOT_FOUND", "No such session.", status_code=404)
        # Scope AND the current role of the person the credential acts for (from the cache).
        if (refused := denial(request.auth, session)) is not None:
            raise refused
        self.session = session

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, TradingError):
            return Response(exc.as_dict(), status=exc.status)
        return super().handle_exception(exc)

    def operate(self, request: Request, path: dict[str, str]) -> Response:
        op = self.ops.get(request.method.lower())
        if op is None:
            raise MethodNotAllowed(request.method)
        body = request.data or None  # JSON only; no body arrives as an empty mapping
        if op in VALIDATORS:
            VALIDATORS[op](body)
        state = self.session.state
        if state == State.CREATED:
            state = first_contact(self.session)
        if state == State.QUEUED:
            return queued_answer(self.session, op)
        if state not in LIVE_STATES:
            raise ApiError("SHUTTING_DOWN", f"The session has {state}.",
                           status_code=503, details={"state": state})
        query = {k: ",".join(v) if k == "status" else v[-1]
                 for k, v in request.query_params.lists()}
        command = {"op": op, "path": path, "query": query, "body": body}
        try:
            reply = get_bus().request(str(self.session.id), command, timeout=COMMAND_TIMEOUT_S)
        except BusUnavailable:
            raise ApiError("PROVIDER_UNAVAILABLE", "The session is not running.",
                           status_code=503) from None
        return Response(reply.body, status=reply.status)

    def get(self, request: Request, session_id: Any, **path: str) -> Response:
        return self.operate(request, path)

    def post(self, request: Request, session_id: Any, **path: str) -> Response:
        return self.operate(request, path)

    def patch(self, request: Request, session_id: Any, **path: str) -> Response:
        return self.operate(request, path)

    def delete(self, request: Request, session_id: Any, **path: str) -> Response:
        return self.operate(request, path)


class SessionHealth(TradingApiView):
    """`GET {base}/health`: answered from the session row, without the host."""

    def get(self, request: Request, session_id: Any, **path: str) -> Response:
        up = self.session.state in (State.WAITING, State.RUNNING)
        return Response({
            "status": "connected" if up else "degraded",
            "version": settings.VERSION,
            "git_sha": getattr(settings, "GIT_SHA", "unknown"),
            "providers": [{"platform": self.session.platform, "connected": up,
                           "stale_instruments": []}],
        })


def first_contact(session: TradingSession) -> str:
    """The strategy's first request: queue the session for a worker (runtimes/dispatch.py) and
    wait briefly for one to claim it. Returns the state then (queued when every slot is busy)."""
    request_worker(session=session, now=timezone.now())
    deadline = time.monotonic() + FIRST_CONTACT_WAIT_S
    while True:
        state = TradingSession.objects.filter(pk=session.pk).values_list("state", flat=True).get()
        if state != State.QUEUED or time.monotonic() > deadline:
            return str(state)
        time.sleep(CLAIM_POLL_S)


def queued_answer(session: TradingSession, op: str) -> Response:
    """A queued session's answer, never a silent wait: `/v1/session` shows its place in line;
    anything else is 503 with that place and a Retry-After (nothing is run later)."""
    position = queue_position(TradingSession(pk=session.pk, state=State.QUEUED))
    if op == "session":
        return Response({"id": str(session.pk), "platform": session.platform,
                         "state": State.QUEUED, "queue_position": position,
                         "symbols": list(session.symbols), "timeframe": session.timeframe})
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
