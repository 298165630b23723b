"""Trading sessions (one strategy connected to one runtime), their event journal and results.

State moves by conditional updates only (`TradingSession.transition`); the per-event path never
touches these rows: the host journals in memory and writes events and results in bulk.
Backtest schedules have their own module, runtimes/schedules/models.py (imported below so that
Django registers them with this app).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts import auth_cache
from accounts.models import Workspace, role_of
from runtimes.core import platforms
from runtimes.core.costs import Commission
from runtimes.core.execution import BacktestConfig
from runtimes.core.platforms import BACKTEST as BACKTEST_PLATFORM
from runtimes.core.platforms import choices as platform_choices
from runtimes.core.provider import Pacing
from runtimes.failures import Failure, explain_failure

if TYPE_CHECKING:
    from runtimes.hosting.risk import RiskLimits


class Platform:
    """Ids of the platforms code here names; every platform and its label is in the registry
    (runtimes/core/platforms.py), which gives the field its choices."""

    BACKTEST = platforms.BACKTEST
    MOCK = platforms.MOCK


class Source(models.TextChoices):
    REMOTE = "remote", "Remote strategy (API key)"
    HOSTED = "hosted", "Hosted strategy (sandbox)"


class State(models.TextChoices):
    # Created: nothing asked for a worker yet (a remote session until its strategy's first
    # request or socket). Queued: waiting for a worker slot (runtimes/dispatch.py).
    CREATED = "created", "Created"
    QUEUED = "queued", "Queued for a worker"
    WAITING = "waiting", "Waiting for the strategy"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# A run's name: long enough for a strategy's name, its version and a range, short for a row.
NAME_MAX_LENGTH = 120

TERMINAL_STATES = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED})
LIVE_STATES = frozenset({State.CREATED, State.QUEUED, State.WAITING, State.RUNNING})
# States that hold a worker slot: a host runs the session.
WORKER_STATES = frozenset({State.WAITING, State.RUNNING})


class TradingSessionQuerySet(models.QuerySet["TradingSession"]):
    def for_workspace(self, workspace: Workspace) -> TradingSessionQuerySet:
        return self.filter(workspace=workspace)

    def live(self) -> TradingSessionQuerySet:
        return self.filter(state__in=LIVE_STATES)

    def with_total_bars(self) -> TradingSessionQuerySet:
        """Annotate `total_bars`: the most bars any file of the session's dataset has (the
        number of batches a whole-dataset run emits when the symbols share their timestamps),
        and `dataset_symbols`, how many symbols the dataset has: `progress_total` uses them
        only for a run over all of them."""
        return self.annotate(total_bars=models.Max("dataset__files__rows"),
                             dataset_symbols=models.Count("dataset__files"))


class TradingSession(models.Model):
    """One strategy connected to one runtime: today a backtest over a dataset."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="sessions")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    # What people call the run: editable; a backtest's defaults to its strategy, version and
    # range (runtimes/backtests.py default_name). Blank for sessions nobody named (`title`).
    name = models.CharField(max_length=NAME_MAX_LENGTH, blank=True)
    platform = models.CharField(max_length=20, choices=platforms.choices(),
                                default=Platform.BACKTEST)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.REMOTE)
    dataset = models.ForeignKey(
        "strategies.Dataset", on_delete=models.PROTECT, null=True, related_name="sessions"
    )
    symbols = models.JSONField(default=list)
    timeframe = models.CharField(max_length=8)  # the stream's (and a backtest's dataset's)
    timeframes = models.JSONField(default=list, blank=True)  # more to stream (wall clock)
    # Platform-specific settings given at creation (a bounded JSON object: e.g. mock's seed).
    options = models.JSONField(default=dict, blank=True)
    # The workspace's broker connection a broker platform's session trades through (copied from
    # its deployment at start). SET_NULL, not PROTECT: keys must stay deletable once nothing
    # runs on them (a finished session keeps its history, not its keys); while a live session
    # or an active deployment uses them, runtimes.credentials refuses the deletion.
    connection = models.ForeignKey("accounts.BrokerCredential", on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="sessions")
    # The provider's snapshot (Provider.snapshot) as its host left it: what a host taking the
    # session over restores, and a wall-clock session's final state once it ended.
    provider_state = models.JSONField(null=True, blank=True)
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
    total_batches = models.PositiveIntegerField(null=True, blank=True)  # known once it started
    # The lease of the host running the session (runtimes/leases.py): who holds it, until when
    # (renewed every few seconds), and the fencing number that moves on whenever it changes hands.
    lease_holder = models.CharField(max_length=120, blank=True)
    lease_fence = models.PositiveBigIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Event ids a host may hand out without asking (a wall-clock host reserves them in blocks,
    # under its fence): a host taking the session over starts after them, never reusing an id
    # its predecessor may have sent but not journaled (docs/session-lifecycle.md).
    event_ids_reserved = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    # When it asked for a worker (queued), and when a worker claimed it (runtimes/dispatch.py).
    queued_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Risk limits, enforced by the host before the engine sees an order (runtimes/risk.py).
    # None means "no limit"; allowed_symbols defaults to the session's symbols at creation.
    max_order_quantity = models.DecimalField(max_digits=30, decimal_places=12, null=True,
                                             blank=True)
    max_order_notional = models.DecimalField(max_digits=30, decimal_places=12, null=True,
                                             blank=True)
    max_position_quantity = models.DecimalField(max_digits=30, decimal_places=12, null=True,
                                                blank=True)
    max_open_orders = models.PositiveIntegerField(null=True, blank=True)
    max_orders_per_minute = models.PositiveIntegerField(null=True, blank=True)
    daily_loss_limit = models.DecimalField(max_digits=30, decimal_places=12, null=True,
                                           blank=True)
    allowed_symbols = models.JSONField(default=list)
    # The session's own kill switch: one-way, set through the management API.
    kill_switch_active = models.BooleanField(default=False)
    kill_switch_reason = models.CharField(max_length=300, blank=True)
    kill_switch_set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )
    kill_switch_set_at = models.DateTimeField(null=True, blank=True)
    # Hosted runs (source=hosted): the version run in the sandbox, its parameters, and what the
    # sandbox left: whether bubblewrap applied (None until started), its captured output.
    strategy_version = models.ForeignKey(
        "strategies.StrategyVersion", on_delete=models.PROTECT, null=True, blank=True,
        related_name="sessions",
    )
    params = models.JSONField(default=dict, blank=True)
    # The parameter sweep this backtest is a point of (runtimes/sweeps/); None for the others.
    sweep = models.ForeignKey("runtimes.Sweep", on_delete=models.CASCADE, null=True, blank=True,
                              related_name="sessions")
    sandboxed = models.BooleanField(null=True, blank=True)
    output = models.TextField(blank=True)  # stdout + stderr, capped (SANDBOX_MAX_OUTPUT_BYTES)
    output_tail = models.TextField(blank=True)  # the last lines, kept even past the cap
    output_truncated_bytes = models.PositiveBigIntegerField(default=0)

    objects = TradingSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["workspace", "-created_at"]),
                   models.Index(fields=["state", "queued_at"], name="session_state_queued_at"),
                   models.Index(fields=["state", "lease_expires_at"], name="session_lease_idx")]

    def __str__(self) -> str:
        return f"{self.platform} session {self.id} ({self.state})"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def title(self) -> str:
        """Its name, or for a session nobody named its platform and creation time."""
        if self.name:
            return self.name
        return f"{self.get_platform_display()} session · {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def is_live_platform(self) -> bool:
        """Whether it trades real money (its platform's spec.live): its pages say so in red."""
        spec = platforms.PLATFORMS.get(self.platform)
        return spec is not None and spec.live

    def failure(self) -> Failure | None:
        """A failed session's reason explained (runtimes/failures.py); None unless it failed."""
        if self.state != State.FAILED:
            return None
        return explain_failure(reason=self.failure_reason, output_tail=self.output_tail,
                               truncated_bytes=self.output_truncated_bytes)

    def progress_total(self) -> int | None:
        """How many batches the run emits: counted by its host when it started (its symbols
        over its period); before that, estimated from the dataset (`with_total_bars()`) for a
        run over all of its symbols and all of its time; None when unknown."""
        if self.total_batches:
            return self.total_batches
        whole = (not self.start and not self.end
                 and getattr(self, "dataset_symbols", None) == len(self.symbols))
        return getattr(self, "total_bars", None) if whole else None

    def progress_percent(self) -> int | None:
        """Batches emitted as a share of `progress_total()` (0-100), or None when unknown."""
        if self.state == State.COMPLETED:
            return 100
        total = self.progress_total()
        if not total:
            return None
        return min(100, self.batches * 100 // total)

    def transition(
        self, *, to: str, allowed_from: frozenset[str] | set[str], **fields: Any
    ) -> bool:
        """Move to `to` only if the row is still in one of `allowed_from` (a conditional UPDATE);
        also writes `fields`. Returns whether this call made the move; the instance follows."""
        updated = TradingSession.objects.filter(pk=self.pk, state__in=allowed_from).update(
            state=to, **fields
        )
        if updated:
            auth_cache.invalidate_all()  # cached session-token checks carry the state
            self.state = to
            for name, value in fields.items():
                setattr(self, name, value)
        return updated == 1

    def finish(self, *, to: str, now: datetime, reason: str = "", **fields: Any) -> bool:
        """End the session (from any live state) with a reason; False if it had already ended."""
        return self.transition(
            to=to, allowed_from=LIVE_STATES, finished_at=now, failure_reason=reason[:300], **fields
        )

    def end_for_lost_host(self, *, to: str, now: datetime, reason: str) -> bool:
        """End the session in place of its host, which is gone (or may as well be): only while
        the lease is still the one read (`lease_fence`), moving the fence on so that the host,
        were it alive after all, stops and writes nothing more. False if anything moved first."""
        updated = TradingSession.objects.filter(
            pk=self.pk, state__in=LIVE_STATES, lease_fence=self.lease_fence,
        ).update(state=to, finished_at=now, failure_reason=reason[:300],
                 lease_fence=models.F("lease_fence") + 1, lease_holder="", lease_expires_at=None)
        if updated:
            auth_cache.invalidate_all()
            self.state, self.finished_at, self.failure_reason = to, now, reason[:300]
            self.lease_fence += 1
            self.lease_holder, self.lease_expires_at = "", None
        return updated == 1

    def stream_timeframes(self) -> tuple[str, ...]:
        """The timeframes whose candles stream: the session's, then any more it asked for."""
        extra = (t for t in self.timeframes or () if t != self.timeframe)
        return (self.timeframe, *extra)

    def subscriptions(self) -> dict[str, list[str]]:
        """What the stream carries (`subscriptions` of GET /v1/session): a wall-clock market
        streams quotes too; a backtest streams candles only."""
        spec = platforms.PLATFORMS.get(self.platform)
        quotes = spec is not None and spec.pacing == Pacing.WALL_CLOCK
        return {"symbols": list(self.symbols), "timeframes": list(self.stream_timeframes()),
                "events": ["candle", *(["quote"] if quotes else []), "order", "trade",
                           "position", "account"]}
    def requeue_for_lost_host(self, *, now: datetime) -> bool:
        """Put a wall-clock session whose host is gone back in the queue for another worker,
        only while the lease is still the one read (`lease_fence`), moving the fence on so that
        the old host, were it alive after all, writes nothing more and sends no order. False if
        anything moved first."""
        updated = TradingSession.objects.filter(
            pk=self.pk, state__in=WORKER_STATES, lease_fence=self.lease_fence,
        ).update(state=State.QUEUED, queued_at=now, lease_fence=models.F("lease_fence") + 1,
                 lease_holder="", lease_expires_at=None)
        if updated:
            auth_cache.invalidate_all()
            self.state, self.queued_at = State.QUEUED, now
            self.lease_fence += 1
            self.lease_holder, self.lease_expires_at = "", None
        return updated == 1

    def risk_limits(self) -> RiskLimits:
        """The limits the host enforces, as the framework-free value the checks read."""
        from runtimes.hosting.risk import RiskLimits  # risk.py reads these models: import at use

        return RiskLimits(
            max_order_quantity=_decimal_or_none(self.max_order_quantity),
            max_order_notional=_decimal_or_none(self.max_order_notional),
            max_position_quantity=_decimal_or_none(self.max_position_quantity),
            max_open_orders=self.max_open_orders,
            max_orders_per_minute=self.max_orders_per_minute,
            daily_loss_limit=_decimal_or_none(self.daily_loss_limit),
            allowed_symbols=tuple(self.allowed_symbols or self.symbols),
        )

    def backtest_config(self) -> BacktestConfig:
        """The engine settings of this session; its execution contract is derived from them."""
        commission = Commission(**{k: Decimal(v) for k, v in (self.commission or {}).items()})
        return BacktestConfig(
            initial_cash=_plain(Decimal(self.initial_cash)),
            commission=commission,
            slippage_bps=_plain(Decimal(self.slippage_bps)),
        )


def _decimal_or_none(value: Any) -> Decimal | None:
    # Stored with 12 places; normalised so "100" reads as 100, not 100.000000000000.
    return None if value is None else _plain(Decimal(value))


def _plain(value: Decimal) -> Decimal:
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal == normal.to_integral() else normal


class SessionTokenQuerySet(models.QuerySet["SessionToken"]):
    def usable(self, now: datetime) -> SessionTokenQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=now)

    def with_creator_role(self) -> SessionTokenQuerySet:
        """Annotate `creator_role`: the role of the run's starter (the session's creator) in its
        workspace now; a token acts for them (None when they are no longer a member)."""
        return self.annotate(creator_role=role_of("session__workspace", "session__created_by"))


class SessionToken(models.Model):
    """The credential of one hosted run: valid for its own session only, until it ends.

    `pst_<12 prefix>_<40 secret>` (config/logging.py redacts the type); only the keyed hash of
    the whole token is stored (accounts.keys.keyed_hash), the prefix is the lookup id.
    """

    session = models.ForeignKey(TradingSession, on_delete=models.CASCADE, related_name="tokens")
    prefix = models.CharField(max_length=12, unique=True)
    hashed_secret = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = SessionTokenQuerySet.as_manager()
    creator_role: str | None = None  # set by authenticate_session_token: the starter's role now

    def __str__(self) -> str:
        return f"pst_{self.prefix}_… (session {self.session_id})"

    def is_usable(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


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
    # The final state as the Trading API showed it when the session ended (completed, failed or
    # cancelled alike): `/v1/account`, `/v1/positions` and `/v1/session` answer it afterwards.
    account = models.JSONField(default=dict)
    positions = models.JSONField(default=list)
    session_info = models.JSONField(default=dict)
    # A completed backtest's round trips, one list of values a trip in the order of
    # runtimes.core.trade_analysis.ROUND_TRIP_FIELDS (keys repeated 100,000 times would double
    # the row), and the rest of its trade analysis: per-symbol results, monthly returns and the
    # buy-and-hold benchmark with a downsampled curve. Empty on results stored before them.
    round_trips = models.JSONField(default=list)
    analysis = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)


class ShareLinkQuerySet(models.QuerySet["ShareLink"]):
    def for_workspace(self, workspace: Workspace) -> ShareLinkQuerySet:
        return self.filter(session__workspace=workspace)

    def with_creator_role(self) -> ShareLinkQuerySet:
        """Annotate `creator_role`: the role its creator has in the session's workspace now."""
        return self.annotate(creator_role=role_of("session__workspace", "created_by"))


class ShareLink(models.Model):
    """A session URL that carries its own credential (`{origin}/share/psl_<12>_<40>`), for
    clients that cannot send headers. Opt-in per session, never for a live platform; it acts
    with the access of whoever made it (the API key, or the member when made from a login),
    re-checked on every use. Only the keyed hash of the whole token is stored."""

    session = models.ForeignKey(TradingSession, on_delete=models.CASCADE,
                                related_name="share_links")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                   related_name="+")
    # The key it was made with: revoking the key ends the link too. Null: made from a login.
    api_key = models.ForeignKey("accounts.ApiKey", on_delete=models.CASCADE, null=True,
                                blank=True, related_name="+")
    label = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12, unique=True)
    hashed_secret = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ShareLinkQuerySet.as_manager()
    creator_role: str | None = None  # set by with_creator_role()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"share link psl_{self.prefix}_… (session {self.session_id})"

    def is_usable(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


class SessionAudit(models.Model):
    """An event-free journal record: something the platform decided about a session that the
    strategy never received as a frame (a blocked order, a kill switch). Written in bulk."""

    class Kind(models.TextChoices):
        ORDER_BLOCKED = "order_blocked", "Order blocked by a risk limit"
        KILL_SWITCH = "kill_switch", "Kill switch set"

    session = models.ForeignKey(TradingSession, on_delete=models.CASCADE, related_name="audits")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    reject_code = models.CharField(max_length=40, blank=True)
    message = models.CharField(max_length=300)
    # The operation and request body that were refused, and the limit and value involved.
    details = models.JSONField(default=dict)
    simulated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["session", "id"]


class KillSwitchQuerySet(models.QuerySet["KillSwitch"]):
    def for_workspace(self, workspace: Workspace) -> KillSwitchQuerySet:
        return self.filter(workspace=workspace)


class KillSwitch(models.Model):
    """The workspace-wide kill switch: while active, no session of the workspace accepts a new
    order. One row per workspace, created the first time the switch is set."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE,
                                     related_name="kill_switch")
    active = models.BooleanField(default=False)
    reason = models.CharField(max_length=300, blank=True)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    set_at = models.DateTimeField(default=timezone.now)

    objects = KillSwitchQuerySet.as_manager()

    def __str__(self) -> str:
        return f"kill switch of {self.workspace_id} ({'active' if self.active else 'off'})"


class PlatformInstance(models.Model):
    """This deployment's identity, one row shared through the database by its web and worker
    processes: a secret that lets a host check that an address answers as this very platform
    before it hands a session token there (runtimes/instance.py)."""

    secret = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"platform instance created {self.created_at:%Y-%m-%d %H:%M}"


class WorkspaceQuota(models.Model):
    """A workspace's own limits on concurrent sessions, by kind (runtimes/quotas.py); an empty
    field means the platform's default (settings QUOTA_*). Edited in the Django admin."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="quota")
    # Sessions of the kind that may be live at once (created, queued, waiting or running).
    remote_backtests = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Remote backtest sessions (API key) live at once; empty: the default.")
    hosted_backtests = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Hosted backtests queued or running at once; empty: the default.")

    def __str__(self) -> str:
        return f"quota of {self.workspace_id}"


class DeploymentState(models.TextChoices):
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused (no new orders)"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


# A deployment in one of these has a session that is (or is about to be) live.
ACTIVE_DEPLOYMENT_STATES = frozenset({DeploymentState.STARTING, DeploymentState.RUNNING,
                                      DeploymentState.PAUSED, DeploymentState.STOPPING})


def deployable_platforms() -> list[tuple[str, str]]:
    """Every platform of the registry but `backtest` (a backtest is not deployed)."""
    return [(pid, label) for pid, label in platform_choices() if pid != BACKTEST_PLATFORM]


class DeploymentQuerySet(models.QuerySet["Deployment"]):
    def for_workspace(self, workspace: Workspace) -> DeploymentQuerySet:
        return self.filter(workspace=workspace)

    def active(self) -> DeploymentQuerySet:
        return self.filter(state__in=ACTIVE_DEPLOYMENT_STATES)


class Deployment(models.Model):
    """A strategy put to trade on a paper or live platform: a hosted version (run in the
    sandbox) or a remote strategy (API key). Each start opens a new session (`sessions`, the
    history; `current_session`, the latest); the state follows it (runtimes/deployments.py)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="deployments")
    name = models.CharField(max_length=100)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    strategy_version = models.ForeignKey(
        "strategies.StrategyVersion", on_delete=models.PROTECT, null=True, blank=True,
        related_name="deployments",
    )
    platform = models.CharField(max_length=20, choices=deployable_platforms())
    # The broker connection of a broker platform (spec.needs_connection), of this workspace and
    # on this very platform; SET_NULL for the reason given on TradingSession.connection: a
    # stopped deployment whose keys were deleted cannot start until it is given others.
    connection = models.ForeignKey("accounts.BrokerCredential", on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="deployments")
    symbols = models.JSONField(default=list)
    timeframes = models.JSONField(default=list)
    params = models.JSONField(default=dict, blank=True)
    # RiskLimits.as_json(): decimals as strings, counts as ints, None for "no limit".
    risk_limits = models.JSONField(default=dict, blank=True)
    initial_cash = models.DecimalField(max_digits=24, decimal_places=8, default=Decimal(100_000))
    state = models.CharField(max_length=10, choices=DeploymentState.choices,
                             default=DeploymentState.STOPPED)
    failure_reason = models.CharField(max_length=300, blank=True)
    current_session = models.ForeignKey(
        TradingSession, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    sessions = models.ManyToManyField(TradingSession, blank=True, related_name="deployments")
    created_at = models.DateTimeField(default=timezone.now)
    state_changed_at = models.DateTimeField(default=timezone.now)

    objects = DeploymentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"],
                                               name="deployment_name_unique")]
        indexes = [models.Index(fields=["workspace", "-created_at"])]

    def __str__(self) -> str:
        return f"deployment {self.name} on {self.platform} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_DEPLOYMENT_STATES

    def transition(
        self, *, to: str, allowed_from: frozenset[str] | set[str], **fields: Any
    ) -> bool:
        """Move to `to` only if the row is still in one of `allowed_from` (a conditional UPDATE);
        also writes `fields`. Returns whether this call made the move; the instance follows."""
        fields.setdefault("state_changed_at", timezone.now())
        updated = Deployment.objects.filter(pk=self.pk, state__in=allowed_from).update(
            state=to, **fields)
        if updated:
            self.state = to
            for name, value in fields.items():
                setattr(self, name, value)
        return updated == 1


# Last: Django registers an app's models from its models module; the schedules' and sweeps'
# models import strategies and accounts only (sessions by name), never this module, so the
# order is free of cycles.
import runtimes.schedules.models  # noqa: E402
import runtimes.sweeps.models  # noqa: E402, F401
