"""Content-Security-Policy of the web tier: one strict policy for every response, and a way for a
view to answer with its own (the Redoc page needs inline styles and a blob: worker).

Django 5.2 has no CSP support (6.0 adds it). The policies themselves are settings:
CONTENT_SECURITY_POLICY and API_DOCS_CONTENT_SECURITY_POLICY.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

HEADER = "Content-Security-Policy"


def content_security_policy_middleware(
    get_response: Callable[[HttpRequest], HttpResponseBase],
) -> Callable[[HttpRequest], HttpResponseBase]:
    """Adds settings.CONTENT_SECURITY_POLICY unless the view set a policy of its own."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        response = get_response(request)
        if HEADER not in response:
            response[HEADER] = settings.CONTENT_SECURITY_POLICY
        return response

    return middleware


def with_policy(policy: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A view decorator: answer with `policy` instead of the site's default one."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            response = view(request, *args, **kwargs)
            response[HEADER] = policy
            return response

        return wrapper

    return decorate
