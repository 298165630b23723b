"""Management API (/api/v1/workspaces/{ws}/strategies…, …/datasets…): strategies and their
immutable versions (upload, list, show, download, source, diff, delete), and datasets (upload,
list, show, preview, delete).

Thin: WorkspaceScopedMixin scopes every row to the URL's workspace (a stranger gets 404, a viewer
403 on writes), serializers validate fields, `strategies.services` checks uploads and stores.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from django.core.files.storage import default_storage
from django.db.models import Count, Max
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api_permissions import WorkspaceScopedMixin
from config.api_schema import error_response
from config.errors import ApiError
from config.parsers import FormParser, JSONParser, MultiPartParser
from strategies import services
from strategies.deletion import delete_dataset, delete_strategy
from strategies.diffs import version_diff
from strategies.models import Dataset, Strategy, StrategyVersion
from strategies.previews import dataset_preview
from strategies.serializers import (
    DatasetSerializer,
    DatasetUploadSerializer,
    StrategyCreateSerializer,
    StrategySerializer,
    VersionDetailSerializer,
    VersionDiffSerializer,
    VersionSerializer,
    VersionUploadSerializer,
)

CONTENT_TYPES = {"py": "text/x-python; charset=utf-8", "zip": "application/zip"}


def _valid(serializer_class: type, request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class StrategyListCreate(WorkspaceScopedMixin, generics.ListAPIView):
    """The workspace's strategies; POST creates an empty one (upload versions to it next)."""

    scoped_model = Strategy
    serializer_class = StrategySerializer
    write_check = "can_upload"

    def get_queryset(self) -> Any:
        return (super().get_queryset().select_related("created_by")
                .annotate(version_count=Count("versions"), latest_version=Max("versions__number")))

    @extend_schema(request=StrategyCreateSerializer, responses={201: StrategySerializer})
    def post(self, request: Request, workspace_id: Any) -> Response:
        strategy = services.create_strategy(workspace=self.workspace, by=request.user,
                                            **_valid(StrategyCreateSerializer, request))
        return Response(StrategySerializer(self.get_queryset().get(pk=strategy.pk)).data,
                        status=status.HTTP_201_CREATED)


class StrategyDetail(WorkspaceScopedMixin, generics.RetrieveAPIView):
    """One strategy. DELETE removes it with every version and the backtests that ran them; 409
    IN_USE naming the deployments and schedules that use it."""

    scoped_model = Strategy
    serializer_class = StrategySerializer
    lookup_url_kwarg = "strategy_id"

    def get_queryset(self) -> Any:
        return (super().get_queryset().select_related("created_by")
                .annotate(version_count=Count("versions"), latest_version=Max("versions__number")))

    @extend_schema(responses={204: None, 409: error_response("In use by a deployment, a "
                                                             "schedule or a running session.")})
    def delete(self, request: Request, workspace_id: Any, strategy_id: Any) -> Response:
        delete_strategy(membership=self.membership, strategy=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionDiffView(WorkspaceScopedMixin, generics.GenericAPIView):
    """The unified diff from version `from` to version `to` (`?from=1&to=2`) of a strategy's
    text files, cut at 5,000 lines (`truncated`), and its declared parameters that changed."""

    serializer_class = VersionDiffSerializer

    @extend_schema(parameters=[OpenApiParameter("from", int, required=True),
                               OpenApiParameter("to", int, required=True)])
    def get(self, request: Request, workspace_id: Any, strategy_id: Any) -> Response:
        strategy = get_object_or_404(Strategy.objects.for_workspace(self.workspace),
                                     pk=strategy_id)
        old, new = (self._version(strategy, name) for name in ("from", "to"))
        return Response(VersionDiffSerializer(version_diff(old, new)).data)

    def _version(self, strategy: Strategy, name: str) -> StrategyVersion:
        raw = self.request.query_params.get(name, "")
        if not raw.isdigit() or len(raw) > 9:
            raise ApiError("VALIDATION_ERROR", f"Give {name}: a version number.",
                           details={"field": name, "provided": raw[:40]})
        return get_object_or_404(strategy.versions.select_related("strategy"), number=int(raw))


class VersionListUpload(WorkspaceScopedMixin, generics.ListAPIView):
    """A strategy's versions, newest first; POST (multipart `file`, `note`) uploads the next."""

    serializer_class = VersionSerializer
    write_check = "can_upload"
    parser_classes = [MultiPartParser, FormParser]

    def strategy(self) -> Strategy:
        return get_object_or_404(Strategy.objects.for_workspace(self.workspace),
                                 pk=self.kwargs["strategy_id"])

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return StrategyVersion.objects.none()
        return (StrategyVersion.objects.for_workspace(self.workspace)
                .filter(strategy=self.strategy()).select_related("author").order_by("-number"))

    @extend_schema(request={"multipart/form-data": VersionUploadSerializer},
                   responses={201: VersionSerializer})
    def post(self, request: Request, workspace_id: Any, strategy_id: Any) -> Response:
        fields = _valid(VersionUploadSerializer, request)
        upload = fields["file"]
        version = services.upload_strategy_version(
            workspace=self.workspace, author=request.user, strategy=self.strategy(),
            filename=upload.name or "", content=upload.read(), note=fields["note"])
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)


class VersionMixin(WorkspaceScopedMixin):
    def version(self) -> StrategyVersion:
        return get_object_or_404(
            StrategyVersion.objects.for_workspace(self.workspace).select_related("author"),
            strategy_id=self.kwargs["strategy_id"], number=self.kwargs["number"])


class VersionDetail(VersionMixin, generics.GenericAPIView):
    """One version with the list of its files."""

    serializer_class = VersionDetailSerializer

    def get(self, request: Request, workspace_id: Any, strategy_id: Any, number: int) -> Response:
        version = self.version()
        context = {"files": services.version_files(version)}
        return Response(VersionDetailSerializer(version, context=context).data)


class VersionDownload(VersionMixin, generics.GenericAPIView):
    """The upload exactly as received, as an attachment."""

    @extend_schema(responses={(200, "text/x-python"): OpenApiTypes.BINARY,
                              (200, "application/zip"): OpenApiTypes.BINARY})
    def get(self, request: Request, workspace_id: Any, strategy_id: Any,
            number: int) -> FileResponse:
        version = self.version()
        return FileResponse(default_storage.open(version.storage_name, "rb"), as_attachment=True,
                            filename=version.filename, content_type=CONTENT_TYPES[version.kind])


class VersionSource(VersionMixin, generics.GenericAPIView):
    """`{path: text}` of the version's text files (for reading code, never for running it)."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, workspace_id: Any, strategy_id: Any, number: int) -> Response:
        return Response(services.strategy_source(self.version()))


class DatasetListUpload(WorkspaceScopedMixin, generics.ListAPIView):
    """The workspace's datasets. POST (multipart): `name`, optional `timeframe`, and the bar files
    (CSV, JSON or Parquet), one per symbol: `file_<SYMBOL>` fields, or `file` fields whose
    symbol is the file name without its extension (`AAPL.csv` is AAPL)."""

    scoped_model = Dataset
    serializer_class = DatasetSerializer
    write_check = "can_upload"
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related("created_by").prefetch_related("files")

    @extend_schema(request={"multipart/form-data": DatasetUploadSerializer},
                   responses={201: DatasetSerializer})
    def post(self, request: Request, workspace_id: Any) -> Response:
        fields = _valid(DatasetUploadSerializer, request)
        dataset = services.upload_dataset(
            workspace=self.workspace, by=request.user, name=fields["name"],
            files=_files_by_symbol(request), timeframe=fields["timeframe"] or None)
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)


def _files_by_symbol(request: Request) -> dict[str, tuple[str, bytes]]:
    files: dict[str, tuple[str, bytes]] = {}
    problems = []
    for field, uploads in request.FILES.lists():
        for upload in uploads:
            name = upload.name or field
            if field.startswith("file_") and len(field) > len("file_"):
                symbol = field.removeprefix("file_")
            elif field == "file":
                symbol = PurePosixPath(name).name.split(".", 1)[0]
            else:
                problems.append({"file": name, "row": None, "line": None, "column": None,
                                 "problem": f"unexpected file field {field!r}: send one "
                                            "file_<SYMBOL> field per symbol, or file fields"})
                continue
            if symbol in files:
                problems.append({"file": name, "row": None, "line": None, "column": None,
                                 "problem": f"a second file for symbol {symbol!r}"})
            files[symbol] = (name, upload.read())
    if problems:
        raise services.DatasetUploadError(problems)
    return files


class DatasetDetail(WorkspaceScopedMixin, generics.RetrieveAPIView):
    """One dataset with each symbol's own range. DELETE removes it, its stored files and the
    backtests over it; 409 IN_USE naming the schedules that use it."""

    scoped_model = Dataset
    serializer_class = DatasetSerializer
    lookup_url_kwarg = "dataset_id"

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related("created_by").prefetch_related("files")

    @extend_schema(responses={204: None, 409: error_response("In use by a schedule or a "
                                                             "running session.")})
    def delete(self, request: Request, workspace_id: Any, dataset_id: Any) -> Response:
        delete_dataset(membership=self.membership, dataset=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class DatasetPreview(WorkspaceScopedMixin, generics.GenericAPIView):
    """First and last bars and a downsampled close series per symbol (`?symbol=` narrows)."""

    scoped_model = Dataset

    @extend_schema(parameters=[OpenApiParameter("symbol", str, many=True, required=False)],
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, workspace_id: Any, dataset_id: Any) -> Response:
        dataset = get_object_or_404(self.get_queryset(), pk=dataset_id)
        symbols = [s for value in request.query_params.getlist("symbol") for s in value.split(",")]
        return Response(dataset_preview(dataset, symbols=[s for s in symbols if s] or None))
