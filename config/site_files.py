"""Files browsers ask for at the site root rather than under STATIC_URL (the favicon)."""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, HttpRequest
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

FAVICON = settings.BASE_DIR / "static" / "favicon.ico"


@require_safe
@cache_control(public=True, max_age=86_400)
def favicon(request: HttpRequest) -> FileResponse:
    # Pages link static/favicon.svg; this answers browsers (and pages like the JSON API) that
    # ask /favicon.ico anyway, so they get an icon instead of a logged 404.
    return FileResponse(FAVICON.open("rb"), content_type="image/x-icon")
