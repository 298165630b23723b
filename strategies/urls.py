"""Dashboard routes of the strategies app (mounted at the site root): strategies, versions,
datasets, the shipped examples, backtest schedules and the comparison of backtests."""

from django.urls import path

from strategies import views

urlpatterns = [
    path("app/strategies/", views.strategy_list, name="strategy_list"),
    path("app/strategies/new/", views.strategy_upload, name="strategy_upload"),
    path("app/strategies/<uuid:strategy_id>/", views.strategy_detail, name="strategy_detail"),
    path("app/strategies/<uuid:strategy_id>/upload/", views.strategy_upload,
         name="version_upload"),
    path("app/strategies/<uuid:strategy_id>/versions/<int:number>/", views.version_detail,
         name="version_detail"),
    path("app/strategies/<uuid:strategy_id>/versions/<int:number>/download/",
         views.version_download, name="version_download"),
    path("app/datasets/", views.dataset_list, name="dataset_list"),
    path("app/datasets/new/", views.dataset_upload, name="dataset_upload"),
    path("app/datasets/<uuid:dataset_id>/", views.dataset_detail, name="dataset_detail"),
    path("app/schedules/", views.schedule_list, name="schedule_list"),
    path("app/schedules/new/", views.schedule_create, name="schedule_create"),
    path("app/schedules/<uuid:schedule_id>/", views.schedule_detail, name="schedule_detail"),
    path("app/schedules/<uuid:schedule_id>/<str:action>/", views.schedule_action,
         name="schedule_action"),
    # Beside the backtest pages of runtimes/urls.py ("compare" is no session id, so no clash).
    path("app/backtests/compare/", views.backtest_compare, name="backtest_compare"),
    path("examples/", views.examples, name="examples"),
    path("examples/<str:filename>", views.example_download, name="example_download"),
]
