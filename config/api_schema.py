"""The management API's OpenAPI schema: the error envelope as a component, and the errors every
operation can answer documented on each (a drf-spectacular postprocessing hook).

Views document their successes and the errors peculiar to them; the errors that follow from the
platform's plumbing (authentication, roles, routing, parsing, limits, throttling) are the same
everywhere, so they are added here rather than repeated on every view.
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

ERROR_COMPONENT = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The error envelope of every answer that is not 2xx (config/errors.py).",
    "properties": {
        "code": {"type": "string", "description": "Machine-readable, e.g. NOT_FOUND."},
        "message": {"type": "string", "description": "For people."},
        "details": {"type": "object", "additionalProperties": {}},
    },
    "required": ["code", "message", "details"],
}
OBJECT_LIST: dict[str, Any] = {
    "type": "array",
    "items": {"type": "object", "additionalProperties": {}},
}

# Why each status can answer any operation, and which operations it applies to.
_ANY = "any"
_WITH_BODY = "with a request body"
_WITH_PATH_IDS = "with ids in the path"
_WITH_INPUT = "with a request body or query parameters"
COMMON_ERRORS: dict[int, tuple[str, str]] = {
    400: (_WITH_INPUT, "Malformed or invalid input (VALIDATION_ERROR names the fields)."),
    401: (_ANY, "No valid API key or login (UNAUTHORIZED)."),
    403: (_ANY, "The key's scope or the member's role does not allow this (FORBIDDEN)."),
    404: (_WITH_PATH_IDS, "No such object in this workspace, or no such workspace (NOT_FOUND)."),
    405: (_ANY, "The method is not allowed here (METHOD_NOT_ALLOWED)."),
    406: (_ANY, "The Accept header asks for a type the API does not answer (NOT_ACCEPTABLE)."),
    413: (_WITH_BODY, "The request body is too large (PAYLOAD_TOO_LARGE)."),
    415: (_WITH_BODY, "The body's Content-Type is not one the operation reads."),
    429: (_ANY, "The key's rate limit is exceeded (RATE_LIMITED, Retry-After)."),
    431: (_ANY, "The request's headers are too large."),
}
_BODY_METHODS = {"post", "put", "patch"}


class ErrorSerializer(serializers.Serializer):
    """The envelope, for views documenting an error peculiar to them (e.g. 409, 503)."""

    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


def error_response(description: str) -> OpenApiResponse:
    """`extend_schema(responses={409: error_response("...")})` on a view."""
    return OpenApiResponse(response=ErrorSerializer, description=description)


def add_common_error_responses(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """POSTPROCESSING_HOOKS entry: the envelope component, and COMMON_ERRORS on each operation
    they apply to (a view's own description of a status is kept)."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status, (scope, description) in COMMON_ERRORS.items():
                if _applies(scope, path, method, operation):
                    responses.setdefault(str(status), _envelope(description))
    return result


def _applies(scope: str, path: str, method: str, operation: dict[str, Any]) -> bool:
    has_body = method in _BODY_METHODS
    if scope == _WITH_BODY:
        return has_body
    if scope == _WITH_PATH_IDS:
        return re.search(r"{\w+}", path) is not None
    if scope == _WITH_INPUT:
        query = any(p.get("in") == "query" for p in operation.get("parameters", []))
        return has_body or query
    return True


def _envelope(description: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}
