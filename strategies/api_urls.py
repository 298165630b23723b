"""Management API routes of the strategies app under /api/v1/ (included from config/urls.py)."""

from config.api_routes import api_path
from strategies import api_views

W = "workspaces/<uuid:workspace_id>/"
S = W + "strategies/<uuid:strategy_id>/"
V = S + "versions/<int:number>/"
D = W + "datasets/<uuid:dataset_id>/"

urlpatterns = [
    api_path(W + "strategies/", api_views.StrategyListCreate.as_view(), name="api-strategies"),
    api_path(S, api_views.StrategyDetail.as_view(), name="api-strategy"),
    api_path(S + "versions/", api_views.VersionListUpload.as_view(), name="api-strategy-versions"),
    api_path(S + "diff/", api_views.VersionDiffView.as_view(), name="api-strategy-diff"),
    api_path(V, api_views.VersionDetail.as_view(), name="api-strategy-version"),
    api_path(V + "download/", api_views.VersionDownload.as_view(),
             name="api-strategy-version-download"),
    api_path(V + "source/", api_views.VersionSource.as_view(), name="api-strategy-version-source"),
    api_path(W + "datasets/", api_views.DatasetListUpload.as_view(), name="api-datasets"),
    api_path(D, api_views.DatasetDetail.as_view(), name="api-dataset"),
    api_path(D + "preview/", api_views.DatasetPreview.as_view(), name="api-dataset-preview"),
]
