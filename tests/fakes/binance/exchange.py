"""Order entry and matching of the fake Binance: new orders (validated as Binance does, filters
included), cancels, cancel-replace, OCO order lists, and executions against the book ticker and
pushed klines, each producing its executionReport, outboundAccountPosition and listStatus events.

Matching is top-of-book only: a taker buys the whole quantity at the ask (sells at the bid); a
resting order fills at its own price when the book or a kline's range reaches it.
"""

from __future__ import annotations

import random
from dataclasses import replace
from decimal import ROUND_DOWN, Decimal
from typing import Any

from tests.fakes.binance.orders import LIMIT_TYPES, Order, Trade, execution_report
from tests.fakes.binance.state import Book, Kline, OrderList, State
from tests.fakes.binance.symbols import (
    ALGO_TYPES,
    ORDER_TYPES,
    SymbolSpec,
    check_notional,
    check_percent_price,
    check_price,
    check_quantity,
    filter_failure,
)
from tests.fakes.binance.values import (
    EIGHT,
    ZERO,
    ApiError,
    bad_request,
    mandatory,
    parse_decimal,
    parse_int,
)

INSUFFICIENT = "Account has insufficient balance for requested action."
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
_CLIENT_ID_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.:/_-")


def _generated_id() -> str:
    return "".join(
        random.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", k=22)
    )


def _client_id(raw: str | None, name: str) -> str:
    if raw is None or raw == "":
        return _generated_id()
    if len(raw) > 36 or not set(raw) <= _CLIENT_ID_CHARS:
        raise bad_request(
            -1100,
            f"Illegal characters found in parameter '{name}'; "
            "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
        )
    return raw


class Exchange(State):
    """State plus trading."""

    # -- new orders --------------------------------------------------------------------------
    def new_order(self, params: dict[str, str], *, test: bool = False) -> dict[str, Any]:
        """POST order (order/test with `test`): the answer in the requested response type."""
        with self.lock:
            order, resp_type = self._build(params)
            if test:
                return {}
            if self.rejections:
                raise self.rejections.popleft()
            self._check_duplicate(order.client_order_id)
            self._accept(order)
            self.notify()
            return order.answer(resp_type, order.time)

    def _build(self, params: dict[str, str], prefix: str = "") -> tuple[Order, str]:
        """A validated new order from its parameters (`prefix`: "above"/"below" for OCO
        legs, whose own keys are e.g. abovePrice)."""
        spec = self.spec(params.get("symbol"))
        side = params.get("side")
        if side is None:
            raise mandatory("side")
        if side not in ("BUY", "SELL"):
            raise bad_request(-1117, "Invalid side.")
        kind = params.get(f"{prefix}Type" if prefix else "type")
        if kind is None:
            raise mandatory("type")
        if kind not in ORDER_TYPES:
            raise bad_request(-1116, "Invalid orderType.")

        def key(name: str) -> str:
            return prefix + name[0].upper() + name[1:] if prefix else name

        qty = parse_decimal(params.get("quantity"), "quantity")
        quote_qty = parse_decimal(params.get("quoteOrderQty"), "quoteOrderQty")
        price = parse_decimal(params.get(key("price")), key("price"))
        stop = parse_decimal(params.get(key("stopPrice")), key("stopPrice"))
        tif = params.get(key("timeInForce"))
        if kind in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
            if tif is None:
                raise mandatory(key("timeInForce"))
            if tif not in TIME_IN_FORCE:
                raise bad_request(-1115, "Invalid timeInForce.")
            if price is None:
                raise mandatory(key("price"))
        elif kind == "LIMIT_MAKER" and price is None:
            raise mandatory(key("price"))
        elif tif is not None and kind in ("MARKET", "STOP_LOSS", "TAKE_PROFIT"):
            raise bad_request(-1106, "Parameter 'timeInForce' sent when not required.")
        if kind in ALGO_TYPES and stop is None:
            raise mandatory(key("stopPrice"))
        if kind == "MARKET":
            if qty is None and quote_qty is None:
                raise bad_request(
                    -1102,
                    "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
                )
            if qty is not None and quote_qty is not None:
                raise bad_request(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        elif qty is None:
            raise mandatory("quantity")
        now = self.now_ms()
        order = Order(
            id=0,
            client_order_id=_client_id(
                params.get(key("clientOrderId") if prefix else "newClientOrderId"),
                "newClientOrderId",
            ),
            symbol=spec.symbol,
            side=side,
            type=kind,
            time_in_force=tif
            if kind in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
            else "GTC",
            qty=qty or ZERO,
            price=price or ZERO,
            stop_price=stop or ZERO,
            quote_order_qty=quote_qty or ZERO,
            time=now,
            update_time=now,
        )
        self._check_filters(spec, order)
        default = "FULL" if kind in ("MARKET", "LIMIT") else "ACK"
        resp_type = params.get("newOrderRespType") or default
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise bad_request(-1100, "Illegal characters found in parameter 'newOrderRespType'.")
        return order, resp_type

    def _check_filters(self, spec: SymbolSpec, order: Order) -> None:
        market = order.type == "MARKET"
        average = self.average_price(spec.symbol)
        if order.type in LIMIT_TYPES:
            check_price(spec, order.price)
        if order.is_stop:
            check_price(spec, order.stop_price)
        if order.qty > 0 or not market:
            check_quantity(spec, order.qty, market=market)
        if order.type in LIMIT_TYPES:
            check_percent_price(order.side, order.price, average)
            check_notional(spec, order.price * order.qty)
        elif market and average is not None:
            notional = order.quote_order_qty if order.qty == 0 else average * order.qty
            if notional < spec.min_notional:
                raise filter_failure("NOTIONAL")
        elif order.is_stop:
            check_notional(spec, order.stop_price * order.qty)
        open_orders = [o for o in self.orders.values() if o.is_open and o.symbol == spec.symbol]
        if len(open_orders) >= spec.max_orders:
            raise filter_failure("MAX_NUM_ORDERS")
        if order.is_stop and sum(1 for o in open_orders if o.is_stop) >= spec.max_algo_orders:
            raise filter_failure("MAX_NUM_ALGO_ORDERS")

    def _check_duplicate(self, client_order_id: str) -> None:
        if any(o.is_open and o.client_order_id == client_order_id for o in self.orders.values()):
            raise bad_request(-2010, "Duplicate order sent.")

    def _accept(self, order: Order, *, locked_elsewhere: bool = False) -> None:
        """Check the balance, immediate-trigger and post-only rules, lock, list the order,
        then work it (a NEW report first, then any execution)."""
        spec = self.specs[order.symbol]
        book = self.books.get(order.symbol)
        self._precheck(order, spec, book)
        if not locked_elsewhere:
            self._lock(order, spec, book)
        order.id = self.next_order_id
        self.next_order_id += 1
        order.working = not order.is_stop
        order.working_time = order.time if order.working else -1
        self.orders[order.id] = order
        self.emit_user(execution_report(order, execution="NEW", now=order.time))
        if order.locked and order.type != "MARKET":
            self.emit_positions([order.lock_asset])
        self._work(order)

    def _precheck(self, order: Order, spec: SymbolSpec, book: Book | None) -> None:
        """What Binance refuses against the market: a quote quantity too small for one step,
        a post-only order that would take, a stop that would trigger at once."""
        if order.type == "MARKET" and order.qty == 0 and book is not None:
            price = book.ask if order.side == "BUY" else book.bid
            order.qty = (order.quote_order_qty / price).quantize(spec.step, ROUND_DOWN)
            if order.qty < spec.min_qty:
                raise filter_failure("LOT_SIZE")
        if order.type == "LIMIT_MAKER" and book is not None and self._crosses(order, book):
            raise bad_request(-2010, "Order would immediately match and take.")
        if order.is_stop and book is not None and self._triggered(order, book.bid, book.ask):
            raise bad_request(-2010, "Stop price would trigger immediately.")

    def _lock(self, order: Order, spec: SymbolSpec, book: Book | None) -> None:
        if order.side == "SELL":
            asset, need = spec.base, order.qty
        else:
            asset = spec.quote
            if order.type == "MARKET":
                need = order.quote_order_qty or order.qty * (book.ask if book else ZERO)
            else:
                need = order.qty * (order.price or order.stop_price)
        if self.ledger.available(asset) < need:
            raise bad_request(-2010, INSUFFICIENT)
        order.lock_asset, order.locked = asset, need
        self.ledger.lock(asset, need)

    # -- matching ----------------------------------------------------------------------------
    @staticmethod
    def _crosses(order: Order, book: Book) -> bool:
        if order.side == "BUY":
            return book.ask <= order.price
        return book.bid >= order.price

    @staticmethod
    def _triggered(order: Order, low: Decimal, high: Decimal) -> bool:
        """Whether a stop order triggers at prices reaching from `low` to `high` (a book's bid
        and ask, or a kline's range)."""
        rising = order.type.startswith("STOP_LOSS") == (order.side == "BUY")
        return high >= order.stop_price if rising else low <= order.stop_price

    def _work(self, order: Order) -> None:
        """Match a new order against the book: takers fill at once, IOC/FOK/MARKET expire
        what they could not fill."""
        if self.held or not order.is_open:
            return
        book = self.books.get(order.symbol)
        if not order.working:
            return
        if order.type == "MARKET":
            if book is None:
                self._finish(order, "EXPIRED")
            else:
                self.execute(
                    order,
                    order.remaining,
                    book.ask if order.side == "BUY" else book.bid,
                    maker=False,
                )
            return
        if book is not None and self._crosses(order, book):
            price = book.ask if order.side == "BUY" else book.bid
            self.execute(order, order.remaining, price, maker=False)
        elif order.time_in_force in ("IOC", "FOK"):
            self._finish(order, "EXPIRED")

    def work_book(self, symbol: str) -> None:
        """Resting orders of `symbol` against its (new) book ticker."""
        if self.held:
            return
        book = self.books.get(symbol)
        if book is None:
            return
        for order in self._resting(symbol):
            if not order.working and self._triggered(order, book.bid, book.ask):
                self._trigger(order)
                if order.working:
                    self._work(order)
            elif order.working and self._crosses(order, book):
                self.execute(order, order.remaining, order.price, maker=True)

    def work_kline(self, kline: Kline) -> None:
        """Resting orders of the kline's symbol against its range (fills at their price)."""
        if self.held:
            return
        bar = kline.bar
        for order in self._resting(bar.symbol.upper()):
            if not order.working and self._triggered(order, bar.low, bar.high):
                self._trigger(order)
                if order.type in ("STOP_LOSS", "TAKE_PROFIT"):
                    self.execute(order, order.remaining, order.stop_price, maker=False)
                    continue
            if order.working and order.is_open:
                reached = bar.low <= order.price if order.side == "BUY" else bar.high >= order.price
                if reached:
                    self.execute(order, order.remaining, order.price, maker=True)

    def _resting(self, symbol: str) -> list[Order]:
        return [o for o in self.orders.values() if o.is_open and o.symbol == symbol]

    def _trigger(self, order: Order) -> None:
        """A stop order's trigger: it becomes a limit (or market) order on the book."""
        order.working = True
        order.working_time = self.now_ms()
        if order.type in ("STOP_LOSS", "TAKE_PROFIT"):
            book = self.books.get(order.symbol)
            if book is not None:
                self.execute(
                    order,
                    order.remaining,
                    book.ask if order.side == "BUY" else book.bid,
                    maker=False,
                )

    # -- executions --------------------------------------------------------------------------
    def execute(self, order: Order, qty: Decimal, price: Decimal, *, maker: bool) -> Trade:
        """One TRADE of `qty` at `price`: balances, commission, the report, the account
        position, and the end of an OCO list when the order is done."""
        spec = self.specs[order.symbol]
        self._take_list_lock(order)
        now = self.now_ms()
        quote_value = (qty * price).quantize(EIGHT, ROUND_DOWN)
        commission, commission_asset = self._commission(spec, order.side, qty, quote_value)
        self._release(order, qty, quote_value)
        if order.side == "BUY":
            self.ledger.add(spec.quote, -quote_value)
            self.ledger.add(spec.base, qty)
        else:
            self.ledger.add(spec.base, -qty)
            self.ledger.add(spec.quote, quote_value)
        self.ledger.add(commission_asset, -commission)
        trade = Trade(
            self.next_trade_id, order.id, order.order_list_id, order.symbol, order.side,
            price, qty, commission, commission_asset, now, maker,
        )  # fmt: skip
        self.next_trade_id += 1
        self.trades.append(trade)
        order.trades.append(trade)
        order.executed += qty
        order.cumulative_quote += quote_value
        order.status = "FILLED" if order.remaining <= 0 else "PARTIALLY_FILLED"
        order.update_time = now
        self.last_price[order.symbol] = price
        if not order.is_open:
            self._unlock_rest(order)
        self.emit_user(execution_report(order, execution="TRADE", now=now, trade=trade))
        self.emit_positions({spec.base, spec.quote, commission_asset})
        self._end_list(order)  # one leg of an OCO executing ends the other
        return trade

    def _commission(
        self, spec: SymbolSpec, side: str, qty: Decimal, quote_value: Decimal
    ) -> tuple[Decimal, str]:
        """Of the asset received, or BNB when paying fees with BNB and holding some."""
        rate = self.commission_rate
        bnb_price = self.average_price("BNBUSDT") if spec.quote == "USDT" else None
        if self.pay_fees_in_bnb and self.ledger.available("BNB") > 0 and bnb_price:
            return (quote_value * rate / bnb_price).quantize(EIGHT, ROUND_DOWN), "BNB"
        if side == "BUY":
            return (qty * rate).quantize(EIGHT, ROUND_DOWN), spec.base
        return (quote_value * rate).quantize(EIGHT, ROUND_DOWN), spec.quote

    def _release(self, order: Order, qty: Decimal, quote_value: Decimal) -> None:
        """Unlock what this execution uses of the order's lock."""
        if not order.locked:
            return
        if order.side == "SELL":
            portion = qty
        elif order.type == "MARKET":
            portion = quote_value
        else:
            portion = qty * (order.price or order.stop_price)
        portion = min(portion, order.locked)
        order.locked -= portion
        self.ledger.unlock(order.lock_asset, portion)

    def _unlock_rest(self, order: Order) -> None:
        if order.locked:
            self.ledger.unlock(order.lock_asset, order.locked)
            order.locked = ZERO

    def _take_list_lock(self, order: Order) -> None:
        """OCO legs share one lock, held by the first leg: the leg that executes takes it."""
        if order.order_list_id < 0 or order.locked:
            return
        for sibling_id in self.order_lists[order.order_list_id].order_ids:
            sibling = self.orders[sibling_id]
            if sibling is not order and sibling.locked:
                order.lock_asset, order.locked = sibling.lock_asset, sibling.locked
                sibling.locked = ZERO

    def _finish(
        self,
        order: Order,
        status: str,
        *,
        cancel_client_id: str | None = None,
        emit_list: bool = True,
    ) -> None:
        """An order ends without (more) executions: CANCELED, EXPIRED or REJECTED."""
        order.status = status
        order.update_time = self.now_ms()
        asset, had = order.lock_asset, order.locked
        self._unlock_rest(order)
        self.emit_user(
            execution_report(
                order, execution=status, now=order.update_time, cancel_client_id=cancel_client_id
            )
        )
        if had:
            self.emit_positions([asset])
        if emit_list:
            self._end_list(order, cancel_client_id=cancel_client_id)

    def fill(self, order_id: int, qty: Decimal | None, price: Decimal | None) -> None:
        """A scripted TRADE (control)."""
        with self.lock:
            order = self.get(order_id)
            if not order.is_open:
                raise ValueError(f"order {order_id} is {order.status}")
            book = self.books.get(order.symbol)
            if price is None:
                if order.price:
                    price = order.price
                elif book is not None:
                    price = book.ask if order.side == "BUY" else book.bid
                else:
                    raise ValueError(f"no price to fill order {order_id} at")
            order.working = True
            self.execute(
                order,
                qty if qty is not None else order.remaining,
                price,
                maker=order.type != "MARKET",
            )
            self.notify()

    def expire(self, order_id: int) -> None:
        with self.lock:
            order = self.get(order_id)
            if not order.is_open:
                raise ValueError(f"order {order_id} is {order.status}")
            self._finish(order, "EXPIRED")
            self.notify()

    def release_held(self) -> None:
        for symbol in sorted({o.symbol for o in self.orders.values() if o.is_open}):
            for order in self._resting(symbol):
                self._work(order)
            self.work_book(symbol)

    # -- queries -----------------------------------------------------------------------------
    def get(self, order_id: int) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise KeyError(order_id)
        return order

    def find(self, params: dict[str, str], *, missing: ApiError) -> Order:
        """The order named by orderId or origClientOrderId (the newest with that id)."""
        spec = self.spec(params.get("symbol"))
        order_id = parse_int(params.get("orderId"), "orderId")
        client_id = params.get("origClientOrderId")
        if order_id is None and not client_id:
            raise bad_request(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        for order in reversed(self.orders.values()):
            if order.symbol != spec.symbol:
                continue
            if (order_id is not None and order.id == order_id) or (
                order_id is None and order.client_order_id == client_id
            ):
                return order
        raise missing

    def open_orders(self, symbol: str | None) -> list[dict[str, Any]]:
        with self.lock:
            if symbol is not None:
                self.spec(symbol)
            return [
                o.json() for o in self.orders.values() if o.is_open and symbol in (None, o.symbol)
            ]

    def all_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        with self.lock:
            spec = self.spec(params.get("symbol"))
            from_id = parse_int(params.get("orderId"), "orderId")
            start = parse_int(params.get("startTime"), "startTime")
            end = parse_int(params.get("endTime"), "endTime")
            limit = _limit(params.get("limit"))
            chosen = [
                o for o in self.orders.values()
                if o.symbol == spec.symbol
                and (from_id is None or o.id >= from_id)
                and (start is None or o.time >= start)
                and (end is None or o.time <= end)
            ]  # fmt: skip
            chosen = chosen[:limit] if from_id is not None or start is not None else chosen[-limit:]
            return [o.json() for o in chosen]

    def my_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        with self.lock:
            spec = self.spec(params.get("symbol"))
            order_id = parse_int(params.get("orderId"), "orderId")
            from_id = parse_int(params.get("fromId"), "fromId")
            start = parse_int(params.get("startTime"), "startTime")
            end = parse_int(params.get("endTime"), "endTime")
            limit = _limit(params.get("limit"))
            if from_id is not None and (start is not None or end is not None):
                raise bad_request(-1128, "Combination of optional parameters invalid.")
            chosen = [
                t for t in self.trades
                if t.symbol == spec.symbol
                and (order_id is None or t.order_id == order_id)
                and (from_id is None or t.id >= from_id)
                and (start is None or t.time >= start)
                and (end is None or t.time <= end)
            ]  # fmt: skip
            ascending = from_id is not None or start is not None
            chosen = chosen[:limit] if ascending else chosen[-limit:]
            return [t.json() for t in chosen]

    # -- cancels -----------------------------------------------------------------------------
    def cancel(self, params: dict[str, str]) -> dict[str, Any]:
        """DELETE order: the order CANCELED (an OCO leg cancels its whole list)."""
        with self.lock:
            answer = self._cancel(params)
            self.notify()
            return answer

    def _cancel(self, params: dict[str, str]) -> dict[str, Any]:
        order = self.find(params, missing=bad_request(-2011, "Unknown order sent."))
        if not order.is_open:
            raise bad_request(-2011, "Unknown order sent.")
        cancel_id = _client_id(params.get("newClientOrderId"), "newClientOrderId")
        self._cancel_order(order, cancel_id)
        return order.cancel_json(cancel_id, order.update_time)

    def _cancel_order(self, order: Order, cancel_id: str) -> None:
        if order.order_list_id >= 0:
            order_list = self.order_lists[order.order_list_id]
            for sibling_id in order_list.order_ids:
                sibling = self.orders[sibling_id]
                if sibling.is_open:
                    self._finish(
                        sibling,
                        "CANCELED",
                        cancel_client_id=cancel_id if sibling is order else _generated_id(),
                        emit_list=False,
                    )
            self._list_done(order_list, "ALL_DONE", "ALL_DONE", cancel_client_id=cancel_id)
        else:
            self._finish(order, "CANCELED", cancel_client_id=cancel_id)

    def cancel_all(self, params: dict[str, str]) -> list[dict[str, Any]]:
        with self.lock:
            spec = self.spec(params.get("symbol"))
            out: list[dict[str, Any]] = []
            done_lists: set[int] = set()
            for order in list(self.orders.values()):
                if not order.is_open or order.symbol != spec.symbol:
                    continue
                cancel_id = _generated_id()
                if order.order_list_id >= 0:
                    if order.order_list_id in done_lists:
                        continue
                    done_lists.add(order.order_list_id)
                    self._cancel_order(order, cancel_id)
                    out.append(
                        self._list_json(self.order_lists[order.order_list_id], with_reports=True)
                    )
                else:
                    self._finish(order, "CANCELED", cancel_client_id=cancel_id)
                    out.append(order.cancel_json(cancel_id, order.update_time))
            if not out:
                raise bad_request(-2011, "Unknown order sent.")
            self.notify()
            return out

    def cancel_replace(self, params: dict[str, str]) -> dict[str, Any]:
        """POST order/cancelReplace: filters checked first; then the cancel and the new order,
        as the mode allows. Raises ApiError carrying the combined answer on failure."""
        with self.lock:
            mode = params.get("cancelReplaceMode")
            if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
                raise mandatory("cancelReplaceMode")
            new_params = {k: v for k, v in params.items() if not k.startswith("cancel")}
            if params.get("newClientOrderId") is None:
                new_params.pop("newClientOrderId", None)
            order, resp_type = self._build(new_params)
            cancel_params = {
                "symbol": params.get("symbol", ""),
                "orderId": params.get("cancelOrderId", ""),
                "origClientOrderId": params.get("cancelOrigClientOrderId", ""),
                "newClientOrderId": params.get("cancelNewClientOrderId", ""),
            }
            cancel_params = {k: v for k, v in cancel_params.items() if v}
            try:
                cancel_answer: dict[str, Any] = self._cancel(cancel_params)
                cancel_ok = True
            except ApiError as error:
                cancel_answer, cancel_ok = error.body(), False
            new_answer: dict[str, Any] | None = None
            new_ok = False
            if cancel_ok or mode == "ALLOW_FAILURE":
                try:
                    self._check_duplicate(order.client_order_id)
                    self._accept(order)
                    new_answer, new_ok = order.answer(resp_type, order.time), True
                except ApiError as error:
                    new_answer = error.body()
            self.notify()
            data = {
                "cancelResult": "SUCCESS" if cancel_ok else "FAILURE",
                "newOrderResult": "SUCCESS"
                if new_ok
                else ("FAILURE" if new_answer else "NOT_ATTEMPTED"),
                "cancelResponse": cancel_answer,
                "newOrderResponse": new_answer,
            }
            if cancel_ok and new_ok:
                return data
            if cancel_ok or new_ok:
                raise _replace_error(-2021, "Order cancel-replace partially failed.", data)
            raise _replace_error(-2022, "Order cancel-replace failed.", data)

    # -- order lists (OCO) -------------------------------------------------------------------
    def new_oco(self, params: dict[str, str]) -> dict[str, Any]:
        """POST orderList/oco: an above and a below leg sharing one lock."""
        with self.lock:
            spec = self.spec(params.get("symbol"))
            side = params.get("side")
            legs: list[Order] = []
            for prefix in ("above", "below"):
                kind = params.get(f"{prefix}Type")
                if kind is None:
                    raise mandatory(f"{prefix}Type")
                leg_params = dict(params)
                leg_params["type"] = kind
                order, _ = self._build(leg_params, prefix)
                legs.append(order)
            above, below = legs
            self._check_oco(side, above, below)
            for leg in legs:
                self._check_duplicate(leg.client_order_id)
            list_client_id = _client_id(params.get("listClientOrderId"), "listClientOrderId")
            resp_type = params.get("newOrderRespType") or "ACK"
            book = self.books.get(spec.symbol)
            for leg in legs:
                self._precheck(leg, spec, book)
            # One lock for the list: the base quantity (sell) or the dearer leg's cost (buy).
            lock_price = max(leg.price or leg.stop_price for leg in legs)
            probe = replace(above, type="LIMIT", price=lock_price, trades=[])
            self._lock(probe, spec, book)
            above.lock_asset, above.locked = probe.lock_asset, probe.locked
            order_list = OrderList(
                self.next_list_id, list_client_id, spec.symbol, [], self.now_ms()
            )
            self.next_list_id += 1
            self.order_lists[order_list.id] = order_list
            for leg in (below, above):  # Binance lists the below leg first
                leg.order_list_id = order_list.id
                self._accept(leg, locked_elsewhere=True)
                order_list.order_ids.append(leg.id)
            self.emit_user(self._list_event(order_list))
            self.notify()
            return self._list_json(order_list, with_reports=resp_type != "ACK")

    @staticmethod
    def _check_oco(side: str | None, above: Order, below: Order) -> None:
        takes_profit = ("LIMIT_MAKER", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
        stops = ("STOP_LOSS", "STOP_LOSS_LIMIT")
        sell_pair = above.type in takes_profit and below.type in stops
        buy_pair = above.type in stops and below.type in takes_profit
        if (side == "SELL" and not sell_pair) or (side == "BUY" and not buy_pair):
            raise bad_request(-1167, "This OCO order type combination is not supported.")
        above_level = above.price if above.type == "LIMIT_MAKER" else above.stop_price
        below_level = below.price if below.type == "LIMIT_MAKER" else below.stop_price
        if above_level <= below_level:
            raise bad_request(
                -1165,
                "A limit OCO's price must be above the stop price."
                if side == "SELL"
                else "A limit OCO's price must be below the stop price.",
            )

    def _end_list(self, order: Order, cancel_client_id: str | None = None) -> None:
        """A leg executed or ended: its sibling expires and the list is ALL_DONE."""
        if order.order_list_id < 0:
            return
        order_list = self.order_lists[order.order_list_id]
        if order_list.status == "ALL_DONE":
            return
        for sibling_id in order_list.order_ids:
            sibling = self.orders[sibling_id]
            if sibling is not order and sibling.is_open:
                self._finish(sibling, "EXPIRED", emit_list=False)
        self._list_done(order_list, "ALL_DONE", "ALL_DONE", cancel_client_id=cancel_client_id)

    def _list_done(
        self,
        order_list: OrderList,
        status_type: str,
        status: str,
        cancel_client_id: str | None = None,
    ) -> None:
        order_list.status_type, order_list.status = status_type, status
        self.emit_user(self._list_event(order_list))

    def _list_event(self, order_list: OrderList) -> dict[str, Any]:
        now = self.now_ms()
        return {
            "e": "listStatus",
            "E": now,
            "s": order_list.symbol,
            "g": order_list.id,
            "c": "OCO",
            "l": order_list.status_type,
            "L": order_list.status,
            "r": "NONE",
            "C": order_list.client_id,
            "T": now,
            "O": [
                {"s": order_list.symbol, "i": i, "c": self.orders[i].client_order_id}
                for i in order_list.order_ids
            ],
        }

    def _list_json(self, order_list: OrderList, *, with_reports: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "orderListId": order_list.id,
            "contingencyType": "OCO",
            "listStatusType": order_list.status_type,
            "listOrderStatus": order_list.status,
            "listClientOrderId": order_list.client_id,
            "transactionTime": order_list.time,
            "symbol": order_list.symbol,
            "orders": [
                {
                    "symbol": order_list.symbol,
                    "orderId": i,
                    "clientOrderId": self.orders[i].client_order_id,
                }
                for i in order_list.order_ids
            ],
        }
        if with_reports:
            body["orderReports"] = [
                self.orders[i].result_json(order_list.time) for i in order_list.order_ids
            ]
        return body


def _limit(raw: str | None) -> int:
    limit = parse_int(raw, "limit")
    if limit is None:
        return 500
    if limit < 1 or limit > 1000:
        raise bad_request(-1130, "Data sent for parameter 'limit' is not valid.")
    return limit


def _replace_error(code: int, msg: str, data: dict[str, Any]) -> ApiError:
    error = ApiError(400 if code == -2022 else 409, code, msg)
    error.data = data
    return error
