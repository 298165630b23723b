"""Broker credentials are stored for the registry's broker platforms only (accounts seals them
but cannot check a platform id itself)."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import PermissionDenied, ValidationError

from accounts.crypto import reveal_credential
from accounts.models import BrokerCredential
from runtimes.credentials import add_broker_credential, broker_platforms

pytestmark = pytest.mark.django_db

SECRET = {"api_key": "AKTESTKEY123", "api_secret": "very-secret-broker-value"}
REFUSAL = ("Choose one of alpaca-paper, alpaca-live, binance-testnet, binance-live.")


def test_the_broker_platforms_are_those_of_the_registry_that_connect_to_a_broker():
    assert broker_platforms() == ["alpaca-paper", "alpaca-live", "binance-testnet",
                                  "binance-live"]


def test_a_credential_for_a_broker_platform_is_sealed_and_stored(owner, workspace):
    credential = add_broker_credential(workspace=workspace, by=owner, platform="binance-live",
                                       label=" Main ", secret=SECRET)

    stored = BrokerCredential.objects.for_workspace(workspace).get(pk=credential.pk)
    assert (stored.platform, stored.label) == ("binance-live", "Main")
    assert reveal_credential(stored) == SECRET


@pytest.mark.parametrize("platform", ["backtest", "mock", "alpaca", "nyse", ""])
def test_an_unknown_platform_or_one_without_a_broker_is_refused(owner, workspace, platform):
    with pytest.raises(ValidationError) as refusal:
        add_broker_credential(workspace=workspace, by=owner, platform=platform, label="x",
                              secret=SECRET)

    assert refusal.value.detail == {"platform": [REFUSAL]}
    assert not BrokerCredential.objects.exists()


def test_only_owners_add_credentials(teammate, workspace):
    with pytest.raises(PermissionDenied):
        add_broker_credential(workspace=workspace, by=teammate, platform="alpaca-paper",
                              label="x", secret=SECRET)
    assert not BrokerCredential.objects.exists()
