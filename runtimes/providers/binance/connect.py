"""Checking a Binance connection's keys before they are stored: the server's time (so that a
skewed clock here is not mistaken for bad keys), the account (can it trade spot?) and the key's
restrictions (can it withdraw? then it is refused: Parity never needs that, and a key that can
move funds out must not sit in a database), answered as a summary fit to show or as a plain
refusal.

Framework-free; the caller (runtimes/credentials.py) decides what happens to the keys. Binance's
own error text is never passed on: a message must never risk carrying any part of the keys.

Key types (the connection's option `key_type`): "hmac", a key id and its secret key; "ed25519",
a key id and the Ed25519 private key in PEM (python-binance signs with it: `private_key=`). A PEM
pasted into a one-line field loses its line breaks: `ed25519_pem` puts them back.

The SAPI base (the key's restrictions live under /sapi/v1, not /api/v3) is derived from
`connection.urls["api"]`: its final /api becomes /sapi, as it is at Binance and at the fake.
Binance's spot testnet has no SAPI: there, a 404 for the restrictions is accepted (testnet funds
cannot be withdrawn anywhere); on live it refuses the key.
"""

from __future__ import annotations

import re
import textwrap
import time
from typing import Any, Final

import requests
from binance.client import Client
from binance.exceptions import BinanceAPIException, BinanceRequestException
from Crypto.PublicKey import ECC

from runtimes.core.connection import BrokerConnection, ConnectionRejected
from runtimes.core.platforms import PLATFORMS

DEFAULT_TIMEOUT_S: Final = 5.0
KEY_TYPES: Final = ("hmac", "ed25519")
REFUSED_KEY_CODES: Final = frozenset({-2014, -2015, -1022})
CLOCK_CODE: Final = -1021
WITHDRAWALS_REFUSAL: Final = ("This key can withdraw funds: create a key with withdrawals "
                              "disabled; Parity never needs them.")
_PEM_BODY = re.compile(r"-----BEGIN [A-Z ]+-----|-----END [A-Z ]+-----|\s+")


def sapi_url(api_url: str) -> str:
    """The SAPI base beside a REST base: ".../api" -> ".../sapi"."""
    base = api_url.rstrip("/")
    if not base.endswith("/api"):
        raise ValueError(f"a Binance REST base ends with /api, not {base!r}")
    return base[: -len("/api")] + "/sapi"


def ed25519_pem(text: str) -> str:
    """An Ed25519 private key as PEM with its line breaks, from PEM with or without them (a
    password field keeps one line) or from the bare base64 body."""
    body = _PEM_BODY.sub("", text)
    lines = "\n".join(textwrap.wrap(body, 64))
    # No final line break: python-binance takes a key of more than 120 characters for RSA.
    return f"-----BEGIN PRIVATE KEY-----\n{lines}\n-----END PRIVATE KEY-----"


def client_for(connection: BrokerConnection, *, timeout: float) -> Client:
    """A python-binance Client on `connection`'s addresses and keys, with no call made yet."""
    api_url = connection.urls["api"].rstrip("/")

    class ConnectionClient(Client):  # type: ignore[misc]  # python-binance is untyped
        API_URL = api_url
        MARGIN_API_URL = sapi_url(api_url)

    if str(connection.options.get("key_type", "hmac")) == "ed25519":
        pem = _readable_ed25519(connection.secret)
        return ConnectionClient(connection.key_id, None, ping=False,
                                requests_params={"timeout": timeout}, private_key=pem)
    return ConnectionClient(connection.key_id, connection.secret, ping=False,
                            requests_params={"timeout": timeout})


def _readable_ed25519(secret: str) -> str:
    """The PEM of an Ed25519 private key, read once here: python-binance's constructor would
    fail half-way on a bad one (and its __del__ then raises)."""
    pem = ed25519_pem(secret)
    try:
        key = ECC.import_key(pem)
    except (ValueError, IndexError, TypeError):
        key = None  # pycryptodome's own message may quote the key: none of it is passed on
    if key is None or key.curve != "Ed25519" or not key.has_private():
        raise ConnectionRejected("The Ed25519 private key could not be read: paste the whole "
                                 "PEM private key (-----BEGIN PRIVATE KEY----- ...) that "
                                 "belongs to this API key.")
    return pem


def validate(connection: BrokerConnection, *, timeout: float = DEFAULT_TIMEOUT_S
             ) -> dict[str, Any]:
    """The account summary of `connection`'s keys: {"account_number": "…1234",
    "account_type", "permissions", "can_trade", "withdrawals", "clock_offset_ms"}. Raises
    ConnectionRejected with a sentence for the person who typed the keys: refused keys, a key
    that can withdraw, an account or key that cannot trade spot, Binance unreachable or
    answering something else."""
    client = client_for(connection, timeout=timeout)
    try:
        client.timestamp_offset = _clock_offset(client, connection)
        account = _call(connection, client.get_account)
        restrictions = _restrictions(connection, client)
    finally:
        client.session.close()
    return _summary(connection, account, restrictions, client.timestamp_offset)


def _clock_offset(client: Client, connection: BrokerConnection) -> int:
    """Binance's time minus ours (ms), measured around one GET time: signed calls carry our
    clock plus this, so a skewed clock here is corrected rather than refused (-1021)."""
    before = time.time() * 1000
    answer = _call(connection, client.get_server_time)
    after = time.time() * 1000
    return round(int(answer["serverTime"]) - (before + after) / 2)


def _restrictions(connection: BrokerConnection, client: Client) -> dict[str, Any] | None:
    """What GET /sapi/v1/account/apiRestrictions says (None: the testnet has no SAPI)."""
    try:
        answer: dict[str, Any] = client.get_account_api_permissions()
        return answer
    except BinanceAPIException as error:
        if error.status_code == 404 and not _is_live(connection):
            return None
        raise _refusal(connection, error) from None
    except (requests.RequestException, BinanceRequestException):
        raise _unreachable(connection) from None


def _call(connection: BrokerConnection, method: Any) -> dict[str, Any]:
    try:
        answer = method()
    except BinanceAPIException as error:
        raise _refusal(connection, error) from None
    except (requests.RequestException, BinanceRequestException):
        raise _unreachable(connection) from None
    if not isinstance(answer, dict):
        raise ConnectionRejected("Binance answered with something that is not what was asked "
                                 "for: try again in a moment.")
    return answer


def _is_live(connection: BrokerConnection) -> bool:
    spec = PLATFORMS.get(connection.platform)
    return spec is not None and spec.live


def _unreachable(connection: BrokerConnection) -> ConnectionRejected:
    return ConnectionRejected(f"Binance could not be reached at {connection.urls['api']}: try "
                              "again in a moment.")


def _refusal(connection: BrokerConnection, error: BinanceAPIException) -> ConnectionRejected:
    status, code = error.status_code, error.code
    kind = "live" if _is_live(connection) else "testnet"
    if code in REFUSED_KEY_CODES or status == 401:
        return ConnectionRejected(
            f"Binance refused this key ({code or status}): check the API key, the secret or "
            f"private key and the key type, that it is a {kind} key for a {kind} connection, "
            "and that the key's IP restriction allows this server.")
    if code == CLOCK_CODE:
        return ConnectionRejected("Binance refused the request's time (-1021) even after "
                                  "measuring its clock: check this server's clock, then try "
                                  "again.")
    if status == 418:
        return ConnectionRejected("Binance has banned this server's IP for a while after too "
                                  "many requests (418): try again later.")
    if status == 429:
        return ConnectionRejected("Binance is rate limiting this server (429): wait a minute "
                                  "and save the connection again.")
    return ConnectionRejected(f"Binance could not check this key (HTTP {status}): try again in "
                              "a moment.")


def _summary(connection: BrokerConnection, account: dict[str, Any],
             restrictions: dict[str, Any] | None, offset_ms: int) -> dict[str, Any]:
    if restrictions is not None and restrictions.get("enableWithdrawals"):
        raise ConnectionRejected(WITHDRAWALS_REFUSAL)
    if not account.get("canTrade") or (
            restrictions is not None
            and restrictions.get("enableSpotAndMarginTrading") is False):
        raise ConnectionRejected(
            "Binance accepted the key, but it cannot trade spot: enable \"Spot & Margin "
            "Trading\" on the key (and nothing that moves funds), then save it again.")
    uid = str(account.get("uid") or "")
    permissions = [str(p) for p in account.get("permissions") or []]
    return {"account_number": f"…{uid[-4:]}" if uid else "",
            "account_type": str(account.get("accountType") or ""),
            "permissions": permissions, "can_trade": True,
            "withdrawals": "disabled" if restrictions is not None else "not on the testnet",
            "clock_offset_ms": offset_ms}
