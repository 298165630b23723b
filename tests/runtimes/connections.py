"""Broker connections for tests that need one stored but are not about checking keys: sealed
and stored as runtimes.credentials would after the broker accepted them."""

from __future__ import annotations

from django.utils import timezone

from accounts.services import store_broker_credential

KEY_ID = "PKTESTKEY0000000WXYZ"
SECRET = "test-alpaca-secret-value-0123456789"


def stored_connection(workspace, owner, *, platform="alpaca-paper", label="Paper account",
                      key_id=KEY_ID, secret=SECRET, feed="iex"):
    options = {"key_type": "hmac"} if platform.startswith("binance") else {"feed": feed}
    return store_broker_credential(
        workspace=workspace, by=owner, platform=platform, label=label,
        secret={"key_id": key_id, "secret": secret}, key_hint=key_id[-4:],
        options=options, validated_at=timezone.now(),
        account_summary={"account_number": "…7890", "status": "ACTIVE", "currency": "USD"})


def deployment_started_on(connection, workspace, owner):
    """A paper deployment on `connection`, started: its session holds the connection in use."""
    from runtimes import deployments

    deployment = deployments.create_deployment(
        workspace=workspace, created_by=owner, role="owner", name="SMA paper",
        platform=connection.platform, version=None, symbols=["AAPL"], timeframes=["1m"],
        connection=connection)
    deployments.start_deployment(deployment=deployment, started_by=owner, role="owner",
                                 now=deployment.created_at)
    return deployment
