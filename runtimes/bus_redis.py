"""The Redis backend of the session bus: web processes and worker processes on any machines.

Lists, no pub/sub, so nothing is lost while a side is busy: web -> host messages go to one inbox
list per session (the host BLPOPs it); frames for a socket go to one list per connection (a relay
task on the socket's event loop BLPOPs it); a command's reply goes to a list of its own that the
view BLPOPs. Every key expires, so a vanished side leaves nothing behind for long.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import redis
import redis.asyncio

from runtimes.bus import BusUnavailable, FrameSink, JsonDict, Reply

PREFIX = "parity:bus"
KEY_TTL_S = 3600
REPLY_TTL_S = 60
RELAY_BLOCK_S = 5  # a relay wakes at least this often (to notice cancellation promptly anyway)


def inbox_key(session_id: str) -> str:
    return f"{PREFIX}:{session_id}:inbox"


def outbox_key(session_id: str, connection_id: str) -> str:
    return f"{PREFIX}:{session_id}:out:{connection_id}"


def reply_key(request_id: str) -> str:
    return f"{PREFIX}:reply:{request_id}"


def _push(client: redis.Redis, key: str, message: Any, ttl: int = KEY_TTL_S) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.rpush(key, json.dumps(message, separators=(",", ":")))
    pipe.expire(key, ttl)
    pipe.execute()


class RedisHost:
    """The host's side: its own connection, since BLPOP holds it."""

    def __init__(self, url: str, session_id: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._session_id = session_id
        self._inbox = inbox_key(session_id)

    def receive(self, timeout: float) -> JsonDict | None:
        item = self._client.blpop([self._inbox], timeout=timeout)
        return None if item is None else json.loads(item[1])

    def send(self, connection_id: str, texts: list[str]) -> None:
        if texts:
            _push(self._client, outbox_key(self._session_id, connection_id), {"texts": texts})

    def close_connection(self, connection_id: str, code: int) -> None:
        _push(self._client, outbox_key(self._session_id, connection_id), {"close": code})

    def reply(self, request_id: str, reply: Reply) -> None:
        _push(self._client, reply_key(request_id), {"status": reply.status, "body": reply.body},
              REPLY_TTL_S)

    def close(self) -> None:
        # Commands still queued get no reply; their views time out and answer 503.
        self._client.delete(self._inbox)
        self._client.close()


class RedisBus:
    """The web side. `connect` must be called on the socket's event loop: it starts the relay
    task there. Pushes use a blocking client (sub-millisecond on a local Redis)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._client = redis.Redis.from_url(url)
        self._relays: dict[str, asyncio.Task[None]] = {}

    def host(self, session_id: str) -> RedisHost:
        return RedisHost(self._url, session_id)

    def connect(self, session_id: str, sink: FrameSink, *, last_event_id: str | None) -> str:
        connection_id = uuid.uuid4().hex
        relay = self._relay(outbox_key(session_id, connection_id), sink)
        self._relays[connection_id] = asyncio.get_running_loop().create_task(relay)
        self.post(session_id, {"kind": "attach", "connection": connection_id,
                               "last_event_id": last_event_id})
        return connection_id

    async def _relay(self, key: str, sink: FrameSink) -> None:
        client = redis.asyncio.Redis.from_url(self._url)
        try:
            while True:
                item = await client.blpop([key], timeout=RELAY_BLOCK_S)
                if item is None:
                    continue
                message = json.loads(item[1])
                if "close" in message:
                    sink([], int(message["close"]))
                    return
                sink(message["texts"], None)
        finally:
            await client.aclose()

    def post(self, session_id: str, message: JsonDict) -> None:
        if message.get("kind") == "detach":
            relay = self._relays.pop(message["connection"], None)
            if relay is not None:
                relay.cancel()
            self._client.delete(outbox_key(session_id, message["connection"]))
        _push(self._client, inbox_key(session_id), message)

    def request(self, session_id: str, command: JsonDict, *, timeout: float) -> Reply:
        request_id = uuid.uuid4().hex
        _push(self._client, inbox_key(session_id), {"kind": "command", "request": request_id,
                                                    **command})
        item = self._client.blpop([reply_key(request_id)], timeout=timeout)
        if item is None:
            raise BusUnavailable("the session did not answer in time")
        answer = json.loads(item[1])
        return Reply(answer["status"], answer["body"])
