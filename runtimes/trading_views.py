"""The Trading API of a session over HTTP (`/sessions/{id}/v1/...`, trading-api.md section 3).

Each view authenticates (an API key of the session's workspace; a foreign key sees 404), parses
with `wire_parse` so malformed input is answered here, and sends one command over the session bus
to the host, which owns the engine. No CSRF (key-authenticated), no trailing slashes, JSON errors.
A hosted run's session token (runtimes/authentication.py) is good for its own session only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from rest_framework.exceptions import MethodNotAllowed, NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import auth_cache
from accounts.api_permissions import request_api_key
from accounts.authentication import ApiKeyAuthentication
from accounts.models import SCOPE_TRADE_PAPER
from config.errors import ApiError, error_body
from config.parsers import JSONParser
from runtimes.authentication import SessionTokenAuthentication, token_session
from runtimes.bus import BusUnavailable, get_bus
from runtimes.core.errors import TradingError
from runtimes.core.wire_parse import (
    parse_close_position_request,
    parse_modify_request,
    parse_order_request,
)
from runtimes.models import LIVE_STATES, State, TradingSession

COMMAND_TIMEOUT_S = 10.0
FIND_SESSION_TTL_S = 2.0
# A view waiting on the bus holds asgiref's one sync thread (every sync view shares it), so a
# session no worker has picked up yet gets a short wait, then 503 (the SDK retries GETs).
NOT_STARTED_TIMEOUT_S = 2.0
# Parsing here answers a 400 without a trip to the host; the host parses the same JSON again.
VALIDATORS: dict[str, Callable[[object], object]] = {
    "submit_order": parse_order_request,
    "modify_order": parse_modify_request,
    "close_position": parse_close_position_request,
}
SCOPE_FOR_PLATFORM = {"backtest": SCOPE_TRADE_PAPER}


def find_session(key: Any, session_id: Any) -> TradingSession | None:
    """The session if `key` may use it: same workspace only (anything else looks absent).

    A found session is cached for FIND_SESSION_TTL_S under (workspace, session id) with the
    credential cache (accounts/auth_cache.py): every state transition, save or delete of a
    session invalidates it at once, so views reading `session.state` never see a stale one."""
    digest = f"{key.workspace_id}:{session_id}"
    session, epoch = auth_cache.lookup("session", digest)
    if session is not None:
        return session  # type: ignore[no-any-return]
    session = (TradingSession.objects.defer("output", "output_tail")
               .filter(pk=session_id, workspace_id=key.workspace_id).first())
    if session is not None:
        auth_cache.store("session", digest, session, epoch=epoch, ttl=FIND_SESSION_TTL_S)
    return session


def key_may_trade(key: Any, session: TradingSession) -> bool:
    return bool(key.has_scope(SCOPE_FOR_PLATFORM.get(session.platform, "trade:live")))


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
        if (hosted := token_session(request, kwargs["session_id"])) is not None:
            self.session = hosted  # a hosted run's token: its own session only (else 404)
            return
        key = request_api_key(request)
        if key is None:
            raise NotAuthenticated("An API key is required (Authorization: Bearer or X-API-Key).")
        session = find_session(key, kwargs["session_id"])
        if session is None:
            raise ApiError("NOT_FOUND", "No such session.", status_code=404)
        if not key_may_trade(key, session):
            raise ApiError("FORBIDDEN", "This API key may not trade on this session.",
                           status_code=403)
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
        if self.session.state not in LIVE_STATES:
            raise ApiError("SHUTTING_DOWN", f"The session has {self.session.state}.",
                           status_code=503, details={"state": self.session.state})
        query = {k: ",".join(v) if k == "status" else v[-1]
                 for k, v in request.query_params.lists()}
        command = {"op": op, "path": path, "query": query, "body": body}
        timeout = (NOT_STARTED_TIMEOUT_S if self.session.state == State.CREATED
                   else COMMAND_TIMEOUT_S)
        try:
            reply = get_bus().request(str(self.session.id), command, timeout=timeout)
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


def operation(**ops: str) -> Callable[..., Any]:
    """A view for one path: HTTP method -> host command name."""
    return TradingApiView.as_view(ops=ops)


def unknown_route(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Every other path under `/sessions/`: the envelope, never Django's HTML page."""
    return JsonResponse(error_body("NOT_FOUND", "No such route."), status=404)
