"""The Redis backend of the session bus: web processes and worker processes on any machines.

Lists, no pub/sub, so nothing is lost while a side is busy: web -> host messages go to one inbox
list per session (the host BLPOPs it); frames for a socket go to one list per connection (a relay
task on the socket's event loop BLPOPs it); a command's reply goes to a list of its own that the
view BLPOPs. Every key expires, so a vanished side leaves nothing behind for long.

Per event this costs one push and one pop each way, and no JSON work on frames: the host pushes
a whole batch of frame texts as one list element (joined by newlines, which compact JSON never
contains raw), and the relay splits it and hands the texts to the socket as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import itertools
import json
import math
import threading
import time
import uuid
import weakref
from typing import Any

import redis
import redis.asyncio

from runtimes.hosting.bus import BusUnavailable, FrameSink, JsonDict, Reply

PREFIX = "parity:bus"
KEY_TTL_S = 3600
REPLY_TTL_S = 60
RELAY_BLOCK_S = 5  # a relay's BLPOP returns at least this often (it loops; cheap)
FRAME_SEPARATOR = "\n"
MIN_BLOCK_S = 0.001  # BLPOP's resolution: a shorter timeout is 0, which blocks for ever
OBSERVER_BACKLOG = 256  # an observer's outbox keeps at most this many batches (oldest dropped)
CLOSE_PREFIX = "close:"  # an outbox element asking to close the socket; frames start with "{"
# Blocking reads (BLPOP) carry their own server-side timeout, so the client's socket timeout must
# not cut them short: a read timeout of 5 s (redis-py's default) against a 5 s BLPOP raced and
# surfaced as "Timeout reading from ...". Connecting still times out.
BLOCKING_CLIENT = {"socket_timeout": None, "socket_connect_timeout": 5,
                   "socket_keepalive": True}
# A host's BLPOP gets this much beyond its own deadline: the alarm (below) wakes it on time, this
# only bounds the wait should a wake-up ever be lost.
ALARM_BACKSTOP_S = 1.0
WAKE = '{"kind":"wake"}'  # pushed to end a host's wait: its receive returns None
WAKE_BYTES = WAKE.encode()


def inbox_key(session_id: str) -> str:
    return f"{PREFIX}:{session_id}:inbox"


def outbox_key(session_id: str, connection_id: str) -> str:
    return f"{PREFIX}:{session_id}:out:{connection_id}"


def reply_key(request_id: str) -> str:
    return f"{PREFIX}:reply:{request_id}"


def _dumps(message: Any) -> str:
    return json.dumps(message, separators=(",", ":"))


# RPUSH then EXPIRE as one command: redis-py spends more on a two-command pipeline than the
# round trip costs (measured here: 141 vs 114 us sync, 344 vs 276 us with redis.asyncio).
PUSH_SCRIPT = ("redis.call('RPUSH', KEYS[1], ARGV[1]) "
               "redis.call('EXPIRE', KEYS[1], ARGV[2]) return 1")
PUSH_SHA = hashlib.sha1(PUSH_SCRIPT.encode(), usedforsecurity=False).hexdigest()  # its name


def _push(client: redis.Redis, key: str, element: str, ttl: int = KEY_TTL_S) -> None:
    try:
        client.evalsha(PUSH_SHA, 1, key, element, ttl)
    except redis.exceptions.NoScriptError:  # a fresh or flushed server: EVAL caches it
        client.eval(PUSH_SCRIPT, 1, key, element, ttl)


async def _apush(client: redis.asyncio.Redis, key: str, element: str) -> None:
    try:
        await client.evalsha(PUSH_SHA, 1, key, element, KEY_TTL_S)  # type: ignore[misc]
    except redis.exceptions.NoScriptError:
        await client.eval(PUSH_SCRIPT, 1, key, element, KEY_TTL_S)  # type: ignore[misc]


def _reply_of(raw: bytes) -> Reply:
    answer = json.loads(raw)
    return Reply(answer["status"], answer["body"])


class _Alarms:
    """Wakes hosts blocked on their inbox at a given moment, by pushing a wake into it.

    BLPOP's own timeout is only as precise as the Redis server's timer: 1/hz, 100 ms at the
    default hz of 10 (measured: a 10 ms BLPOP returns after 100 ms, and a timeout of 0 blocks
    forever). A wall-clock market ticking every 50-250 ms needs its host woken on time, so each
    host's wait is ended by a push at its deadline, which BLPOP answers at once. One thread per
    process serves every host in it, waking all those due at once in one round trip. Most
    alarms are cancelled (the host got a message first): the thread is not woken for them."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, RedisHost]] = []
        self._cancelled: set[int] = set()
        self._numbers = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._clients: dict[str, redis.Redis] = {}  # used by the alarms' thread only
        self._sleeping_until = -math.inf  # the deadline the thread waits for (inf: none)

    def set(self, moment: float, host: RedisHost) -> int:
        """Wake `host` at `moment` (time.monotonic()); returns the alarm's number."""
        number = next(self._numbers)
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="bus-alarms")
                self._thread.start()
            heapq.heappush(self._due, (moment, number, host))
            if moment < self._sleeping_until:  # else the thread wakes in time anyway
                self._changed.notify()
        return number

    def cancel(self, number: int) -> None:
        """Drop an alarm (its host got a message first): at once when it is the next one due,
        else when it comes due."""
        with self._changed:
            self._cancelled.add(number)
            while self._due and self._due[0][1] in self._cancelled:
                self._cancelled.discard(heapq.heappop(self._due)[1])

    def _run(self) -> None:
        while True:
            wakes = self._next_wakes()
            # One round trip for every host due at once (a mock market's ticks fall on the same
            # instants in every session): serial pushes, each waiting for the GIL among the
            # hosts just woken, made the last host of 50 some 40 ms late.
            for url, inboxes in wakes.items():
                pipe = self._client(url).pipeline(transaction=False)
                for inbox in inboxes:
                    pipe.rpush(inbox, WAKE)
                    pipe.expire(inbox, KEY_TTL_S)
                # Redis away: the hosts' BLPOPs fail, or time out by themselves.
                with contextlib.suppress(redis.exceptions.RedisError):
                    pipe.execute()

    def _next_wakes(self) -> dict[str, list[str]]:
        """Blocks until alarms are due; returns the inboxes to wake, by Redis URL."""
        wakes: dict[str, list[str]] = {}
        with self._changed:
            while not wakes:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._sleeping_until = self._due[0][0] if self._due else math.inf
                    self._changed.wait(self._sleeping_until - time.monotonic()
                                       if self._due else None)
                    self._sleeping_until = -math.inf  # awake: it looks at the heap again
                while self._due and self._due[0][0] <= time.monotonic():
                    _, number, host = heapq.heappop(self._due)
                    if number in self._cancelled:
                        self._cancelled.discard(number)
                    else:
                        wakes.setdefault(host.url, []).append(host.inbox)
        return wakes

    def _client(self, url: str) -> redis.Redis:
        client = self._clients.get(url)
        if client is None:
            client = self._clients[url] = redis.Redis.from_url(url)
        return client


_ALARMS = _Alarms()


class RedisHost:
    """The host's side: its own connection, since BLPOP holds it."""

    def __init__(self, url: str, session_id: str) -> None:
        self._client = redis.Redis.from_url(url, **BLOCKING_CLIENT)
        self._session_id = session_id
        self._inbox = inbox_key(session_id)
        self.url, self.inbox = url, self._inbox  # where the alarms' thread wakes it

    def receive(self, timeout: float, *, precise: bool = False) -> JsonDict | None:
        """The next message, or None once `timeout` has passed or the host was woken. Only a
        `precise` wait is ended by an alarm: a backtest's host (acked within a millisecond)
        does not pay for one on every receive (measured: 12% of its bars/s)."""
        # Redis counts a BLPOP timeout in milliseconds and blocks for ever on 0: a host whose
        # provider is due now (a market catching up) polls without blocking instead.
        if timeout < MIN_BLOCK_S:
            raw: Any = self._client.lpop(self._inbox)
        elif not precise:
            item: Any = self._client.blpop([self._inbox], timeout=timeout)
            raw = None if item is None else item[1]
        else:
            alarm = _ALARMS.set(time.monotonic() + timeout, self)
            try:
                item = self._client.blpop([self._inbox], timeout=timeout + ALARM_BACKSTOP_S)
            finally:
                _ALARMS.cancel(alarm)  # a wake pushed already costs the host one more turn
            raw = None if item is None else item[1]
        return None if raw is None or raw == WAKE_BYTES else dict(json.loads(raw))

    def send(self, connection_id: str, texts: list[str]) -> None:
        if texts:
            _push(self._client, outbox_key(self._session_id, connection_id),
                  FRAME_SEPARATOR.join(texts))

    def send_observed(self, connection_id: str, texts: list[str]) -> None:
        # Trimmed as it is pushed: an observer whose relay stalls costs bounded memory.
        if texts:
            pipe = self._client.pipeline(transaction=False)
            key = outbox_key(self._session_id, connection_id)
            pipe.rpush(key, FRAME_SEPARATOR.join(texts))
            pipe.ltrim(key, -OBSERVER_BACKLOG, -1)
            pipe.expire(key, KEY_TTL_S)
            pipe.execute()

    def close_connection(self, connection_id: str, code: int) -> None:
        _push(self._client, outbox_key(self._session_id, connection_id), f"{CLOSE_PREFIX}{code}")

    def reply(self, request_id: str, reply: Reply) -> None:
        _push(self._client, reply_key(request_id),
              _dumps({"status": reply.status, "body": reply.body}), REPLY_TTL_S)

    def wake(self) -> None:
        _push(self._client, self._inbox, WAKE)

    def serve_directly(self, handler: Any) -> None:
        """Web processes reach this host through Redis only: nothing to offer."""

    def close(self, *, keep_inbox: bool = False) -> None:
        # Commands still queued get no reply; their views time out and answer 503. A session
        # moving to another host keeps its inbox: that host reads it.
        if not keep_inbox:
            self._client.delete(self._inbox)
        self._client.close()


class RedisBus:
    """The web side. `connect` must be called on the socket's event loop: it starts the relay
    task there. Pushes use a blocking client (sub-millisecond on a local Redis); `arequest` waits
    for its reply without blocking the loop."""

    answers_in_place = False  # hosts live in other processes: answers come through the relay

    def __init__(self, url: str) -> None:
        self._url = url
        self._client = redis.Redis.from_url(url)
        self._blocking = redis.Redis.from_url(url, **BLOCKING_CLIENT)
        self._relays: dict[str, asyncio.Task[None]] = {}
        # One pool per event loop: redis.asyncio connections belong to the loop that made them.
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
            weakref.WeakKeyDictionary())
        self._posters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Poster] = (
            weakref.WeakKeyDictionary())

    def host(self, session_id: str) -> RedisHost:
        return RedisHost(self._url, session_id)

    # -- sockets --------------------------------------------------------------------------------

    def connect(self, session_id: str, sink: FrameSink, *, last_event_id: str | None,
                observer: bool = False) -> str:
        connection_id = uuid.uuid4().hex
        relay = self._relay(outbox_key(session_id, connection_id), sink)
        task = asyncio.get_running_loop().create_task(relay)
        self._relays[connection_id] = task
        task.add_done_callback(lambda _: self._relays.pop(connection_id, None))
        attach: JsonDict = {"kind": "attach", "connection": connection_id,
                            "last_event_id": last_event_id}
        if observer:
            attach["observer"] = True
        self.post(session_id, attach)
        return connection_id

    async def _relay(self, key: str, sink: FrameSink) -> None:
        # Its own connection: a BLPOP holds it, and cancelling one mid-read leaves it unusable.
        client = redis.asyncio.Redis.from_url(self._url, **BLOCKING_CLIENT)
        try:
            while True:
                item = await client.blpop([key], timeout=RELAY_BLOCK_S)
                if item is None:
                    continue
                element = item[1].decode()
                if element.startswith(CLOSE_PREFIX):
                    sink([], int(element.removeprefix(CLOSE_PREFIX)))
                    return
                sink(element.split(FRAME_SEPARATOR), None)
        except asyncio.CancelledError:
            pass  # the socket went away (detach): not an error, and nothing to report
        finally:
            await client.aclose()

    def post(self, session_id: str, message: JsonDict) -> None:
        if message.get("kind") == "detach":
            relay = self._relays.pop(message["connection"], None)
            if relay is not None:
                relay.cancel()
            self._post_element(outbox_key(session_id, message["connection"]), None)
        self._post_element(inbox_key(session_id), _dumps(message))

    async def apost(self, session_id: str, message: JsonDict) -> None:
        """`post` awaited in place (a socket's ack): the push leaves now, where the poster
        would first start a task for it (measured here: 57 vs 91 us of CPU, and a turn of the
        loop later). Queued behind the poster when it holds anything, which keeps the order."""
        poster = self._posters.get(asyncio.get_running_loop())
        if message.get("kind") == "detach" or (poster is not None and poster.busy()):
            self.post(session_id, message)
            return
        await _apush(self._async_client(), inbox_key(session_id), _dumps(message))

    def _post_element(self, key: str, element: str | None) -> None:
        """Push `element` to `key` (None: delete the key). On an event loop (a socket's acks)
        this only queues it for the loop's poster, so the loop never blocks on a round trip;
        elsewhere (a view's thread, a service) it is pushed at once."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            if element is None:
                self._client.delete(key)
            else:
                _push(self._client, key, element)
            return
        poster = self._posters.get(loop)
        if poster is None:
            poster = self._posters[loop] = _Poster(self._async_client())
        poster.put(key, element)

    # -- commands -------------------------------------------------------------------------------

    def request(self, session_id: str, command: JsonDict, *, timeout: float) -> Reply:
        request_id = self._send_command(session_id, command)
        item = self._blocking.blpop([reply_key(request_id)], timeout=timeout)
        if item is None:
            raise BusUnavailable("the session did not answer in time")
        return _reply_of(item[1])

    async def arequest(self, session_id: str, command: JsonDict, *, timeout: float) -> Reply:
        """`request` for an event loop: the wait holds one pooled connection, not a thread."""
        request_id = self._send_command(session_id, command)
        item = await self._async_client().blpop([reply_key(request_id)], timeout=timeout)
        if item is None:
            raise BusUnavailable("the session did not answer in time")
        return _reply_of(item[1])

    def _send_command(self, session_id: str, command: JsonDict) -> str:
        request_id = uuid.uuid4().hex
        _push(self._client, inbox_key(session_id),
              _dumps({"kind": "command", "request": request_id, **command}))
        return request_id

    def _async_client(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = self._async[loop] = redis.asyncio.Redis.from_url(self._url,
                                                                      **BLOCKING_CLIENT)
        return client

    async def aclose(self) -> None:
        """Stop this loop's relays and close its pooled connections (tests, shutdown)."""
        loop = asyncio.get_running_loop()
        relays = [relay for relay in self._relays.values() if relay.get_loop() is loop]
        for relay in relays:
            relay.cancel()
        for relay in relays:
            with contextlib.suppress(asyncio.CancelledError):
                await relay
        poster = self._posters.pop(loop, None)
        if poster is not None:
            await poster.drained()
        client = self._async.pop(loop, None)
        if client is not None:
            await client.aclose()


class _Poster:
    """One event loop's web -> Redis pushes, in order, without blocking the loop: queued, then
    written by one task, everything queued meanwhile in one pipeline (so a burst of acks costs
    one round trip, and one key's elements keep their order)."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._client = client
        self._queue: list[tuple[str, str | None]] = []
        self._writer: asyncio.Task[None] | None = None

    def busy(self) -> bool:
        """Whether anything is queued or being pushed."""
        return bool(self._queue) or (self._writer is not None and not self._writer.done())

    def put(self, key: str, element: str | None) -> None:
        self._queue.append((key, element))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            if len(batch) == 1 and batch[0][1] is not None:  # lock-step: one ack at a time
                await _apush(self._client, batch[0][0], batch[0][1])
                continue
            pipe = self._client.pipeline(transaction=False)
            for key, element in batch:
                if element is None:
                    pipe.delete(key)
                else:
                    pipe.rpush(key, element)
                    pipe.expire(key, KEY_TTL_S)
            await pipe.execute()

    async def drained(self) -> None:
        if self._writer is not None:
            await self._writer
