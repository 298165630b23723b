"""The fake Alpaca's books: positions, cash, buying power and the checks an order must pass
against them, and the JSON of the account, positions and assets (Alpaca's shapes, numbers as
strings). A mixin of `state.Broker`, which holds the data and the lock."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from tests.fakes.alpaca import market
from tests.fakes.alpaca.orders import Order, Submitted
from tests.fakes.alpaca.values import (
    asset_id,
    decimals_of,
    forbidden,
    iso,
    not_found,
    text,
    unprocessable,
)

if TYPE_CHECKING:
    from tests.fakes.alpaca.market import Quote

ACCOUNT_ID = "7a1c0f3e-5b2d-4c8e-9f10-a1a2ca0fa4e0"
ACCOUNT_NUMBER = "PA3FAKE0WXYZ"
QTY_STEP = Decimal("0.000000001")


@dataclass(slots=True)
class Position:
    """A position: signed quantity and its cost (signed, qty * average entry price)."""

    symbol: str
    qty: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)

    @property
    def avg_entry_price(self) -> Decimal:
        return (self.cost / self.qty) if self.qty else Decimal(0)


class Ledger:
    """Cash, positions and FILL activities of the account."""

    cash: Decimal
    initial_cash: Decimal
    positions: dict[str, Position]
    activities: list[dict[str, Any]]
    orders: dict[str, Order]
    quotes: dict[str, Quote]
    last_trade: dict[str, tuple[Decimal, datetime]]
    not_fractionable: set[str]
    not_shortable: set[str]
    client_ids: dict[str, str]

    clock: Callable[[], datetime]
    known: Callable[[str], bool]

    def mark(self, symbol: str) -> Decimal | None:
        """The price positions are valued at: the last trade (a fill or a bar's close), else the
        quote's midpoint."""
        if symbol in self.last_trade:
            return self.last_trade[symbol][0]
        quote = self.quotes.get(symbol)
        return (quote.bid + quote.ask) / 2 if quote else None

    def _check_account(self, request: Submitted) -> None:
        if not self.known(request.symbol):
            raise unprocessable(f'asset "{request.symbol}" not found', 40010001)
        if request.fractional and request.symbol in self.not_fractionable:
            raise unprocessable(f"asset {request.symbol} is not fractionable")
        if request.client_order_id in self.client_ids:
            raise unprocessable("client_order_id must be unique", 40010001)
        price = self._reference_price(request)
        if request.side == "buy":
            cost = request.notional if request.notional is not None else request.qty * price
            short_cover = max(Decimal(0), -self._position_qty(request.symbol))
            if request.qty is not None:
                cost = max(Decimal(0), request.qty - short_cover) * price
            if cost > self.buying_power():
                raise forbidden("insufficient buying power")
            return
        self._check_sell(request, price)

    def _check_sell(self, request: Submitted, price: Decimal) -> None:
        """Selling what is held is fine; beyond it, a short: whole shares only, from a flat or
        short position (no flip from long to short in one order), with buying power."""
        held = self._position_qty(request.symbol)
        available = max(Decimal(0), held) - self._reserved_sells(request.symbol)
        qty = request.qty
        if qty is None:  # notional sell
            qty = (request.notional / price).quantize(QTY_STEP, ROUND_DOWN)
        if qty <= available:
            return
        if held > 0 or decimals_of(qty) > 0 or request.symbol in self.not_shortable:
            raise forbidden(
                f"insufficient qty available for order (requested: {text(qty)}, "
                f"available: {text(max(available, Decimal(0)))})"
            )
        if qty * price > self.buying_power():
            raise forbidden("insufficient buying power")

    def _reference_price(self, request: Submitted) -> Decimal:
        quote = self.quotes.get(request.symbol)
        if request.limit_price is not None:
            return request.limit_price
        if quote is not None:
            return quote.ask if request.side == "buy" else quote.bid
        if request.stop_price is not None:
            return request.stop_price
        return self.mark(request.symbol) or Decimal(0)

    def _position_qty(self, symbol: str) -> Decimal:
        position = self.positions.get(symbol)
        return position.qty if position else Decimal(0)

    def _reserved_sells(self, symbol: str) -> Decimal:
        """Shares already promised to open sell orders (a bracket's or oco's exits count once)."""
        reserved = Decimal(0)
        for order in self.orders.values():
            if order.symbol != symbol or order.side != "sell" or not order.is_open:
                continue
            if order.parent_id is not None:
                parent = self.orders[order.parent_id]
                if parent.side == "sell" or parent.legs[0] != order.id or not order.active:
                    continue
            reserved += order.remaining or Decimal(0)
        return reserved

    def _book(self, symbol: str, side: str, qty: Decimal, price: Decimal) -> Decimal:
        """Cash and position after an execution; the position's quantity after it."""
        signed = qty if side == "buy" else -qty
        self.cash -= signed * price
        position = self.positions.setdefault(symbol, Position(symbol))
        if position.qty == 0 or (position.qty > 0) == (signed > 0):
            position.cost += signed * price
        elif abs(signed) <= abs(position.qty):
            # Reducing keeps the average entry price of what is left.
            position.cost += position.avg_entry_price * signed
        else:
            position.cost = (position.qty + signed) * price
        position.qty += signed
        if position.qty == 0:
            del self.positions[symbol]
            return Decimal(0)
        return position.qty

    def _record_fill(
        self, order: Order, event: str, qty: Decimal, price: Decimal, now: datetime
    ) -> None:
        self.activities.append(
            {
                "id": f"{now.strftime('%Y%m%d%H%M%S%f')[:17]}::{uuid.uuid4()}",
                "account_id": ACCOUNT_ID,
                "activity_type": "FILL",
                "transaction_time": iso(now),
                "type": event,
                "price": text(price),
                "qty": text(qty),
                "side": order.side
                if self._position_qty(order.symbol) >= 0 or order.side == "buy"
                else "sell_short",
                "symbol": order.symbol,
                "leaves_qty": text((order.qty - order.filled_qty) if order.qty else Decimal(0)),
                "order_id": order.id,
                "cum_qty": text(order.filled_qty),
                "order_status": order.status,
            }
        )

    def _find_position(self, symbol_or_id: str) -> Position:
        for position in self.positions.values():
            if symbol_or_id.upper() == position.symbol or symbol_or_id == asset_id(position.symbol):
                return position
        raise not_found("position does not exist")

    def position_json(self, position: Position) -> dict[str, Any]:
        price = self.mark(position.symbol) or position.avg_entry_price
        value = position.qty * price
        cost = position.cost
        pl = value - cost
        return {
            "asset_id": asset_id(position.symbol),
            "symbol": position.symbol,
            "exchange": "NASDAQ",
            "asset_class": "us_equity",
            "asset_marginable": True,
            "qty": text(position.qty),
            "qty_available": text(position.qty),
            "avg_entry_price": text(position.avg_entry_price.quantize(Decimal("0.0001"))),
            "side": "long" if position.qty > 0 else "short",
            "market_value": text(value),
            "cost_basis": text(cost),
            "unrealized_pl": text(pl),
            "unrealized_plpc": text(
                (pl / abs(cost)).quantize(Decimal("0.0000000001")) if cost else Decimal(0)
            ),
            "unrealized_intraday_pl": text(pl),
            "unrealized_intraday_plpc": text(
                (pl / abs(cost)).quantize(Decimal("0.0000000001")) if cost else Decimal(0)
            ),
            "current_price": text(price),
            "lastday_price": text(price),
            "change_today": "0",
        }

    def market_values(self) -> tuple[Decimal, Decimal]:
        long_value = short_value = Decimal(0)
        for position in self.positions.values():
            price = self.mark(position.symbol) or position.avg_entry_price
            if position.qty > 0:
                long_value += position.qty * price
            else:
                short_value += position.qty * price
        return long_value, short_value

    def buying_power(self) -> Decimal:
        """A cash-like account (multiplier 1): equity less what positions and open buy orders
        use; shorts use it as much as longs."""
        long_value, short_value = self.market_values()
        equity = self.cash + long_value + short_value
        reserved = Decimal(0)
        for order in self.orders.values():
            if order.is_open and order.side == "buy" and order.active:
                if order.notional is not None and order.qty is None:
                    reserved += order.notional
                    continue
                quote = self.quotes.get(order.symbol)
                price = order.limit_price or order.stop_price or (quote.ask if quote else 0)
                reserved += (order.remaining or Decimal(0)) * price
        return max(Decimal(0), equity - long_value + short_value - reserved)

    def account_json(self) -> dict[str, Any]:
        long_value, short_value = self.market_values()
        equity = self.cash + long_value + short_value
        buying_power = text(self.buying_power())
        return {
            "id": ACCOUNT_ID,
            "admin_configurations": {},
            "user_configurations": None,
            "account_number": ACCOUNT_NUMBER,
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "options_approved_level": 0,
            "options_trading_level": 0,
            "currency": "USD",
            "buying_power": buying_power,
            "regt_buying_power": buying_power,
            "daytrading_buying_power": "0",
            "effective_buying_power": buying_power,
            "non_marginable_buying_power": buying_power,
            "options_buying_power": buying_power,
            "bod_dtbp": "0",
            "cash": text(self.cash),
            "accrued_fees": "0",
            "portfolio_value": text(equity),
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": "2024-01-02T14:30:00.000000Z",
            "trade_suspended_by_user": False,
            "multiplier": "1",
            "shorting_enabled": True,
            "equity": text(equity),
            "last_equity": text(self.initial_cash),
            "long_market_value": text(long_value),
            "short_market_value": text(short_value),
            "position_market_value": text(long_value - short_value),
            "initial_margin": text(long_value - short_value),
            "maintenance_margin": text(long_value - short_value),
            "last_maintenance_margin": "0",
            "sma": "0",
            "daytrade_count": 0,
            "balance_asof": self.clock().astimezone(market.NEW_YORK).date().isoformat(),
            "crypto_tier": 0,
            "intraday_adjustments": "0",
            "pending_reg_taf_fees": "0",
        }

    def asset_json(self, symbol: str) -> dict[str, Any]:
        fractionable = symbol not in self.not_fractionable
        return {
            "id": asset_id(symbol),
            "class": "us_equity",
            "exchange": "NASDAQ",
            "symbol": symbol,
            "name": f"{symbol} Fake Inc. Common Stock",
            "status": "active",
            "tradable": True,
            "marginable": True,
            "maintenance_margin_requirement": 30,
            "margin_requirement_long": "30",
            "margin_requirement_short": "30",
            "shortable": symbol not in self.not_shortable,
            "easy_to_borrow": symbol not in self.not_shortable,
            "fractionable": fractionable,
            "min_order_size": None,
            "min_trade_increment": None,
            "price_increment": None,
            "attributes": ["fractional_eh_enabled"] if fractionable else [],
        }

    def all_symbols(self) -> list[str]:
        return sorted(self.symbols | set(self.quotes) | set(self.bars))
