"""What the dashboard says of the brokers' bans: while Binance bans the IP this platform calls it
from (a 418 after too many requests), every page of a workspace with a Binance connection says
until when, and the connections page says it on each Binance connection.

The ban is read where every process sees it: the shared per-IP budget
(runtimes/hosting/shared_budget.py), in Redis when the platform runs on it, else in this process
(the embedded platform's web and workers are one process).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest

from accounts.current import current_membership
from accounts.models import BrokerCredential
from runtimes.core.platforms import PLATFORMS
from runtimes.hosting import brokers


def banned_until(credential: BrokerCredential) -> datetime | None:
    """When the ban of the IP `credential`'s sessions call from ends (None without one)."""
    shared = brokers.shared_budget_for(credential)
    until = shared.banned_until() if shared is not None else None
    return None if until is None else datetime.fromtimestamp(until, UTC)


def ban_message(broker_label: str, until: datetime) -> str:
    return (f"{broker_label} has banned this server's IP until {until:%H:%M} UTC after too many "
            f"requests; {broker_label} sessions are stopped until then.")


def bans_of(credentials: list[BrokerCredential]) -> list[str]:
    """One sentence per broker whose ban holds now, over the IPs of `credentials`."""
    latest: dict[str, datetime] = {}
    for credential in credentials:
        until = banned_until(credential)
        label = brokers.FAMILIES[PLATFORMS[credential.platform].broker].label
        if until is not None and (label not in latest or until > latest[label]):
            latest[label] = until
    return [ban_message(label, until) for label, until in sorted(latest.items())]


def broker_alerts(request: HttpRequest) -> dict[str, Any]:
    """Template context: `broker_alerts`, the bans that stop this workspace's sessions. Bans are
    rare: each platform with a per-IP budget is asked first (no query), and only a platform
    under a ban costs a query (does this workspace have a connection on it?)."""
    membership = current_membership(request)
    if membership is None:
        return {"broker_alerts": []}
    latest: dict[str, datetime] = {}
    for platform in _shared_budget_platforms():
        shared = brokers.shared_budget_of(platform, str(membership.workspace_id))
        until = None if shared is None else shared.banned_until()
        if until is None or not BrokerCredential.objects.for_workspace(
                membership.workspace).filter(platform=platform).exists():
            continue
        label = brokers.FAMILIES[PLATFORMS[platform].broker].label
        moment = datetime.fromtimestamp(until, UTC)
        if label not in latest or moment > latest[label]:
            latest[label] = moment
    return {"broker_alerts": [ban_message(label, until) for label, until in sorted(latest.items())]}


def _shared_budget_platforms() -> list[str]:
    return [platform for platform in PLATFORMS
            if (family := brokers.family_of(platform)) is not None
            and family.shared_limit_setting]
