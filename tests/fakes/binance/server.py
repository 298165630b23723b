"""The fake Binance's control interface (the implementation fills it in; the signatures are the
contract the provider's tests are written against)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Self

from runtimes.core.bars import Bar

KEY_ID = "fakeBinanceKey000000000000000000000000000000000000000000000WXYZ"
SECRET = "fakeBinanceSecret00000000000000000000000000000000000000000000000"


class FakeBinance:
    """One Binance spot account on 127.0.0.1:<port>, with exchangeInfo for BTCUSDT and ETHUSDT
    (and any `symbols` given: base/quote split on USDT), filters as Binance has them.

    MARKET orders fill at once against the book ticker (buy at the ask, sell at the bid), as
    FULL responses with `fills`; LIMIT (GTC/IOC/FOK), LIMIT_MAKER, STOP_LOSS_LIMIT and
    TAKE_PROFIT_LIMIT rest and fill when a book ticker or kline crosses them; OCO order lists
    (orderList/oco); cancelReplace. Commission `commission_rate` of the received asset (or
    BNB when `pay_fees_in_bnb` and a BNB balance).
    """

    def __init__(
        self,
        *,
        key_id: str = KEY_ID,
        secret: str = SECRET,
        balances: Mapping[str, Decimal] | None = None,  # default {"USDT": 100000}
        symbols: Iterable[str] = ("BTCUSDT", "ETHUSDT"),
        bars: Iterable[Bar] = (),
        withdrawals_enabled: bool = False,  # what GET /sapi/v1/account/apiRestrictions says
        commission_rate: Decimal = Decimal("0.001"),
    ) -> None:
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Self: ...  # binds 127.0.0.1:0 in a thread; returns once listening
    def stop(self) -> None: ...  # closes every socket first
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...

    @property
    def port(self) -> int: ...

    @property
    def urls(self) -> Mapping[str, str]:
        """{"api": "http://127.0.0.1:P/api", "ws_api": "ws://127.0.0.1:P/ws-api/v3",
        "stream": "ws://127.0.0.1:P/"} (runtimes/core/connection.py BINANCE_URL_KEYS)"""

    # -- the market --------------------------------------------------------------------------
    def set_book(self, symbol: str, *, bid: Decimal, ask: Decimal,
                 bid_qty: Decimal = Decimal(10), ask_qty: Decimal = Decimal(10)) -> None:
        """The book ticker of `symbol`: pushed to its bookTicker streams; resting orders it
        crosses fill."""

    def push_kline(self, bar: Bar, *, closed: bool = True) -> None:
        """A kline of `bar.timeframe` pushed to its kline streams (closed: "x": true), kept for
        GET klines; the book moves to its close (bid = ask = close unless a spread was set)
        and resting orders its range crosses fill."""

    # -- executions, scripted ----------------------------------------------------------------
    def hold_fills(self, held: bool = True) -> None:
        """While held, nothing fills by itself (orders stay NEW): fill them with `fill`."""

    def fill(self, order_id: int, quantity: Decimal | None = None,
             price: Decimal | None = None) -> None:
        """A TRADE execution of `quantity` (all that is left when None) at `price`."""

    def reject_next_order(self, code: int, msg: str, *, status: int = 400) -> None: ...

    def expire(self, order_id: int) -> None: ...

    # -- faults -------------------------------------------------------------------------------
    def fail_next(self, status: int, *, count: int = 1, retry_after: int | None = None,
                  path: str = "/api/v3/") -> None:
        """The next `count` REST requests under `path` answer `status` (429 with code -1003
        and Retry-After; 418 an IP ban with Retry-After; 5xx a gateway error)."""

    def set_clock_offset(self, milliseconds: int) -> None:
        """The server's clock runs this far ahead of the wall clock: signed requests whose
        timestamp falls outside recvWindow get -1021."""

    def set_used_weight(self, weight: int) -> None:
        """The X-MBX-USED-WEIGHT-1M the next responses start counting from (limit 6000)."""

    def drop_streams(self, *, market: bool = True, ws_api: bool = True) -> None:
        """Close sockets abruptly (the WS API reconnects without re-subscribing: §2.5)."""

    def end_user_stream(self) -> None:
        """An `eventStreamTerminated` event on every user data subscription."""

    def restart(self) -> None:
        """Every connection dropped, state kept; REST 503 while restarting."""

    # -- inspection ---------------------------------------------------------------------------
    @property
    def requests(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every REST request so far: (method, path, params incl. signature)."""

    def orders(self) -> list[dict[str, Any]]: ...  # Binance order JSON, oldest first
    def balances(self) -> dict[str, Decimal]: ...
    def subscriptions(self) -> dict[str, int]:
        """{"market": streams subscribed now, "user": user data subscriptions now}."""

    def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until `condition()` holds after some change of the fake's state; signalled,
        not polled on a sleep. AssertionError on timeout."""

    def at(self) -> datetime: ...  # the server's clock
