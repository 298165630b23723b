"""Root URL configuration: probes, the favicon, the dashboard, the management API and its schema."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from config import health, home, site_files
from config.api_routes import api_path
from config.security_headers import with_policy

handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"

urlpatterns = [
    path("livez", health.livez, name="livez"),
    path("readyz", health.readyz, name="readyz"),
    path("health", health.health, name="health"),
    path("favicon.ico", site_files.favicon, name="favicon"),
    path("instance", health.instance, name="instance"),
    api_path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    api_path("api/docs/", with_policy(settings.API_DOCS_CONTENT_SECURITY_POLICY)(
        SpectacularRedocView.as_view(url_name="api-schema")), name="api-docs"),
    path("api/v1/", include("accounts.api_urls")),
    path("api/v1/", include("strategies.api_urls")),
    path("", include("runtimes.urls")),
    path("", include("runtimes.schedules.urls")),
    path("", include("runtimes.sweeps.urls")),
    path("", include("strategies.urls")),
    path("admin/", admin.site.urls),
    path("app/", home.dashboard, name="dashboard"),
    path("", include("accounts.urls")),
]
