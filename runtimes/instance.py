"""Where a worker finds its own platform (PLATFORM_INTERNAL_URL, or the address `serve` listens
on), and the check that the address answers as this very deployment before a session token is
handed to a strategy: a challenge the platform answers with a secret held in its database."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import httpx
from django.conf import settings

SETTING = "PLATFORM_INTERNAL_URL"
PROBE_PATH = "/instance"
CHALLENGE = re.compile(r"[0-9a-f]{32,128}")
PROBE_TIMEOUT_SECONDS = 5.0
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 (mapped away)


class PlatformNotFound(RuntimeError):
    """The internal URL is unset or answers as something else; the message names the setting."""


def served_url(host: str, port: int) -> str:
    """The plain-HTTP URL a process on this machine reaches a server bound to host:port at."""
    host = _WILDCARDS.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def follow_served_address(*, host: str, port: int) -> None:
    """Called by `serve`: unless PLATFORM_INTERNAL_URL is set, hosted runs started by this
    process (its embedded worker) reach the platform where this process serves it."""
    if not settings.PLATFORM_INTERNAL_URL:
        settings.PLATFORM_INTERNAL_URL = served_url(host, port)


def internal_url() -> str:
    """PLATFORM_INTERNAL_URL, or PlatformNotFound when it is unset and nothing here serves."""
    url: str = settings.PLATFORM_INTERNAL_URL
    if not url:
        raise PlatformNotFound(
            f"{SETTING} is not set and this process serves no HTTP: set {SETTING} to the "
            "address of this platform's web server (e.g. http://web:8000)"
        )
    return url


def prove(challenge: str) -> str:
    """This deployment's answer to a challenge (hex): HMAC-SHA256 under its instance secret."""
    return hmac.new(_instance_secret(), challenge.encode(), hashlib.sha256).hexdigest()


def _instance_secret() -> bytes:
    # Read each time (one primary-key query): web and worker agree even after the row changes.
    from runtimes.models import PlatformInstance

    row, _ = PlatformInstance.objects.get_or_create(
        pk=1, defaults={"secret": secrets.token_hex(32)}
    )
    return row.secret.encode()


def check_platform_url(url: str) -> None:
    """Raise PlatformNotFound unless `url` answers the probe as this deployment. The probe
    carries a fresh challenge and nothing else: no token, no session."""
    challenge = secrets.token_hex(16)
    try:
        answer = httpx.get(
            f"{url.rstrip('/')}{PROBE_PATH}",
            params={"challenge": challenge},
            timeout=PROBE_TIMEOUT_SECONDS,
            follow_redirects=False,
            trust_env=False,
        )
    except httpx.HTTPError as error:
        raise _mismatch(url, f"nothing answers: {type(error).__name__}") from error
    try:
        body = answer.json() if answer.status_code == 200 else None
    except ValueError:
        body = None
    proof = body.get("proof") if isinstance(body, dict) else None
    if not isinstance(proof, str):
        detail = (
            "it answered something else"
            if answer.status_code == 200
            else (f"it answered HTTP {answer.status_code}")
        )
        raise _mismatch(url, detail)
    if not hmac.compare_digest(proof, prove(challenge)):
        raise _mismatch(url, "it answered as another Parity instance")


def _mismatch(url: str, detail: str) -> PlatformNotFound:
    return PlatformNotFound(
        f"{SETTING} ({url}) does not answer as this Parity instance ({detail}): set {SETTING} "
        "to the address this platform's web server listens on"
    )
