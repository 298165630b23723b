"""A short-lived cache of successful credential checks (API keys, session tokens).

A Trading API call used to spend ~2 ms in the ORM proving the same key again. A success is kept
for at most TTL_S, under the keyed hash (HMAC) of the presented credential, never the plaintext,
in a dictionary of this process (Django's cache would pickle the key and session rows on every
store and unpickle them on every hit, a third of a cached check). Failures are never cached.
The epoch below lives in Django's cache (per process when embedded, Redis when distributed), so
every process sees the same invalidations.

Invalidation is global and immediate: every entry records the cache *epoch* read before its
database check, and an entry is good only while the epoch is unchanged. Anything that may make a
credential unusable (revoking a key or a session's tokens, a role change, a removed member, a
saved or deleted key, membership, user or token; see `invalidate_on_change`) sets a new random
epoch.
A missing epoch (evicted, or a cache flush) invalidates everything too. Expiry needs no epoch:
callers check `is_usable(now)` on the cached object on every hit. Open sockets hear of the same
changes through accounts/access_events.py (`current_epoch` tells them one may have slipped by).
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from django.core.cache import cache
from django.db import transaction

TTL_S = 10
EPOCH_KEY = "auth-cache:epoch"
_EPOCH_LIFETIME_S = 24 * 3600
MAX_ENTRIES = 10_000  # beyond this, expired entries are dropped (and all of them if none were)

# (kind, digest) -> (epoch, expires at, value). Values are the very objects stored, shared by
# this process's threads: callers read them, and change only bookkeeping in place (an API key's
# last_used_at, which later hits then see).
_entries: dict[tuple[str, str], tuple[str, float, Any]] = {}
_entries_lock = threading.Lock()


def current_epoch() -> str:
    """The epoch now: it differs from an earlier reading when anything was invalidated since."""
    return lookup("", "")[1]


def lookup(kind: str, digest: str) -> tuple[Any | None, str]:
    """(the cached object or None, the current epoch). Store a fresh success with that epoch."""
    epoch = cache.get(EPOCH_KEY)
    if epoch is None:
        epoch = secrets.token_hex(8)
        if not cache.add(EPOCH_KEY, epoch, _EPOCH_LIFETIME_S):
            epoch = cache.get(EPOCH_KEY) or secrets.token_hex(8)  # the epoch another call set
        return None, epoch
    entry = _entries.get((kind, digest))
    if entry is not None and entry[0] == epoch and entry[1] > time.monotonic():
        return entry[2], epoch
    return None, epoch


def store(kind: str, digest: str, value: Any, *, epoch: str, ttl: float = TTL_S) -> None:
    """Keep `value` (a success checked against the database after `epoch` was read) for `ttl`
    seconds at most (never more than TTL_S)."""
    expires = time.monotonic() + min(ttl, TTL_S)
    with _entries_lock:
        if len(_entries) >= MAX_ENTRIES:
            _prune()
        _entries[(kind, digest)] = (epoch, expires, value)


def _prune() -> None:
    now = time.monotonic()
    for key in [k for k, entry in _entries.items() if entry[1] <= now]:
        del _entries[key]
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()


def invalidate_all() -> None:
    """Forget every cached success, now and again when the current transaction commits (so a
    check racing the write cannot cache what the write is about to change)."""
    cache.set(EPOCH_KEY, secrets.token_hex(8), _EPOCH_LIFETIME_S)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(
            lambda: cache.set(EPOCH_KEY, secrets.token_hex(8), _EPOCH_LIFETIME_S))


def _on_change(sender: Any, **kwargs: Any) -> None:
    if kwargs.get("created"):
        return  # a new row cannot make a cached success wrong
    update_fields = kwargs.get("update_fields")
    if update_fields is not None and set(update_fields) <= {"last_login", "last_used_at"}:
        return  # bookkeeping writes that cannot make a credential unusable
    invalidate_all()


def invalidate_on_change(*models: Any) -> None:
    """Saves and deletes of `models` (rows a credential check reads) invalidate the cache. Bulk
    `.update()` calls send no signal: the services that use one call `invalidate_all`."""
    from django.db.models.signals import post_delete, post_save

    for model in models:
        post_save.connect(_on_change, sender=model, dispatch_uid=f"auth-cache-{model.__name__}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"auth-cache-d-{model.__name__}")


def connect_signals() -> None:
    """Watch the rows of this app that a credential check reads; the apps above watch their own
    (runtimes: session tokens and sessions, in RuntimesConfig.ready)."""
    from django.contrib.auth import get_user_model

    from accounts.models import ApiKey, Membership, Workspace

    invalidate_on_change(ApiKey, Membership, Workspace, get_user_model())
