"""Trading sessions (one strategy connected to one runtime), their event journal and results.

State moves by conditional updates only (`TradingSession.transition`); the per-event path never
touches these rows: the host journals in memory and writes events and results in bulk.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import Workspace


class Platform(models.TextChoices):
    BACKTEST = "backtest", "Backtest"


class Source(models.TextChoices):
    REMOTE = "remote", "Remote strategy (API key)"
    HOSTED = "hosted", "Hosted strategy (sandbox)"


class State(models.TextChoices):
    CREATED = "created", "Created"
    WAITING = "waiting", "Waiting for the strategy"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATES = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED})
LIVE_STATES = frozenset({State.CREATED, State.WAITING, State.RUNNING})


class TradingSessionQuerySet(models.QuerySet["TradingSession"]):
    def for_workspace(self, workspace: Workspace) -> TradingSessionQuerySet:
        return self.filter(workspace=workspace)


class TradingSession(models.Model):
    """One strategy connected to one runtime: today a backtest over a dataset."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="sessions")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    platform = models.CharField(max_length=20, choices=Platform.choices, default=Platform.BACKTEST)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.REMOTE)
    dataset = models.ForeignKey(
        "strategies.Dataset", on_delete=models.PROTECT, null=True, related_name="sessions"
    )
    symbols = models.JSONField(default=list)
    timeframe = models.CharField(max_length=8)
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True)
    initial_cash = models.DecimalField(max_digits=24, decimal_places=8, default=Decimal(100_000))
    # {"percent": "0.1", "per_share": "0", "fixed": "0", "minimum": "0"} as decimal strings
    commission = models.JSONField(default=dict)
    slippage_bps = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal(0))
    connect_timeout_s = models.PositiveIntegerField(default=60)
    idle_timeout_s = models.PositiveIntegerField(default=300)
    state = models.CharField(max_length=10, choices=State.choices, default=State.CREATED)
    failure_reason = models.CharField(max_length=300, blank=True)
    events_sent = models.PositiveIntegerField(default=0)
    events_acked = models.PositiveIntegerField(default=0)
    batches = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TradingSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["workspace", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.platform} session {self.id} ({self.state})"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def transition(
        self, *, to: str, allowed_from: frozenset[str] | set[str], **fields: Any
    ) -> bool:
        """Move to `to` only if the row is still in one of `allowed_from` (a conditional UPDATE);
        also writes `fields`. Returns whether this call made the move; the instance follows."""
        updated = TradingSession.objects.filter(pk=self.pk, state__in=allowed_from).update(
            state=to, **fields
        )
        if updated:
            self.state = to
            for name, value in fields.items():
                setattr(self, name, value)
        return updated == 1

    def finish(self, *, to: str, now: datetime, reason: str = "", **fields: Any) -> bool:
        """End the session (from any live state) with a reason; False if it had already ended."""
        return self.transition(
            to=to, allowed_from=LIVE_STATES, finished_at=now, failure_reason=reason[:300], **fields
        )


class SessionEvent(models.Model):
    """One frame the session emitted (journal), written in bulk: for resume, replay and audit."""

    session = models.ForeignKey(TradingSession, on_delete=models.CASCADE, related_name="events")
    sequence = models.PositiveIntegerField()
    event_id = models.CharField(max_length=24)
    frame = models.TextField()  # the exact JSON text sent
    acked = models.BooleanField(default=False)

    class Meta:
        ordering = ["session", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["session", "sequence"], name="session_event_unique")
        ]


class SessionResult(models.Model):
    """What a finished backtest leaves: orders, trades, equity and metrics as JSON."""

    session = models.OneToOneField(TradingSession, on_delete=models.CASCADE, related_name="result")
    orders = models.JSONField(default=list)
    trades = models.JSONField(default=list)
    equity = models.JSONField(default=list)  # [[iso timestamp, equity string], ...]
    metrics = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
