"""DRF authentication by workspace API key: `Authorization: Bearer prt_…` first, then `X-API-Key`.

On success `request.user` is the key's creator and `request.auth` the ApiKey (carrying
`creator_role`); the workspace helpers in accounts/api_permissions.py then confine the request
to the key's workspace. Failures are 401 with the JSON envelope and never echo the key.
"""

from __future__ import annotations

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts import keys
from accounts.models import ApiKey, User
from accounts.services import authenticate_api_key

INVALID_KEY_MESSAGE = "Invalid, revoked or expired API key."


def presented_key(request: Request) -> str | None:
    """The API key the request carries, if any. A Bearer token of another type is not ours."""
    return keys.credential_in(request.META.get("HTTP_AUTHORIZATION", ""),
                              request.META.get("HTTP_X_API_KEY", ""), accepts=keys.looks_like_key)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        raw = presented_key(request)
        if raw is None:
            return None
        key = authenticate_api_key(raw)
        if key is None:
            raise exceptions.AuthenticationFailed(INVALID_KEY_MESSAGE)
        return key.created_by, key

    def authenticate_header(self, request: Request) -> str:
        # A non-empty challenge makes DRF answer 401 instead of 403 for unauthenticated requests.
        return 'Bearer realm="api"'
