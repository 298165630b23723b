"""A fake Binance spot exchange on 127.0.0.1: REST (/api/v3, HMAC checked), market streams
(/ws/<stream>, /stream?streams=) and the WebSocket API (/ws-api/v3, the user data stream
subscription), in one aiohttp app, written from Binance's documented behaviour and what
python-binance 1.0.37 sends. Driven by the real python-binance.

`python -m tests.fakes.binance --port 8766` runs one for manual and end-to-end runs.
"""

from tests.fakes.binance.server import FakeBinance

__all__ = ["FakeBinance"]
