"""The in-process bus's direct path: a host may take a message on the poster's own thread (the
lock-step hot path), never past something queued ahead, never while it is busy on an event loop,
and a crash there still ends the session on the host's thread."""

from __future__ import annotations

import threading

import pytest

from runtimes.hosting.bus import InProcessBus, Reply


def _host_taking(bus: InProcessBus, session: str, taken: list, *, accept: bool = True):
    endpoint = bus.host(session)

    def take(message: dict, blocking: bool) -> bool:
        taken.append((message["kind"], blocking, threading.get_ident()))
        if accept and message["kind"] == "command":
            endpoint.reply(message["request"], Reply(200, {"op": message["op"]}))
        return accept

    endpoint.serve_directly(take)
    return endpoint


def test_a_posted_message_is_taken_on_the_posting_thread_and_never_queued():
    bus, taken = InProcessBus(), []
    endpoint = _host_taking(bus, "s", taken)

    bus.post("s", {"kind": "ack", "connection": "c", "events": ["evt-1"]})

    assert taken == [("ack", False, threading.get_ident())]
    assert endpoint.receive(0) is None


def test_a_command_taken_directly_answers_from_its_own_thread():
    bus, taken = InProcessBus(), []
    _host_taking(bus, "s", taken)

    assert bus.request("s", {"op": "account"}, timeout=1) == Reply(200, {"op": "account"})
    assert taken == [("command", True, threading.get_ident())]


def test_a_declined_message_goes_to_the_inbox():
    bus, taken = InProcessBus(), []
    endpoint = _host_taking(bus, "s", taken, accept=False)

    bus.post("s", {"kind": "ack", "connection": "c", "events": ["evt-1"]})

    assert endpoint.receive(0) == {"kind": "ack", "connection": "c", "events": ["evt-1"]}


def test_nothing_overtakes_a_queued_message():
    bus, taken = InProcessBus(), []
    endpoint = bus.host("s")
    bus.post("s", {"kind": "notice", "connection": "c"})  # queued: no handler yet
    endpoint.serve_directly(lambda message, blocking: taken.append(message) or True)

    bus.post("s", {"kind": "ack", "connection": "c", "events": ["evt-1"]})

    assert taken == []
    assert [endpoint.receive(0)["kind"], endpoint.receive(0)["kind"]] == ["notice", "ack"]


def test_a_closed_host_offers_nothing():
    bus, taken = InProcessBus(), []
    endpoint = _host_taking(bus, "s", taken)
    endpoint.close()

    bus.post("s", {"kind": "ack", "connection": "c", "events": ["evt-1"]})

    assert taken == []


# -- the session host's side ----------------------------------------------------------------------


class _Endpoint:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str]]] = []
        self.wakes = 0

    def send(self, connection_id, texts):
        self.sent.append((connection_id, texts))

    def wake(self):
        self.wakes += 1


@pytest.fixture
def host(db, owner, workspace, dataset):
    from runtimes.core.datasets import load_market_data
    from runtimes.hosting.host import SessionHost
    from runtimes.models import TradingSession
    from runtimes.providers.backtest import BacktestProvider

    row = TradingSession.objects.create(workspace=workspace, created_by=owner, dataset=dataset,
                                        symbols=["BTCUSDT"], timeframe="1m")
    files = {f.symbol: f.path for f in dataset.files.all()}
    engine = BacktestProvider(load_market_data(files), row.backtest_config())
    host = SessionHost(row, _Endpoint(), engine)
    host.connections["conn-1"] = None
    host.stream.start()
    return host


def test_an_ack_taken_directly_sends_the_next_batch_from_the_same_call(host):
    pending = list(host.stream.gate.pending)

    assert host.take_now({"kind": "ack", "connection": "conn-1", "events": pending}, False)

    assert host.stream.batches_emitted == 2
    assert [connection for connection, _ in host.endpoint.sent] == ["conn-1"]


def test_a_busy_host_declines_without_waiting_on_an_event_loop(host):
    with host.lock:
        assert not host.take_now({"kind": "ack", "connection": "conn-1", "events": []}, False)


def test_attach_and_cancel_always_go_through_the_inbox(host):
    assert not host.take_now({"kind": "attach", "connection": "conn-2"}, True)
    assert not host.take_now({"kind": "cancel"}, True)
    assert not host.take_now({"kind": "command", "op": "account", "request": "r"}, False)


def test_a_crash_on_the_posting_thread_is_handed_to_the_host_thread(host, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(host.stream, "on_ack", explode)

    assert host.take_now({"kind": "ack", "connection": "conn-1", "events": ["evt-1"]}, False)
    assert str(host.crashed) == "boom"
    assert host.endpoint.wakes == 1
    assert not host.take_now({"kind": "ack", "connection": "conn-1", "events": ["evt-1"]}, False)
