"""Orders and trades of the fake Binance and their JSON: the order as GET order lists it, the
POST order answers (ACK, RESULT, FULL), a trade of myTrades, and the executionReport event."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tests.fakes.binance.values import ZERO, amount

OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED", "PENDING_NEW")
STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
LIMIT_TYPES = ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")


@dataclass
class Trade:
    id: int
    order_id: int
    order_list_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    maker: bool

    def json(self) -> dict[str, Any]:
        """One entry of GET myTrades."""
        return {
            "symbol": self.symbol,
            "id": self.id,
            "orderId": self.order_id,
            "orderListId": self.order_list_id,
            "price": amount(self.price),
            "qty": amount(self.qty),
            "quoteQty": amount(self.price * self.qty),
            "commission": amount(self.commission),
            "commissionAsset": self.commission_asset,
            "time": self.time,
            "isBuyer": self.side == "BUY",
            "isMaker": self.maker,
            "isBestMatch": True,
        }

    def fill_json(self) -> dict[str, Any]:
        """One entry of a FULL answer's `fills`."""
        return {
            "price": amount(self.price),
            "qty": amount(self.qty),
            "commission": amount(self.commission),
            "commissionAsset": self.commission_asset,
            "tradeId": self.id,
        }


@dataclass
class Order:
    id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str | None
    qty: Decimal
    price: Decimal  # 0 for market orders, as Binance writes it
    stop_price: Decimal
    quote_order_qty: Decimal
    time: int
    status: str = "NEW"
    executed: Decimal = ZERO
    cumulative_quote: Decimal = ZERO
    update_time: int = 0
    working_time: int = -1
    working: bool = False  # on the book (stops: once triggered)
    order_list_id: int = -1
    lock_asset: str = ""
    locked: Decimal = ZERO  # what the order still holds of `lock_asset`
    trades: list[Trade] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.executed

    @property
    def is_stop(self) -> bool:
        return self.type in STOP_TYPES

    def json(self) -> dict[str, Any]:
        """GET order / openOrders / allOrders."""
        return {
            "symbol": self.symbol,
            "orderId": self.id,
            "orderListId": self.order_list_id,
            "clientOrderId": self.client_order_id,
            "price": amount(self.price),
            "origQty": amount(self.qty),
            "executedQty": amount(self.executed),
            "cummulativeQuoteQty": amount(self.cumulative_quote),
            "status": self.status,
            "timeInForce": self.time_in_force or "GTC",
            "type": self.type,
            "side": self.side,
            "stopPrice": amount(self.stop_price),
            "icebergQty": amount(ZERO),
            "time": self.time,
            "updateTime": self.update_time or self.time,
            "isWorking": self.working,
            "workingTime": self.working_time,
            "origQuoteOrderQty": amount(self.quote_order_qty),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    def ack_json(self, transact_time: int) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "orderId": self.id,
            "orderListId": self.order_list_id,
            "clientOrderId": self.client_order_id,
            "transactTime": transact_time,
        }

    def result_json(self, transact_time: int) -> dict[str, Any]:
        body = self.ack_json(transact_time)
        body.update(
            {
                "price": amount(self.price),
                "origQty": amount(self.qty),
                "executedQty": amount(self.executed),
                "origQuoteOrderQty": amount(self.quote_order_qty),
                "cummulativeQuoteQty": amount(self.cumulative_quote),
                "status": self.status,
                "timeInForce": self.time_in_force or "GTC",
                "type": self.type,
                "side": self.side,
                "workingTime": self.working_time,
                "selfTradePreventionMode": "EXPIRE_MAKER",
            }
        )
        if self.is_stop:
            body["stopPrice"] = amount(self.stop_price)
        return body

    def full_json(self, transact_time: int) -> dict[str, Any]:
        body = self.result_json(transact_time)
        body["fills"] = [trade.fill_json() for trade in self.trades]
        return body

    def answer(self, resp_type: str, transact_time: int) -> dict[str, Any]:
        if resp_type == "ACK":
            return self.ack_json(transact_time)
        if resp_type == "RESULT":
            return self.result_json(transact_time)
        return self.full_json(transact_time)

    def cancel_json(self, cancel_client_id: str, transact_time: int) -> dict[str, Any]:
        """DELETE order's answer: `clientOrderId` is the cancel's own id."""
        return {
            "symbol": self.symbol,
            "origClientOrderId": self.client_order_id,
            "orderId": self.id,
            "orderListId": self.order_list_id,
            "clientOrderId": cancel_client_id,
            "transactTime": transact_time,
            "price": amount(self.price),
            "origQty": amount(self.qty),
            "executedQty": amount(self.executed),
            "origQuoteOrderQty": amount(self.quote_order_qty),
            "cummulativeQuoteQty": amount(self.cumulative_quote),
            "status": self.status,
            "timeInForce": self.time_in_force or "GTC",
            "type": self.type,
            "side": self.side,
            "selfTradePreventionMode": "EXPIRE_MAKER",
            **({"stopPrice": amount(self.stop_price)} if self.is_stop else {}),
        }


def execution_report(
    order: Order,
    *,
    execution: str,
    now: int,
    trade: Trade | None = None,
    cancel_client_id: str | None = None,
    reject_reason: str = "NONE",
) -> dict[str, Any]:
    """The executionReport of one execution of `order` (its state after the execution)."""
    cancelled = cancel_client_id is not None
    last_qty = trade.qty if trade else ZERO
    last_price = trade.price if trade else ZERO
    return {
        "e": "executionReport",
        "E": now,
        "s": order.symbol,
        "c": cancel_client_id if cancelled else order.client_order_id,
        "S": order.side,
        "o": order.type,
        "f": order.time_in_force or "GTC",
        "q": amount(order.qty),
        "p": amount(order.price),
        "P": amount(order.stop_price),
        "F": amount(ZERO),
        "g": order.order_list_id,
        "C": order.client_order_id if cancelled else "",
        "x": execution,
        "X": order.status,
        "r": reject_reason,
        "i": order.id,
        "l": amount(last_qty),
        "z": amount(order.executed),
        "L": amount(last_price),
        "n": amount(trade.commission) if trade else "0",
        "N": trade.commission_asset if trade else None,
        "T": trade.time if trade else now,
        "t": trade.id if trade else -1,
        "I": order.id * 2 + (trade.id if trade else 0),
        "w": order.working and order.is_open,
        "m": trade.maker if trade else False,
        "M": False,
        "O": order.time,
        "Z": amount(order.cumulative_quote),
        "Y": amount(last_price * last_qty),
        "Q": amount(order.quote_order_qty),
        "W": order.working_time,
        "V": "EXPIRE_MAKER",
    }
