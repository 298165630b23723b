"""One JSON error envelope for every API answer that is not 2xx: {code, message, details}.

The Trading API contract demands it (the tektii SDK reads `code` and `message`), and the
management API uses the same shape so clients handle one format.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from rest_framework import exceptions, status
from rest_framework.response import Response

_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "INVALID_REQUEST",
    exceptions.ValidationError: "VALIDATION_ERROR",
    exceptions.NotAuthenticated: "UNAUTHORIZED",
    exceptions.AuthenticationFailed: "UNAUTHORIZED",
    exceptions.PermissionDenied: "FORBIDDEN",
    exceptions.NotFound: "NOT_FOUND",
    exceptions.MethodNotAllowed: "METHOD_NOT_ALLOWED",
    exceptions.NotAcceptable: "NOT_ACCEPTABLE",
    exceptions.UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
    exceptions.Throttled: "RATE_LIMITED",
}


class ApiError(exceptions.APIException):
    """An API error with an explicit protocol code and details, raised by views and services."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status_code: int = 400,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.message = message
        self.details = details or {}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details if details is not None else {}}


def _code_for(exc: exceptions.APIException) -> str:
    for klass in type(exc).__mro__:
        if klass in _CODES:
            return _CODES[klass]
    return "INTERNAL_ERROR" if exc.status_code >= 500 else "INVALID_REQUEST"


def _message_for(exc: exceptions.APIException) -> str:
    if isinstance(exc, exceptions.ValidationError):
        return "The request has invalid fields; see details."
    detail = exc.detail
    return str(detail) if not isinstance(detail, (dict, list)) else str(exc.default_detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler rendering the envelope; unknown exceptions stay 500 (logged)."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None
    headers: dict[str, str] = {}
    if isinstance(exc, ApiError):
        body = error_body(exc.error_code, exc.message, exc.details)
    else:
        details: Any = exc.detail if isinstance(exc, exceptions.ValidationError) else {}
        if isinstance(exc, exceptions.AuthenticationFailed | exceptions.NotAuthenticated):
            # As the reference: a credential that was sent but not accepted (of no type of ours,
            # or ours but wrong) is INVALID_API_KEY; MISSING_API_KEY only when none was sent.
            presented = isinstance(
                exc, exceptions.AuthenticationFailed
            ) or _presents_credential(context.get("request"))
            details = {"code": "INVALID_API_KEY" if presented else "MISSING_API_KEY"}
        body = error_body(_code_for(exc), _message_for(exc), details)
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        wait = max(1, int(exc.wait))
        body["details"] = {"retry_after_seconds": wait}
        headers["Retry-After"] = str(wait)
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    return Response(body, status=exc.status_code, headers=headers)


def _presents_credential(request: Any) -> bool:
    """Whether the request sent a credential header (`Authorization` or `X-API-Key`)."""
    meta = getattr(request, "META", {})
    return bool(meta.get("HTTP_AUTHORIZATION", "").strip() or
                meta.get("HTTP_X_API_KEY", "").strip())


# Machine clients live under these prefixes; everything else is a page a person reads.
_API_PREFIXES = ("/api/", "/sessions/", "/share/")
# Error answers that come from Django rather than a DRF view, by status; others get the phrase.
_CODES_BY_STATUS = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    431: "HEADERS_TOO_LARGE",
}
_MESSAGES_BY_STATUS = {404: "No such resource.", 500: "Internal error."}
_HEADERS_KEPT = ("Allow", "Retry-After", "WWW-Authenticate")


class ApiErrorEnvelopeMiddleware:
    """Under /api/, /sessions/ and /share/, turn every error answer that is not JSON into the
    envelope.

    Outermost in both middleware chains, so it also sees what Django makes without a view:
    the DEBUG pages (the 404 that lists every URL, the 500 traceback), an error of another
    middleware, and DRF errors rendered by a non-JSON renderer (the schema view's YAML).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not request.path.startswith(_API_PREFIXES)
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        return _as_envelope(response)


def _as_envelope(response: HttpResponse) -> JsonResponse:
    data = getattr(response, "data", None)
    if isinstance(data, dict) and data.keys() == {"code", "message", "details"}:
        body = data  # the envelope already, only rendered as something else
    else:
        status_code = response.status_code
        code = _CODES_BY_STATUS.get(
            status_code, "INTERNAL_ERROR" if status_code >= 500 else "INVALID_REQUEST"
        )
        message = _MESSAGES_BY_STATUS.get(status_code, f"{_phrase(status_code)}.")
        body = error_body(code, message)
    envelope = JsonResponse(body, status=response.status_code)
    for header in _HEADERS_KEPT:
        if header in response:
            envelope[header] = response[header]
    return envelope


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


def _wants_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return request.path.startswith(_API_PREFIXES) or (
        "application/json" in accept and "text/html" not in accept
    )


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404: the JSON envelope for API clients, a page for people."""
    if _wants_json(request):
        return JsonResponse(
            error_body("NOT_FOUND", _MESSAGES_BY_STATUS[404]), status=status.HTTP_404_NOT_FOUND
        )
    return render(request, "404.html", status=status.HTTP_404_NOT_FOUND)


def server_error(request: HttpRequest) -> HttpResponse:
    """500: never a traceback; JSON for API clients, a plain page for people."""
    if _wants_json(request):
        return JsonResponse(error_body("INTERNAL_ERROR", _MESSAGES_BY_STATUS[500]), status=500)
    return HttpResponse(
        "<h1>Something went wrong on our side</h1><p>Please try again.</p>", status=500
    )
