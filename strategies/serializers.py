"""Serializers of the management API for strategies, their versions and datasets."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from strategies.models import Dataset, DatasetFile, Strategy, StrategyVersion


class StrategySerializer(serializers.ModelSerializer):
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)
    versions = serializers.IntegerField(source="version_count", read_only=True, default=0)
    latest_version = serializers.IntegerField(read_only=True, default=None, allow_null=True,
                                              help_text="The highest version number, if any.")

    class Meta:
        model = Strategy
        fields = ["id", "name", "description", "created_by", "created_at", "versions",
                  "latest_version"]
        read_only_fields = fields


class StrategyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class VersionSerializer(serializers.ModelSerializer):
    author = serializers.EmailField(source="author.email", read_only=True, default=None)

    class Meta:
        model = StrategyVersion
        fields = ["id", "number", "content_hash", "kind", "entry_point", "filename", "size",
                  "note", "author", "created_at"]
        read_only_fields = fields


class VersionFileSerializer(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField()


class VersionDetailSerializer(VersionSerializer):
    files = serializers.SerializerMethodField()

    class Meta(VersionSerializer.Meta):
        fields = [*VersionSerializer.Meta.fields, "files"]
        read_only_fields = fields

    @extend_schema_field(VersionFileSerializer(many=True))
    def get_files(self, version: StrategyVersion) -> list[dict[str, object]]:
        files = self.context["files"]
        return [{"path": path, "size": len(data)} for path, data in sorted(files.items())]


class VersionUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A .py file (at most 1 MB) or a .zip (at most 5 MB) "
                                           "with main.py or strategy.py at its top level.")
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class DatasetFileSerializer(serializers.ModelSerializer):
    filename = serializers.CharField(source="original_filename", read_only=True)

    class Meta:
        model = DatasetFile
        fields = ["symbol", "filename", "size", "rows", "first_timestamp", "last_timestamp"]
        read_only_fields = fields


class DatasetSerializer(serializers.ModelSerializer):
    """A dataset; `files` gives each symbol's own range (first and last bar, `rows` bars), and
    `first_timestamp`/`last_timestamp` the period all symbols cover together."""

    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)
    files = serializers.SerializerMethodField()
    first_timestamp = serializers.SerializerMethodField()
    last_timestamp = serializers.SerializerMethodField()
    ranges_differ = serializers.SerializerMethodField(
        help_text="Whether some symbol's first or last bar differs from the others'.")

    class Meta:
        model = Dataset
        fields = ["id", "name", "timeframe", "created_by", "created_at", "first_timestamp",
                  "last_timestamp", "ranges_differ", "files"]
        read_only_fields = fields

    @extend_schema_field(DatasetFileSerializer(many=True))
    def get_files(self, dataset: Dataset) -> list[dict[str, object]]:
        files = sorted(dataset.files.all(), key=lambda f: f.symbol)
        return list(DatasetFileSerializer(files, many=True).data)

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_first_timestamp(self, dataset: Dataset) -> str | None:
        span = dataset.span()
        return serializers.DateTimeField().to_representation(span.first) if span else None

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_last_timestamp(self, dataset: Dataset) -> str | None:
        span = dataset.span()
        return serializers.DateTimeField().to_representation(span.last) if span else None

    @extend_schema_field(serializers.BooleanField())
    def get_ranges_differ(self, dataset: Dataset) -> bool:
        span = dataset.span()
        return bool(span and span.differ)


class VersionDiffSerializer(serializers.Serializer):
    """The unified diff between two versions and the declared parameters that changed."""

    from_version = serializers.IntegerField(source="old.number")
    to_version = serializers.IntegerField(source="new.number")
    diff = serializers.CharField(source="unified", help_text="As `diff -u` prints it.")
    truncated = serializers.BooleanField(help_text="The diff was cut at its size limit.")
    parameters = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_parameters(self, diff: Any) -> list[dict[str, str | None]]:
        return [{"name": p.name, "from": p.before, "to": p.after} for p in diff.parameters]


class DatasetUploadSerializer(serializers.Serializer):
    """The plain fields of a dataset upload; the files come as `file_<SYMBOL>` or `file`."""

    name = serializers.CharField(max_length=100)
    timeframe = serializers.CharField(max_length=8, required=False, allow_blank=True, default="")
