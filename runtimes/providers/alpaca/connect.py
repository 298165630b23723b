"""Checking an Alpaca connection's keys before they are stored: one call to the account
endpoint, answered as a summary fit to show (nothing secret) or as a plain refusal.

Framework-free; the caller (runtimes/credentials.py) decides what happens to the keys. The
broker's own error text is never passed on: it is Alpaca's, and a message must never risk
carrying any part of the keys.
"""

from __future__ import annotations

from typing import Any, Final

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient

from runtimes.core.connection import BrokerConnection, ConnectionRejected
from runtimes.core.platforms import PLATFORMS

DEFAULT_TIMEOUT_S: Final = 5.0
ACTIVE: Final = "ACTIVE"  # the one account status that can trade


class _TimedSession(requests.Session):
    """requests waits forever by default; a person is waiting for this answer."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(*args, **kwargs)


def validate(connection: BrokerConnection, *, timeout: float = DEFAULT_TIMEOUT_S
             ) -> dict[str, Any]:
    """The account summary of `connection`'s keys: {"account_number": "…1234", "status",
    "currency"}. Raises ConnectionRejected with a sentence for the person who typed the keys:
    refused keys (401/403), an account that cannot trade, Alpaca unreachable or answering
    something else."""
    client = TradingClient(connection.key_id, connection.secret, raw_data=True,
                           url_override=connection.urls["trading"])
    client._retry = 0  # a 429 or 504 is an answer here, not a reason to sleep 3 s and retry
    client._session.close()
    client._session = _TimedSession(timeout)
    try:
        account = client.get_account()
    except APIError as error:
        raise _refusal(connection, error.status_code) from None
    except requests.RequestException:
        raise ConnectionRejected(
            f"Alpaca could not be reached at {connection.urls['trading']} within "
            f"{timeout:g} s: try again in a moment.") from None
    finally:
        client._session.close()
    if not isinstance(account, dict):
        raise ConnectionRejected("Alpaca answered the account request with something that is "
                                 "not an account: try again in a moment.")
    return _summary(account)


def _refusal(connection: BrokerConnection, status: int | None) -> ConnectionRejected:
    spec = PLATFORMS.get(connection.platform)
    kind = "live" if spec is not None and spec.live else "paper"
    if status in (401, 403):
        return ConnectionRejected(
            f"Alpaca refused these keys ({status}): check the key id and the secret, and that "
            f"they are {kind} keys for a {kind} connection.")
    if status == 429:
        return ConnectionRejected("Alpaca is rate limiting this account (429): wait a minute "
                                  "and save the connection again.")
    return ConnectionRejected(f"Alpaca could not check these keys (HTTP {status}): try again "
                              "in a moment.")


def _summary(account: dict[str, Any]) -> dict[str, Any]:
    status = str(account.get("status") or "")
    if status != ACTIVE:
        raise ConnectionRejected(
            f"Alpaca accepted the keys, but the account is {status.lower() or 'of no status'} "
            "and cannot trade: finish or reopen it at Alpaca first.")
    number = str(account.get("account_number") or "")
    return {"account_number": f"…{number[-4:]}" if number else "", "status": status,
            "currency": str(account.get("currency") or "")}
