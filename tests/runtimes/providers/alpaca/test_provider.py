"""The Alpaca provider against the fake Alpaca with scripted faults: partial fills, rejects with
Alpaca's reason, replaced orders, a dropped trade stream with a fill in the gap, 429s, the
circuit breaker, and a restart in the middle of an order."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from runtimes.core.connection import (
    STREAM_CONNECTED,
    STREAM_FAILED,
    STREAM_RECONNECTING,
    BrokerAccess,
    BrokerConnection,
    ConnectionRejected,
)
from runtimes.core.domain import (
    OrderRequest,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)
from runtimes.core.errors import (
    BrokerUnavailable,
    OrderNotFound,
    OrderNotModifiable,
    OrderRejected,
    OrderValidationError,
    RateLimited,
)
from runtimes.core.events import (
    AccountEvent,
    ConnectionEvent,
    Event,
    OrderEvent,
    PositionEvent,
    RateLimitEvent,
    TradeEvent,
)
from runtimes.core.rate_budget import LocalBudget
from runtimes.providers.alpaca import build
from tests.fakes.alpaca.server import KEY_ID, SECRET
from tests.runtimes.providers.alpaca.harness import AlpacaHarness, HealthLog, started_fake

D = Decimal


@pytest.fixture
def h() -> Iterator[AlpacaHarness]:
    harness = AlpacaHarness()
    yield harness
    harness.close()


def trading(events: list[Event]) -> list[str]:
    """The session's own events, as short labels."""
    labels = []
    for event in events:
        if isinstance(event, OrderEvent | PositionEvent):
            labels.append(event.kind.value)
        elif isinstance(event, TradeEvent | AccountEvent | RateLimitEvent):
            labels.append(type(event).__name__)
        elif isinstance(event, ConnectionEvent):
            labels.append(event.event)
    return labels


def limit_buy(price: str = "180", **fields: object) -> OrderRequest:
    return OrderRequest(symbol="AAPL", side=Side.BUY, quantity=D(3), order_type=OrderType.LIMIT,
                        limit_price=D(price), **fields)  # type: ignore[arg-type]


def test_partial_fills_stream_each_execution_once_with_its_own_price(h: AlpacaHarness) -> None:
    order = h.venue.submit_order(limit_buy())
    h.fake.fill(order.id, D(1), D("179.5"))
    h.wait_synced()
    h.fake.fill(order.id, None, D("179.75"))
    events = h.take_events()
    assert trading(events) == [
        "ORDER_CREATED",
        "ORDER_PARTIALLY_FILLED", "TradeEvent", "POSITION_OPENED",
        "ORDER_FILLED", "TradeEvent", "POSITION_MODIFIED", "AccountEvent",
    ]
    fills = [e.fill for e in events if isinstance(e, TradeEvent)]
    assert [(f.quantity, f.price, f.commission) for f in fills] == [
        (D(1), D("179.5"), D(0)), (D(2), D("179.75"), D(0))]
    positions = [e.position for e in events if isinstance(e, PositionEvent)]
    assert [p.quantity for p in positions] == [D(1), D(3)]
    filled = h.venue.order(order.id)
    assert (filled.status, filled.filled_quantity, filled.average_fill_price) == (
        OrderStatus.FILLED, D(3), D("179.6666666667"))  # as the fake's Alpaca reports it
    assert trading(h.take_events()) == []


def test_a_reject_carries_alpacas_reason(h: AlpacaHarness) -> None:
    h.fake.reject_next_order("insufficient buying power", status=403, code=40310000)
    with pytest.raises(OrderRejected) as caught:
        h.venue.submit_order(limit_buy())
    assert caught.value.status == 422
    assert caught.value.details == {"broker_message": "insufficient buying power",
                                    "broker_code": 40310000,
                                    "reject_code": "INSUFFICIENT_BALANCE"}
    order = h.venue.submit_order(limit_buy())
    h.fake.reject_order(order.id, "insufficient buying power for the order")
    h.until(lambda: h.venue.book.orders[order.id].status is OrderStatus.REJECTED,
            "the rejection arrives")
    events = h.take_events()
    assert trading(events) == ["ORDER_CREATED", "ORDER_REJECTED"]
    rejected = events[-1]
    assert isinstance(rejected, OrderEvent)
    assert rejected.order.reject_reason is RejectReason.INSUFFICIENT_BALANCE
    read = h.venue.order(order.id)
    assert (read.status, read.reject_reason) == (OrderStatus.REJECTED,
                                                 RejectReason.INSUFFICIENT_BALANCE)


def test_what_alpaca_refuses_is_refused_before_sending(h: AlpacaHarness) -> None:
    before = len(h.fake.requests)
    with pytest.raises(OrderValidationError) as caught:
        h.venue.submit_order(OrderRequest(symbol="AAPL", side=Side.BUY, quantity=D("0.5")))
    assert caught.value.details["field"] == "time_in_force"
    with pytest.raises(OrderValidationError) as caught:
        h.venue.submit_order(limit_buy(post_only=True))
    assert caught.value.details["field"] == "post_only"
    assert len(h.fake.requests) == before


def test_a_replaced_order_is_a_new_order_and_the_old_one_ends_cancelled(
    h: AlpacaHarness,
) -> None:
    order = h.venue.submit_order(limit_buy())
    new, previous = h.venue.modify_order(order.id, limit_price=D("181.005"), quantity=D(2))
    assert previous == order.id and new.id != order.id
    assert (new.limit_price, new.quantity, new.status) == (D("181.01"), D(2), OrderStatus.OPEN)
    assert h.fake.order(new.id)["limit_price"] == "181.01"
    h.until(lambda: h.venue.book.orders[order.id].status is OrderStatus.CANCELLED,
            "the old order is replaced")
    events = h.take_events()
    assert trading(events) == ["ORDER_CREATED", "ORDER_MODIFIED", "ORDER_CANCELLED"]
    assert [e.order.status for e in events if isinstance(e, OrderEvent)] == [
        OrderStatus.OPEN, OrderStatus.OPEN, OrderStatus.CANCELLED]
    assert [e.order.id for e in events if isinstance(e, OrderEvent)] == [order.id, new.id,
                                                                         order.id]
    assert h.venue.order(order.id).status is OrderStatus.CANCELLED
    with pytest.raises(OrderNotModifiable):
        h.venue.modify_order(order.id, limit_price=D(182))


def test_a_fill_during_a_trade_stream_drop_is_emitted_once_after_reconcile(
    h: AlpacaHarness, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    order = h.venue.submit_order(limit_buy())
    h.take_events()
    h.fake.refuse_streams(True)
    h.fake.drop_streams(trading=True, data=False)
    h.until(lambda: h.venue.health().streams["trade_updates"] == STREAM_RECONNECTING,
            "the provider sees the drop")
    h.fake.fill(order.id)  # nobody listens: the stream will never deliver it
    h.fake.refuse_streams(False)
    h.until(lambda: h.venue.health().streams["trade_updates"] == STREAM_CONNECTED,
            "the stream is back")
    h.tick()
    events = h.take_events()
    assert trading(events) == ["BROKER_DISCONNECTED", "ORDER_FILLED", "TradeEvent",
                               "POSITION_OPENED", "AccountEvent", "BROKER_RECONNECTED"]
    (fill,) = [e.fill for e in events if isinstance(e, TradeEvent)]
    assert (fill.order_id, fill.quantity, fill.price) == (order.id, D(3), D(180))
    reconnected = events[-1]
    assert isinstance(reconnected, ConnectionEvent)
    assert reconnected.reconciled == {"open_orders": [], "positions": ["AAPL"],
                                      "fills_since_last_event": [fill.id]}
    assert reconnected.gap_duration_ms is not None and reconnected.gap_duration_ms > 0
    assert h.venue.fills() == [fill]
    h.pass_time()
    assert trading(h.take_events()) == []
    assert SECRET not in caplog.text and KEY_ID not in caplog.text
    assert all(SECRET not in repr(e) and KEY_ID not in repr(e) for e in events)


def test_a_429_is_rate_limited_with_an_event_and_the_budget_then_refuses_without_calling(
    h: AlpacaHarness,
) -> None:
    h.take_events()
    h.fake.fail_next(429, retry_after=7)
    with pytest.raises(RateLimited) as caught:
        h.venue.submit_order(limit_buy())
    assert caught.value.retry_after_seconds == 7
    before = len(h.fake.requests)
    with pytest.raises(RateLimited) as again:
        h.venue.positions()
    assert 0 < again.value.retry_after_seconds <= 7
    assert len(h.fake.requests) == before
    events = h.take_events()
    assert trading(events) == ["RateLimitEvent"]
    (hit,) = events
    assert isinstance(hit, RateLimitEvent)
    assert (hit.event, hit.requests_remaining) == ("RATE_LIMIT_HIT", 0)


def test_the_circuit_breaker_opens_after_three_5xx_and_refuses_without_calling(
    h: AlpacaHarness,
) -> None:
    h.fake.fail_next(503, count=3)
    for _ in range(3):
        with pytest.raises(BrokerUnavailable):
            h.venue.positions()
    assert h.venue.circuit_breakers() == {
        "adapter": {"state": "open", "failure_count": 3},
        "exit_order": {"state": "closed", "failure_count": 0},
    }
    before = len(h.fake.requests)
    with pytest.raises(BrokerUnavailable) as caught:
        h.venue.submit_order(limit_buy())
    assert caught.value.details == {"broker": "alpaca", "retry_after_seconds": 30}
    assert len(h.fake.requests) == before
    assert h.venue.status()["connection"]["circuit_breaker"] == "open"
    assert h.health.reports[-1].circuit_breaker == "open"


def test_a_restart_in_the_middle_of_an_order_reconciles_before_build_returns(
    h: AlpacaHarness,
) -> None:
    first = h.venue.submit_order(limit_buy(client_order_id="restart-1"))
    h.take_events()
    snapshot = h.venue.snapshot()
    h.venue.close()
    h.fake.fill(first.id)  # while no host runs the session
    successor = AlpacaHarness(fake=h.fake, restored=snapshot)
    try:
        again = successor.venue.submit_order(limit_buy(client_order_id="restart-1"))
        assert again.id == first.id
        assert successor.venue.all_orders() == [again]
        events = successor.take_events()
        assert trading(events) == ["ORDER_FILLED", "TradeEvent", "POSITION_OPENED",
                                   "AccountEvent"]
        (fill,) = successor.venue.fills()
        assert (fill.order_id, fill.quantity) == (first.id, D(3))
        assert trading(successor.take_events()) == []
    finally:
        successor.venue.close()


def test_status_and_capabilities(h: AlpacaHarness) -> None:
    h.until(lambda: h.venue.health().streams.get("market_data") == STREAM_CONNECTED,
            "the data stream connects")
    status = h.venue.status()
    assert status["connected"] is True
    assert status["market_open"] is True
    assert status["connection"]["streams"] == {"trade_updates": "connected",
                                               "market_data": "connected"}
    assert "PKFAKE" not in repr(status) and "secret" not in repr(status)
    assert h.venue.capabilities()["supported_order_types"] == [
        "MARKET", "LIMIT", "STOP", "STOP_LIMIT", "TRAILING_STOP"]


def test_an_oco_pair_goes_to_alpaca_as_one_oco_order_and_one_exit_cancels_the_other(
    h: AlpacaHarness,
) -> None:
    h.venue.submit_order(OrderRequest(symbol="AAPL", side=Side.BUY, quantity=D(3)))
    h.pass_time()
    h.take_events()
    take = h.venue.submit_order(OrderRequest(
        symbol="AAPL", side=Side.SELL, quantity=D(3), order_type=OrderType.LIMIT,
        limit_price=D(200), oco_group_id="exit-1", client_order_id="tp-1"))
    assert (take.status, take.oco_group_id) == (OrderStatus.PENDING, "exit-1")
    assert not any(r[1] == "/v2/orders" and r[0] == "POST" and r[3].get("order_class") == "oco"
                   for r in h.fake.requests)
    stop = h.venue.submit_order(OrderRequest(
        symbol="AAPL", side=Side.SELL, quantity=D(3), order_type=OrderType.STOP,
        stop_price=D(170), oco_group_id="exit-1"))
    (sent,) = [r[3] for r in h.fake.requests if r[0] == "POST" and r[1] == "/v2/orders"
               and r[3].get("order_class") == "oco"]
    assert (sent["type"], sent["take_profit"], sent["stop_loss"]) == (
        "limit", {"limit_price": "200"}, {"stop_price": "170"})
    assert (stop.status, stop.order_type, stop.oco_group_id) == (
        OrderStatus.OPEN, OrderType.STOP, "exit-1")
    now_open = h.venue.order(take.id)
    assert (now_open.id, now_open.status, now_open.client_order_id, now_open.limit_price) == (
        take.id, OrderStatus.OPEN, "tp-1", D(200))
    assert {o.id for o in h.venue.orders(open_only=True)} == {take.id, stop.id}
    moved, previous = h.venue.modify_order(stop.id, stop_price=D(172))
    assert (previous, moved.stop_price, moved.oco_group_id) == (stop.id, D(172), "exit-1")
    h.fake.fill(h.venue.book.alpaca_id(take.id))
    h.until(lambda: h.venue.book.orders[moved.id].status is OrderStatus.CANCELLED,
            "the other exit is cancelled")
    events = h.take_events()
    assert trading(events) == ["ORDER_CREATED", "ORDER_MODIFIED", "ORDER_CREATED",
                               "ORDER_MODIFIED", "ORDER_CANCELLED",
                               "ORDER_FILLED", "TradeEvent", "POSITION_CLOSED",
                               "AccountEvent", "ORDER_CANCELLED"]
    assert [e.order.id for e in events if isinstance(e, OrderEvent)] == [
        take.id, take.id, stop.id, moved.id, stop.id, take.id, moved.id]
    (fill,) = [e.fill for e in events if isinstance(e, TradeEvent)]
    assert (fill.order_id, fill.price, fill.quantity) == (take.id, D(200), D(3))
    assert h.venue.positions() == []


def test_an_oco_order_cancelled_before_its_pair_never_reaches_alpaca(h: AlpacaHarness) -> None:
    held = h.venue.submit_order(OrderRequest(
        symbol="AAPL", side=Side.SELL, quantity=D(3), order_type=OrderType.STOP,
        stop_price=D(170), oco_group_id="exit-2"))
    cancelled = h.venue.cancel_order(held.id)
    assert cancelled.status is OrderStatus.CANCELLED
    assert h.venue.order(held.id).status is OrderStatus.CANCELLED
    assert h.venue.orders(open_only=True) == []
    assert h.venue.all_orders() == [cancelled]
    assert not [r for r in h.fake.requests if r[0] in ("POST", "DELETE")]
    with pytest.raises(OrderValidationError) as caught:
        h.venue.submit_order(OrderRequest(
            symbol="AAPL", side=Side.SELL, quantity=D(3), order_type=OrderType.MARKET,
            oco_group_id="exit-3"))
    assert caught.value.details["field"] == "oco_group_id"


def test_sessions_on_one_connection_see_their_own_orders_and_share_one_budget() -> None:
    fake = started_fake(rate_limit=30)
    budget = LocalBudget(30)
    a = AlpacaHarness(fake=fake, budget=budget, session_id="aaaaaaaa-0000")
    b = AlpacaHarness(fake=fake, budget=budget, session_id="bbbbbbbb-0000",
                      connection=a.connection)
    try:
        mine, theirs = a.venue.submit_order(limit_buy()), b.venue.submit_order(limit_buy())
        assert a.venue.orders() == [mine] and b.venue.orders() == [theirs]
        with pytest.raises(OrderNotFound):
            a.venue.order(theirs.id)
        assert fake.order(mine.id)["client_order_id"].startswith("pty-aaaaaaaa-g")
        a.take_events()
        while True:  # spend the shared budget from one session
            try:
                a.venue.positions()
            except RateLimited:
                break
        events = a.take_events()
        assert [(e.event, e.requests_remaining) for e in events
                if isinstance(e, RateLimitEvent)] == [("RATE_LIMIT_WARNING", 2),
                                                      ("RATE_LIMIT_HIT", 0)]
        before = len(fake.requests)
        with pytest.raises(RateLimited):
            b.venue.positions()  # the other session is refused too, without calling Alpaca
        assert len(fake.requests) == before
    finally:
        b.venue.close()
        a.close()


def test_an_order_sent_while_the_market_is_closed_is_pending_until_the_open(
    h: AlpacaHarness,
) -> None:
    h.fake.set_market_open(False, next_open=datetime(2026, 1, 6, 14, 30, tzinfo=UTC),
                           next_close=datetime(2026, 1, 6, 21, 0, tzinfo=UTC))
    h.venue.refresh_clock()
    status = h.venue.status()
    assert (status["market_open"], status["next_open"], status["next_close"]) == (
        False, "2026-01-06T14:30:00Z", "2026-01-06T21:00:00Z")
    order = h.venue.submit_order(limit_buy())
    assert order.status is OrderStatus.PENDING
    assert h.venue.order(order.id).status is OrderStatus.PENDING
    h.take_events()
    h.fake.set_market_open(True)
    h.until(lambda: h.venue.book.orders[order.id].status is OrderStatus.OPEN,
            "the order is working at the open")
    assert h.venue.next_due() == 0.0  # the clock is read again
    events = h.take_events()
    assert trading(events) == ["ORDER_MODIFIED"]
    assert h.venue.status()["market_open"] is True


def test_a_bracket_sends_its_exits_and_a_new_stop_loss_replaces_that_leg(
    h: AlpacaHarness,
) -> None:
    entry = h.venue.submit_order(OrderRequest(
        symbol="AAPL", side=Side.BUY, quantity=D(3), stop_loss=D(170), take_profit=D(210),
        time_in_force=TimeInForce.DAY))
    assert (entry.stop_loss, entry.take_profit) == (D(170), D(210))
    h.pass_time()
    legs = [o for o in h.venue.orders(open_only=True) if o.parent_order_id == entry.id]
    assert sorted((o.order_type, o.side, o.status) for o in legs) == [
        (OrderType.LIMIT, Side.SELL, OrderStatus.OPEN), (OrderType.STOP, Side.SELL,
                                                         OrderStatus.OPEN)]
    changed, previous = h.venue.modify_order(entry.id, stop_loss=D(175))
    assert (changed.id, previous, changed.stop_loss, changed.take_profit) == (
        entry.id, None, D(175), D(210))


def test_position_and_account_events_wait_for_the_next_drain_when_alpaca_cannot_answer(
    h: AlpacaHarness,
) -> None:
    order = h.venue.submit_order(limit_buy())
    h.fake.fail_next(503, path="/v2/positions")
    h.fake.fill(order.id)
    assert trading(h.take_events()) == ["ORDER_CREATED", "ORDER_FILLED", "TradeEvent"]
    events = h.take_events()
    assert trading(events) == ["POSITION_OPENED", "AccountEvent"]
    (opened,) = [e.position for e in events if isinstance(e, PositionEvent)]
    assert (opened.quantity, opened.average_entry_price) == (D(3), D(180))


def test_keys_alpaca_refuses_fail_the_start_with_a_plain_sentence_and_no_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    fake = started_fake()
    try:
        connection = BrokerConnection(id="conn-wrong", platform="alpaca-paper",
                                      key_id="PKWRONG0000000009876", secret="not-the-secret-42",
                                      urls=dict(fake.urls))
        settings = SimpleNamespace(
            platform="alpaca-paper", symbols=("AAPL",), timeframes=("1m",), initial_cash=D(1),
            options={}, restored=None, session_id="",
            broker_access=BrokerAccess(connection, LocalBudget(200), HealthLog()))
        with pytest.raises(ConnectionRejected) as caught:
            build(settings, wake=lambda: None)
        assert str(caught.value).startswith("Alpaca refused the connection (401")
        for text in (str(caught.value), caplog.text):
            assert "not-the-secret-42" not in text and "PKWRONG0000000009876" not in text
    finally:
        fake.stop()


def test_a_fractional_day_order_is_sent_as_a_decimal_string_and_alpacas_refusal_passes_through(
) -> None:
    h = AlpacaHarness(fake=started_fake(not_fractionable=("MSFT",)))
    try:
        order = h.venue.submit_order(OrderRequest(symbol="AAPL", side=Side.BUY,
                                                  quantity=D("0.123456789"),
                                                  time_in_force=TimeInForce.DAY))
        assert order.quantity == D("0.123456789")
        assert h.fake.order(order.id)["qty"] == "0.123456789"
        with pytest.raises(OrderRejected) as caught:
            h.venue.submit_order(OrderRequest(symbol="MSFT", side=Side.BUY, quantity=D("0.5"),
                                              time_in_force=TimeInForce.DAY))
        assert caught.value.details["reject_code"] == "INVALID_QUANTITY"
        assert "fractionable" in caught.value.details["broker_message"]
    finally:
        h.close()


def test_a_reconcile_alpaca_cannot_answer_is_tried_again_a_few_seconds_later(
    h: AlpacaHarness,
) -> None:
    h.fake.drop_streams(trading=True, data=False)
    h.until(lambda: h.venue.health().streams["trade_updates"] == STREAM_RECONNECTING,
            "the provider sees the drop")
    h.fake.fail_next(503, path="/v2/account/activities")
    h.until(lambda: h.venue.next_due() == 0.0, "the stream is back and reconcile is due")
    h.tick()
    assert trading(h.take_events()) == ["BROKER_DISCONNECTED"]
    assert 4.0 < (h.venue.next_due() or 0.0) <= 5.0
    h.venue.advance(datetime.now(UTC) + timedelta(seconds=5))
    assert trading(h.take_events()) == ["BROKER_RECONNECTED"]


def test_a_trade_stream_that_gives_up_is_broker_connection_failed(h: AlpacaHarness) -> None:
    h.take_events()
    h.venue.on_stream_state("trade_updates", STREAM_FAILED, "Alpaca refused the keys")
    events = h.take_events()
    assert [(e.event, e.error) for e in events if isinstance(e, ConnectionEvent)] == [
        ("BROKER_CONNECTION_FAILED", "Alpaca refused the keys")]
    assert h.venue.status()["connected"] is False
    assert h.health.reports[-1].streams["trade_updates"] == STREAM_FAILED


def test_an_oco_pair_keeps_its_ids_and_group_across_a_takeover(h: AlpacaHarness) -> None:
    h.venue.submit_order(OrderRequest(symbol="AAPL", side=Side.BUY, quantity=D(3)))
    h.pass_time()
    take = h.venue.submit_order(OrderRequest(
        symbol="AAPL", side=Side.SELL, quantity=D(3), order_type=OrderType.LIMIT,
        limit_price=D(200), oco_group_id="exit-9"))
    stop = h.venue.submit_order(OrderRequest(
        symbol="AAPL", side=Side.SELL, quantity=D(3), order_type=OrderType.STOP,
        stop_price=D(170), oco_group_id="exit-9"))
    snapshot = h.venue.snapshot()
    h.venue.close()
    successor = AlpacaHarness(fake=h.fake, restored=snapshot)
    try:
        found = successor.venue.orders(open_only=True)
        assert {(o.id, o.order_type, o.oco_group_id, o.parent_order_id) for o in found} == {
            (take.id, OrderType.LIMIT, "exit-9", None), (stop.id, OrderType.STOP, "exit-9", None)}
        assert successor.venue.order(take.id).status is OrderStatus.OPEN
    finally:
        successor.venue.close()


def test_an_oco_leg_waiting_for_its_pair_is_carried_over_a_takeover(h: AlpacaHarness) -> None:
    h.venue.submit_order(OrderRequest(symbol="AAPL", side=Side.BUY, quantity=D(3)))
    h.pass_time()
    take = h.venue.submit_order(OrderRequest(
        symbol="AAPL", side=Side.SELL, quantity=D(3), order_type=OrderType.LIMIT,
        limit_price=D(200), oco_group_id="exit-7"))
    snapshot = h.venue.snapshot()
    h.venue.close()
    successor = AlpacaHarness(fake=h.fake, restored=snapshot)
    try:
        assert successor.venue.order(take.id).status is OrderStatus.PENDING
        stop = successor.venue.submit_order(OrderRequest(
            symbol="AAPL", side=Side.SELL, quantity=D(3), order_type=OrderType.STOP,
            stop_price=D(170), oco_group_id="exit-7"))
        found = successor.venue.orders(open_only=True)
        assert {(o.id, o.order_type, o.oco_group_id) for o in found} == {
            (take.id, OrderType.LIMIT, "exit-7"), (stop.id, OrderType.STOP, "exit-7")}
        sent = [r[3] for r in h.fake.requests if r[0] == "POST" and r[1] == "/v2/orders"]
        assert [body.get("order_class") for body in sent] == [None, "oco"]  # one OCO order
    finally:
        successor.venue.close()


def test_a_notional_order_goes_to_alpaca_as_notional_and_alpacas_fill_decides_the_quantity(
    h: AlpacaHarness,
) -> None:
    order = h.venue.submit_order(OrderRequest(symbol="AAPL", side=Side.BUY,
                                              notional=D("250.509"),
                                              time_in_force=TimeInForce.DAY))
    assert (order.quantity, order.notional, order.status) == (D(0), D("250.5"), OrderStatus.OPEN)
    sent = h.fake.order(order.id)
    assert (sent["qty"], sent["notional"]) == (None, "250.5")  # cut to cents, never rounded up
    h.fake.fill(order.id, None, D(190))
    h.until(lambda: h.venue.book.orders[order.id].status is OrderStatus.FILLED, "the fill")
    filled = h.venue.order(order.id)
    assert (filled.quantity, filled.filled_quantity, filled.notional) == (
        D("1.318421052"), D("1.318421052"), D("250.5"))


def test_an_equity_fraction_becomes_a_notional_of_the_equity_at_submit(h: AlpacaHarness) -> None:
    order = h.venue.submit_order(OrderRequest(symbol="AAPL", side=Side.BUY,
                                              equity_fraction=D("0.0123456"),
                                              time_in_force=TimeInForce.DAY))
    assert h.fake.order(order.id)["notional"] == "1234.56"  # of the fake's 100,000 equity
    assert order.notional == D("1234.56")


@pytest.mark.parametrize(
    ("fields", "field", "provided"),
    [
        ({"notional": D(100), "time_in_force": TimeInForce.GTC}, "time_in_force", "GTC"),
        ({"notional": D(100), "order_type": OrderType.LIMIT, "limit_price": D(180),
          "time_in_force": TimeInForce.DAY}, "notional", "100"),
        ({"equity_fraction": D("0.5"), "order_type": OrderType.STOP, "stop_price": D(200),
          "time_in_force": TimeInForce.DAY}, "equity_fraction", "0.5"),
        ({"notional": D("0.001"), "time_in_force": TimeInForce.DAY}, "notional", "0.001"),
    ],
)
def test_what_alpaca_does_not_size_at_fill_is_refused_before_sending(
    h: AlpacaHarness, fields: dict, field: str, provided: str
) -> None:
    with pytest.raises(OrderValidationError) as caught:
        h.venue.submit_order(OrderRequest(symbol="AAPL", side=Side.BUY, **fields))
    assert caught.value.details == {"field": field, "provided": provided}
    assert h.fake.trade_updates() == []
