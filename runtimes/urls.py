"""Routes of the runtimes app: the management API under /api/v1/, each session's Trading API
under /sessions/{id}/ and /share/{token}/ (symbols and ids may carry %2F, hence `path:`; history
before {id}), and the dashboard's backtest, deployment and broker connection pages under
/app/backtests/, /app/deployments/ and /app/connections/."""

from django.urls import URLPattern, path, re_path

from config.api_routes import api_path
from runtimes import (
    api_views,
    connection_api,
    connection_views,
    deployment_api,
    deployment_views,
    run_views,
    views,
)
from runtimes.transport.routes import HEALTH, TRADING_ROUTES
from runtimes.transport.views import SessionHealth, operation, unknown_route

S = "sessions/<uuid:session_id>/"
# A share link's base URL (runtimes/transport/share_links.py): the same API, the URL as credential.
SHARE = "share/<str:share_token>/"


def trading_routes(base: str) -> list[URLPattern]:
    """The Trading API under `base`: a session's own address, or a share link's."""
    return [
        path(base + HEALTH, SessionHealth.as_view()),
        *(path(base + template, operation(**ops)) for template, ops in TRADING_ROUTES),
    ]


trading_urlpatterns = [
    *trading_routes(S),
    *trading_routes(SHARE),
    re_path(r"^sessions/", unknown_route),
    re_path(r"^share/", unknown_route),
]

B = "app/backtests/"
D = "app/deployments/"
C = "app/connections/"

web_urlpatterns = [
    path(B, views.backtest_list, name="backtest_list"),
    path(B + "rows/", views.backtest_rows, name="backtest_rows"),
    path(B + "compare/", views.backtest_compare, name="backtest_compare"),
    path(B + "new/<uuid:version_id>/", views.backtest_new, name="backtest_new"),
    path(B + "<uuid:session_id>/", views.backtest_detail, name="backtest_detail"),
    path(B + "<uuid:session_id>/progress/", views.backtest_progress, name="backtest_progress"),
    path(B + "<uuid:session_id>/live/", views.backtest_live, name="backtest_live"),
    path(B + "<uuid:session_id>/logs/", views.backtest_logs, name="backtest_logs"),
    path(B + "<uuid:session_id>/rename/", run_views.backtest_rename, name="backtest_rename"),
    path(B + "<uuid:session_id>/cancel/", run_views.backtest_cancel, name="backtest_cancel"),
    path(B + "<uuid:session_id>/delete/", run_views.backtest_delete, name="backtest_delete"),
    path(B + "<uuid:session_id>/rerun/", run_views.backtest_rerun, name="backtest_rerun"),
    path(B + "<uuid:session_id>/clone/", run_views.backtest_clone, name="backtest_clone"),
    path(B + "<uuid:session_id>/round-trips/", views.backtest_round_trips,
         name="backtest_round_trips"),
    path(B + "<uuid:session_id>/<str:kind>.csv", views.backtest_csv, name="backtest_csv"),
    path(D, deployment_views.deployment_list, name="deployment_list"),
    path(D + "new/", deployment_views.deployment_new, name="deployment_new"),
    path(D + "<uuid:deployment_id>/", deployment_views.deployment_detail,
         name="deployment_detail"),
    path(D + "<uuid:deployment_id>/delete/", deployment_views.deployment_delete,
         name="deployment_delete"),
    path(D + "<uuid:deployment_id>/<str:action>/", deployment_views.deployment_action,
         name="deployment_action"),
    path(C, connection_views.connection_list, name="connection_list"),
    path(C + "<uuid:connection_id>/delete/", connection_views.connection_delete,
         name="connection_delete"),
]

W = "api/v1/workspaces/<uuid:workspace_id>/sessions"
DW = "api/v1/workspaces/<uuid:workspace_id>/deployments"
CW = "api/v1/workspaces/<uuid:workspace_id>/connections"

urlpatterns = [
    api_path(W, api_views.SessionListCreate.as_view(), name="api-sessions"),
    api_path(W + "/<uuid:session_id>", api_views.SessionDetail.as_view(), name="api-session"),
    api_path(W + "/<uuid:session_id>/cancel", api_views.SessionCancel.as_view(),
             name="api-session-cancel"),
    api_path(W + "/<uuid:session_id>/kill", api_views.SessionKill.as_view(),
             name="api-session-kill"),
    api_path(W + "/<uuid:session_id>/results", api_views.SessionResults.as_view(),
             name="api-session-results"),
    api_path(W + "/<uuid:session_id>/round-trips", api_views.SessionRoundTrips.as_view(),
             name="api-session-round-trips"),
    api_path(W + "/<uuid:session_id>/orders", api_views.SessionResultRows.as_view(rows="orders"),
             name="api-session-orders"),
    api_path(W + "/<uuid:session_id>/trades", api_views.SessionResultRows.as_view(rows="trades"),
             name="api-session-trades"),
    api_path(W + "/<uuid:session_id>/share-links", api_views.ShareLinkListCreate.as_view(),
             name="api-session-share-links"),
    api_path(W + "/<uuid:session_id>/share-links/<int:link_id>",
             api_views.ShareLinkRevoke.as_view(), name="api-session-share-link"),
    api_path("api/v1/workspaces/<uuid:workspace_id>/backtests",
             api_views.BacktestListCreate.as_view(), name="api-backtests"),
    api_path("api/v1/workspaces/<uuid:workspace_id>/backtests/compare",
             api_views.BacktestCompare.as_view(), name="api-backtests-compare"),
    api_path("api/v1/workspaces/<uuid:workspace_id>/backtests/<uuid:session_id>",
             api_views.BacktestDetail.as_view(), name="api-backtest"),
    api_path("api/v1/workspaces/<uuid:workspace_id>/kill-switch",
             api_views.WorkspaceKillSwitchView.as_view(), name="api-workspace-kill-switch"),
    api_path(DW, deployment_api.DeploymentListCreate.as_view(), name="api-deployments"),
    api_path(DW + "/<uuid:deployment_id>", deployment_api.DeploymentDetail.as_view(),
             name="api-deployment"),
    *(api_path(DW + f"/<uuid:deployment_id>/{action}",
               deployment_api.DeploymentAction.as_view(action_name=action),
               name=f"api-deployment-{action}")
      for action in ("start", "stop", "pause", "resume")),
    api_path(CW, connection_api.ConnectionListCreate.as_view(), name="api-connections"),
    api_path(CW + "/<uuid:connection_id>", connection_api.ConnectionDetail.as_view(),
             name="api-connection"),
    *web_urlpatterns,
    *trading_urlpatterns,
]
