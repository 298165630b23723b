"""Broker credentials of a workspace, checked against the one platform registry.

accounts seals and stores them (accounts/crypto.py) but cannot import this app, so the
credential's platform is a plain id there; this is where an id is accepted: a platform of the
registry (runtimes/core/platforms.py) that connects to a broker.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError

from accounts import services as accounts_services
from accounts.models import BrokerCredential, User, Workspace
from runtimes.core.platforms import PLATFORMS


def broker_platforms() -> list[str]:
    """The ids of the platforms that need a broker credential, in registry order."""
    return [spec.id for spec in PLATFORMS.values() if spec.needs_connection]


def add_broker_credential(
    *, workspace: Workspace, by: User, platform: str, label: str, secret: dict[str, Any]
) -> BrokerCredential:
    """Encrypt and store `secret` for `platform` (owner only). Raises ValidationError
    {"platform": [...]} unless the registry knows `platform` as one that connects to a broker,
    and PermissionDenied for a member who is not an owner."""
    if platform not in broker_platforms():
        raise ValidationError({"platform": [f"Choose one of {', '.join(broker_platforms())}."]})
    return accounts_services.store_broker_credential(
        workspace=workspace, by=by, platform=platform, label=label, secret=secret)
