"""The Binance provider against the fake Binance through the real python-binance: filters that
refuse before sending, partial fills, commissions in BNB, a user stream dropped with a fill in the
gap, 429 and 418 on a budget shared by two sessions, clock skew, a restart in the middle of an
order, cancelReplace, OCO and emulated brackets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from runtimes.core.connection import SharedBudget
from runtimes.core.domain import (
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TrailingType,
)
from runtimes.core.errors import (
    BrokerUnavailable,
    OrderRejected,
    OrderValidationError,
    RateLimited,
)
from runtimes.core.events import (
    AccountEvent,
    ConnectionEvent,
    Event,
    OrderEvent,
    OrderEventKind,
    RateLimitEvent,
    TradeEvent,
)
from tests.fakes.binance.server import FakeBinance
from tests.runtimes.providers.binance.harness import (
    BinanceHarness,
    shared_budget,
)


@pytest.fixture
def h() -> Iterator[BinanceHarness]:
    harness = BinanceHarness()
    yield harness
    harness.close()


def order_events(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.kind.value, e.order.id) for e in events if isinstance(e, OrderEvent)]


def posted_orders(fake: FakeBinance) -> int:
    return sum(1 for method, path, _ in fake.requests if method == "POST"
               and path.startswith("/api/v3/order"))


def limit(side: Side, quantity: str, price: str, **fields: object) -> OrderRequest:
    return OrderRequest(symbol="BTCUSDT", side=side, quantity=D(quantity),
                        order_type=OrderType.LIMIT, limit_price=D(price),
                        **fields)  # type: ignore[arg-type]


def test_an_order_the_filters_refuse_never_leaves(h: BinanceHarness) -> None:
    before = posted_orders(h.fake)
    with pytest.raises(OrderRejected) as caught:
        h.venue.submit_order(limit(Side.BUY, "0.000001", "30000"))
    assert caught.value.reject_code == "INVALID_QUANTITY"
    assert caught.value.details["filter"] == "LOT_SIZE"
    assert set(caught.value.details["limits"]) == {"minQty", "maxQty", "stepSize"}
    with pytest.raises(OrderRejected) as notional:
        h.venue.submit_order(limit(Side.BUY, "0.0001", "30000"))
    assert notional.value.details["filter"] in ("NOTIONAL", "MIN_NOTIONAL")
    assert posted_orders(h.fake) == before
    assert h.venue.all_orders() == []


def test_quantities_and_prices_leave_rounded_as_plain_strings(h: BinanceHarness) -> None:
    order = h.venue.submit_order(limit(Side.BUY, "0.123456789", "30000.129"))
    (_, _, params), = [r for r in h.fake.requests if r[0] == "POST"
                       and r[1] == "/api/v3/order"]
    assert (params["quantity"], params["price"]) == ("0.12345", "30000.12")
    assert params["newClientOrderId"].startswith(h.venue.ids.prefix)
    assert (order.quantity, order.limit_price) == (D("0.12345"), D("30000.12"))


def test_partial_fills_then_the_rest(h: BinanceHarness) -> None:
    h.take_events()
    order = h.venue.submit_order(limit(Side.BUY, "1", "39000"))
    h.fake.fill(int(order.id), D("0.4"), D("39000"))
    h.wait_synced()
    h.fake.fill(int(order.id))
    h.wait_synced()
    events = h.take_events()
    assert order_events(events) == [("ORDER_CREATED", order.id),
                                    ("ORDER_PARTIALLY_FILLED", order.id),
                                    ("ORDER_FILLED", order.id)]
    assert [(x.quantity, x.price) for x in h.venue.fills(order_id=order.id)] == [
        (D("0.4"), D("39000")), (D("0.6"), D("39000"))]
    assert h.venue.position("BTCUSDT").quantity == D(1)


def test_commission_in_bnb_is_reported_and_converted() -> None:
    fake = FakeBinance(balances={"USDT": D(100000), "BNB": D(10)},
                       symbols=("BTCUSDT", "BNBUSDT"), pay_fees_in_bnb=True,
                       commission_rate=D("0.001")).start()
    fake.set_book("BTCUSDT", bid=D(40000), ask=D(40000))
    fake.set_book("BNBUSDT", bid=D(500), ask=D(500))
    harness = BinanceHarness(fake=fake, symbols=("BTCUSDT", "BNBUSDT"))
    try:
        fake.set_book("BNBUSDT", bid=D(500), ask=D(500))  # streamed now that it is subscribed
        harness.until(lambda: harness.venue.market.last_price("BNBUSDT") is not None,
                      "the BNBUSDT book is known")
        order = harness.venue.submit_order(OrderRequest(symbol="BTCUSDT", side=Side.BUY,
                                                        quantity=D(1)))
        harness.wait_synced()
        (fill,) = harness.venue.fills(order_id=order.id)
        assert fill.commission_currency == "BNB"
        assert fill.commission == D(40000) * D("0.001") / D(500)  # 0.08 BNB
        account = next(e.account for e in harness.take_events() if isinstance(e, AccountEvent))
        assert account.total_commission == D(40)  # in USDT, at the BNBUSDT book
        assert harness.venue.position("BTCUSDT").quantity == D(1)
    finally:
        harness.close()


def test_a_fill_while_the_user_stream_is_down_is_told_once_after_reconcile(
        h: BinanceHarness) -> None:
    order = h.venue.submit_order(limit(Side.BUY, "1", "39000"))
    h.take_events()
    h.fake.begin_restart()
    h.until(lambda: h.venue.health().streams.get("user_data") != "connected",
            "the provider sees the drop")
    h.fake.fill(int(order.id))
    h.fake.end_restart()
    found: list[Event] = []

    def reconnected() -> bool:  # the host's loop: advance when due, drain
        h.tick()
        found.extend(h._events)
        h._events.clear()
        return any(isinstance(e, ConnectionEvent) and e.event == "BROKER_RECONNECTED"
                   for e in found)

    h.until(reconnected, "the provider reconciles and says it is back")
    connections = [e for e in found if isinstance(e, ConnectionEvent)]
    assert [c.event for c in connections] == ["BROKER_DISCONNECTED", "BROKER_RECONNECTED"]
    trades = [e for e in found if isinstance(e, TradeEvent)]
    assert [t.fill.order_id for t in trades] == [order.id]
    back = connections[-1]
    assert back.reconciled is not None
    assert back.reconciled["fills_since_last_event"] == [trades[0].fill.id]
    assert order_events(found) == [("ORDER_FILLED", order.id)]
    # the stream's copy, if it comes, is not told again
    assert [e for e in h.take_events() if isinstance(e, TradeEvent)] == []


def test_a_429_blocks_every_session_on_the_ip(h: BinanceHarness) -> None:
    other = BinanceHarness(fake=h.fake, shared=shared_budget_of(h))
    try:
        h.take_events()
        h.fake.fail_next(429, retry_after=7)
        with pytest.raises(RateLimited) as caught:
            h.venue.account()
        assert caught.value.retry_after_seconds == 7
        hits = [e for e in h.take_events() if isinstance(e, RateLimitEvent)]
        assert [e.event for e in hits] == ["RATE_LIMIT_HIT"]
        sent = len(h.fake.requests)
        with pytest.raises(RateLimited):
            other.venue.account()  # refused here: Binance is not asked
        assert len(h.fake.requests) == sent
    finally:
        other.close()


def shared_budget_of(h: BinanceHarness) -> SharedBudget:
    """Another workspace's view of the same IP's weight."""
    return shared_budget(h.scope, "ws-2")


def test_a_418_ban_stops_every_session_with_a_clear_event(h: BinanceHarness) -> None:
    other = BinanceHarness(fake=h.fake, shared=shared_budget_of(h))
    try:
        h.take_events()
        other.take_events()
        h.fake.fail_next(418, retry_after=120)
        with pytest.raises(BrokerUnavailable) as caught:
            h.venue.account()
        assert "Binance banned this server's IP until" in str(caught.value)
        sent = len(h.fake.requests)
        with pytest.raises(BrokerUnavailable):
            other.venue.account()
        assert len(h.fake.requests) == sent
        for session in (h, other):
            session.tick()
            failed = [e for e in session.take_events() if isinstance(e, ConnectionEvent)]
            assert [e.event for e in failed] == ["BROKER_CONNECTION_FAILED"]
            assert failed[0].error is not None and "banned" in failed[0].error
            assert session.venue.health().banned_until is not None
            session.tick()
            assert [e for e in session.take_events() if isinstance(e, ConnectionEvent)] == []
    finally:
        other.close()


def test_clock_skew_is_measured_and_fixed(h: BinanceHarness) -> None:
    h.fake.set_clock_offset(8000)
    account = h.venue.account()  # -1021, measured again, retried once
    assert account.currency == "USDT"
    offset = h.venue.status()["clock_offset_ms"]
    assert 7500 <= offset <= 8500
    assert h.venue.health().clock_offset_ms == offset
    skewed = [p for m, path, p in h.fake.requests if path == "/api/v3/account"]
    assert len(skewed) >= 2


def test_a_restart_in_the_middle_of_an_order(h: BinanceHarness) -> None:
    first = h.venue.submit_order(limit(Side.BUY, "1", "39000", client_order_id="r-1"))
    h.take_events()
    state = h.venue.snapshot()
    h.venue.close()  # the worker dies
    h.fake.fill(int(first.id))
    restored = BinanceHarness(fake=h.fake, restored=state)
    try:
        events = restored.take_events()
        assert order_events(events) == [("ORDER_FILLED", first.id)]
        assert [e.fill.order_id for e in events if isinstance(e, TradeEvent)] == [first.id]
        posted = posted_orders(h.fake)
        again = restored.venue.submit_order(limit(Side.BUY, "1", "39000", client_order_id="r-1"))
        assert (again.id, again.status) == (first.id, OrderStatus.FILLED)
        assert posted_orders(h.fake) == posted
        restored.tick()
        assert [e for e in restored.take_events() if isinstance(e, TradeEvent)] == []
    finally:
        restored.venue.close()


def test_modify_is_a_cancel_replace(h: BinanceHarness) -> None:
    order = h.venue.submit_order(limit(Side.BUY, "1", "30000", client_order_id="m-1"))
    h.take_events()
    changed, previous = h.venue.modify_order(order.id, limit_price=D("30500"))
    assert previous == order.id and changed.id != order.id
    assert (changed.limit_price, changed.quantity, changed.client_order_id) == (
        D("30500"), D(1), "m-1")
    events = h.take_events()
    assert order_events(events) == [("ORDER_CANCELLED", order.id),
                                    ("ORDER_MODIFIED", changed.id)]
    (_, _, params), = [r for r in h.fake.requests if r[1] == "/api/v3/order/cancelReplace"]
    assert params["cancelReplaceMode"] == "STOP_ON_FAILURE"


def bought(h: BinanceHarness, quantity: str = "1") -> None:
    h.venue.submit_order(OrderRequest(symbol="BTCUSDT", side=Side.BUY, quantity=D(quantity)))
    h.pass_time()


def test_an_oco_pair_goes_as_one_order_list(h: BinanceHarness) -> None:
    bought(h)
    h.take_events()
    take = h.venue.submit_order(limit(Side.SELL, "1", "45000", oco_group_id="g"))
    assert take.status is OrderStatus.PENDING
    stop = h.venue.submit_order(OrderRequest(symbol="BTCUSDT", side=Side.SELL, quantity=D(1),
                                             order_type=OrderType.STOP_LIMIT,
                                             stop_price=D(35000), limit_price=D(34900),
                                             oco_group_id="g"))
    assert {o.oco_group_id for o in (h.venue.order(take.id), stop)} == {"g"}
    (_, _, params), = [r for r in h.fake.requests if r[1] == "/api/v3/orderList/oco"]
    assert (params["aboveType"], params["abovePrice"]) == ("LIMIT_MAKER", "45000.00")
    assert (params["belowType"], params["belowStopPrice"]) == ("STOP_LOSS_LIMIT", "35000.00")
    h.fake.hold_fills(False)
    h.fake.set_book("BTCUSDT", bid=D(45000), ask=D(45000))
    h.wait_synced()
    h.until(lambda: not h.venue.order(stop.id).is_open, "the other leg ends")
    assert h.venue.order(take.id).status is OrderStatus.FILLED
    assert h.venue.order(stop.id).status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED)


def test_an_emulated_bracket_places_its_oco_when_the_entry_fills(h: BinanceHarness) -> None:
    entry = h.venue.submit_order(OrderRequest(
        symbol="BTCUSDT", side=Side.BUY, quantity=D(1), order_type=OrderType.LIMIT,
        limit_price=D(40000), stop_loss=D(35000), take_profit=D(45000)))
    assert (entry.stop_loss, entry.take_profit) == (D(35000), D(45000))
    assert "bracket_orders_emulated" in h.venue.capabilities()["features"]
    assert not [r for r in h.fake.requests if r[1] == "/api/v3/orderList/oco"]
    h.fake.fill(int(entry.id), D("0.4"))
    h.wait_synced()
    h.until(lambda: h.venue.next_due() == 0, "the plan is due")
    h.tick()
    (_, _, params), = [r for r in h.fake.requests if r[1] == "/api/v3/orderList/oco"]
    assert (params["side"], params["quantity"]) == ("SELL", "0.40000")
    exits = [o for o in h.venue.orders(open_only=True) if o.parent_order_id == entry.id]
    assert sorted((o.order_type.value, o.quantity) for o in exits) == [
        ("LIMIT", D("0.4")), ("STOP", D("0.4"))]
    created = [e for e in h.take_events() if isinstance(e, OrderEvent)
               and e.kind is OrderEventKind.ORDER_CREATED and e.parent_order_id == entry.id]
    assert len(created) == 2
    assert h.venue.snapshot()["book"]["plans"][0]["placed_quantity"] == "0.40000"


def test_status_shows_the_connection(h: BinanceHarness) -> None:
    h.fake.set_book("BTCUSDT", bid=D(40000), ask=D(40001))  # the market stream's first message
    h.until(lambda: h.venue.health().streams.get("market_data") == "connected",
            "the market stream is connected")
    status = h.venue.status()
    assert status["connected"] is True
    assert status["connection"]["streams"] == {"market_data": "connected",
                                               "user_data": "connected"}
    assert isinstance(status["clock_offset_ms"], int)
    assert status["last_heartbeat"] is not None
    assert datetime.fromisoformat(status["last_heartbeat"].replace("Z", "+00:00")) <= \
        datetime.now(UTC)


def test_a_retry_after_a_restart_answers_the_first_order(h: BinanceHarness) -> None:
    first = h.venue.submit_order(OrderRequest(symbol="BTCUSDT", side=Side.BUY, quantity=D(1),
                                              client_order_id="r-2"))
    h.pass_time()
    h.take_events()
    state = h.venue.snapshot()  # the order is done: the snapshot no longer carries it
    assert state["book"]["open_orders"] == {}
    h.venue.close()
    restored = BinanceHarness(fake=h.fake, restored=state)
    try:
        again = restored.venue.submit_order(OrderRequest(
            symbol="BTCUSDT", side=Side.BUY, quantity=D(1), client_order_id="r-2"))
        assert (again.id, again.status, again.client_order_id) == (
            first.id, OrderStatus.FILLED, "r-2")
        assert len(h.fake.orders()) == 1
        restored.tick()  # (its fill happened before the snapshot: not in this book's fills)
        assert [e for e in restored._events if isinstance(e, OrderEvent)] == []
    finally:
        restored.venue.close()


def test_a_duplicate_client_id_at_binance_answers_the_first_order(h: BinanceHarness) -> None:
    first = h.venue.submit_order(limit(Side.BUY, "1", "39000", client_order_id="d-1"))
    with h.venue.book.lock:  # a provider that never learnt of it (its host died mid-request)
        h.venue.book.orders.clear()
        h.venue.book.order_client_ids.clear()
    again = h.venue.submit_order(limit(Side.BUY, "1", "39000", client_order_id="d-1"))
    assert (again.id, again.client_order_id, again.status) == (first.id, "d-1",
                                                                OrderStatus.OPEN)
    sent = [p["newClientOrderId"] for m, path, p in h.fake.requests
            if m == "POST" and path == "/api/v3/order"]
    assert sent == [h.venue.ids.for_strategy("d-1")] * 2  # the same id: Binance refused it
    assert len(h.fake.orders()) == 1


def sent_order(h: BinanceHarness) -> dict[str, str]:
    return [p for m, path, p in h.fake.requests if m == "POST" and path == "/api/v3/order"][-1]


def test_stops_map_by_side_and_market(h: BinanceHarness) -> None:
    bought(h)
    h.venue.submit_order(OrderRequest(symbol="BTCUSDT", side=Side.SELL, quantity=D("0.5"),
                                      order_type=OrderType.STOP, stop_price=D(35000)))
    assert (sent_order(h)["type"], sent_order(h)["stopPrice"]) == ("STOP_LOSS", "35000.00")
    h.venue.submit_order(OrderRequest(symbol="BTCUSDT", side=Side.SELL, quantity=D("0.5"),
                                      order_type=OrderType.STOP_LIMIT, stop_price=D(45000),
                                      limit_price=D(44900)))
    assert (sent_order(h)["type"], sent_order(h)["timeInForce"]) == ("TAKE_PROFIT_LIMIT",
                                                                      "GTC")
    maker = h.venue.submit_order(limit(Side.BUY, "0.5", "30000", post_only=True))
    assert sent_order(h)["type"] == "LIMIT_MAKER" and "timeInForce" not in sent_order(h)
    assert maker.post_only is True


def test_what_binance_spot_does_not_take_is_refused_with_the_reason(h: BinanceHarness) -> None:
    posted = posted_orders(h.fake)
    with pytest.raises(OrderValidationError) as day:
        h.venue.submit_order(limit(Side.BUY, "1", "30000", time_in_force=TimeInForce.DAY))
    assert day.value.details["field"] == "time_in_force"
    with pytest.raises(OrderValidationError) as absolute:
        h.venue.submit_order(OrderRequest(
            symbol="BTCUSDT", side=Side.SELL, quantity=D(1), order_type=OrderType.TRAILING_STOP,
            trailing_distance=D(100), trailing_type=TrailingType.ABSOLUTE))
    assert absolute.value.details["field"] == "trailing_type"
    assert posted_orders(h.fake) == posted


def test_the_used_weight_header_is_observed(h: BinanceHarness) -> None:
    h.take_events()
    h.fake.set_used_weight(5500)
    h.venue.account()
    remaining = h.shared.remaining()
    assert remaining is not None and remaining <= 6000 - 5500 - 20
    warnings = [e for e in h.take_events() if isinstance(e, RateLimitEvent)]
    assert [e.event for e in warnings] == ["RATE_LIMIT_WARNING"]
    assert h.venue.rest.used_weight is not None and h.venue.rest.used_weight >= 5520


def test_a_bracket_whose_exits_cannot_be_placed_now_places_them_later(
        h: BinanceHarness) -> None:
    h.fake.hold_fills(False)  # the market entry fills at once
    h.fake.fail_next(503, path="/api/v3/orderList")
    entry = h.venue.submit_order(OrderRequest(symbol="BTCUSDT", side=Side.BUY, quantity=D(1),
                                              stop_loss=D(35000), take_profit=D(45000)))
    assert h.venue.order(entry.id).status is OrderStatus.FILLED  # the entry stands
    assert not [o for o in h.venue.orders() if o.parent_order_id == entry.id]
    due = h.venue.next_due()
    assert due is not None and 4 < due <= 5  # again in a few seconds, not in a busy loop
    h.venue._plans_not_before = datetime.now(UTC)  # those seconds passed
    h.tick()
    exits = [o for o in h.venue.orders(open_only=True) if o.parent_order_id == entry.id]
    assert sorted(o.order_type.value for o in exits) == ["LIMIT", "STOP"]


def test_an_ended_user_subscription_is_a_drop_reconciled(h: BinanceHarness) -> None:
    h.take_events()
    h.fake.end_user_stream()
    found: list[Event] = []

    def reconnected() -> bool:
        h.tick()
        found.extend(h._events)
        h._events.clear()
        return any(isinstance(e, ConnectionEvent) and e.event == "BROKER_RECONNECTED"
                   for e in found)

    h.until(reconnected, "the subscription is renewed and reconciled")
    connections = [e for e in found if isinstance(e, ConnectionEvent)]
    assert [c.event for c in connections] == ["BROKER_DISCONNECTED", "BROKER_RECONNECTED"]
    assert connections[-1].reconciled == {"open_orders": [], "positions": [],
                                          "fills_since_last_event": []}
    h.fake.wait_for(lambda: h.fake.subscriptions()["user"] == 1)


def test_a_notional_market_order_goes_as_quote_order_qty_and_binance_sizes_it(
    h: BinanceHarness,
) -> None:
    order = h.venue.submit_order(OrderRequest(symbol="BTCUSDT", side=Side.BUY,
                                              notional=D("1234.567891234")))
    (_, _, params), = [r for r in h.fake.requests if r[0] == "POST"
                       and r[1] == "/api/v3/order"]
    assert (params["quoteOrderQty"], "quantity" in params) == ("1234.56789123", False)
    assert order.notional == D("1234.56789123")
    h.pass_time()
    filled = h.venue.order(order.id)
    assert (filled.status, filled.filled_quantity) == (OrderStatus.FILLED, D("0.03086"))
    assert [(x.quantity, x.price) for x in h.venue.fills(order_id=order.id)] == [
        (D("0.03086"), D(40000))]  # 1234.56789123 / 40000 = 0.030864..., cut to the step


def test_an_equity_fraction_becomes_a_quote_amount_of_the_equity_at_submit(
    h: BinanceHarness,
) -> None:
    h.venue.submit_order(OrderRequest(symbol="BTCUSDT", side=Side.BUY,
                                      equity_fraction=D("0.025")))
    (_, _, params), = [r for r in h.fake.requests if r[0] == "POST"
                       and r[1] == "/api/v3/order"]
    assert params["quoteOrderQty"] == "2500.00000000"  # of 100,000 USDT, at its 8 decimals


def test_what_binance_cannot_size_at_fill_is_refused_before_sending(h: BinanceHarness) -> None:
    posted = posted_orders(h.fake)
    with pytest.raises(OrderValidationError) as not_market:
        h.venue.submit_order(OrderRequest(symbol="BTCUSDT", side=Side.BUY, notional=D(100),
                                          order_type=OrderType.LIMIT, limit_price=D(39000)))
    assert not_market.value.details == {"field": "notional", "provided": "100"}
    with pytest.raises(OrderRejected) as too_small:
        h.venue.submit_order(OrderRequest(symbol="BTCUSDT", side=Side.BUY, notional=D("0.5")))
    assert too_small.value.details["filter"] in ("NOTIONAL", "MIN_NOTIONAL")
    assert posted_orders(h.fake) == posted
