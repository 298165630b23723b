"""WebSocket routes. Each consumer authenticates itself (API key, session token or cookie)."""

from django.urls import URLPattern, path

from runtimes.consumers import SessionConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("sessions/<uuid:session_id>/v1/ws", SessionConsumer.as_asgi()),
]
