"""Per-workspace quotas: how many sessions of each kind a workspace may have live at once.

A kind is what a session runs on (remote backtests, hosted backtests; paper and live deployments
join later as kinds of their own). The limit is the workspace's own (WorkspaceQuota, edited in
the admin) or the platform default (settings QUOTA_*). Refusals name the limit and how to raise it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from django.conf import settings

from accounts.models import Workspace
from config.errors import ApiError
from runtimes.models import LIVE_STATES, Platform, Source, TradingSession, WorkspaceQuota


@dataclass(frozen=True)
class SessionKind:
    name: str  # as in the error's details
    label: str  # as in the error's message
    platform: str
    source: str
    setting: str  # the default's setting, also the WorkspaceQuota field in lower case

    @property
    def field(self) -> str:
        return self.setting.removeprefix("QUOTA_").lower()


REMOTE_BACKTEST = SessionKind(
    "remote_backtest",
    "remote backtest sessions",
    Platform.BACKTEST,
    Source.REMOTE,
    "QUOTA_REMOTE_BACKTESTS",
)
HOSTED_BACKTEST = SessionKind(
    "hosted_backtest",
    "hosted backtests",
    Platform.BACKTEST,
    Source.HOSTED,
    "QUOTA_HOSTED_BACKTESTS",
)
KINDS = (REMOTE_BACKTEST, HOSTED_BACKTEST)


def kind_of(*, platform: str, source: str) -> SessionKind:
    """The quota kind of a session. A platform without kinds of its own yet (mock) gets the
    limit of its source's backtests, counted among its own platform's sessions."""
    known = next((k for k in KINDS if (k.platform, k.source) == (platform, source)), None)
    if known is not None:
        return known
    borrowed = next(k for k in KINDS if k.source == source)
    return replace(borrowed, label=f"{source} {platform} sessions", platform=platform)


def quota_limit(*, workspace: Workspace, kind: SessionKind) -> int:
    """The workspace's own limit for `kind` if set, else the platform default."""
    own = (
        WorkspaceQuota.objects.filter(workspace=workspace)
        .values_list(kind.field, flat=True)
        .first()
    )
    return int(getattr(settings, kind.setting)) if own is None else int(own)


def check_quota(*, workspace: Workspace, kind: SessionKind) -> None:
    """Raise ApiError QUOTA_EXCEEDED (429) when `workspace` already has as many live sessions of
    `kind` as its limit allows. Call inside the transaction that creates the session, after
    locking the workspace row (`lock_workspace`), so two creations cannot both pass."""
    limit = quota_limit(workspace=workspace, kind=kind)
    live = (
        TradingSession.objects.for_workspace(workspace)
        .filter(platform=kind.platform, source=kind.source, state__in=LIVE_STATES)
        .count()
    )
    if live < limit:
        return
    raise ApiError(
        "QUOTA_EXCEEDED",
        f"This workspace may have at most {limit} {kind.label} queued or running at once and has "
        f"{live}. Wait for one to end or cancel one; to raise the limit, ask an administrator to "
        f"set '{kind.field}' in Workspace quotas (Django admin) or the default {kind.setting}.",
        status_code=429,
        details={"kind": kind.name, "limit": limit, "running": live},
    )


def lock_workspace(workspace: Workspace) -> None:
    """Serialise session creation per workspace (a row lock on PostgreSQL; SQLite serialises
    every write anyway)."""
    Workspace.objects.select_for_update().filter(pk=workspace.pk).values_list("pk").first()
