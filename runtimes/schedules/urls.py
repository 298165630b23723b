"""Routes of backtest schedules: the management API under /api/v1/workspaces/{ws}/schedules/ and
the dashboard's pages under /app/schedules/ (included from config/urls.py)."""

from django.urls import path

from config.api_routes import api_path
from runtimes.schedules import api_views, views

W = "api/v1/workspaces/<uuid:workspace_id>/schedules/"
SC = W + "<uuid:schedule_id>/"
P = "app/schedules/"

urlpatterns = [
    api_path(W, api_views.ScheduleListCreate.as_view(), name="api-schedules"),
    api_path(SC, api_views.ScheduleDetail.as_view(), name="api-schedule"),
    api_path(SC + "pause/", api_views.SchedulePause.as_view(paused=True),
             name="api-schedule-pause"),
    api_path(SC + "resume/", api_views.SchedulePause.as_view(paused=False),
             name="api-schedule-resume"),
    api_path(SC + "runs/", api_views.ScheduleRuns.as_view(), name="api-schedule-runs"),
    api_path(SC + "run-now/", api_views.ScheduleRunNow.as_view(), name="api-schedule-run-now"),
    path(P, views.schedule_list, name="schedule_list"),
    path(P + "new/", views.schedule_create, name="schedule_create"),
    path(P + "<uuid:schedule_id>/", views.schedule_detail, name="schedule_detail"),
    path(P + "<uuid:schedule_id>/<str:action>/", views.schedule_action, name="schedule_action"),
]
