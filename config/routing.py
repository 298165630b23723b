"""WebSocket routes. Each consumer authenticates itself (API key, session token or cookie).

The strategy's socket takes an API key and no Origin (the SDK sends none). The dashboard's live
view authenticates with the login session, so it sits behind Channels' session/auth middleware
and an origin check that requires an Origin of this site (cross-site WebSocket hijacking).
"""

from channels.auth import AuthMiddlewareStack
from django.urls import URLPattern, path

from runtimes.consumers import SessionConsumer
from runtimes.dashboard_consumers import RequiredOriginValidator, SessionLiveConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("sessions/<uuid:session_id>/v1/ws", SessionConsumer.as_asgi()),
    path("app/sessions/<uuid:session_id>/live",
         RequiredOriginValidator(AuthMiddlewareStack(SessionLiveConsumer.as_asgi()))),
]
