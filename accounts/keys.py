"""The API key format and its keyed hash: `prt_<12 base62 prefix>_<40 base62 secret>`.

The visible `prt_` type prefix lets secret scanners (and config/logging.py) recognise a key; the
public prefix is the lookup id; only an HMAC-SHA256 of the whole key under a pepper kept outside
the database is stored, so a database dump alone cannot even verify guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Callable

from django.conf import settings

KEY_TYPE = "prt"
PREFIX_LENGTH = 12
SECRET_LENGTH = 40
_BASE62 = string.digits + string.ascii_letters
_KEY_RE = re.compile(
    rf"^{KEY_TYPE}_([0-9A-Za-z]{{{PREFIX_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})$"
)


def random_base62(length: int) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(length))


def generate_key() -> tuple[str, str]:
    """A fresh key: returns (prefix, plaintext)."""
    prefix = random_base62(PREFIX_LENGTH)
    return prefix, f"{KEY_TYPE}_{prefix}_{random_base62(SECRET_LENGTH)}"


def parse_prefix(raw: str) -> str | None:
    """The lookup prefix of a well-formed key, or None when `raw` is not one of our keys."""
    match = _KEY_RE.match(raw.strip())
    return match.group(1) if match else None


def looks_like_key(raw: str) -> bool:
    return raw.startswith(f"{KEY_TYPE}_")


def credential_in(authorization: str, x_api_key: str, *,
                  accepts: Callable[[str], bool]) -> str | None:
    """The credential of a request's headers: a Bearer token that `accepts` recognises first,
    else X-API-Key (a Bearer token of another type belongs to another scheme). One rule for REST
    and WebSocket, API keys and session tokens."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and accepts(token):
        return token
    return x_api_key.strip() or None


def keyed_hash(value: str) -> str:
    """HMAC-SHA256 (hex) of `value` under settings.API_KEY_PEPPER (keys and invitation tokens)."""
    pepper = settings.API_KEY_PEPPER.encode()
    return hmac.new(pepper, value.encode(), hashlib.sha256).hexdigest()


def hashes_match(stored: str, candidate: str) -> bool:
    return hmac.compare_digest(stored.encode(), candidate.encode())
