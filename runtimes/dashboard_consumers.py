"""The dashboard's live view of a session (`/app/sessions/{id}/live`): a read-only WebSocket.

Authenticated by the login session (Channels' `AuthMiddlewareStack`) behind an origin check that
requires an Origin of this site (see `config.routing`): a browser sends its cookies with any
page's WebSocket, so without the check any site could read a member's sessions (cross-site
WebSocket hijacking). Refusals close before accept, which daphne answers with 403.

It is an observer on the session bus: the host sends it a copy of every frame it sends to the
strategy, and it never acks, so it can neither slow nor stop the session. Frames go out as the
host encoded them; between them come its own messages, all JSON objects with a `type`:
- `snapshot`: the session's row (state, counts) on connect and every STATUS_EVERY_S after;
- `observer_state`: the host's account, positions and open orders when the observer attached;
- `dropped`: how many frames this socket lost because the browser read too slowly;
- `access_lost`: the viewer was removed from the workspace (or deactivated): `reason` says so,
  and the socket closes with 4003 within a second (runtimes/access.py).
Once the session has ended it sends a last snapshot and closes (1000).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import OriginValidator
from django.conf import settings

from accounts import auth_cache
from accounts.models import Membership
from runtimes.hosting.bus import get_bus
from runtimes.models import TradingSession
from runtimes.services import simulated_period
from runtimes.transport import access

BUFFER_FRAMES = 2000  # frames kept for a slow browser; beyond that the oldest are dropped
STATUS_EVERY_S = 2.0  # how often the session's row is re-read (state, counts; ends the view)
CLOSE_NORMAL = 1000


def snapshot(session: TradingSession) -> dict[str, Any]:
    """What the row says of a session, as the live view shows it: with its simulated period
    (the page's progress and ETA follow the simulated time of the frames over it) and, once it
    failed, what happened and what to do."""
    first, last = simulated_period(session)
    failure = session.failure()
    return {
        "type": "snapshot",
        "session": {
            "id": str(session.pk),
            "state": session.state,
            "state_label": session.get_state_display(),
            "terminal": session.is_terminal,
            "symbols": list(session.symbols),
            "timeframe": session.timeframe,
            "events_sent": session.events_sent,
            "events_acked": session.events_acked,
            "batches": session.batches,
            "started_at": session.started_at.isoformat() if session.started_at else None,
            "finished_at": session.finished_at.isoformat() if session.finished_at else None,
            "failure_reason": session.failure_reason,
            "failure_message": "" if failure is None else failure.message,
            "total_batches": session.total_batches,
            "period": {"first": first.isoformat() if first else None,
                       "last": last.isoformat() if last else None},
        },
    }


def member_snapshot(user: Any, session_id: str) -> tuple[dict[str, Any], access.Grant] | None:
    """The session's snapshot and what to guard when `user` is logged in and a member of its
    workspace, else None (also for an unknown session: a stranger learns nothing from the
    refusal)."""
    if user is None or not user.is_authenticated:
        return None
    epoch = auth_cache.current_epoch()  # before the check: a change after it is then seen
    session = TradingSession.objects.filter(pk=session_id).first()
    if session is None or not Membership.objects.filter(
            user=user, workspace_id=session.workspace_id).exists():
        return None
    return snapshot(session), access.dashboard_grant(user, session, epoch=epoch)


def current_snapshot(session_id: str) -> dict[str, Any] | None:
    session = TradingSession.objects.filter(pk=session_id).first()
    return None if session is None else snapshot(session)


class ObserverBuffer:
    """Frames waiting for the browser: bounded, dropping the oldest and counting them, so a slow
    reader costs bounded memory and never pushes back on the host. Used on one event loop."""

    def __init__(self, limit: int = BUFFER_FRAMES) -> None:
        self.texts: deque[str] = deque(maxlen=limit)
        self.dropped = 0  # dropped since the browser was last told
        self.close_code: int | None = None
        self.ready = asyncio.Event()

    def put(self, texts: list[str], close_code: int | None) -> None:
        overflow = len(self.texts) + len(texts) - (self.texts.maxlen or 0)
        if overflow > 0:
            self.dropped += overflow
        self.texts.extend(texts)
        if close_code is not None:
            self.close_code = close_code
        self.ready.set()

    def take(self) -> tuple[list[str], int, int | None]:
        """Everything buffered, the drops since the last take, and the close request."""
        texts, dropped = list(self.texts), self.dropped
        self.texts.clear()
        self.dropped = 0
        self.ready.clear()
        return texts, dropped, self.close_code


class SessionLiveConsumer(AsyncWebsocketConsumer):
    """One browser watching one session."""

    channel_layer_alias = None  # the session bus carries everything (see SessionConsumer)
    connection_id: str | None = None
    tasks: tuple[asyncio.Task[None], ...] = ()
    ending = False

    async def connect(self) -> None:
        self.session_id = str(self.scope["url_route"]["kwargs"]["session_id"])
        allowed = await database_sync_to_async(member_snapshot)(self.scope.get("user"),
                                                                 self.session_id)
        if allowed is None:
            await self.close()  # before accept: a 403 handshake
            return
        first, grant = allowed
        await self.accept()
        await self.send(text_data=json.dumps(first))
        if first["session"]["terminal"]:
            await self.close(code=CLOSE_NORMAL)
            return
        buffer = ObserverBuffer()
        loop, loop_thread = asyncio.get_running_loop(), threading.get_ident()

        def sink(texts: list[str], close_code: int | None) -> None:
            # From the host's thread (in-process bus) hand over to this loop; from a relay on
            # this loop (Redis bus) put directly.
            if threading.get_ident() == loop_thread:
                buffer.put(texts, close_code)
            else:
                loop.call_soon_threadsafe(buffer.put, texts, close_code)

        self.tasks = (asyncio.create_task(self._write(buffer)),
                      asyncio.create_task(self._poll_status()),
                      asyncio.create_task(access.guard(grant, access.recheck_dashboard,
                                                       self._refused)))
        self.connection_id = get_bus().connect(self.session_id, sink, last_event_id=None,
                                               observer=True)

    async def _write(self, buffer: ObserverBuffer) -> None:
        while True:
            await buffer.ready.wait()
            texts, dropped, close_code = buffer.take()
            if dropped:
                await self.send(text_data=json.dumps({"type": "dropped", "count": dropped}))
            for text in texts:
                await self.base_send({"type": "websocket.send", "text": text})
            if close_code is not None:
                await self._end()
                return

    async def _poll_status(self) -> None:
        # The row is the authority on the end: the host closes observers just before it writes
        # the final state, and a session can also end without a host (cancelled while queued).
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            current = await database_sync_to_async(current_snapshot)(self.session_id)
            if self.ending:
                return
            if current is None or current["session"]["terminal"]:
                await self._close_with(current)
                return
            await self.send(text_data=json.dumps(current))

    async def _end(self) -> None:
        """The host closed this observer: wait briefly for the final state, say it, close."""
        current = None
        for _ in range(50):
            current = await database_sync_to_async(current_snapshot)(self.session_id)
            if current is None or current["session"]["terminal"]:
                break
            await asyncio.sleep(0.1)
        if not self.ending:
            await self._close_with(current)

    async def _close_with(self, last: dict[str, Any] | None) -> None:
        self.ending = True
        if last is not None:
            await self.send(text_data=json.dumps(last))
        await self.close(code=CLOSE_NORMAL)

    async def _refused(self, refusal: access.Refusal) -> None:
        """The viewer left the workspace (or was deactivated): say so and close."""
        if self.ending:
            return
        self.ending = True
        for task in self.tasks:  # nothing more goes out, but this
            if task is not asyncio.current_task():
                task.cancel()
        await self.send(text_data=json.dumps({"type": "access_lost", "reason": refusal.reason}))
        await self.close(code=refusal.close_code, reason=refusal.reason)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Read-only: whatever the browser sends is ignored."""

    async def disconnect(self, code: int) -> None:
        if self.connection_id is not None:
            get_bus().post(self.session_id, {"kind": "detach", "connection": self.connection_id})
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()


def dashboard_origins() -> list[str]:
    """Origins the dashboard's sockets accept: the ALLOWED_HOSTS (any scheme and port) and the
    CSRF_TRUSTED_ORIGINS (exactly). A `*` host is not honoured as "any origin": an Origin is
    required regardless (see `RequiredOriginValidator`)."""
    hosts = [host for host in settings.ALLOWED_HOSTS if host != "*"]
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    return [*hosts, *settings.CSRF_TRUSTED_ORIGINS]


class RequiredOriginValidator(OriginValidator):
    """Channels' origin check over `dashboard_origins()` (read per handshake, so settings
    changes apply), except that a handshake without an Origin is always refused: only
    browsers use the dashboard's sockets, and browsers always send one."""

    def __init__(self, application: Any) -> None:
        super().__init__(application, [])

    @property  # type: ignore[override]
    def allowed_origins(self) -> list[str]:
        return dashboard_origins()

    @allowed_origins.setter
    def allowed_origins(self, value: list[str]) -> None:
        pass  # always derived from the settings

    def valid_origin(self, parsed_origin: Any) -> bool:
        return parsed_origin is not None and bool(self.validate_origin(parsed_origin))
