"""The fake Alpaca's control interface (the implementation fills it in; the signatures are the
contract the provider's tests are written against)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Self

from runtimes.core.bars import Bar

KEY_ID = "PKFAKE00000000000WXYZ"
SECRET = "fake-alpaca-secret-0000000000000000000000"


class FakeAlpaca:
    """One Alpaca account (paper or live: the fake does not care) on 127.0.0.1:<port>.

    Market: every symbol given a quote (or bars) is tradeable; `assets` of those symbols are
    fractionable unless listed in `not_fractionable`. Market orders fill at once at the ask
    (buy) or bid (sell) when the market is open; limit/stop/stop-limit/trailing orders rest
    and fill when a quote or bar crosses them; bracket and OCO legs as Alpaca does (legs
    `held` until the parent fills; one exit filling cancels the other). Orders accepted while
    the market is closed stay `accepted` until `set_market_open(True)`.
    """

    def __init__(
        self,
        *,
        key_id: str = KEY_ID,
        secret: str = SECRET,
        cash: Decimal = Decimal(100_000),
        market_open: bool = True,
        bars: Iterable[Bar] = (),
        not_fractionable: Iterable[str] = (),
    ) -> None:
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Self: ...  # binds 127.0.0.1:0 in a thread; returns once listening
    def stop(self) -> None: ...  # closes every socket first (so SDK clients see a drop)
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...

    @property
    def port(self) -> int: ...

    @property
    def urls(self) -> Mapping[str, str]:
        """{"trading": "http://127.0.0.1:P", "data": "http://127.0.0.1:P",
        "trading_stream": "ws://127.0.0.1:P/stream", "data_stream": "ws://127.0.0.1:P/v2"}"""

    # -- the market --------------------------------------------------------------------------
    def set_quote(self, symbol: str, *, bid: Decimal, ask: Decimal,
                  at: datetime | None = None) -> None:
        """Top of book of `symbol`; pushed to data-stream subscribers of its quotes; resting
        orders it crosses fill."""

    def push_bar(self, bar: Bar) -> None:
        """A completed 1m bar: pushed to subscribers of its bars, kept for the historical
        bars endpoint; the quote moves to its close (bid = ask = close unless a spread was set
        with `spread`), and resting orders its range crosses fill."""

    def set_market_open(self, is_open: bool, *, next_open: datetime | None = None,
                        next_close: datetime | None = None) -> None:
        """/v2/clock; opening the market fills the market orders accepted meanwhile."""

    # -- executions, scripted ----------------------------------------------------------------
    def hold_fills(self, held: bool = True) -> None:
        """While held, nothing fills by itself (orders stay `new`): fill them with `fill`."""

    def fill(self, order_id: str, quantity: Decimal | None = None,
             price: Decimal | None = None) -> None:
        """Fill `quantity` (all that is left when None) of an order at `price` (its limit, else
        the quote): a partial_fill or fill trade update with a fresh execution_id."""

    def reject_next_order(self, message: str, *, status: int = 403,
                          code: int = 40310000) -> None:
        """The next POST /v2/orders answers `status` with {"code", "message"}."""

    def reject_order(self, order_id: str, reason: str) -> None:
        """An accepted order rejected later (a `rejected` trade update)."""

    def expire(self, order_id: str) -> None: ...

    def cancel(self, order_id: str) -> None:
        """Cancelled by the broker (not through the API): a `canceled` trade update."""

    # -- faults -------------------------------------------------------------------------------
    def fail_next(self, status: int, *, count: int = 1, retry_after: int | None = None,
                  path: str = "/v2/") -> None:
        """The next `count` REST requests whose path starts with `path` answer `status` (429:
        with Retry-After and Alpaca's 429 body; 5xx: a plain gateway error)."""

    def drop_streams(self, *, trading: bool = True, data: bool = True) -> None:
        """Close the streams' sockets abruptly (the SDK reconnects by itself)."""

    def refuse_streams(self, refused: bool = True) -> None:
        """While refused, stream connections are closed at once (a long outage)."""

    def restart(self) -> None:
        """Every connection dropped, state kept (the broker is the record); REST answers 503
        until `restart` returns."""

    # -- inspection ---------------------------------------------------------------------------
    @property
    def requests(self) -> list[tuple[str, str, dict[str, Any], Any]]:
        """Every REST request so far: (method, path, query, JSON body)."""

    def orders(self) -> list[dict[str, Any]]: ...  # Alpaca order JSON, oldest first
    def positions(self) -> list[dict[str, Any]]: ...
    def account(self) -> dict[str, Any]: ...
    def stream_clients(self) -> dict[str, int]:
        """{"trading": n, "data": m}: authenticated, listening/subscribed connections now."""

    def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until `condition()` holds after some change of the fake's state (a request,
        a connection, a subscription): signalled, not polled on a sleep. AssertionError on
        timeout."""
