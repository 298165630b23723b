"""`python -m tests.fakes.alpaca --port 8765 [--bars AAPL.csv --bars MSFT=other.parquet]`: a fake
Alpaca for manual and end-to-end runs, with the default keys (tests/fakes/alpaca/server.py).

Each `--bars` file holds 1m bars (CSV, JSON or Parquet, gzip'd or not) of the symbol named by
`SYMBOL=` or by the file's stem; they serve the historical bars endpoint and set the quotes.
"""

from __future__ import annotations

import argparse
import threading
from decimal import Decimal
from pathlib import Path

from runtimes.core.bars import Bar
from runtimes.core.datasets import load_bar_series
from tests.fakes.alpaca.server import KEY_ID, FakeAlpaca


def _bars(spec: str) -> list[Bar]:
    symbol, _, path = spec.rpartition("=")
    file = Path(path)
    name = (symbol or file.name.split(".")[0]).upper()
    return list(load_bar_series(file, symbol=name, timeframe="1m"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--cash", type=Decimal, default=Decimal(100_000))
    parser.add_argument("--bars", action="append", default=[], help="[SYMBOL=]FILE of 1m bars")
    parser.add_argument("--symbols", default="AAPL,MSFT", help="tradeable symbols")
    parser.add_argument("--closed", action="store_true", help="start with the market closed")
    args = parser.parse_args()
    bars = [bar for spec in args.bars for bar in _bars(spec)]
    fake = FakeAlpaca(
        cash=args.cash,
        bars=bars,
        port=args.port,
        market_open=not args.closed,
        symbols=[s for s in args.symbols.split(",") if s],
    )
    fake.start()
    print(f"fake Alpaca on 127.0.0.1:{fake.port}, key id {KEY_ID}")
    for name, url in fake.urls.items():
        print(f"  {name}: {url}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
