"""The REST client's keys: an HMAC secret or an Ed25519 private key (the connection's
`key_type`) signs the requests; no server is needed to check a signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import unquote

from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

from runtimes.core.connection import BrokerConnection
from runtimes.core.rate_budget import LocalBudget
from runtimes.hosting.shared_budget import local_shared_budget
from runtimes.providers.binance.rest import RECV_WINDOW_MS, BinanceRest

URLS = {"api": "http://127.0.0.1:9/api", "ws_api": "ws://127.0.0.1:9/ws-api/v3",
        "stream": "ws://127.0.0.1:9/"}
PAYLOAD = {"symbol": "BTCUSDT", "timestamp": 1767225600000}
SIGNED = "symbol=BTCUSDT&timestamp=1767225600000"


def rest_of(secret: str, key_type: str) -> BinanceRest:
    connection = BrokerConnection(id="c1", platform="binance-testnet", key_id="key-0001",
                                  secret=secret, urls=URLS, options={"key_type": key_type})
    shared = local_shared_budget("test-rest", "ws", limit=6000, floor=100)
    return BinanceRest(connection, LocalBudget(100), shared)


def test_an_hmac_secret_signs_with_hmac_sha256() -> None:
    rest = rest_of("s3cret", "hmac")
    expected = hmac.new(b"s3cret", SIGNED.encode(), hashlib.sha256).hexdigest()
    assert rest.client._generate_signature(dict(PAYLOAD)) == expected
    assert rest.client.REQUEST_RECVWINDOW == RECV_WINDOW_MS == 5000


def test_an_ed25519_key_signs_instead_of_a_secret() -> None:
    key = ECC.generate(curve="Ed25519")
    pem_on_one_line = key.export_key(format="PEM").replace("\n", " ")  # as pasted in a field
    rest = rest_of(pem_on_one_line, "ed25519")
    signature = base64.b64decode(unquote(rest.client._generate_signature(dict(PAYLOAD))))
    eddsa.new(key.public_key(), "rfc8032").verify(SIGNED.encode(), signature)  # raises if not


def test_the_streams_client_signs_with_the_same_ed25519_key() -> None:
    """The user data subscription is signed by the AsyncClient the streams build from the same
    arguments (a key of type ed25519 has no HMAC secret)."""
    import asyncio

    from runtimes.providers.binance.sdk import client_class, signing_arguments

    key = ECC.generate(curve="Ed25519")
    connection = BrokerConnection(id="c1", platform="binance-testnet", key_id="key-0001",
                                  secret=key.export_key(format="PEM"), urls=URLS,
                                  options={"key_type": "ed25519"})

    async def signature() -> bytes:
        client = client_class(connection)(connection.key_id, **signing_arguments(connection))
        try:
            return base64.b64decode(unquote(client._generate_signature(dict(PAYLOAD))))
        finally:
            await client.close_connection()

    eddsa.new(key.public_key(), "rfc8032").verify(SIGNED.encode(), asyncio.run(signature()))
