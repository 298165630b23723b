"""Serializers of the management API for strategies, their versions, datasets and backtest
schedules."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.decimal_fields import DecimalField
from strategies.models import (
    BacktestSchedule,
    Dataset,
    DatasetFile,
    ScheduleRun,
    Strategy,
    StrategyVersion,
)


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
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)
    files = DatasetFileSerializer(many=True, read_only=True)

    class Meta:
        model = Dataset
        fields = ["id", "name", "timeframe", "created_by", "created_at", "files"]
        read_only_fields = fields


class DatasetUploadSerializer(serializers.Serializer):
    """The plain fields of a dataset upload; the files come as `file_<SYMBOL>` or `file`."""

    name = serializers.CharField(max_length=100)
    timeframe = serializers.CharField(max_length=8, required=False, allow_blank=True, default="")


class ScheduleWriteSerializer(serializers.Serializer):
    """A schedule's settings. Create: name, version, dataset, one cadence and one window are
    required (strategies.schedules checks the combination); PATCH: any of the editable ones."""

    name = serializers.CharField(max_length=100)
    version = serializers.UUIDField(help_text="A strategy version's id.")
    dataset = serializers.UUIDField()
    cron_expression = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                            help_text="5 fields, UTC: minute hour "
                                                      "day-of-month month day-of-week.")
    interval_minutes = serializers.IntegerField(required=False, allow_null=True,
                                                help_text="At least 5.")
    rolling_days = serializers.IntegerField(required=False, allow_null=True,
                                            help_text="The last N days ending at the "
                                                      "dataset's last bar.")
    start = serializers.DateTimeField(required=False, allow_null=True)
    end = serializers.DateTimeField(required=False, allow_null=True)
    symbols = serializers.ListField(child=serializers.CharField(max_length=32), required=False)
    timeframe = serializers.CharField(max_length=8, required=False, allow_blank=True)
    initial_cash = DecimalField(max_digits=24, decimal_places=8, required=False)
    commission = serializers.DictField(required=False,
                                       help_text="percent, per_share, fixed, minimum.")
    slippage_bps = DecimalField(max_digits=12, decimal_places=4, required=False)
    params = serializers.DictField(required=False, help_text="Passed to the strategy.")
    paused = serializers.BooleanField(required=False, help_text="Create it paused.")


class ScheduleRunSerializer(serializers.ModelSerializer):
    session_state = serializers.CharField(source="session.state", read_only=True, default=None)

    class Meta:
        model = ScheduleRun
        fields = ["id", "started_at", "status", "error", "session", "session_state",
                  "window_start", "window_end"]
        read_only_fields = fields


class ScheduleSerializer(serializers.ModelSerializer):
    """A schedule with its next run (context["now"]) and its latest run."""

    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)
    version = serializers.SerializerMethodField()
    dataset = serializers.SerializerMethodField()
    next_run_at = serializers.SerializerMethodField()
    last_run = serializers.SerializerMethodField()

    class Meta:
        model = BacktestSchedule
        fields = ["id", "name", "version", "dataset", "symbols", "timeframe", "initial_cash",
                  "commission", "slippage_bps", "params", "rolling_days", "start", "end",
                  "cron_expression", "interval_minutes", "timezone", "paused", "next_run_at",
                  "last_run", "created_by", "created_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.DictField())
    def get_version(self, schedule: BacktestSchedule) -> dict[str, object]:
        version = schedule.version
        return {"id": str(version.pk), "strategy": str(version.strategy_id),
                "strategy_name": version.strategy.name, "number": version.number}

    @extend_schema_field(serializers.DictField())
    def get_dataset(self, schedule: BacktestSchedule) -> dict[str, object]:
        return {"id": str(schedule.dataset_id), "name": schedule.dataset.name}

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_next_run_at(self, schedule: BacktestSchedule) -> str | None:
        moment = schedule.next_run_at(now=self.context["now"])
        return None if moment is None else serializers.DateTimeField().to_representation(moment)

    @extend_schema_field(ScheduleRunSerializer(allow_null=True))
    def get_last_run(self, schedule: BacktestSchedule) -> dict[str, object] | None:
        run = schedule.runs.select_related("session").first()
        return None if run is None else dict(ScheduleRunSerializer(run).data)
