"""`python -m tests.fakes.alpaca --port 8765 [--bars FILE.csv|.parquet --symbol AAPL]`: a fake
Alpaca for manual and end-to-end runs, with the default keys (tests/fakes/alpaca/server.py)."""

from __future__ import annotations

import argparse
import threading
from decimal import Decimal
from pathlib import Path

from runtimes.core.bars import Bar
from runtimes.core.datasets import load_bar_series
from tests.fakes.alpaca.server import KEY_ID, FakeAlpaca


def _bars(path: Path, symbol: str) -> list[Bar]:
    """1m bars of a dataset file (CSV, JSON or Parquet, gzip'd or not)."""
    return list(load_bar_series(path, symbol=symbol, timeframe="1m"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--cash", type=Decimal, default=Decimal(100_000))
    parser.add_argument("--bars", type=Path, help="1m bars (CSV or Parquet) to serve")
    parser.add_argument("--symbol", default="AAPL", help="the symbol of --bars")
    parser.add_argument("--symbols", default="AAPL,MSFT", help="tradeable symbols")
    args = parser.parse_args()
    bars = _bars(args.bars, args.symbol.upper()) if args.bars else []
    fake = FakeAlpaca(cash=args.cash, bars=bars, port=args.port,
                      symbols=[s for s in args.symbols.split(",") if s])
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
