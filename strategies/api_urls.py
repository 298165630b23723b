"""Management API routes of the strategies app under /api/v1/ (included from config/urls.py)."""

from django.urls import path

from strategies import api_views

W = "workspaces/<uuid:workspace_id>/"
S = W + "strategies/<uuid:strategy_id>/"
V = S + "versions/<int:number>/"
D = W + "datasets/<uuid:dataset_id>/"
SC = W + "schedules/<uuid:schedule_id>/"

urlpatterns = [
    path(W + "strategies/", api_views.StrategyListCreate.as_view(), name="api-strategies"),
    path(S, api_views.StrategyDetail.as_view(), name="api-strategy"),
    path(S + "versions/", api_views.VersionListUpload.as_view(), name="api-strategy-versions"),
    path(V, api_views.VersionDetail.as_view(), name="api-strategy-version"),
    path(V + "download/", api_views.VersionDownload.as_view(),
         name="api-strategy-version-download"),
    path(V + "source/", api_views.VersionSource.as_view(), name="api-strategy-version-source"),
    path(W + "datasets/", api_views.DatasetListUpload.as_view(), name="api-datasets"),
    path(D, api_views.DatasetDetail.as_view(), name="api-dataset"),
    path(D + "preview/", api_views.DatasetPreview.as_view(), name="api-dataset-preview"),
    path(W + "schedules/", api_views.ScheduleListCreate.as_view(), name="api-schedules"),
    path(SC, api_views.ScheduleDetail.as_view(), name="api-schedule"),
    path(SC + "pause/", api_views.SchedulePause.as_view(paused=True), name="api-schedule-pause"),
    path(SC + "resume/", api_views.SchedulePause.as_view(paused=False),
         name="api-schedule-resume"),
    path(SC + "runs/", api_views.ScheduleRuns.as_view(), name="api-schedule-runs"),
    path(SC + "run-now/", api_views.ScheduleRunNow.as_view(), name="api-schedule-run-now"),
    # runtimes/urls.py has no /backtests API routes (sessions live under /sessions), so compare
    # sits here; config/urls.py includes this module first should runtimes add some later.
    path(W + "backtests/compare", api_views.BacktestCompare.as_view(),
         name="api-backtests-compare"),
]
