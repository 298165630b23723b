"""Static files served at the ASGI level, in front of Django, by WhiteNoise's file index.

WhiteNoise's middleware is sync-only: in Django's chain it forced every request (static or not)
through a sync thread and back. Here a static path is answered before Django sees it, with the
same headers (caching, compressed variants, ranges) the middleware gave, and everything else
goes to Django through an all-async middleware chain.
"""

from __future__ import annotations

import asyncio
from typing import Any

from whitenoise.middleware import WhiteNoiseMiddleware

Scope = dict[str, Any]
CHUNK = 64 * 1024


class StaticFilesASGI:
    """Wraps the HTTP application; configured from the Django settings like the middleware."""

    def __init__(self, app: Any) -> None:
        self.app = app
        # Built for its file index and settings only; its get_response is never called.
        self.index = WhiteNoiseMiddleware(get_response=lambda request: None)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        static_file = self._find(scope) if scope["type"] == "http" else None
        if static_file is None:
            await self.app(scope, receive, send)
            return
        await _serve(static_file, scope, send)

    def _find(self, scope: Scope) -> Any:
        path = scope["path"]
        if not path.startswith(self.index.static_prefix):
            return None
        if self.index.autorefresh:
            return self.index.find_file(path)
        return self.index.files.get(path)


async def _serve(static_file: Any, scope: Scope, send: Any) -> None:
    response = static_file.get_response(scope["method"], _meta(scope["headers"]))
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    await send({"type": "http.response.start", "status": int(response.status),
                "headers": headers})
    body = response.file
    if body is None:
        await send({"type": "http.response.body", "body": b""})
        return
    try:
        while True:
            chunk = await asyncio.to_thread(body.read, CHUNK)
            await send({"type": "http.response.body", "body": chunk, "more_body": bool(chunk)})
            if not chunk:
                return
    finally:
        body.close()


def _meta(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI headers as the WSGI-style keys WhiteNoise reads (HTTP_IF_NONE_MATCH, ...)."""
    return {"HTTP_" + name.decode("latin-1").upper().replace("-", "_"): value.decode("latin-1")
            for name, value in headers}
