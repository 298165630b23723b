"""A fake Alpaca on 127.0.0.1: trading REST, market data REST, the trade_updates stream (JSON in
binary frames) and the stock market data stream (msgpack), in one aiohttp app, written from
Alpaca's documented behaviour and what alpaca-py 0.44 sends. Driven by the real alpaca-py.

    with FakeAlpaca().start() as fake:
        urls = fake.urls        # the BrokerConnection.urls of runtimes/core/connection.py
        fake.set_quote("AAPL", bid=Decimal("189.99"), ask=Decimal("190.01"))

`python -m tests.fakes.alpaca --port 8765` runs one for manual and end-to-end runs.
"""

from tests.fakes.alpaca.server import FakeAlpaca

__all__ = ["FakeAlpaca"]
