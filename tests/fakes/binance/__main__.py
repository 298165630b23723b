"""`python -m tests.fakes.binance --port 8766 [--bars BTCUSDT.csv --bars ETHUSDT=other.parquet]`:
a fake Binance for manual and end-to-end runs, with the default keys
(tests/fakes/binance/server.py).

Each `--bars` file holds bars (CSV, JSON or Parquet, gzip'd or not; the timeframe inferred from
their spacing) of the symbol named by `SYMBOL=` or by the file's stem; they serve GET klines
and set the book at the last close. `--book SYMBOL=BID:ASK` sets a book by hand.
"""

from __future__ import annotations

import argparse
import threading
from decimal import Decimal
from pathlib import Path

from runtimes.core.bars import Bar
from runtimes.core.datasets import load_bar_series
from tests.fakes.binance.server import KEY_ID, FakeBinance


def _bars(spec: str) -> list[Bar]:
    symbol, _, path = spec.rpartition("=")
    file = Path(path)
    name = (symbol or file.name.split(".")[0]).upper()
    return list(load_bar_series(file, symbol=name))


_DEFAULT_BOOKS = {
    "BTCUSDT": (Decimal("43000.00"), Decimal("43000.10")),
    "ETHUSDT": (Decimal("2300.00"), Decimal("2300.05")),
}


def _book(spec: str) -> tuple[str, tuple[Decimal, Decimal]]:
    symbol, _, prices = spec.partition("=")
    bid, _, ask = prices.partition(":")
    return symbol.upper(), (Decimal(bid), Decimal(ask or bid))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--usdt", type=Decimal, default=Decimal(100_000), help="USDT balance")
    parser.add_argument("--bars", action="append", default=[], help="[SYMBOL=]FILE of bars")
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="listed symbols")
    parser.add_argument("--withdrawals", action="store_true", help="a key allowed to withdraw")
    parser.add_argument(
        "--book",
        action="append",
        default=[],
        help="SYMBOL=BID:ASK, the book of a symbol without bars "
        "(default BTCUSDT=43000.00:43000.10 and ETHUSDT=2300.00:2300.05)",
    )
    args = parser.parse_args()
    bars = [bar for spec in args.bars for bar in _bars(spec)]
    symbols = {s.upper() for s in args.symbols.split(",") if s} | {b.symbol for b in bars}
    fake = FakeBinance(
        balances={"USDT": args.usdt},
        symbols=sorted(symbols),
        bars=bars,
        withdrawals_enabled=args.withdrawals,
        port=args.port,
    )
    fake.start()
    books = dict(_DEFAULT_BOOKS)
    books.update(_book(spec) for spec in args.book)
    books.update({bar.symbol: (bar.close, bar.close) for bar in bars})
    for symbol, (bid, ask) in sorted(books.items()):
        if symbol in symbols:
            fake.set_book(symbol, bid=bid, ask=ask)
    print(f"fake Binance on 127.0.0.1:{fake.port}, API key {KEY_ID}")
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
