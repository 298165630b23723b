"""Routes of parameter sweeps: the management API under /api/v1/workspaces/{ws}/sweeps and the
dashboard's pages under /app/sweeps/ (included from config/urls.py)."""

from django.urls import path

from config.api_routes import api_path
from runtimes.sweeps import api_views, views

W = "api/v1/workspaces/<uuid:workspace_id>/sweeps"
P = "app/sweeps/"

urlpatterns = [
    api_path(W, api_views.SweepListCreate.as_view(), name="api-sweeps"),
    api_path(W + "/<uuid:sweep_id>", api_views.SweepDetail.as_view(), name="api-sweep"),
    api_path(W + "/<uuid:sweep_id>/cancel", api_views.SweepCancel.as_view(),
             name="api-sweep-cancel"),
    path(P, views.sweep_list, name="sweep_list"),
    path(P + "new/<uuid:version_id>/", views.sweep_new, name="sweep_new"),
    path(P + "<uuid:sweep_id>/", views.sweep_detail, name="sweep_detail"),
    path(P + "<uuid:sweep_id>/cancel/", views.sweep_cancel, name="sweep_cancel"),
    path(P + "<uuid:sweep_id>/delete/", views.sweep_delete, name="sweep_delete"),
]
