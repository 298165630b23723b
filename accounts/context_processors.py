"""Template context: the current workspace, the user's workspaces (for the switcher) and which
section of the main navigation the page belongs to."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.current import current_membership, user_memberships

# url-name prefix -> nav section (first match wins)
NAV_SECTIONS = (
    ("strategy_", "strategies"), ("version_", "strategies"), ("example", "strategies"),
    ("dataset_", "datasets"), ("backtest", "backtests"), ("schedule", "schedules"),
    ("api_key", "keys"), ("dashboard", "dashboard"), ("deployment", "deployments"),
    ("connection", "connections"), ("sweep", "sweeps"),
)


def workspaces(request: HttpRequest) -> dict[str, Any]:
    membership = current_membership(request)
    return {
        "current_membership": membership,
        "current_workspace": membership.workspace if membership else None,
        "user_memberships": user_memberships(request),
        "nav_section": nav_section(request),
    }


def nav_section(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    name = (match.url_name or "") if match else ""
    return next((section for prefix, section in NAV_SECTIONS if name.startswith(prefix)), "")
