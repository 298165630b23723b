"""The URL configuration of the Trading API's handler (config/asgi.py): its own routes only, so a
call under `/sessions/` is matched against them rather than after every route of the platform."""

from runtimes.urls import trading_urlpatterns

handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"

urlpatterns = trading_urlpatterns
