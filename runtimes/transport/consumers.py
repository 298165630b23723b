"""The strategy's WebSocket (`/sessions/{id}/v1/ws`, or a share link's `/share/{token}/v1/ws`):
relays frames between socket and bus.

Authenticates from the upgrade headers before accepting (a refusal closes before accept, which
daphne answers with 403: final for the SDK). No Origin check: the SDK sends none and the key is
the credential. While open, runtimes/access.py guards it: revoking or expiring the credential,
removing or demoting the person it acts for closes it within a second. Decides nothing: acks and
bad frames go to the host, frames come back in order.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils import timezone

from accounts import keys
from runtimes.core.errors import TradingError
from runtimes.core.wire_parse import (
    EventAck,
    InvalidMessage,
    parse_client_message,
    parse_last_event_id,
)
from runtimes.hosting.bus import get_bus
from runtimes.hosting.dispatch import request_worker
from runtimes.models import LIVE_STATES, State, TradingSession
from runtimes.transport import access
from runtimes.transport.authentication import looks_like_session_token

# A socket with nothing to send for this long asks whether its session has ended without its host
# (a worker that died: the reaper ended the session, and no host will ever close this socket), or
# has moved to another host (the reaper requeued it, or its worker drained it).
ENDED_CHECK_SECONDS = 5.0
# As the host closes, for both: the SDK reconnects at once on a clean close; an ended session
# refuses it (403), a moved one accepts it and its attach reaches the next host. (Daphne, through
# autobahn, can send no other code below 3000: 1001 was silently never sent.)
CLOSE_NORMAL = 1000
MOVED_REASON = "the session moved to another worker"

Batch = tuple[list[str], int | None]  # frame texts for the socket, then a close code or None


def host_generation(session_id: str) -> int | None:
    """The fencing number of the host that serves a socket attaching now: the current one's
    while a host holds the session, the next claim's (one more) while it waits for one."""
    row = TradingSession.objects.filter(pk=session_id).values("state", "lease_fence").first()
    if row is None:
        return None
    hosted = row["state"] in (State.WAITING, State.RUNNING)
    return row["lease_fence"] if hosted else row["lease_fence"] + 1


def ended_reason(session_id: str, generation: int | None = None) -> str | None:
    """The failure reason (or state) of a session that has ended, or MOVED_REASON once the host
    of `generation` (`host_generation` at attach) is gone: the fence moved past it. None while
    the socket's host may still serve it."""
    row = TradingSession.objects.filter(pk=session_id).values(
        "state", "failure_reason", "lease_fence").first()
    if row is None:
        return "session not found"
    if row["state"] not in LIVE_STATES:
        return row["failure_reason"] or row["state"]
    if generation is not None and row["lease_fence"] > generation:
        return MOVED_REASON
    hosted = row["state"] in (State.WAITING, State.RUNNING)
    if generation is not None and hosted and row["lease_fence"] != generation:
        return MOVED_REASON
    return None


def header_key(headers: dict[bytes, bytes]) -> str | None:
    """The API key of the upgrade request: `Authorization: Bearer` first, then `X-API-Key`."""
    return keys.credential_in(
        headers.get(b"authorization", b"").decode("latin-1"),
        headers.get(b"x-api-key", b"").decode("latin-1"),
        accepts=lambda token: keys.looks_like_key(token) or looks_like_session_token(token))


def admit(raw_key: str | None, route: dict[str, Any]) -> access.Grant | None:
    """The handshake: the access grant (transport/access.py) of the key for the session the
    route names, or of the share link the route carries; on a created session it is also the
    strategy's first contact, which asks for a worker. The socket is accepted either way: its
    attach waits on the bus, and the stream starts when the host does."""
    if "share_token" in route:
        grant = access.share_grant(str(route["share_token"]))
    else:
        grant = access.socket_grant(raw_key, str(route["session_id"]))
    if grant is not None:
        created = TradingSession.objects.filter(pk=grant.session_id, state=State.CREATED).first()
        if created is not None:
            request_worker(session=created, now=timezone.now())
    return grant


class SessionConsumer(AsyncWebsocketConsumer):
    # No channel layer: the session bus carries everything. With one, each socket also kept a
    # channel-layer receive pending (a Redis BLPOP in the distributed topology, which redis-py's
    # 5 s read timeout killed, closing the socket with 1011) and woke on it for nothing.
    channel_layer_alias = None
    connection_id: str | None = None
    writer: asyncio.Task[None] | None = None
    guard: asyncio.Task[None] | None = None
    close_reason: str | None = None
    watchdog: asyncio.Task[None] | None = None
    generation: int | None = None  # the fencing number of the host serving this socket
    batches_out = 0  # what the writer handed on: the watchdog's sign of life, one add per batch
    # While `receive` posts a frame on the socket's loop, what the host answers there (the
    # in-process bus handles an ack on the poster's thread): sent by `receive` itself.
    answered: list[Batch] | None = None
    writing = False  # the writer holds a batch: anything newer waits behind it

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Channels' loop serves several sources (client, channel layer) with a new task and an
        # asyncio.wait per message; a socket without a channel layer has one: awaited directly.
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels runs close_old_connections on asgiref's one shared sync thread before every
        # message. Incoming frames touch no database here, and that hop would halve lock-step
        # throughput and queue each ack behind any sync REST view holding that thread.
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
            return
        await super().dispatch(message)

    async def connect(self) -> None:
        route = self.scope["url_route"]["kwargs"]
        headers = dict(self.scope["headers"])
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        cursor_text = headers.get(b"last-event-id", b"").decode("latin-1") or (
            query.get("last_event_id", [None])[-1])
        try:
            cursor = parse_last_event_id(cursor_text)
        except TradingError:
            await self.close()  # before accept: a 403 handshake
            return
        grant = await database_sync_to_async(admit)(header_key(headers), route)
        if grant is None:
            await self.close()
            return
        self.session_id = grant.session_id
        self.generation = await database_sync_to_async(host_generation)(self.session_id)
        await self.accept()
        self._open_outbox()
        self.writer = asyncio.create_task(self._write())
        self.watchdog = asyncio.create_task(self._close_once_ended())
        self.connection_id = get_bus().connect(self.session_id, self.take_frames,
                                               last_event_id=cursor)

        async def refused(refusal: access.Refusal) -> None:
            # After the frames already queued: say why, then close (the writer does both).
            self.close_reason = refusal.reason
            self.outbox.put_nowait(([access.disconnect_notice(refusal)], refusal.close_code))

        self.guard = asyncio.create_task(access.guard(grant, access.recheck, refused))

    def _open_outbox(self) -> None:
        """What frames for this socket go through, on its event loop (connect)."""
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self.outbox: asyncio.Queue[Batch] = asyncio.Queue()
        # Batches from other threads on their way to the outbox, oldest first: while any is,
        # nothing may overtake it (deque appends and pops are atomic).
        self.crossing: deque[Batch] = deque()
        self.sending = asyncio.Lock()  # one batch at a time, whoever sends it

    def take_frames(self, texts: list[str], close_code: int | None) -> None:
        """The socket's bus.FrameSink. From the host's thread (in-process bus): hand over to
        this socket's loop, nothing more. On this loop: to `receive` when it is posting (it
        sends them itself), else (a relay of the Redis bus) to the writer."""
        if threading.get_ident() != self.loop_thread:
            self.crossing.append((texts, close_code))
            self.loop.call_soon_threadsafe(self._arrive)
        elif self.answered is not None:
            self.answered.append((texts, close_code))
        elif self.crossing:
            self.crossing.append((texts, close_code))
            self.loop.call_soon(self._arrive)
        else:
            self.outbox.put_nowait((texts, close_code))

    def _arrive(self) -> None:
        self.outbox.put_nowait(self.crossing.popleft())

    async def _write(self) -> None:
        while True:
            texts, close_code = await self.outbox.get()
            self.writing = True
            try:
                async with self.sending:
                    if await self._send_batch(texts, close_code):
                        return
            finally:
                self.writing = False

    async def _send_batch(self, texts: list[str], close_code: int | None) -> bool:
        """Send one batch; True once it closed the socket. Texts are the host's encoded frames,
        sent as they are: straight to the server's send, past the consumer's keyword-to-message
        wrapping."""
        self.batches_out += 1
        for text in texts:
            await self.base_send({"type": "websocket.send", "text": text})
        if close_code is not None:
            await self.close(code=close_code, reason=self.close_reason)
            return True
        return False

    async def _post(self, message: dict[str, Any]) -> None:
        """Post to the host; what it answers on this loop meanwhile (an ack handled at once
        releases the next batch) is sent here, without a hop through the writer's queue,
        unless older batches still wait for the writer."""
        bus = get_bus()
        if not bus.answers_in_place:
            await bus.apost(self.session_id, message)
            return
        self.answered = []
        try:
            bus.post(self.session_id, message)
        finally:
            answered, self.answered = self.answered, None
        if not answered:
            return
        if self.crossing:  # behind what another thread handed over first
            for batch in answered:
                self.crossing.append(batch)
                self.loop.call_soon(self._arrive)
            return
        if self.writing or self.sending.locked() or not self.outbox.empty():
            for batch in answered:
                self.outbox.put_nowait(batch)
            return
        async with self.sending:
            for texts, close_code in answered:
                if await self._send_batch(texts, close_code):
                    return

    async def _close_once_ended(self) -> None:
        """Every ENDED_CHECK_SECONDS without a frame out: close if the session has ended. Its
        host closes its sockets as it ends it; a session ended in place of a dead host (the
        reaper, runtimes/leases.py) has nobody else to close them."""
        seen = -1
        while True:
            await asyncio.sleep(ENDED_CHECK_SECONDS)
            if self.batches_out != seen:
                seen = self.batches_out
                continue
            reason = await database_sync_to_async(ended_reason)(self.session_id,
                                                                self.generation)
            if reason is not None:
                if self.writer is not None:
                    self.writer.cancel()
                # The reason (at most 123 bytes) for servers that pass it on; daphne drops it.
                # Ended, the SDK's reconnect is then refused (403); moved, it reaches the next
                # host, which resumes the stream after the socket's Last-Event-ID.
                await self.close(code=CLOSE_NORMAL,
                                 reason=reason.encode()[:123].decode(errors="ignore"))
                return

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.connection_id is None:
            return
        try:
            message = parse_client_message(text_data if text_data is not None else bytes_data)
        except InvalidMessage as exc:
            await self._post({"kind": "notice", "connection": self.connection_id, **_notice(exc)})
            return
        if isinstance(message, EventAck):
            await self._post({
                "kind": "ack", "connection": self.connection_id,
                "events": list(message.events_processed),
                "correlation_id": message.correlation_id,
            })

    async def disconnect(self, code: int) -> None:
        if self.connection_id is not None:
            get_bus().post(self.session_id, {"kind": "detach", "connection": self.connection_id})
        for task in (self.writer, self.guard, self.watchdog):
            if task is not None and task is not asyncio.current_task():
                task.cancel()


def _notice(exc: InvalidMessage) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message, "details": exc.details or None}
