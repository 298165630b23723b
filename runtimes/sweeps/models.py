"""Sweeps and their points: a strategy version, a dataset and a parameter space, run as one
hosted backtest (a TradingSession with `sweep` set) per point. A point waits without a session
while the workspace's quota is full; its state is its session's. Rows are reached through their
workspace; writes go through `runtimes.sweeps.services`."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import Workspace


class SweepState(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


class Phase(models.TextChoices):
    # The whole range (no walk-forward split), its in-sample part, or its out-of-sample part.
    FULL = "full", "Whole range"
    IN_SAMPLE = "in_sample", "In-sample"
    OUT_OF_SAMPLE = "out_of_sample", "Out-of-sample"


class SweepQuerySet(models.QuerySet["Sweep"]):
    def for_workspace(self, workspace: Workspace) -> SweepQuerySet:
        return self.filter(workspace=workspace)


class Sweep(models.Model):
    """A parameter sweep. `space` is the space as validated (runtimes/sweeps/space.py);
    `split_at` (walk-forward) ends the in-sample range and starts the out-of-sample one, where
    the `oos_top` best in-sample points by `metric` run again."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="sweeps")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, related_name="+")
    name = models.CharField(max_length=100)
    version = models.ForeignKey("strategies.StrategyVersion", on_delete=models.PROTECT,
                                related_name="sweeps")
    dataset = models.ForeignKey("strategies.Dataset", on_delete=models.PROTECT,
                                related_name="sweeps")
    symbols = models.JSONField(default=list)
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True)
    initial_cash = models.DecimalField(max_digits=24, decimal_places=8, default=Decimal(100_000))
    commission = models.JSONField(default=dict, blank=True)  # decimal strings, as a session's
    slippage_bps = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal(0))
    # {"mode", "parameters", "fixed", "samples", "seed"} as given, once validated.
    space = models.JSONField(default=dict)
    metric = models.CharField(max_length=40, default="sharpe")
    split_at = models.DateTimeField(null=True, blank=True)
    oos_top = models.PositiveSmallIntegerField(default=0)
    state = models.CharField(max_length=10, choices=SweepState.choices,
                             default=SweepState.RUNNING)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = SweepQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["workspace", "-created_at"]),
                   models.Index(fields=["state"], name="sweep_state_idx")]

    def __str__(self) -> str:
        return f"sweep {self.name} ({self.state})"

    @property
    def walk_forward(self) -> bool:
        return self.split_at is not None


class SweepPoint(models.Model):
    """One point of a sweep: its parameters and, once the quota let it start, its backtest (or,
    refused, its `failure_reason`). An out-of-sample point names the in-sample point it checks
    (`checks`)."""

    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="points")
    index = models.PositiveIntegerField()
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.FULL)
    params = models.JSONField(default=dict)
    # CASCADE, not SET_NULL: a point whose backtest is deleted goes with it (a point without a
    # session is one still waiting for the quota, which would start again).
    session = models.OneToOneField("runtimes.TradingSession", on_delete=models.CASCADE,
                                   null=True, blank=True, related_name="sweep_point")
    checks = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True,
                               related_name="checked_by")
    # Why the point could not start (its backtest was refused, e.g. a range with no bars): such
    # a point is failed without a session, and no longer waits.
    failure_reason = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["sweep", "phase", "index"]
        constraints = [models.UniqueConstraint(fields=["sweep", "phase", "index"],
                                               name="sweep_point_unique")]

    def __str__(self) -> str:
        return f"point {self.index} ({self.phase}) of {self.sweep_id}"
