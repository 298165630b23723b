"""Dashboard routes of the strategies app (mounted at the site root): strategies, versions,
datasets and the shipped examples."""

from django.urls import path

from strategies import views

urlpatterns = [
    path("app/strategies/", views.strategy_list, name="strategy_list"),
    path("app/strategies/new/", views.strategy_upload, name="strategy_upload"),
    path("app/strategies/<uuid:strategy_id>/", views.strategy_detail, name="strategy_detail"),
    path("app/strategies/<uuid:strategy_id>/upload/", views.strategy_upload,
         name="version_upload"),
    path("app/strategies/<uuid:strategy_id>/delete/", views.strategy_delete,
         name="strategy_delete"),
    path("app/strategies/<uuid:strategy_id>/compare/", views.version_compare,
         name="version_compare"),
    path("app/strategies/<uuid:strategy_id>/versions/<int:number>/", views.version_detail,
         name="version_detail"),
    path("app/strategies/<uuid:strategy_id>/versions/<int:number>/download/",
         views.version_download, name="version_download"),
    path("app/datasets/", views.dataset_list, name="dataset_list"),
    path("app/datasets/new/", views.dataset_upload, name="dataset_upload"),
    path("app/datasets/<uuid:dataset_id>/", views.dataset_detail, name="dataset_detail"),
    path("app/datasets/<uuid:dataset_id>/delete/", views.dataset_delete, name="dataset_delete"),
    path("examples/", views.examples, name="examples"),
    path("examples/<str:filename>", views.example_download, name="example_download"),
]
