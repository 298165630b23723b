"""OpenAPI description of API-key authentication for drf-spectacular (loaded in apps.ready)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = ["ApiKeyBearer", "ApiKeyHeader"]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {"type": "http", "scheme": "bearer", "bearerFormat": "prt_<prefix>_<secret>",
             "description": "A workspace API key in `Authorization: Bearer <key>`."},
            {"type": "apiKey", "in": "header", "name": "X-API-Key",
             "description": "The same API key in an `X-API-Key` header."},
        ]
