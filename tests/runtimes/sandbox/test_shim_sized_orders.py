"""The helper docs/trading-api.md (section 6) gives strategies for orders sized at the fill
(notional, equity_fraction) works in a hosted run too: an upload using it passes the code checks,
its request goes over the local channel as the SDK's own do, and its answer parses in the SDK's
model."""

from __future__ import annotations

import socket

from runtimes.hosting.bus import Reply
from runtimes.hosting.channel import StrategyChannel
from strategies.code_checks import check_upload
from tests.runtimes.sandbox.test_shim import PREFIX, run_shim

STRATEGY = """\
import asyncio
from tektii import AsyncTradingGateway
from tektii.models import OrderHandle

async def submit_sized_order(gateway, **order):
    return OrderHandle.model_validate(await gateway._post("/v1/orders", json=order))

async def main():
    async with AsyncTradingGateway() as gateway:
        handle = await submit_sized_order(gateway, symbol="BTCUSDT", side="buy",
                                          order_type="market", equity_fraction="1")
    print("handle", handle.id, handle.status.value, flush=True)

asyncio.run(main())
"""


class NoBus:
    def receive(self, timeout, *, precise=False):
        return None

    def close(self, *, keep_inbox=False):
        pass


def test_a_strategy_using_the_documented_helper_passes_the_upload_checks():
    assert check_upload("main.py", STRATEGY.encode()).entry_point == "main.py"


def test_the_documented_helper_sends_equity_fraction_over_the_channel(tmp_path):
    socket_path = str(tmp_path / "platform.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(8)
    channel = StrategyChannel(NoBus(), listener, session_prefix=PREFIX, health=dict)
    process = run_shim(tmp_path, STRATEGY, socket_path)
    try:
        message = channel.receive(10)
        assert message is not None, process.stdout.read() if process.poll() else "silence"
        channel.reply(message["request"], Reply(201, {"id": "ord-1", "status": "OPEN"}))
        output, _ = process.communicate(timeout=30)
    finally:
        channel.close()
    assert (message["kind"], message["op"], message["body"]) == (
        "command", "submit_order",
        {"symbol": "BTCUSDT", "side": "buy", "order_type": "market", "equity_fraction": "1"})
    assert output.splitlines() == ["handle ord-1 OPEN"]
    assert process.returncode == 0
