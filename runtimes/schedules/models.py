"""Backtest schedules: a strategy version backtested over a dataset on a cron expression or
every N minutes by Celery beat, with the history of their runs (the sessions they started).

They belong to runtimes, not strategies: a run is a session, and runtimes depends on
strategies, never the reverse. The tables keep their first names (strategies_backtestschedule,
strategies_schedulerun; moved by runtimes migration 0008 without touching the data). Rows are
reached through their workspace (`BacktestSchedule.objects.for_workspace(ws)`); writes go through
`runtimes.schedules.services`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.models import Workspace
from strategies.models import Dataset, StrategyVersion


class BacktestScheduleQuerySet(models.QuerySet["BacktestSchedule"]):
    def for_workspace(self, workspace: Workspace) -> BacktestScheduleQuerySet:
        return self.filter(workspace=workspace)

    def with_last_run(self) -> BacktestScheduleQuerySet:
        """Prefetch `latest_runs` (the newest run, or none) and annotate `failure_count`."""
        latest = (ScheduleRun.objects.select_related("session")
                  .order_by("-started_at", "-id"))
        return (self.prefetch_related(models.Prefetch("runs", queryset=latest[:1],
                                                      to_attr="latest_runs"))
                .annotate(failure_count=models.Count(
                    "runs", filter=models.Q(runs__status=RunStatus.FAILED))))


_now = timezone.now
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


class BacktestSchedule(models.Model):
    """A backtest of one strategy version that Celery beat starts on a cron expression or every
    N minutes, over a rolling window (the last `rolling_days` of the dataset) or fixed dates.

    Exactly one cadence (`cron_expression` or `interval_minutes`) and one window (`rolling_days`
    or `start` and `end`) are set (check constraints). `periodic_task` is the beat entry
    (django-celery-beat); `runtimes.schedules.services` creates, changes and deletes it with
    the row.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE,
                                  related_name="backtest_schedules")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    name = models.CharField(max_length=100)
    version = models.ForeignKey(StrategyVersion, on_delete=models.CASCADE,
                                related_name="schedules")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="schedules")
    symbols = models.JSONField(default=list, blank=True, help_text="empty: every symbol")
    timeframe = models.CharField(max_length=8, blank=True, help_text="empty: the dataset's")
    initial_cash = models.DecimalField(max_digits=24, decimal_places=8, default=Decimal(100_000))
    # {"percent": "0.1", "per_share": "0", "fixed": "0", "minimum": "0"} as decimal strings
    commission = models.JSONField(default=dict, blank=True)
    slippage_bps = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal(0))
    params = models.JSONField(default=dict, blank=True)
    rolling_days = models.PositiveIntegerField(null=True, blank=True)
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True)
    cron_expression = models.CharField(max_length=200, blank=True)
    interval_minutes = models.PositiveIntegerField(null=True, blank=True)
    # Cron expressions are read in this zone; UTC only for now, like every datetime here.
    timezone = models.CharField(max_length=63, default="UTC", editable=False)
    paused = models.BooleanField(default=False)
    # PROTECT: the beat entry goes away through the schedule (schedules.services), never alone.
    periodic_task = models.OneToOneField(PeriodicTask, on_delete=models.PROTECT, null=True,
                                         related_name="backtest_schedule")
    created_at = models.DateTimeField(default=_now)  # `timezone` is a field name in this class

    objects = BacktestScheduleQuerySet.as_manager()

    class Meta:
        db_table = "strategies_backtestschedule"  # its first home; see the module docstring
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="schedule_name_unique"),
            models.CheckConstraint(
                name="schedule_one_cadence",
                condition=(models.Q(cron_expression="", interval_minutes__isnull=False)
                           | (~models.Q(cron_expression="")
                              & models.Q(interval_minutes__isnull=True)))),
            models.CheckConstraint(
                name="schedule_one_window",
                condition=(models.Q(rolling_days__isnull=False, start__isnull=True,
                                    end__isnull=True)
                           | models.Q(rolling_days__isnull=True, start__isnull=False,
                                      end__isnull=False))),
        ]

    def __str__(self) -> str:
        return self.name

    def cron_parts(self) -> dict[str, str]:
        """`{minute, hour, day_of_month, month_of_year, day_of_week}` of the cron expression."""
        return dict(zip(CRON_FIELDS, self.cron_expression.split(), strict=True))

    def cadence_text(self) -> str:
        if self.cron_expression:
            return f"cron {self.cron_expression} ({self.timezone})"
        return f"every {self.interval_minutes} minutes"

    def window_text(self) -> str:
        if self.rolling_days:
            return f"the last {self.rolling_days} days of the dataset"
        assert self.start and self.end
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"

    def next_run_at(self, *, now: datetime) -> datetime | None:
        """When beat starts the next run after `now`; None while paused."""
        if self.paused:
            return None
        if self.cron_expression:
            crontab = CrontabSchedule(timezone=self.timezone, **self.cron_parts()).schedule
            last, delta, _ = crontab.remaining_delta(now)
            return last + delta  # type: ignore[no-any-return]
        assert self.interval_minutes
        every = timedelta(minutes=self.interval_minutes)
        last_run = self.periodic_task.last_run_at if self.periodic_task else None
        # Beat counts an interval from the last run, or from when it first saw the entry.
        return max((last_run or self.created_at) + every, now)


class RunStatus(models.TextChoices):
    STARTED = "started", "Started"
    FAILED = "failed", "Failed"


class ScheduleRun(models.Model):
    """One start of a schedule: the backtest it created, or why none could be created."""

    schedule = models.ForeignKey(BacktestSchedule, on_delete=models.CASCADE, related_name="runs")
    session = models.ForeignKey("runtimes.TradingSession", on_delete=models.SET_NULL, null=True,
                                blank=True, related_name="+")
    started_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=RunStatus.choices)
    error = models.TextField(blank=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "strategies_schedulerun"
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["schedule", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.schedule_id} at {self.started_at:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def is_failure(self) -> bool:
        """The run could not start its backtest, or the backtest itself failed."""
        return self.status == RunStatus.FAILED or (
            self.session is not None and self.session.state == "failed")
