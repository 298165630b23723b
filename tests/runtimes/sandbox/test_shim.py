"""The shim that serves the tektii SDK over the local channel (runtimes/sandbox/shim.py), run as
the sandbox runs it (its own process, `python -s shim.py SOCKET -- FILE`) against the host's side
(runtimes/hosting/channel.py): the pinned SDK is the one it knows, another fails loudly at start,
and the SDK's stream and REST calls go through it unchanged."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import tektii

from runtimes.hosting.bus import Reply
from runtimes.hosting.channel import StrategyChannel
from runtimes.sandbox.launch import SHIM_SOURCE
from runtimes.sandbox.process import explain_exit
from runtimes.sandbox.shim import SETUP_FAILED, SUPPORTED_SDK_VERSIONS
from runtimes.sandbox.spec import SandboxLimits

PREFIX = "/sessions/3f0c1a52-0000-4000-8000-000000000001/"
STRATEGY = """\
import asyncio
from tektii import AsyncTradingGateway
async def main():
    async with AsyncTradingGateway() as gateway:
        print("account", (await gateway.get_account()).equity, flush=True)
        async with gateway.stream() as events:
            async for event in events:
                print("event", event.type, event.event_id, flush=True)
asyncio.run(main())
"""
CANDLE = {"type": "candle", "bar": {"symbol": "BTCUSDT", "provider": "backtest",
                                    "timeframe": "1m", "timestamp": "2021-04-02T00:00:00Z",
                                    "open": "1", "high": "2", "low": "1", "close": "2",
                                    "volume": "3"},
          "timestamp": "2021-04-02T00:00:00Z", "event_id": "evt-1"}
ACCOUNT = {"balance": "100", "currency": "USD", "equity": "100", "margin_available": "100",
           "margin_used": "0", "unrealized_pnl": "0"}


def run_shim(tmp_path: Path, strategy: str, socket_path: str, **env: str):
    (tmp_path / "main.py").write_text(strategy)
    return subprocess.Popen(
        [sys.executable, "-s", str(SHIM_SOURCE), socket_path, "--", str(tmp_path / "main.py")],
        env={"TEKTII_TRADING_GATEWAY_URL": "http://127.0.0.1:8080" + PREFIX.rstrip("/"), **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_the_pinned_sdk_is_one_the_shim_was_tested_with():
    # A new tektii in requirements.lock fails here until the shim is checked against it.
    assert tektii.__version__ in SUPPORTED_SDK_VERSIONS


def test_an_sdk_the_shim_does_not_know_fails_at_start_with_a_sentence(tmp_path):
    fake = tmp_path / "packages" / "tektii"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('__version__ = "9.0.0"\n')
    (tmp_path / "platform.sock").touch()

    process = run_shim(tmp_path, "print('never runs')\n", str(tmp_path / "platform.sock"),
                       PYTHONPATH=str(tmp_path / "packages"))
    output, _ = process.communicate(timeout=30)

    assert process.returncode == SETUP_FAILED
    assert "never runs" not in output
    assert explain_exit(SETUP_FAILED, output, SandboxLimits()) == (
        "the hosted runtime serves the tektii SDK 1.9.1 over its local channel; this runtime "
        "has tektii 9.0.0, which it has not been tested with")


def test_the_unmodified_sdk_streams_and_asks_over_the_channel_and_ends_once_it_is_closed(
        tmp_path):
    socket_path = str(tmp_path / "platform.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(8)

    class NoBus:
        def receive(self, timeout, *, precise=False):
            return None

        def close(self, *, keep_inbox=False):
            pass

    channel = StrategyChannel(NoBus(), listener, session_prefix=PREFIX, health=dict)
    process = run_shim(tmp_path, STRATEGY, socket_path)
    seen = []
    try:
        while len(seen) < 4:
            message = channel.receive(10)
            assert message is not None, process.stdout.read() if process.poll() else "silence"
            seen.append({k: v for k, v in message.items() if k != "correlation_id"})
            if message["kind"] == "command":
                channel.reply(message["request"], Reply(200, ACCOUNT))
            elif message["kind"] == "attach" and len(seen) == 2:
                channel.send(message["connection"], [json.dumps(CANDLE)])
            elif message["kind"] == "ack":
                channel.close_connection(message["connection"], 1000)
    finally:
        channel.close()  # its next reconnect is refused, as an ended session's socket is
    output, _ = process.communicate(timeout=30)

    assert seen == [
        {"kind": "command", "request": "chan-1-1", "op": "account", "path": {}, "query": {},
         "body": None},
        {"kind": "attach", "connection": "chan-2", "last_event_id": None},
        {"kind": "ack", "connection": "chan-2", "events": ["evt-1"]},
        # A clean close: the SDK reconnects at once (its stream resumes on the next host).
        {"kind": "attach", "connection": "chan-3", "last_event_id": None},
    ]
    assert output.splitlines()[:2] == ["account 100", "event candle evt-1"]
    assert "InvalidStatus: server rejected WebSocket connection: HTTP 403" in output
    assert process.returncode == 1


class FakeClock:
    """A clock that moves 10 us each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.00001
        return self.now


def test_the_spin_grows_while_it_catches_answers_and_rests_once_it_stops_catching_them():
    from runtimes.sandbox.shim import AdaptiveSpin

    spin, clock = AdaptiveSpin(), FakeClock()
    answers = iter([None, None, "frame"])
    assert spin.spin(lambda: next(answers), clock) == "frame"
    assert spin.budget == 2 * AdaptiveSpin.START_SECONDS

    tries = []
    assert spin.spin(lambda: tries.append(1), clock) is None  # nothing came: half the budget
    assert spin.budget == AdaptiveSpin.START_SECONDS and 5 <= len(tries) <= 11
    for _ in range(3):
        spin.spin(lambda: None, clock)
    assert (spin.budget, spin.resting) == (0.0, AdaptiveSpin.RETRY_AFTER)
    tried = []
    for _ in range(AdaptiveSpin.RETRY_AFTER - 1):  # resting: no attempt at all
        assert spin.spin(lambda: tried.append(1), clock) is None
    assert tried == []
    assert spin.spin(lambda: "frame", clock) == "frame"  # then it tries again
    assert spin.budget == 2 * AdaptiveSpin.START_SECONDS
