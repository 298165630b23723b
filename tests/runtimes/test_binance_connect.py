"""Checking Binance keys on save (runtimes/providers/binance/connect.py), the parts that need no
Binance: where the key's restrictions are asked (SAPI beside the REST base), and Ed25519 keys
(the PEM private key python-binance signs with, pasted with or without its line breaks)."""

from __future__ import annotations

import base64

import pytest
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

from runtimes.core.connection import BrokerConnection, ConnectionRejected
from runtimes.providers.binance import connect

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
