"""Tell open sockets at once that the access they were opened with may have changed.

A socket watches *subjects*: its API key (`key:<id>`), its creator in its workspace
(`member:<workspace>:<user>`), the user (`user:<id>`), a hosted run's tokens
(`session-tokens:<session>`). Services publish a subject when they change what it names, after
the transaction commits; each watching socket then re-checks its credential against the
database and closes if it may no longer act (runtimes/transport/access.py decides, consumers relay).

Embedded topology: watchers live in this process, published subjects are handed to their event
loops directly. Distributed topology: subjects go out over one Redis pub/sub channel, and every
process holding a watcher runs one listener thread that hands them on the same way, so a change
made by any process or worker reaches the socket wherever it is. If the listener loses Redis it
tells every local watcher to re-check once it is back (a message may have been missed).
Sockets also re-check on a timer (runtimes/transport/access.py), so nothing depends on this alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

CHANNEL = "parity:access-changed"
RECONNECT_DELAY_S = 1.0


def key_subject(key_id: Any) -> str:
    return f"key:{key_id}"


def member_subject(workspace_id: Any, user_id: Any) -> str:
    return f"member:{workspace_id}:{user_id}"


def user_subject(user_id: Any) -> str:
    return f"user:{user_id}"


def session_tokens_subject(session_id: Any) -> str:
    return f"session-tokens:{session_id}"


class Watch:
    """One socket's interest in some subjects: `callback` runs on the socket's event loop."""

    def __init__(
        self, subjects: Iterable[str], callback: Callable[[], None], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.subjects = frozenset(subjects)
        self.callback = callback
        self.loop = loop

    def fire(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: the socket is gone
            self.loop.call_soon_threadsafe(self.callback)

    def cancel(self) -> None:
        _registry.remove(self)


class _Registry:
    """This process's watchers, by subject (thread-safe: services publish from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_subject: dict[str, set[Watch]] = {}

    def add(self, watch: Watch) -> None:
        with self._lock:
            for subject in watch.subjects:
                self._by_subject.setdefault(subject, set()).add(watch)

    def remove(self, watch: Watch) -> None:
        with self._lock:
            for subject in watch.subjects:
                watchers = self._by_subject.get(subject)
                if watchers is not None:
                    watchers.discard(watch)
                    if not watchers:
                        del self._by_subject[subject]

    def dispatch(self, subjects: Iterable[str]) -> None:
        with self._lock:
            watches = {w for s in subjects for w in self._by_subject.get(s, ())}
        for watch in watches:
            watch.fire()

    def dispatch_all(self) -> None:
        with self._lock:
            watches = {w for ws in self._by_subject.values() for w in ws}
        for watch in watches:
            watch.fire()


_registry = _Registry()


def watch(subjects: Iterable[str], callback: Callable[[], None]) -> Watch:
    """Call `callback` (on the running event loop) whenever one of `subjects` is published.
    Cancel the returned Watch when the socket closes."""
    entry = Watch(subjects, callback, asyncio.get_running_loop())
    _registry.add(entry)
    if settings.REDIS_URL:
        _listener.ensure_started(settings.REDIS_URL)
    return entry


def publish(*subjects: str) -> None:
    """Tell the sockets watching `subjects` to re-check, once the current transaction commits
    (at once outside one), so the re-check reads the change."""
    if subjects:
        transaction.on_commit(lambda: _send(subjects))


def _send(subjects: Iterable[str]) -> None:
    subjects = list(subjects)
    if settings.REDIS_URL:
        try:
            _publisher(settings.REDIS_URL).publish(CHANNEL, json.dumps(subjects))
            return  # this process's own listener hands them to its watchers
        except Exception:  # Redis down: at least this process's sockets hear it
            logger.exception("could not publish an access change over Redis")
    _registry.dispatch(subjects)


_publisher_lock = threading.Lock()
_publisher_client: Any = None


def _publisher(url: str) -> Any:
    global _publisher_client
    with _publisher_lock:
        if _publisher_client is None:
            import redis

            _publisher_client = redis.Redis.from_url(url)
        return _publisher_client


class _Listener:
    """One daemon thread per process: Redis pub/sub -> this process's watchers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def ensure_started(self, url: str) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, args=(url,), daemon=True, name="access-events"
                )
                self._thread.start()

    def _run(self, url: str) -> None:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=None, socket_keepalive=True)
        while True:
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                # Whatever was published before this subscription (the first sockets of the
                # process, or while Redis was away) was not heard: every watcher re-checks.
                _registry.dispatch_all()
                for message in pubsub.listen():
                    _registry.dispatch(json.loads(message["data"]))
            except Exception:  # keep listening whatever Redis does
                logger.warning("access-events listener lost Redis; retrying", exc_info=True)
                time.sleep(RECONNECT_DELAY_S)


_listener = _Listener()


# -- saves and deletes of the rows a credential check reads --------------------------------------


def _subjects_of(instance: Any) -> list[str]:
    from django.contrib.auth import get_user_model

    from accounts.models import ApiKey, Membership

    if isinstance(instance, ApiKey):
        return [key_subject(instance.pk)]
    if isinstance(instance, Membership):
        return [member_subject(instance.workspace_id, instance.user_id)]
    if isinstance(instance, get_user_model()):
        return [user_subject(instance.pk)]
    return []


def _receiver_publishing(subjects_of: Callable[[Any], list[str]]) -> Callable[..., None]:
    def on_change(sender: Any, instance: Any, **kwargs: Any) -> None:
        if kwargs.get("created"):
            return  # a new row takes nobody's access away
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and set(update_fields) <= {"last_login", "last_used_at"}:
            return
        publish(*subjects_of(instance))
    return on_change


def publish_changes_of(model: Any, subjects_of: Callable[[Any], list[str]]) -> None:
    """Saves and deletes of `model` (the admin's too) publish `subjects_of(row)`; bulk
    `.update()` calls send no signal, so the services that use one publish themselves."""
    from django.db.models.signals import post_delete, post_save

    receiver = _receiver_publishing(subjects_of)
    # weak=False: the receiver is a closure that nothing else holds.
    post_save.connect(receiver, sender=model, weak=False, dispatch_uid=f"access-{model.__name__}")
    post_delete.connect(receiver, sender=model, weak=False,
                        dispatch_uid=f"access-d-{model.__name__}")


def connect_signals() -> None:
    """Keys, memberships and users publish their subject when saved or deleted; the apps above
    watch their own rows (runtimes: session tokens, in RuntimesConfig.ready)."""
    from django.contrib.auth import get_user_model

    from accounts.models import ApiKey, Membership

    for model in (ApiKey, Membership, get_user_model()):
        publish_changes_of(model, _subjects_of)
