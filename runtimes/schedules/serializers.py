"""Serializers of the management API for backtest schedules and their runs."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.decimal_fields import DecimalField
from runtimes.schedules.models import BacktestSchedule, ScheduleRun


class ScheduleWriteSerializer(serializers.Serializer):
    """A schedule's settings. Create: name, version, dataset, one cadence and one window are
    required (schedules.services checks the combination); PATCH: any of the editable ones."""

    name = serializers.CharField(max_length=100)
    version = serializers.UUIDField(help_text="A strategy version's id.")
    dataset = serializers.UUIDField()
    cron_expression = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                            help_text="5 fields, UTC: minute hour "
                                                      "day-of-month month day-of-week.")
    interval_minutes = serializers.IntegerField(required=False, allow_null=True,
                                                help_text="At least 5, at most 527040 (366 days).")
    rolling_days = serializers.IntegerField(required=False, allow_null=True,
                                            help_text="The last N days ending at the "
                                                      "dataset's last bar; 1 to 36600.")
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
