"""How a strategy socket sends what its host answers: frames an ack releases on the socket's own
loop are sent by the receive itself, never ahead of older frames still on their way."""

from __future__ import annotations

import asyncio
import threading

import pytest

from runtimes.hosting.bus import InProcessBus
from runtimes.transport import consumers
from runtimes.transport.consumers import SessionConsumer


@pytest.fixture
def bus(monkeypatch):
    bus = InProcessBus()
    monkeypatch.setattr(consumers, "get_bus", lambda: bus)
    return bus


def _socket(bus: InProcessBus, answer: list[str]) -> tuple[SessionConsumer, list[str]]:
    """A consumer past its handshake whose host answers every ack with `answer`, in place."""
    sent: list[str] = []
    consumer = SessionConsumer()

    async def base_send(message: dict) -> None:
        sent.append(message["text"])

    consumer.base_send = base_send
    consumer.session_id = "s"
    consumer._open_outbox()
    consumer.writer = asyncio.get_running_loop().create_task(consumer._write())
    consumer.connection_id = bus.connect("s", consumer.take_frames, last_event_id=None)
    endpoint = bus.host("s")
    endpoint.receive(0)  # the attach

    def take(message: dict, blocking: bool) -> bool:
        endpoint.send(message["connection"], list(answer))
        return True

    endpoint.serve_directly(take)
    return consumer, sent


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_frames_an_ack_releases_are_sent_before_the_receive_returns(bus):
    consumer, sent = _socket(bus, ['{"n":2}', '{"n":3}'])

    await consumer.receive('{"type":"event_ack","events_processed":["evt-1"]}')

    assert sent == ['{"n":2}', '{"n":3}']
    assert consumer.outbox.empty() and consumer.batches_out == 1
    consumer.writer.cancel()


async def test_frames_still_crossing_from_another_thread_are_not_overtaken(bus):
    consumer, sent = _socket(bus, ['{"n":3}'])
    sender = threading.Thread(target=consumer.take_frames, args=(['{"n":2}'], None))
    sender.start()
    sender.join()  # handed over, not yet on the loop

    await consumer.receive('{"type":"event_ack","events_processed":["evt-1"]}')
    await _settle()

    assert sent == ['{"n":2}', '{"n":3}']
    consumer.writer.cancel()


async def test_a_close_answered_in_place_is_sent_after_the_frames_before_it(bus, monkeypatch):
    consumer, sent = _socket(bus, ['{"n":2}'])
    closed: list[int] = []

    async def close(code=None, reason=None):
        closed.append((len(sent), code))

    monkeypatch.setattr(consumer, "close", close)
    endpoint = bus.host("s")

    def take(message: dict, blocking: bool) -> bool:
        endpoint.send(message["connection"], ['{"n":2}'])
        endpoint.close_connection(message["connection"], 1000)
        return True

    endpoint.serve_directly(take)
    await consumer.receive('{"type":"event_ack","events_processed":["evt-1"]}')

    assert (sent, closed) == (['{"n":2}'], [(1, 1000)])
    consumer.writer.cancel()
