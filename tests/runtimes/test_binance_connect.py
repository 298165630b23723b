"""Checking Binance keys on save (runtimes/providers/binance/connect.py): where the key's
restrictions are asked (SAPI beside the REST base); Ed25519 keys (the PEM private key
python-binance signs with, pasted with or without its line breaks); and against the fake Binance
through the real python-binance: right keys stored with their hint, a key that can withdraw
refused with the reason, wrong keys refused, a skewed clock corrected, a ban and an unreachable
Binance said plainly, and the secret never in a message, a log line or a repr."""

from __future__ import annotations

import base64
import logging
import socket

import pytest
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

from accounts.crypto import reveal_credential
from accounts.models import BrokerCredential
from config.errors import ApiError
from runtimes.core.connection import BrokerConnection, ConnectionRejected
from runtimes.credentials import add_broker_credential
from runtimes.providers.binance import connect
from tests.fakes.binance import FakeBinance
from tests.fakes.binance.server import KEY_ID, SECRET

WRONG_SECRET = "fakeBinanceSecret00000000000000000000000000000000000000000000000X"

URLS = {"api": "http://127.0.0.1:9/api", "ws_api": "ws://127.0.0.1:9/ws-api/v3",
        "stream": "ws://127.0.0.1:9/"}


def connection(secret, key_type="ed25519"):
    return BrokerConnection(id="unsaved", platform="binance-testnet", key_id="edKey0000WXYZ",
                            secret=secret, urls=URLS, options={"key_type": key_type})


@pytest.mark.parametrize(("api", "sapi"), [
    ("https://api.binance.com/api", "https://api.binance.com/sapi"),
    ("http://127.0.0.1:8766/api/", "http://127.0.0.1:8766/sapi")])
def test_the_sapi_base_is_beside_the_rest_base(api, sapi):
    assert connect.sapi_url(api) == sapi


def test_a_rest_base_without_api_is_a_configuration_error():
    with pytest.raises(ValueError) as error:
        connect.sapi_url("https://api.binance.com/v3")

    assert str(error.value) == "a Binance REST base ends with /api, not 'https://api.binance.com/v3'"


@pytest.mark.parametrize("pasted", ["as exported", "on one line", "the body alone"])
def test_an_ed25519_key_signs_the_requests_however_it_was_pasted(pasted):
    key = ECC.generate(curve="ed25519")
    pem = key.export_key(format="PEM")
    body = pem.splitlines()[1]
    secret = {"as exported": pem, "on one line": pem.replace("\n", " "),
              "the body alone": body}[pasted]

    client = connect.client_for(connection(secret), timeout=1.0)
    signature = client._generate_signature({"timestamp": 1, "recvWindow": 10000},
                                           uri_encode=False)

    assert URLS["api"] == client.API_URL and client.MARGIN_API_URL == "http://127.0.0.1:9/sapi"
    assert client.API_SECRET is None  # nothing is signed with HMAC
    eddsa.new(key.public_key(), "rfc8032").verify(b"recvWindow=10000&timestamp=1",
                                                   base64.b64decode(signature))  # or raises


def test_an_hmac_key_signs_with_its_secret():
    client = connect.client_for(connection("hmac-secret-0123", key_type="hmac"), timeout=1.0)

    assert (client.API_SECRET, client.PRIVATE_KEY) == ("hmac-secret-0123", None)


def test_an_unreadable_ed25519_key_is_refused_without_quoting_it():
    secret = "-----BEGIN PRIVATE KEY----- notAKeyAtAll0123456789 -----END PRIVATE KEY-----"

    with pytest.raises(ConnectionRejected) as refusal:
        connect.client_for(connection(secret), timeout=1.0)

    assert str(refusal.value) == (
        "The Ed25519 private key could not be read: paste the whole PEM private key "
        "(-----BEGIN PRIVATE KEY----- ...) that belongs to this API key.")
    assert (refusal.value.__cause__, refusal.value.__context__) == (None, None)  # nothing quoted


def test_a_key_of_another_kind_is_refused_as_not_ed25519():
    other = ECC.generate(curve="P-256").export_key(format="PEM")

    with pytest.raises(ConnectionRejected) as refusal:
        connect.client_for(connection(other), timeout=1.0)

    assert str(refusal.value).startswith("The Ed25519 private key could not be read")


# -- against the fake Binance (tests/fakes/binance), through the real python-binance ------------


@pytest.fixture
def binance(settings):
    """The fake Binance, where both Binance platforms' URLs point."""
    with FakeBinance() as fake:
        settings.BROKER_URLS = {p: dict(fake.urls) for p in ("binance-testnet", "binance-live")}
        yield fake


def add(workspace, by, **overrides):
    arguments = {"platform": "binance-testnet", "label": "Testnet", "key_id": KEY_ID,
                 "secret": SECRET, "options": {}, **overrides}
    return add_broker_credential(workspace=workspace, by=by, **arguments)


def refused(workspace, by, **overrides):
    with pytest.raises(ApiError) as caught:
        add(workspace, by, **overrides)
    return caught.value.status_code, caught.value.error_code, caught.value.message


def paths(fake):
    return [(method, path) for method, path, _ in fake.requests]


CHECK = [("GET", "/api/v3/time"), ("GET", "/api/v3/account"),
         ("GET", "/sapi/v1/account/apiRestrictions")]


@pytest.mark.django_db
def test_keys_binance_accepts_are_stored_with_their_hint_and_the_accounts_summary(
        owner, workspace, binance, caplog):
    caplog.set_level(logging.DEBUG)
    credential = add(workspace, owner)

    stored = BrokerCredential.objects.for_workspace(workspace).get(pk=credential.pk)
    assert (stored.platform, stored.key_hint, stored.options) == (
        "binance-testnet", "WXYZ", {"key_type": "hmac"})
    offset = stored.account_summary.pop("clock_offset_ms")
    assert stored.account_summary == {
        "account_number": "…7868", "account_type": "SPOT", "permissions": ["SPOT"],
        "can_trade": True, "withdrawals": "disabled"}
    assert abs(offset) < 1000  # the fake's clock is ours
    assert reveal_credential(stored) == {"key_id": KEY_ID, "secret": SECRET}
    assert paths(binance) == CHECK
    assert SECRET not in caplog.text and KEY_ID not in caplog.text
    assert SECRET not in repr(stored) and SECRET not in str(stored.account_summary)


@pytest.mark.django_db
def test_a_key_that_can_withdraw_is_refused_with_the_reason_and_nothing_is_stored(
        owner, workspace, settings):
    with FakeBinance(withdrawals_enabled=True) as fake:
        settings.BROKER_URLS = {"binance-testnet": dict(fake.urls)}

        assert refused(workspace, owner) == (
            400, "VALIDATION_ERROR", "This key can withdraw funds: create a key with "
            "withdrawals disabled; Parity never needs them.")
        assert paths(fake) == CHECK
    assert not BrokerCredential.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("platform", "kind"), [("binance-testnet", "testnet"),
                                                ("binance-live", "live")])
def test_a_wrong_secret_is_refused_with_a_sentence_and_never_shown(
        owner, workspace, binance, caplog, platform, kind):
    caplog.set_level(logging.DEBUG)

    status, code, message = refused(workspace, owner, platform=platform, secret=WRONG_SECRET)

    assert (status, code, message) == (
        400, "VALIDATION_ERROR",
        f"Binance refused this key (-1022): check the API key, the secret or private key and "
        f"the key type, that it is a {kind} key for a {kind} connection, and that the key's "
        "IP restriction allows this server.")
    assert not BrokerCredential.objects.exists()
    assert WRONG_SECRET not in caplog.text and KEY_ID not in caplog.text
    assert all(WRONG_SECRET not in repr(r.args) for r in caplog.records)


@pytest.mark.django_db
def test_an_unknown_key_is_refused(owner, workspace, binance):
    assert refused(workspace, owner, key_id="someOtherKey0000")[2].startswith(
        "Binance refused this key (-2015): ")


def test_a_skewed_clock_is_measured_and_corrected_not_refused(binance):
    binance.set_clock_offset(45_000)  # far beyond python-binance's recvWindow of 10 s
    keys = BrokerConnection(id="unsaved", platform="binance-testnet", key_id=KEY_ID,
                            secret=SECRET, urls=binance.urls, options={"key_type": "hmac"})

    summary = connect.validate(keys, timeout=5.0)

    assert 44_000 < summary["clock_offset_ms"] < 46_000


def test_a_banned_ip_and_an_unreachable_binance_are_plain_refusals(binance):
    keys = BrokerConnection(id="unsaved", platform="binance-live", key_id=KEY_ID,
                            secret=SECRET, urls=binance.urls, options={"key_type": "hmac"})
    binance.fail_next(418, retry_after=30)
    with pytest.raises(ConnectionRejected) as banned:
        connect.validate(keys)
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        api = f"http://127.0.0.1:{probe.getsockname()[1]}/api"
    with pytest.raises(ConnectionRejected) as unreachable:
        connect.validate(BrokerConnection(id="unsaved", platform="binance-live", key_id=KEY_ID,
                                          secret=SECRET, urls={"api": api}))

    assert str(banned.value) == ("Binance has banned this server's IP for a while after too "
                                 "many requests (418): try again later.")
    assert str(unreachable.value) == (f"Binance could not be reached at {api}: try again in a "
                                      "moment.")


def test_the_live_platform_refuses_a_key_whose_restrictions_it_cannot_read(binance):
    binance.fail_next(404, path="/sapi/")
    keys = BrokerConnection(id="unsaved", platform="binance-live", key_id=KEY_ID,
                            secret=SECRET, urls=binance.urls, options={"key_type": "hmac"})

    with pytest.raises(ConnectionRejected) as refusal:
        connect.validate(keys)

    assert str(refusal.value) == ("Binance could not check this key (HTTP 404): try again in a "
                                  "moment.")
