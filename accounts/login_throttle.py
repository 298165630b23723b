"""Login throttling per (client IP, email) with atomic cache counters (`add` then `incr`).

After settings.LOGIN_THROTTLE_ATTEMPTS failures inside a fixed window of
LOGIN_THROTTLE_WINDOW_SECONDS starting at the first failure, further attempts are refused
without checking the password. Keys are hashed so emails never sit in the cache in clear.
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from accounts.models import normalize_email


def client_ip(request: HttpRequest) -> str:
    # REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a trusted proxy rewrites it.
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _keys(ip: str, email: str) -> tuple[str, str]:
    digest = hashlib.sha256(f"{ip}|{normalize_email(email)}".encode()).hexdigest()
    return f"login-fail:{digest}", f"login-fail-start:{digest}"


def lockout_seconds(*, ip: str, email: str, now: float | None = None) -> int:
    """Seconds until this (ip, email) may try again; 0 when not locked out."""
    count_key, start_key = _keys(ip, email)
    if (cache.get(count_key) or 0) < settings.LOGIN_THROTTLE_ATTEMPTS:
        return 0
    started = cache.get(start_key)
    now = time.time() if now is None else now
    window = settings.LOGIN_THROTTLE_WINDOW_SECONDS
    return max(1, int(window - (now - started))) if started is not None else window


def record_failure(*, ip: str, email: str) -> None:
    count_key, start_key = _keys(ip, email)
    window = settings.LOGIN_THROTTLE_WINDOW_SECONDS
    cache.add(start_key, time.time(), timeout=window)
    if cache.add(count_key, 1, timeout=window):
        return
    try:
        cache.incr(count_key)
    except ValueError:  # expired between add and incr: this failure opens a new window
        cache.add(count_key, 1, timeout=window)


def clear_failures(*, ip: str, email: str) -> None:
    cache.delete_many(list(_keys(ip, email)))
