"""The helper docs/trading-api.md (section 6) gives strategies for orders sized at the fill
(notional, equity_fraction) works in a hosted run too: its httpx.AsyncClient goes over the local
channel like the SDK's own requests, and its answer parses in the SDK's model."""

from __future__ import annotations

import socket

from runtimes.hosting.bus import Reply
from runtimes.hosting.channel import StrategyChannel
from tests.runtimes.sandbox.test_shim import PREFIX, run_shim

STRATEGY = """\
import asyncio, os
import httpx
from tektii.models import OrderHandle

async def submit_sized_order(**order):
    base = os.environ["TEKTII_TRADING_GATEWAY_URL"]
    key = os.environ.get("TEKTII_TRADING_GATEWAY_API_KEY", "")
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as client:
        response = await client.post(f"{base}/v1/orders", json=order)
    response.raise_for_status()
    return OrderHandle.model_validate(response.json())

handle = asyncio.run(submit_sized_order(symbol="BTCUSDT", side="buy", order_type="market",
                                        equity_fraction="1"))
print("handle", handle.id, handle.status.value, flush=True)
"""


class NoBus:
    def receive(self, timeout, *, precise=False):
        return None

    def close(self, *, keep_inbox=False):
        pass


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
