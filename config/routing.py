"""WebSocket routes. Each consumer authenticates itself (API key, session token or cookie).

The strategy's socket takes an API key and no Origin (the SDK sends none). The dashboard's live
view authenticates with the login session, so it sits behind Channels' session/auth middleware
and an origin check that requires an Origin of this site (cross-site WebSocket hijacking).
Any other path is refused at the handshake (403), as a bad key is, never a 500.
"""

from channels.auth import AuthMiddlewareStack
from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import URLPattern, path, re_path

from runtimes.dashboard_consumers import RequiredOriginValidator, SessionLiveConsumer
from runtimes.transport.consumers import SessionConsumer


class NoSuchSocket(AsyncWebsocketConsumer):
    """A path no socket lives at (`/sessions//v1/ws`): closed before accept, which daphne
    answers with 403 (it has no way to send a 404 to a WebSocket handshake)."""

    async def connect(self) -> None:
        await self.close()


websocket_urlpatterns: list[URLPattern] = [
    path("sessions/<uuid:session_id>/v1/ws", SessionConsumer.as_asgi()),
    # A share link's base URL carries the credential (runtimes/transport/share_links.py).
    path("share/<str:share_token>/v1/ws", SessionConsumer.as_asgi()),
    path(
        "app/sessions/<uuid:session_id>/live",
        RequiredOriginValidator(AuthMiddlewareStack(SessionLiveConsumer.as_asgi())),
    ),
    re_path(r"", NoSuchSocket.as_asgi()),  # last: everything the routes above do not take
]
