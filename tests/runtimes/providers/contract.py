"""The provider contract: what every runtime behind the Trading API does the same way.

Written once; test_contract.py runs it per provider through a small `Harness` (how to build one,
how to make time pass). A new provider (Alpaca, Binance) adds a harness and inherits every test.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Protocol

import pytest

from runtimes.core.domain import OrderRequest, OrderStatus, OrderType, Side
from runtimes.core.errors import (
    OrderNotFound,
    OrderNotModifiable,
    OrderValidationError,
    PositionNotFound,
    SymbolNotFound,
)
from runtimes.core.events import AccountEvent, Event, OrderEvent, PositionEvent, TradeEvent
from runtimes.core.provider import Venue

D = Decimal
QTY = D(2)


class Harness(Protocol):
    """One provider under test."""

    venue: Venue
    symbol: str  # a tradeable symbol with a price from the start
    other_symbol: str | None  # a second one, where the provider has it
    initial_cash: Decimal
    client_order_id_idempotent: bool

    def pass_time(self) -> None:
        """Move the market to its next price point (a bar, a tick): resting orders may fill."""

    def take_events(self) -> list[Event]:
        """Every event since the last call, oldest first (however the provider hands them)."""

    def close(self) -> None: ...


def request(h: Harness, side: Side = Side.BUY, **fields: object) -> OrderRequest:
    fields.setdefault("quantity", QTY)
    return OrderRequest(symbol=h.symbol, side=side, **fields)  # type: ignore[arg-type]


def far_below(h: Harness) -> Decimal:
    """A buy limit price the market will not reach during a test."""
    return (h.venue.quote(h.symbol).last / 2).quantize(D("0.01"))


class ProviderContract:
    """Inherit it in a Test class that defines a `harness` fixture yielding a Harness."""

    @pytest.fixture
    def h(self, harness: Harness) -> Iterator[Harness]:
        yield harness
        harness.close()

    # -- market data --------------------------------------------------------------------------

    def test_quote_is_top_of_book_of_the_symbol(self, h: Harness) -> None:
        quote = h.venue.quote(h.symbol)
        assert quote.symbol == h.symbol
        assert quote.bid <= quote.last <= quote.ask
        assert quote.bid > 0
        assert quote.timestamp.tzinfo is not None
        assert quote.timestamp <= h.venue.now

    def test_quote_of_an_unknown_symbol_raises_symbol_not_found(self, h: Harness) -> None:
        with pytest.raises(SymbolNotFound):
            h.venue.quote("NOPE")

    def test_history_is_ascending_bars_of_the_symbol_none_in_the_future(self, h: Harness) -> None:
        bars = h.venue.history(h.symbol)
        assert bars
        assert all(b.symbol == h.symbol for b in bars)
        stamps = [b.timestamp for b in bars]
        assert stamps == sorted(set(stamps))
        assert stamps[-1] <= h.venue.now
        assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars)
        if len(bars) >= 3:
            assert h.venue.history(h.symbol, limit=3) == bars[-3:]
        with pytest.raises(SymbolNotFound):
            h.venue.history("NOPE")

    # -- orders -------------------------------------------------------------------------------

    def test_submitted_order_is_open_and_can_be_read_and_listed(self, h: Harness) -> None:
        order = h.venue.submit_order(
            request(h, order_type=OrderType.LIMIT, limit_price=far_below(h))
        )
        assert order.status is OrderStatus.OPEN
        assert h.venue.order(order.id) == order
        assert h.venue.orders(open_only=True) == [order]
        assert h.venue.orders(symbol=h.symbol) == [order]
        if h.other_symbol is not None:
            assert h.venue.orders(symbol=h.other_symbol) == []
        assert h.venue.all_orders() == [order]

    def test_market_buy_fills_once_time_passes_and_opens_a_position(self, h: Harness) -> None:
        order = h.venue.submit_order(request(h))
        h.pass_time()
        filled = h.venue.order(order.id)
        assert (filled.status, filled.filled_quantity) == (OrderStatus.FILLED, QTY)
        (fill,) = h.venue.fills(order_id=order.id)
        assert (fill.symbol, fill.side, fill.quantity) == (h.symbol, Side.BUY, QTY)
        assert filled.average_fill_price == fill.price
        position = h.venue.position(h.symbol)
        assert (position.quantity, position.average_entry_price) == (QTY, fill.price)
        assert h.venue.positions() == [position]
        account = h.venue.account()
        assert account.cash == h.initial_cash - QTY * fill.price - fill.commission
        assert account.equity == account.cash + QTY * position.current_price

    def test_a_fill_streams_order_trade_position_and_account_events(self, h: Harness) -> None:
        h.take_events()
        order = h.venue.submit_order(request(h))
        h.pass_time()
        events = [e for e in h.take_events() if not _is_market_data(e)]
        assert [type(e) for e in events] == [
            OrderEvent,
            OrderEvent,
            TradeEvent,
            PositionEvent,
            AccountEvent,
        ]
        created, filled = events[0], events[1]
        assert isinstance(created, OrderEvent) and isinstance(filled, OrderEvent)
        assert (created.kind.value, filled.kind.value) == ("ORDER_CREATED", "ORDER_FILLED")
        assert created.order.id == filled.order.id == order.id
        assert [e for e in h.take_events() if not _is_market_data(e)] == []

    def test_modify_and_cancel_are_visible_in_the_next_read(self, h: Harness) -> None:
        order = h.venue.submit_order(
            request(h, order_type=OrderType.LIMIT, limit_price=far_below(h))
        )
        h.pass_time()
        assert h.venue.order(order.id).status is OrderStatus.OPEN
        new_price = far_below(h) + D("0.01")
        changed, previous = h.venue.modify_order(order.id, limit_price=new_price, quantity=D(1))
        assert previous in (None, order.id)
        assert (changed.limit_price, changed.quantity) == (new_price, D(1))
        assert h.venue.order(changed.id) == changed
        cancelled = h.venue.cancel_order(changed.id)
        assert cancelled.status is OrderStatus.CANCELLED
        assert h.venue.order(changed.id).status is OrderStatus.CANCELLED
        assert h.venue.orders(open_only=True) == []
        with pytest.raises(OrderNotModifiable):
            h.venue.cancel_order(changed.id)

    def test_an_unknown_order_id_raises_order_not_found(self, h: Harness) -> None:
        with pytest.raises(OrderNotFound):
            h.venue.order("no-such-order")
        with pytest.raises(OrderNotFound):
            h.venue.cancel_order("no-such-order")

    def test_close_position_flattens_it(self, h: Harness) -> None:
        h.venue.submit_order(request(h))
        h.pass_time()
        closing = h.venue.close_position(h.symbol)
        assert (closing.side, closing.quantity, closing.reduce_only) == (Side.SELL, QTY, True)
        h.pass_time()
        assert h.venue.order(closing.id).status is OrderStatus.FILLED
        assert h.venue.positions() == []
        with pytest.raises(PositionNotFound):
            h.venue.position(h.symbol)
        assert h.venue.account().cash == h.venue.account().equity

    def test_close_position_when_flat_raises_position_not_found(self, h: Harness) -> None:
        with pytest.raises(PositionNotFound):
            h.venue.close_position(h.symbol)

    def test_client_order_id_is_idempotent(self, h: Harness) -> None:
        if not h.client_order_id_idempotent:
            pytest.skip("this venue has no client_order_id idempotency (capabilities say so)")
        first = h.venue.submit_order(request(h, client_order_id="contract-1"))
        again = h.venue.submit_order(request(h, client_order_id="contract-1"))
        assert again == first
        assert h.venue.order_by_client_id("contract-1") == first
        assert h.venue.all_orders() == [first]

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"quantity": D(0)}, "quantity"),
            ({"order_type": OrderType.LIMIT}, "limit_price"),
            ({"order_type": OrderType.MARKET, "limit_price": D(1)}, "limit_price"),
        ],
    )
    def test_an_invalid_request_raises_a_validation_error_naming_the_field(
        self, h: Harness, fields: dict[str, object], field: str
    ) -> None:
        with pytest.raises(OrderValidationError) as caught:
            h.venue.submit_order(request(h, **fields))
        assert caught.value.details["field"] == field
        assert h.venue.all_orders() == []


def _is_market_data(event: Event) -> bool:
    return type(event).__name__ in ("CandleEvent", "QuoteEvent")
