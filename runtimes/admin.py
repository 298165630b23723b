"""Admin for runtimes: read-only views of sessions, their journals, results, kill switches and
deployments.

Fields are listed explicitly (never `__all__`), so a secret added to a model later (a session
token, a key) stays out of the admin until someone decides otherwise. Changes go through
`runtimes.services`, which also tell the running hosts; the admin therefore writes nothing,
except workspace quotas (runtimes/quotas.py), which only the next session created reads.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from runtimes.models import (
    Deployment,
    KillSwitch,
    SessionAudit,
    SessionEvent,
    SessionResult,
    TradingSession,
    WorkspaceQuota,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """View permission only: no add, change or delete."""

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(TradingSession)
class TradingSessionAdmin(ReadOnlyAdmin):
    list_display = ["id", "workspace", "platform", "source", "state", "timeframe", "created_at",
                    "queued_at", "dispatched_at", "kill_switch_active"]
    list_filter = ["platform", "state", "kill_switch_active"]
    search_fields = ["id", "workspace__name"]
    fields = readonly_fields = [
        "id", "workspace", "created_by", "platform", "source", "dataset", "symbols", "timeframe",
        "start", "end", "initial_cash", "commission", "slippage_bps", "connect_timeout_s",
        "idle_timeout_s", "state", "failure_reason", "events_sent", "events_acked", "batches",
        "created_at", "queued_at", "dispatched_at", "started_at", "finished_at",
        "max_order_quantity", "max_order_notional",
        "max_position_quantity", "max_open_orders", "max_orders_per_minute", "daily_loss_limit",
        "allowed_symbols", "kill_switch_active", "kill_switch_reason", "kill_switch_set_by",
        "kill_switch_set_at",
    ]


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdmin):
    list_display = ["name", "workspace", "platform", "source", "state", "created_at"]
    list_filter = ["platform", "state"]
    search_fields = ["id", "name", "workspace__name"]
    fields = readonly_fields = [
        "id", "workspace", "name", "created_by", "source", "strategy_version", "platform",
        "symbols", "timeframes", "params", "risk_limits", "initial_cash", "state",
        "failure_reason", "current_session", "created_at", "state_changed_at",
    ]


@admin.register(SessionEvent)
class SessionEventAdmin(ReadOnlyAdmin):
    list_display = ["session", "sequence", "event_id", "acked"]
    fields = readonly_fields = ["session", "sequence", "event_id", "acked", "frame"]
    list_select_related = ["session"]


@admin.register(SessionAudit)
class SessionAuditAdmin(ReadOnlyAdmin):
    list_display = ["session", "kind", "reject_code", "message", "simulated_at", "created_at"]
    list_filter = ["kind", "reject_code"]
    fields = readonly_fields = ["session", "kind", "reject_code", "message", "details",
                                "simulated_at", "created_at"]
    list_select_related = ["session"]


@admin.register(SessionResult)
class SessionResultAdmin(ReadOnlyAdmin):
    list_display = ["session", "created_at"]
    # Orders, trades and the equity curve can be megabytes: the management API pages them.
    fields = readonly_fields = ["session", "metrics", "created_at"]


@admin.register(KillSwitch)
class KillSwitchAdmin(ReadOnlyAdmin):
    list_display = ["workspace", "active", "reason", "set_by", "set_at"]
    fields = readonly_fields = ["workspace", "active", "reason", "set_by", "set_at"]


@admin.register(WorkspaceQuota)
class WorkspaceQuotaAdmin(admin.ModelAdmin):
    """A workspace's own session limits; an empty field means the default (settings QUOTA_*)."""

    list_display = ["workspace", "remote_backtests", "hosted_backtests"]
    search_fields = ["workspace__name"]
    fields = ["workspace", "remote_backtests", "hosted_backtests"]
    autocomplete_fields = ["workspace"]
