"""Broker connections are stored for the registry's broker platforms only, and only once the
broker accepted their keys: checked against the fake Alpaca (tests/fakes/alpaca) through the
real alpaca-py, with wrong keys, an unreachable broker and a silent one. Nothing of the keys but
their last four characters is ever shown, logged or put in a message."""

from __future__ import annotations

import logging
import socket

import pytest
from rest_framework.exceptions import PermissionDenied, ValidationError

from accounts.crypto import reveal_credential
from accounts.models import BrokerCredential
from config.errors import ApiError
from runtimes.core.connection import BrokerConnection, ConnectionRejected
from runtimes.credentials import (
    add_broker_credential,
    broker_platforms,
    connectable_platforms,
)
from runtimes.hosting import brokers
from runtimes.providers.alpaca import connect
from tests.fakes.alpaca.server import KEY_ID, SECRET, FakeAlpaca

pytestmark = pytest.mark.django_db

REFUSAL = "Choose one of alpaca-paper, alpaca-live, binance-testnet, binance-live."
WRONG_SECRET = "not-the-secret-but-close-000000000000000"


@pytest.fixture
def alpaca(settings):
    """The fake Alpaca, where both Alpaca platforms' URLs point."""
    with FakeAlpaca() as fake:
        settings.BROKER_URLS = {p: dict(fake.urls) for p in ("alpaca-paper", "alpaca-live")}
        yield fake


def add(workspace, by, **overrides):
    arguments = {"platform": "alpaca-paper", "label": " Paper ", "key_id": KEY_ID,
                 "secret": SECRET, "options": {"feed": "sip"}, **overrides}
    return add_broker_credential(workspace=workspace, by=by, **arguments)


def refused(call, *args, **kwargs):
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)
    return caught.value.status_code, caught.value.error_code, caught.value.message


def test_the_broker_platforms_are_those_of_the_registry_that_connect_to_a_broker():
    assert broker_platforms() == ["alpaca-paper", "alpaca-live", "binance-testnet",
                                  "binance-live"]
    assert connectable_platforms() == ["alpaca-paper", "alpaca-live", "binance-testnet",
                                       "binance-live"]


def test_keys_the_broker_accepts_are_stored_with_their_hint_and_the_accounts_summary(
        owner, workspace, alpaca):
    credential = add(workspace, owner)

    stored = BrokerCredential.objects.for_workspace(workspace).get(pk=credential.pk)
    number = alpaca.account()["account_number"]
    assert (stored.platform, stored.label, stored.key_hint, stored.options) == (
        "alpaca-paper", "Paper", "WXYZ", {"feed": "sip"})
    assert stored.account_summary == {"account_number": f"…{number[-4:]}", "status": "ACTIVE",
                                      "currency": "USD"}
    assert stored.validated_at is not None and stored.health == {}
    assert reveal_credential(stored) == {"key_id": KEY_ID, "secret": SECRET}
    assert [(method, path) for method, path, *_ in alpaca.requests] == [("GET", "/v2/account")]


def test_the_feed_defaults_to_iex(owner, workspace, alpaca):
    assert add(workspace, owner, options={}).options == {"feed": "iex"}


def test_wrong_keys_are_refused_with_a_sentence_and_nothing_is_stored(owner, workspace, alpaca,
                                                                     caplog):
    caplog.set_level(logging.DEBUG)

    status, code, message = refused(add, workspace, owner, secret=WRONG_SECRET)

    assert (status, code) == (400, "VALIDATION_ERROR")
    assert message.startswith("Alpaca refused these keys (40")
    assert message.endswith("check the key id and the secret, and that they are paper keys "
                            "for a paper connection.")
    assert not BrokerCredential.objects.exists()
    assert WRONG_SECRET not in caplog.text and KEY_ID not in caplog.text
    assert all(WRONG_SECRET not in repr(r.args) and WRONG_SECRET not in str(r.msg)
               for r in caplog.records)


def test_live_keys_refused_say_live(owner, workspace, alpaca):
    message = refused(add, workspace, owner, platform="alpaca-live", secret=WRONG_SECRET)[2]

    assert message.endswith("that they are live keys for a live connection.")


def test_an_unreachable_broker_is_a_clear_refusal(owner, workspace, settings):
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    trading = f"http://127.0.0.1:{port}"
    settings.BROKER_URLS = {"alpaca-paper": {"trading": trading}}

    assert refused(add, workspace, owner) == (
        400, "VALIDATION_ERROR",
        f"Alpaca could not be reached at {trading} within 5 s: try again in a moment.")
    assert not BrokerCredential.objects.exists()


def test_a_broker_that_never_answers_is_given_up_on_after_the_timeout():
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        trading = f"http://127.0.0.1:{silent.getsockname()[1]}"
        connection = BrokerConnection(id="unsaved", platform="alpaca-paper", key_id=KEY_ID,
                                      secret=SECRET, urls={"trading": trading})
        with pytest.raises(ConnectionRejected) as refusal:
            connect.validate(connection, timeout=0.2)

    assert str(refusal.value) == (f"Alpaca could not be reached at {trading} within 0.2 s: try "
                                  "again in a moment.")


@pytest.mark.parametrize(("status", "shown"), [("ACCOUNT_CLOSED", "account_closed"),
                                               ("", "of no status")])
def test_an_account_that_cannot_trade_is_refused(status, shown):
    with pytest.raises(ConnectionRejected) as refusal:
        connect._summary({"account_number": "PA123456789", "status": status, "currency": "USD"})

    assert str(refusal.value) == (f"Alpaca accepted the keys, but the account is {shown} and "
                                  "cannot trade: finish or reopen it at Alpaca first.")


def test_the_summary_masks_the_account_number():
    assert connect._summary({"account_number": "PA123456789", "status": "ACTIVE",
                             "currency": "USD", "cash": "100000"}) == {
        "account_number": "…6789", "status": "ACTIVE", "currency": "USD"}


@pytest.mark.parametrize("platform", ["backtest", "mock", "alpaca", "nyse", ""])
def test_an_unknown_platform_or_one_without_a_broker_is_refused(owner, workspace, platform):
    with pytest.raises(ValidationError) as refusal:
        add(workspace, owner, platform=platform)

    assert refusal.value.detail == {"platform": [REFUSAL]}
    assert not BrokerCredential.objects.exists()


def test_a_broker_whose_keys_this_build_cannot_check_is_refused(owner, workspace, monkeypatch):
    monkeypatch.delitem(brokers.FAMILIES, "binance")  # a build without Binance
    with pytest.raises(ValidationError) as refusal:
        add(workspace, owner, platform="binance-live")

    assert refusal.value.detail == {"platform": [
        "Binance (live) connections are not available in this build yet; choose one of "
        "alpaca-paper, alpaca-live."]}


def test_missing_fields_and_unknown_options_are_refused_before_the_broker_is_asked(
        owner, workspace, alpaca):
    with pytest.raises(ValidationError) as blank:
        add(workspace, owner, label=" ", key_id="", secret="  ")
    with pytest.raises(ValidationError) as feed:
        add(workspace, owner, options={"feed": "otc"})
    with pytest.raises(ValidationError) as unknown:
        add(workspace, owner, options={"colour": "red"})

    assert blank.value.detail == {"label": ["A label, e.g. 'Paper account'."],
                                  "key_id": ["Required, at most 256 characters."],
                                  "secret": ["Required, at most 256 characters."]}
    assert feed.value.detail == {"options": ["feed must be one of iex, sip."]}
    assert unknown.value.detail == {"options": ["Unknown option(s): colour."]}
    assert alpaca.requests == []


def test_only_owners_add_connections_and_the_broker_is_not_asked_for_others(
        teammate, workspace, alpaca):
    with pytest.raises(PermissionDenied):
        add(workspace, teammate)

    assert not BrokerCredential.objects.exists()
    assert alpaca.requests == []
