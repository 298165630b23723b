"""Orders, positions and the account of a market whose book is a SimulatedExchange.

The Venue methods (runtimes/core/provider.py) that only read or act on the exchange, written
once for the backtest engine and the `mock` market, so that both answer alike for the same book.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from runtimes.core.domain import Account, Fill, Order, OrderRequest, OrderType, Position, Side
from runtimes.core.errors import PositionNotFound
from runtimes.core.exchange import SimulatedExchange
from runtimes.core.exchange_accounting import position_id


class ExchangeBook:
    """Mixin: `exchange` is the book; `traded_symbols` the symbols positions can be in."""

    exchange: SimulatedExchange

    @property
    def traded_symbols(self) -> Iterable[str]:
        return sorted(self.exchange.symbols)

    # -- orders ---------------------------------------------------------------------------------

    def submit_order(self, request: OrderRequest) -> Order:
        """Accept an order; it acts from the next bar or tick. Raises OrderValidationError or
        OrderRejected (the rejected order is recorded)."""
        return self.exchange.submit(request)

    def modify_order(
        self,
        order_id: str,
        *,
        quantity: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        stop_loss: Decimal | None = None,
        take_profit: Decimal | None = None,
        trailing_distance: Decimal | None = None,
    ) -> tuple[Order, str | None]:
        """In place (the id stays): (order, None). Raises OrderNotFound, OrderNotModifiable,
        OrderValidationError."""
        order = self.exchange.modify(
            order_id,
            quantity=quantity,
            limit_price=limit_price,
            stop_price=stop_price,
            stop_loss=stop_loss,
            take_profit=take_profit,
            trailing_distance=trailing_distance,
        )
        return order, None

    def cancel_order(self, order_id: str) -> Order:
        """Raises OrderNotFound or OrderNotModifiable."""
        return self.exchange.cancel(order_id)

    def cancel_all(self, symbol: str | None = None) -> list[Order]:
        """Cancel every open order (of `symbol`); returns the cancelled orders."""
        return self.exchange.cancel_all(symbol)

    def close_position(
        self,
        symbol_or_position_id: str,
        quantity: Decimal | None = None,
        order_type: str = "MARKET",
        limit_price: Decimal | None = None,
    ) -> Order:
        """A reduce-only order closing (part of) a position. Raises PositionNotFound when flat."""
        symbol = self._symbol_of_position(symbol_or_position_id)
        held = self.exchange.held(symbol)
        if not held:
            raise PositionNotFound(symbol_or_position_id)
        return self.exchange.submit(
            OrderRequest(
                symbol=symbol,
                side=Side.SELL if held > 0 else Side.BUY,
                quantity=abs(held) if quantity is None else quantity,
                order_type=OrderType(order_type.upper()),
                limit_price=limit_price,
                reduce_only=True,
            )
        )

    # -- reads --------------------------------------------------------------------------------

    def orders(self, *, open_only: bool = False, symbol: str | None = None) -> list[Order]:
        found = self.exchange.open_orders() if open_only else self.all_orders()
        return [o for o in found if symbol is None or o.symbol == symbol]

    def all_orders(self) -> list[Order]:
        return list(self.exchange.orders_by_id.values())

    def order(self, order_id: str) -> Order:
        """Raises OrderNotFound."""
        return self.exchange.order(order_id)

    def order_by_client_id(self, client_order_id: str) -> Order | None:
        oid = self.exchange.by_client_id.get(client_order_id)
        return None if oid is None else self.exchange.orders_by_id[oid]

    def fills(self, *, symbol: str | None = None, order_id: str | None = None) -> list[Fill]:
        return [
            f
            for f in self.exchange.fills
            if (symbol is None or f.symbol == symbol)
            and (order_id is None or f.order_id == order_id)
        ]

    def positions(self) -> list[Position]:
        return self.exchange.positions()

    def position(self, symbol_or_position_id: str) -> Position:
        """Raises PositionNotFound when there is no open position."""
        symbol = self._symbol_of_position(symbol_or_position_id)
        found = self.exchange.position(symbol)
        if found is None:
            raise PositionNotFound(symbol_or_position_id)
        return found

    def account(self) -> Account:
        return self.exchange.account()

    def _symbol_of_position(self, symbol_or_position_id: str) -> str:
        for symbol in self.traded_symbols:
            if symbol_or_position_id in (symbol, position_id(symbol)):
                return symbol
        raise PositionNotFound(symbol_or_position_id)
