"""The embedded broker: a consumer waiting on the in-memory transport wakes when a message is sent,
not at its next poll."""

from __future__ import annotations

import threading

import pytest
from kombu import Connection

from config import embedded_broker


@pytest.fixture
def connection():
    # A poll interval far beyond the test's timeout: only the wake-up can deliver in time.
    with Connection("memory://", transport=embedded_broker.Transport,
                    transport_options={"polling_interval": 60.0}) as connection:
        yield connection


def test_a_message_sent_while_a_consumer_waits_is_delivered_at_once(connection, monkeypatch):
    waiting = threading.Event()
    wait_past = embedded_broker.ARRIVALS.wait_past

    def signalling(seen: int, timeout: float) -> None:
        waiting.set()
        wait_past(seen, timeout)

    monkeypatch.setattr(embedded_broker.ARRIVALS, "wait_past", signalling)
    inbox = connection.SimpleQueue("dispatch-test")
    sender = Connection("memory://", transport=embedded_broker.Transport)

    def send_once_it_waits() -> None:
        assert waiting.wait(10)
        sender.SimpleQueue("dispatch-test").put({"session": "s-1"})

    thread = threading.Thread(target=send_once_it_waits)
    thread.start()
    message = inbox.get(timeout=10)
    thread.join()
    sender.release()

    assert message.payload == {"session": "s-1"}
    message.ack()


def test_with_nothing_sent_draining_times_out_as_kombus_own(connection):
    connection.SimpleQueue("idle-test")  # a consumer, so the transport has a queue to look at

    with pytest.raises(TimeoutError):
        connection.drain_events(timeout=0.05)
