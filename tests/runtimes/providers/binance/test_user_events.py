"""The provider's side of the user data stream, fed as streams.py feeds it (`on_user_event` with
Binance's event dicts): events once and in order, only this session's orders, cancels by `C`,
commissions in BNB converted, balances kept by outboundAccountPosition, order responses and
stream reports of the same execution told once. Nothing here reaches a server: no REST call is
made by these paths (a call would fail: the connection points at a closed port)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

from runtimes.core.connection import BrokerConnection, ConnectionHealth
from runtimes.core.domain import OrderStatus
from runtimes.core.events import (
    AccountEvent,
    Event,
    OrderEvent,
    OrderEventKind,
    PositionEvent,
    PositionEventKind,
    TradeEvent,
)
from runtimes.core.rate_budget import LocalBudget
from runtimes.hosting.shared_budget import local_shared_budget
from runtimes.providers.binance import filters as f
from runtimes.providers.binance.book import Balance
from runtimes.providers.binance.market_data import BinanceMarketData
from runtimes.providers.binance.provider import BinanceProvider, response_reports
from runtimes.providers.binance.rest import BROKER, BinanceRest
from tests.runtimes.providers.binance.test_filters import BTCUSDT

PREFIX = "ptyabcdef12-"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms
URLS = {"api": "http://127.0.0.1:9/api", "ws_api": "ws://127.0.0.1:9/ws-api/v3",
        "stream": "ws://127.0.0.1:9/"}
BNBUSDT = {**BTCUSDT, "symbol": "BNBUSDT", "baseAsset": "BNB"}


class Health:
    def __init__(self) -> None:
        self.reports: list[ConnectionHealth] = []

    def report(self, health: ConnectionHealth) -> None:
        self.reports.append(health)


def offline_provider(symbols: tuple[str, ...] = ("BTCUSDT", "BNBUSDT")) -> BinanceProvider:
    connection = BrokerConnection(id=f"c-{uuid.uuid4().hex[:6]}", platform="binance-testnet",
                                  key_id="k" * 64, secret="s" * 64, urls=URLS)
    shared = local_shared_budget(f"test-{uuid.uuid4().hex}", "ws", limit=6000, floor=100)
    market = BinanceMarketData(connection, symbols=symbols, timeframes=("1m",), broker=BROKER,
                               shared=shared, clock=lambda: datetime.now(UTC),
                               wake=lambda: None)
    provider = BinanceProvider(platform="binance-testnet", connection=connection,
                               rest=BinanceRest(connection, LocalBudget(100), shared),
                               market=market, health=Health(), prefix=PREFIX,
                               wake=lambda: None, symbols=symbols)
    provider.rules = f.rules_from_exchange_info({"symbols": [BTCUSDT, BNBUSDT]})
    provider.book.balances.update({"USDT": Balance(D(100000), D(0), T0),
                                   "BNB": Balance(D(1), D(0), T0)})
    return provider


def report(x: str, status: str, *, order_id: int = 7, client: str = PREFIX + "cmine",
           z: str = "0", last: str = "0", price: str = "0", trade: int = -1,
           fee: str | None = None, fee_asset: str | None = None, at: int = T0 + 1000,
           **extra: Any) -> dict[str, Any]:
    return {"e": "executionReport", "E": at, "s": "BTCUSDT", "c": client, "S": "BUY",
            "o": "LIMIT", "f": "GTC", "q": "0.5", "p": "40000.00", "P": "0.00", "x": x,
            "X": status, "r": "NONE", "i": order_id, "l": last, "z": z, "L": price, "n": fee,
            "N": fee_asset, "T": at, "t": trade, "O": T0, "Z": "0", "m": False, **extra}


def kinds(events: list[Event]) -> list[str]:
    found = []
    for event in events:
        if isinstance(event, OrderEvent | PositionEvent):
            found.append(event.kind.value)
        else:
            found.append(type(event).__name__)
    return found


def test_a_partial_then_full_fill_is_told_once_in_order() -> None:
    provider = offline_provider()
    provider.on_user_event(report("NEW", "NEW"))
    partial = report("TRADE", "PARTIALLY_FILLED", z="0.2", last="0.2", price="40000.00",
                     trade=11, fee="0.0002", fee_asset="BTC")
    provider.on_user_event(partial)
    provider.on_user_event(partial)  # sent again: nothing new
    provider.on_user_event(report("TRADE", "FILLED", z="0.5", last="0.3", price="39999.00",
                                  trade=12, fee="0.0003", fee_asset="BTC", at=T0 + 2000))
    events = provider.drain_events()
    assert kinds(events) == ["ORDER_CREATED", "ORDER_PARTIALLY_FILLED", "TradeEvent",
                             "POSITION_OPENED", "ORDER_FILLED", "TradeEvent",
                             "POSITION_MODIFIED", "AccountEvent"]
    fills = [e.fill for e in events if isinstance(e, TradeEvent)]
    assert [(x.id, x.quantity, x.price, x.commission, x.commission_currency) for x in fills] == [
        ("BTCUSDT:11", D("0.2"), D("40000.00"), D("0.0002"), "BTC"),
        ("BTCUSDT:12", D("0.3"), D("39999.00"), D("0.0003"), "BTC")]
    filled = [e.order for e in events if isinstance(e, OrderEvent)][-1]
    assert (filled.id, filled.client_order_id, filled.status, filled.filled_quantity) == (
        "7", "mine", OrderStatus.FILLED, D("0.5"))
    positions = [e.position for e in events if isinstance(e, PositionEvent)]
    # the commission in BTC leaves less BTC than bought
    assert [p.quantity for p in positions] == [D("0.1998"), D("0.4995")]
    account = next(e.account for e in events if isinstance(e, AccountEvent))
    # commissions in the quote currency: base asset at its fill's price
    assert account.total_commission == D("0.0002") * D("40000.00") + D("0.0003") * D("39999.00")
    assert account.balance == D(100000) - D("0.2") * D("40000.00") - D("0.3") * D("39999.00")


def test_other_sessions_orders_are_not_told() -> None:
    provider = offline_provider()
    provider.on_user_event(report("NEW", "NEW", client="ptyzzzzzzzz-cother"))
    provider.on_user_event(report("NEW", "NEW", client="web_abc", order_id=8))
    assert provider.drain_events() == []


def test_a_cancel_is_recognised_by_its_original_client_id() -> None:
    provider = offline_provider()
    provider.on_user_event(report("NEW", "NEW"))
    cancel = report("CANCELED", "CANCELED", client="web_cancel_id", C=PREFIX + "cmine")
    provider.on_user_event(cancel)
    provider.on_user_event(cancel)
    events = provider.drain_events()
    assert kinds(events) == ["ORDER_CREATED", "ORDER_CANCELLED"]
    cancelled = events[1]
    assert isinstance(cancelled, OrderEvent)
    assert cancelled.order.client_order_id == "mine"
    assert cancelled.order.status is OrderStatus.CANCELLED


def test_commission_in_bnb_is_converted_at_the_bnbusdt_price() -> None:
    provider = offline_provider()
    provider.market.on_book_ticker({"u": 1, "s": "BNBUSDT", "b": "599.00", "B": "1",
                                    "a": "601.00", "A": "1"})
    provider.on_user_event(report("TRADE", "FILLED", z="0.5", last="0.5", price="40000.00",
                                  trade=21, fee="0.025", fee_asset="BNB"))
    events = provider.drain_events()
    fill = next(e.fill for e in events if isinstance(e, TradeEvent))
    assert (fill.commission, fill.commission_currency) == (D("0.025"), "BNB")
    account = next(e.account for e in events if isinstance(e, AccountEvent))
    assert account.total_commission == D("0.025") * D("600.00")
    position = next(e for e in events if isinstance(e, PositionEvent))
    assert position.kind is PositionEventKind.POSITION_OPENED
    assert position.position.quantity == D("0.5")  # paid in BNB: the BTC bought is all there


def test_account_positions_follow_outbound_account_position() -> None:
    provider = offline_provider(("BTCUSDT",))
    provider._stream_states["user_data"] = "connected"
    provider.market.on_book_ticker({"u": 1, "s": "BTCUSDT", "b": "50000.00", "B": "1",
                                    "a": "50000.00", "A": "1"})
    provider.on_user_event({"e": "outboundAccountPosition", "E": T0 + 5000, "u": T0 + 5000,
                            "B": [{"a": "BTC", "f": "0.25", "l": "0.05"},
                                  {"a": "USDT", "f": "5000", "l": "0"}]})
    positions = provider.positions()
    assert [(p.symbol, p.quantity, p.current_price) for p in positions] == [
        ("BTCUSDT", D("0.30"), D("50000.00"))]
    account = provider._account()
    assert (account.balance, account.equity, account.currency) == (
        D(5000), D(5000) + D("0.30") * D("50000.00"), "USDT")
    # an older event does not overwrite a newer balance
    provider.on_user_event({"e": "outboundAccountPosition", "E": T0, "u": T0,
                            "B": [{"a": "BTC", "f": "9", "l": "0"}]})
    assert provider.positions()[0].quantity == D("0.30")


def test_a_fill_already_in_a_rest_read_of_the_account_is_not_counted_twice() -> None:
    provider = offline_provider()
    provider.book.balances["BTC"] = Balance(D("0.5"), D(0), T0 + 5000)
    provider.book.balances_read_ms = T0 + 5000  # read after the trade below
    provider.on_user_event(report("TRADE", "FILLED", z="0.5", last="0.5", price="40000.00",
                                  trade=31, fee="0", fee_asset="BTC", at=T0 + 4000))
    position = next(e for e in provider.drain_events() if isinstance(e, PositionEvent))
    assert position.position.quantity == D("0.5")


def test_a_balance_event_of_the_same_millisecond_does_not_hide_a_later_trade() -> None:
    provider = offline_provider()
    provider.on_user_event({"e": "outboundAccountPosition", "E": T0 + 4000, "u": T0 + 4000,
                            "B": [{"a": "BTC", "f": "0.2", "l": "0"}]})
    provider.on_user_event(report("TRADE", "PARTIALLY_FILLED", z="0.5", last="0.3",
                                  price="40000.00", trade=32, fee="0", fee_asset="BTC",
                                  at=T0 + 4000))
    position = next(e for e in provider.drain_events() if isinstance(e, PositionEvent))
    assert position.position.quantity == D("0.5")


def test_an_order_response_and_the_stream_tell_one_execution_once() -> None:
    provider = offline_provider()
    response = {"symbol": "BTCUSDT", "orderId": 9, "orderListId": -1,
                "clientOrderId": PREFIX + "cfast", "transactTime": T0 + 100,
                "price": "0.00000000", "origQty": "0.10000000", "executedQty": "0.10000000",
                "cummulativeQuoteQty": "4000.00000000", "status": "FILLED",
                "timeInForce": "GTC", "type": "MARKET", "side": "BUY",
                "fills": [{"price": "40000.00", "qty": "0.06", "commission": "0.00006",
                           "commissionAsset": "BTC", "tradeId": 41},
                          {"price": "40000.00", "qty": "0.04", "commission": "0.00004",
                           "commissionAsset": "BTC", "tradeId": 42}]}
    reports = response_reports(response)
    assert [(r["x"], r["X"], r.get("z")) for r in reports] == [
        ("NEW", "NEW", "0"), ("TRADE", "PARTIALLY_FILLED", "0.06"), ("TRADE", "FILLED", "0.10")]
    for each in reports:
        provider.on_user_event(each)
    # the stream's own reports of the same trades come after
    provider.on_user_event(report("TRADE", "FILLED", order_id=9, client=PREFIX + "cfast",
                                  z="0.1", last="0.04", price="40000.00", trade=42, o="MARKET"))
    events = provider.drain_events()
    assert kinds(events) == ["ORDER_CREATED", "ORDER_PARTIALLY_FILLED", "TradeEvent",
                             "POSITION_OPENED", "ORDER_FILLED", "TradeEvent",
                             "POSITION_MODIFIED", "AccountEvent"]
    assert [x.id for x in provider.fills()] == ["BTCUSDT:41", "BTCUSDT:42"]


def test_a_rejection_carries_binance_s_reason() -> None:
    provider = offline_provider()
    provider.on_user_event(report("REJECTED", "REJECTED",
                                  r="Account has insufficient balance for requested action."))
    events = provider.drain_events()
    assert kinds(events) == ["ORDER_CREATED", "ORDER_REJECTED"]
    rejected = events[1]
    assert isinstance(rejected, OrderEvent)
    assert rejected.order.reject_reason is not None
    assert rejected.order.reject_reason.value == "INSUFFICIENT_BALANCE"


def test_a_drop_is_told_and_the_first_connect_is_quiet() -> None:
    provider = offline_provider()
    provider.expect_first_connect()
    provider.on_stream_state("user_data", "connected", None)
    assert provider.drain_events() == []
    provider._reconcile_due = False
    provider._quiet_reconnect = False
    provider._disconnected_at = None
    provider.on_stream_state("user_data", "reconnecting", "the socket closed")
    provider.on_stream_state("user_data", "failed", "gave up")
    events = provider.drain_events()
    assert [(e.event, e.error) for e in events if hasattr(e, "error")] == [
        ("BROKER_DISCONNECTED", "the socket closed"), ("BROKER_CONNECTION_FAILED", "gave up")]


def test_snapshot_is_small_and_restores_the_dedupe() -> None:
    provider = offline_provider()
    provider.on_user_event(report("NEW", "NEW", order_id=70))
    provider.on_user_event(report("TRADE", "PARTIALLY_FILLED", order_id=70, z="0.1", last="0.1",
                                  price="40000.00", trade=77))
    state = provider.snapshot()
    book = state["book"]
    assert book["last_trade_ids"] == {"BTCUSDT": 77}
    assert book["trades"] == [["70", 77]]
    assert book["open_orders"] == {"70": PREFIX + "cmine"}
    fresh = offline_provider()
    fresh.book.restore(book)
    fresh.on_user_event(report("TRADE", "PARTIALLY_FILLED", order_id=70, z="0.1", last="0.1",
                               price="40000.00", trade=77))
    assert [e for e in fresh.drain_events() if isinstance(e, TradeEvent)] == []
    kinds_of = {e.kind for e in fresh.drain_events() if isinstance(e, OrderEvent)}
    assert OrderEventKind.ORDER_CREATED not in kinds_of


def test_a_late_report_never_takes_an_order_back() -> None:
    provider = offline_provider()
    provider.on_user_event(report("NEW", "NEW"))
    provider.on_user_event(report("CANCELED", "CANCELED", client="x", C=PREFIX + "cmine"))
    provider.on_user_event(report("NEW", "NEW"))  # the stream's copy, after the REST answer
    assert provider.order("7").status is OrderStatus.CANCELLED
    assert provider.orders(open_only=True) == []
    assert kinds(provider.drain_events()) == ["ORDER_CREATED", "ORDER_CANCELLED"]
