"""WebSocket routes. Each consumer authenticates itself (API key, session token or cookie)."""

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
