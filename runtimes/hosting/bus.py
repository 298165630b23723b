"""The session bus between the web tier (Channels sockets, DRF views) and a session's host.

Web -> host: messages (dicts of JSON values: attach, ack, detach, notice, command, cancel) that the
host drains from its inbox. Host -> web: frame texts for one socket, a close request, and the reply
of a command. Observers (read-only sockets: the dashboard's live view) connect like strategy
sockets with `observer=True`; the host sends them copies of frames with `send_observed`, which
never blocks or grows without bound (the observer's side keeps a bounded buffer, Redis trims the
list). Everything crossing the bus is JSON-able so that a Redis backend can carry it; the
in-process backend (embedded topology) hands objects across threads without copying.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Protocol

JsonDict = dict[str, Any]

# What a socket registers to receive host output: called from the host thread, so it must only
# hand over (e.g. `loop.call_soon_threadsafe`). `texts` are frames; `close_code` asks to close.
FrameSink = Callable[[list[str], int | None], None]

# What a host may offer to take a message on the poster's own thread (in-process bus only):
# returns True when it handled the message, False when the message must go to the inbox.
# `blocking` says whether the caller may wait for the host (a request thread may; an event loop
# may not).
DirectHandler = Callable[[JsonDict, bool], bool]


class BusUnavailable(Exception):
    """No host answered in time: the session is not running (503 to the client)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A command's answer: HTTP status and JSON body (a model, a list, or an error envelope)."""

    status: int
    body: Any


class HostEndpoint(Protocol):
    """The host's side of one session's bus."""

    def receive(self, timeout: float, *, precise: bool = False) -> JsonDict | None:
        """The next web -> host message, or None after `timeout` seconds. `precise`: the host
        must wake at `timeout`, not merely within a poll interval of it (a wall-clock market's
        next tick); a backend whose own blocking timeout is coarse then makes the effort."""

    def send(self, connection_id: str, texts: list[str]) -> None:
        """Frames for one socket, in order."""

    def send_observed(self, connection_id: str, texts: list[str]) -> None:
        """Copies of frames for an observer: fire-and-forget, bounded on the way (no acks)."""

    def close_connection(self, connection_id: str, code: int) -> None: ...

    def reply(self, request_id: str, reply: Reply) -> None: ...

    def wake(self) -> None:
        """Make a pending `receive` return now (the host decided something on another thread)."""

    def serve_directly(self, handler: DirectHandler | None) -> None:
        """Offer `handler` for messages posted in this process (None withdraws it). A backend
        whose web side lives in other processes ignores it."""

    def close(self, *, keep_inbox: bool = False) -> None:
        """The host is gone: fail pending commands, forget the session. `keep_inbox`: the
        session moves to another host (drained, or its lease taken), which reads what was posted
        meanwhile (a reconnecting socket's attach, a retried order)."""


class SessionBus(Protocol):
    """The web side, plus `host()` for the worker that runs the session."""

    # Whether a host may answer a post on the poster's own thread, within `post` (in-process:
    # an ack handled at once releases the next frames there); else answers come later.
    answers_in_place: bool

    def host(self, session_id: str) -> HostEndpoint: ...

    def connect(self, session_id: str, sink: FrameSink, *, last_event_id: str | None,
                observer: bool = False) -> str:
        """Register a socket and tell the host (attach); returns the connection id. An observer
        gets copies of the strategy's frames and never starts or gates the session."""

    def post(self, session_id: str, message: JsonDict) -> None:
        """Fire-and-forget web -> host message (ack, detach, notice, cancel)."""

    async def apost(self, session_id: str, message: JsonDict) -> None:
        """`post` from a socket's event loop, in order with the socket's earlier posts."""

    def request(self, session_id: str, command: JsonDict, *, timeout: float) -> Reply:
        """Run a command in the host and wait for its reply. Raises BusUnavailable."""


@dataclass
class _Mailbox:
    inbox: queue.SimpleQueue[JsonDict] = field(default_factory=queue.SimpleQueue)
    sinks: dict[str, FrameSink] = field(default_factory=dict)
    pending: dict[str, Future[Reply]] = field(default_factory=dict)
    direct: DirectHandler | None = None
    hosted: bool = False
    closed: bool = False

    def deliver(self, message: JsonDict, *, blocking: bool) -> None:
        """To the host: on this very thread when it offers that and nothing is queued ahead
        (which keeps the messages of one socket in order), else through the inbox.

        Lock-step makes this the hot path: an ack handled here answers with the next batch from
        the same thread, where the inbox costs two wake-ups of other threads per bar (on these
        VMs each cross-CPU wake-up is tens of microseconds)."""
        direct = self.direct
        if direct is not None and self.inbox.empty() and direct(message, blocking):
            return
        self.inbox.put(message)


class InProcessBus:
    """One process, many threads: daphne's event loop on one side, Celery worker threads on the
    other. Mailboxes are created by whichever side comes first, so a socket may connect before the
    worker has picked the session up; its attach waits in the inbox."""

    answers_in_place = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mailboxes: dict[str, _Mailbox] = {}
        self._ids = itertools.count(1)

    def _mailbox(self, session_id: str, *, create: bool = True) -> _Mailbox | None:
        with self._lock:
            box = self._mailboxes.get(session_id)
            if box is None and create:
                box = self._mailboxes[session_id] = _Mailbox()
            return box

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}-{next(self._ids)}"

    # -- host side ------------------------------------------------------------------------------

    def host(self, session_id: str) -> _InProcessHost:
        box = self._mailbox(session_id)
        assert box is not None
        box.hosted = True
        return _InProcessHost(self, session_id, box)

    def _forget(self, session_id: str, box: _Mailbox) -> None:
        with self._lock:
            if self._mailboxes.get(session_id) is box:
                del self._mailboxes[session_id]

    # -- web side -------------------------------------------------------------------------------

    def connect(self, session_id: str, sink: FrameSink, *, last_event_id: str | None,
                observer: bool = False) -> str:
        connection_id = self._next_id("obs" if observer else "conn")
        box = self._mailbox(session_id)
        assert box is not None
        box.sinks[connection_id] = sink
        attach = {"kind": "attach", "connection": connection_id, "last_event_id": last_event_id}
        if observer:
            attach["observer"] = True
        box.inbox.put(attach)
        return connection_id

    def post(self, session_id: str, message: JsonDict) -> None:
        # Messages for a session nobody hosts any more are dropped rather than queued for ever;
        # a cancel is kept: it is only posted once a worker claimed the session, whose host may
        # not have opened its mailbox yet.
        box = self._mailbox(session_id, create=message.get("kind") == "cancel")
        if box is None:
            return
        if message.get("kind") == "detach":
            box.sinks.pop(message["connection"], None)
        box.deliver(message, blocking=False)

    async def apost(self, session_id: str, message: JsonDict) -> None:
        # Nothing to wait for: a host taking the message directly answers on this very call.
        self.post(session_id, message)

    def request(self, session_id: str, command: JsonDict, *, timeout: float) -> Reply:
        box = self._mailbox(session_id)
        assert box is not None
        request_id = self._next_id("req")
        future: Future[Reply] = Future()
        box.pending[request_id] = future
        box.deliver({"kind": "command", "request": request_id, **command}, blocking=True)
        try:
            return future.result(timeout)
        except FutureTimeout:
            if not box.hosted and not box.sinks:
                self._forget(session_id, box)  # nobody will ever drain it
            raise BusUnavailable("the session did not answer in time") from None
        finally:
            box.pending.pop(request_id, None)

    def submit(self, session_id: str, command: JsonDict) -> Future[Reply] | None:
        """`request` without waiting, for an event loop (the Trading API's fast path): the
        command goes to the host's inbox, never run on the caller's thread, and its reply
        arrives on the Future; BusUnavailable there means the host ended before running it.
        None when no host serves the session in this process now (nothing was posted)."""
        box = self._mailbox(session_id, create=False)
        if box is None or not box.hosted or box.closed:
            return None
        request_id = self._next_id("req")
        future: Future[Reply] = Future()
        box.pending[request_id] = future
        future.add_done_callback(lambda _: box.pending.pop(request_id, None))
        box.inbox.put({"kind": "command", "request": request_id, **command})
        if box.closed and not future.done():  # closed meanwhile: its close may have missed it
            future.set_exception(BusUnavailable("the session has ended"))
        return future


class _InProcessHost:
    def __init__(self, bus: InProcessBus, session_id: str, box: _Mailbox) -> None:
        self._bus, self._session_id, self._box = bus, session_id, box

    def receive(self, timeout: float, *, precise: bool = False) -> JsonDict | None:
        try:  # a queue's timeout is precise already
            return self._box.inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def send(self, connection_id: str, texts: list[str]) -> None:
        sink = self._box.sinks.get(connection_id)
        if sink is not None and texts:
            sink(texts, None)

    def send_observed(self, connection_id: str, texts: list[str]) -> None:
        # The observer's sink only hands over to its loop, where a bounded buffer drops oldest.
        self.send(connection_id, texts)

    def close_connection(self, connection_id: str, code: int) -> None:
        sink = self._box.sinks.pop(connection_id, None)
        if sink is not None:
            sink([], code)

    def reply(self, request_id: str, reply: Reply) -> None:
        future = self._box.pending.get(request_id)
        if future is not None and not future.done():
            future.set_result(reply)

    def wake(self) -> None:
        self._box.inbox.put({"kind": "wake"})

    def serve_directly(self, handler: DirectHandler | None) -> None:
        self._box.direct = handler

    def close(self, *, keep_inbox: bool = False) -> None:
        self._box.direct = None
        if keep_inbox:  # the next host of this process takes this mailbox as it is
            return
        self._box.closed = True
        self._bus._forget(self._session_id, self._box)
        for future in list(self._box.pending.values()):
            if not future.done():
                future.set_exception(BusUnavailable("the session has ended"))


_bus: SessionBus | None = None
_bus_lock = threading.Lock()


def get_bus() -> SessionBus:
    """The process's bus: Redis when REDIS_URL is set (distributed topology: web and workers in
    different processes), else in-process (embedded topology)."""
    global _bus
    with _bus_lock:
        if _bus is None:
            from django.conf import settings

            if settings.REDIS_URL:
                from runtimes.hosting.bus_redis import RedisBus

                _bus = RedisBus(settings.REDIS_URL)
            else:
                _bus = InProcessBus()
        return _bus
