"""`api_path`: a management API route that answers with or without its trailing slash.

The rule for the whole management API (README, "Management API"): a client may write any path
with or without the final `/`; both forms reach the same view with every method, so a POST never
meets Django's APPEND_SLASH redirect. `reverse()` and the schema keep the documented form.
"""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern
from django.urls.resolvers import RoutePattern


class EitherSlashRoutePattern(RoutePattern):
    """A `path()` route that also matches the request path with its last slash toggled."""

    def match(self, path: str) -> tuple[str, tuple[()], dict[str, Any]] | None:
        other = path.removesuffix("/") if path.endswith("/") else path + "/"
        return super().match(path) or super().match(other)


def api_path(route: str, view: Any, name: str | None = None) -> URLPattern:
    """`django.urls.path(route, view, name=name)`, reachable with or without the final slash."""
    return URLPattern(EitherSlashRoutePattern(route, name=name, is_endpoint=True), view, name=name)
