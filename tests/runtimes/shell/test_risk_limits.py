"""Risk limits and kill switches in the order path (trading-api.md section 5): what each limit
blocks, with which reject_code and message, before the engine sees the order; what is audited."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runtimes.core.engine import BacktestConfig
from runtimes.core.market_data import MarketData
from runtimes.hosting.commands import execute
from runtimes.hosting.risk import RiskGuard
from runtimes.models import KillSwitch, SessionAudit, TradingSession
from runtimes.providers.backtest import BacktestProvider
from tests.runtimes.core.scenario import D, bars

pytestmark = pytest.mark.django_db

T0 = datetime(2021, 4, 2, 0, 0, tzinfo=UTC)
FLAT = [(100, 100, 100, 100)] * 10


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.value = 0.0

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def setup(workspace, clock):
    """setup(rows=FLAT, symbols=("BTCUSDT",), start=T0, **limits) -> (engine, guard, session)."""

    def make(rows=FLAT, symbols=("BTCUSDT",), start=T0, **limits):
        data = MarketData.from_bars([b for s in symbols for b in bars(rows, s, start)])
        engine = BacktestProvider(data, BacktestConfig(initial_cash=D(100_000)))
        engine.next_batch()
        session = TradingSession.objects.create(workspace=workspace, symbols=list(symbols),
                                                timeframe="1m", **limits)
        return engine, RiskGuard.for_session(session, monotonic=clock), session

    return make


def order(quantity="1", symbol="BTCUSDT", side="buy", **fields):
    return {"symbol": symbol, "side": side, "quantity": quantity,
            "order_type": "limit" if "limit_price" in fields else "market", **fields}


def submit(engine, guard, body):
    reply = execute(engine, {"op": "submit_order", "body": body}, guard=guard)
    return reply.status, reply.body


def modify(engine, guard, order_id, **changes):
    reply = execute(engine, {"op": "modify_order", "path": {"order_id": order_id},
                             "body": changes}, guard=guard)
    return reply.status, reply.body


def rejected(answer):
    status, body = answer
    assert status == 422 and body["code"] == "ORDER_REJECTED", body
    return body


def test_an_order_above_the_quantity_limit_is_rejected_before_the_engine_sees_it(setup):
    engine, guard, _ = setup(max_order_quantity=D(2))
    body = rejected(submit(engine, guard, order("3")))
    assert body["message"] == "MAX_ORDER_QUANTITY: quantity 3 is above the limit 2"
    assert body["details"] == {"reject_code": "MAX_ORDER_QUANTITY", "limit": "2", "value": "3"}
    assert engine.all_orders() == []
    assert submit(engine, guard, order("2"))[0] == 201


def test_notional_is_priced_at_the_limit_price_or_the_last_close(setup):
    engine, guard, _ = setup(max_order_notional=D(1000))
    body = rejected(submit(engine, guard, order("11")))
    assert body["message"] == "MAX_ORDER_NOTIONAL: notional 1100 is above the limit 1000"
    assert body["details"] == {"reject_code": "MAX_ORDER_NOTIONAL", "limit": "1000",
                               "value": "1100"}
    assert submit(engine, guard, order("10", limit_price="100"))[0] == 201
    assert rejected(submit(engine, guard, order("10", limit_price="100.5")))["details"][
        "value"] == "1005"


def test_an_order_sized_at_fill_is_checked_by_its_amount_and_the_quantity_it_buys(setup):
    engine, guard, _ = setup(max_order_notional=D(1000), max_order_quantity=D(20))
    sized = {"symbol": "BTCUSDT", "side": "buy", "order_type": "market"}
    body = rejected(submit(engine, guard, {**sized, "notional": "1000.5"}))
    assert body["message"] == "MAX_ORDER_NOTIONAL: notional 1000.5 is above the limit 1000"
    body = rejected(submit(engine, guard, {**sized, "equity_fraction": "0.011"}))
    assert body["details"] == {"reject_code": "MAX_ORDER_NOTIONAL", "limit": "1000",
                               "value": "1100"}  # 0.011 of 100,000
    assert submit(engine, guard, {**sized, "notional": "1000"})[0] == 201
    engine, guard, _ = setup(max_order_quantity=D(5))
    body = rejected(submit(engine, guard, {**sized, "notional": "600"}))
    assert body["details"] == {"reject_code": "MAX_ORDER_QUANTITY", "limit": "5", "value": "6"}


def test_the_position_limit_counts_the_position_and_the_working_orders(setup):
    engine, guard, _ = setup(max_position_quantity=D(5))
    assert submit(engine, guard, order("3"))[0] == 201
    engine.next_batch()  # the buy of 3 fills
    assert submit(engine, guard, order("1", limit_price="90"))[0] == 201
    body = rejected(submit(engine, guard, order("2")))
    assert body["message"] == ("MAX_POSITION_QUANTITY: the BTCUSDT position could reach 6 with "
                               "the working orders, above the limit 5")
    assert body["details"] == {"reject_code": "MAX_POSITION_QUANTITY", "limit": "5",
                               "value": "6"}
    assert submit(engine, guard, order("1"))[0] == 201  # 3 held + 1 working + 1 = 5
    assert submit(engine, guard, order("2", side="sell"))[0] == 201  # reduces


def test_the_position_limit_counts_a_working_order_sized_at_fill_by_what_it_would_buy(setup):
    # A sized order has no quantity until it fills; counted as 0 it would let orders pile up
    # past the limit. At the last close of 100, notional 300 buys 3 and 2% of 100,000 buys 20.
    engine, guard, _ = setup(max_position_quantity=D(5))
    sized = {"symbol": "BTCUSDT", "side": "buy", "order_type": "limit", "limit_price": "100"}
    assert submit(engine, guard, {**sized, "notional": "300"})[0] == 201
    body = rejected(submit(engine, guard, order("3")))
    assert body["details"] == {"reject_code": "MAX_POSITION_QUANTITY", "limit": "5",
                               "value": "6"}
    assert submit(engine, guard, order("2"))[0] == 201  # 3 expected + 2 = 5
    engine, guard, _ = setup(max_position_quantity=D(25))
    assert submit(engine, guard, {**sized, "equity_fraction": "0.02"})[0] == 201
    assert rejected(submit(engine, guard, order("6")))["details"]["value"] == "26"


def test_lowering_the_limit_of_an_order_sized_at_fill_is_checked_by_what_it_then_buys(setup):
    engine, guard, _ = setup(max_position_quantity=D(15))
    status, placed = submit(engine, guard, {"symbol": "BTCUSDT", "side": "buy",
                                            "order_type": "limit", "limit_price": "100",
                                            "notional": "1000"})  # buys 10 at 100
    assert status == 201

    body = rejected(modify(engine, guard, placed["id"], limit_price="10"))  # would buy 100

    assert body["details"] == {"reject_code": "MAX_POSITION_QUANTITY", "limit": "15",
                               "value": "100"}
    assert modify(engine, guard, placed["id"], limit_price="80")[0] == 200  # buys 12.5


def test_the_open_orders_limit_counts_every_open_order(setup):
    engine, guard, _ = setup(max_open_orders=2)
    for price in ("90", "91"):
        assert submit(engine, guard, order(limit_price=price))[0] == 201
    body = rejected(submit(engine, guard, order(limit_price="92")))
    assert body["message"] == "MAX_OPEN_ORDERS: 2 orders are open, the limit is 2"
    assert body["details"] == {"reject_code": "MAX_OPEN_ORDERS", "limit": 2, "value": 2}


def test_the_order_rate_is_counted_in_simulated_minutes(setup):
    engine, guard, _ = setup(max_orders_per_minute=2)
    assert submit(engine, guard, order(limit_price="90"))[0] == 201
    assert submit(engine, guard, order(limit_price="91"))[0] == 201
    body = rejected(submit(engine, guard, order(limit_price="92")))
    assert body["message"] == ("MAX_ORDERS_PER_MINUTE: 2 orders in the last simulated minute, "
                               "the limit is 2")
    assert body["details"] == {"reject_code": "MAX_ORDERS_PER_MINUTE", "limit": 2, "value": 2}
    engine.next_batch()  # one simulated minute later
    assert submit(engine, guard, order(limit_price="92"))[0] == 201


def test_a_repeated_client_order_id_returns_the_first_order_even_at_the_rate_limit(setup):
    engine, guard, _ = setup(max_orders_per_minute=1)
    first = submit(engine, guard, order(limit_price="90", client_order_id="c-1"))
    again = submit(engine, guard, order(limit_price="90", client_order_id="c-1"))
    assert first == again == (201, {"id": "ord-1", "client_order_id": "c-1", "status": "OPEN"})


def test_symbols_outside_the_allowed_list_are_rejected(setup):
    engine, guard, _ = setup(symbols=("BTCUSDT", "ETHUSDT"), allowed_symbols=["BTCUSDT"])
    body = rejected(submit(engine, guard, order(symbol="ETHUSDT")))
    assert body["message"] == "ALLOWED_SYMBOLS: ETHUSDT is not one of the allowed symbols BTCUSDT"
    assert body["details"] == {"reject_code": "ALLOWED_SYMBOLS", "limit": ["BTCUSDT"],
                               "value": "ETHUSDT"}


def test_the_allowed_symbols_default_to_the_sessions_symbols(setup):
    engine, guard, _ = setup(symbols=("BTCUSDT", "ETHUSDT"))
    assert guard.limits.allowed_symbols == ("BTCUSDT", "ETHUSDT")
    assert submit(engine, guard, order(symbol="ETHUSDT"))[0] == 201


def test_the_daily_loss_limit_halts_new_orders_until_the_next_simulated_day(setup):
    # 23:56 .. 00:01; the buy of 10 fills at 100 at 23:57, the price falls to 94 at 23:58.
    rows = [(100, 100, 100, 100)] * 2 + [(94, 94, 94, 94)] * 4
    engine, guard, _ = setup(rows=rows, start=datetime(2021, 4, 1, 23, 56, tzinfo=UTC),
                             daily_loss_limit=D(50))
    assert submit(engine, guard, order("10"))[0] == 201
    engine.next_batch()
    engine.next_batch()  # 23:58: equity 99,940
    body = rejected(submit(engine, guard, order("1")))
    assert body["message"] == ("DAILY_LOSS_LIMIT: equity fell 60 since the start of the day, "
                               "the limit is 50")
    assert body["details"] == {"reject_code": "DAILY_LOSS_LIMIT", "limit": "50", "value": "60"}
    assert execute(engine, {"op": "close_position", "path": {"position_id": "BTCUSDT"}},
                   guard=guard).status == 200  # closing is never blocked
    engine.next_batch()  # 23:59
    engine.next_batch()  # 00:00 of 2 April: the day starts at 99,940
    assert submit(engine, guard, order("1"))[0] == 201


def test_a_modify_that_grows_an_order_is_checked_and_one_that_shrinks_it_is_not(setup):
    engine, guard, _ = setup(max_order_quantity=D(5), max_order_notional=D(450))
    assert submit(engine, guard, order("4", limit_price="100"))[0] == 201
    body = rejected(modify(engine, guard, "ord-1", quantity="6"))
    assert body["details"] == {"reject_code": "MAX_ORDER_QUANTITY", "limit": "5", "value": "6"}
    assert rejected(modify(engine, guard, "ord-1", limit_price="120"))["details"] == {
        "reject_code": "MAX_ORDER_NOTIONAL", "limit": "450", "value": "480"}
    assert modify(engine, guard, "ord-1", quantity="2")[0] == 200
    assert modify(engine, guard, "ord-1", limit_price="90")[0] == 200
    assert (engine.order("ord-1").quantity, engine.order("ord-1").limit_price) == (D(2), D(90))


def test_the_kill_command_cancels_open_orders_and_blocks_new_ones_but_not_closing(setup):
    engine, guard, _ = setup()
    submit(engine, guard, order("1"))
    engine.next_batch()
    submit(engine, guard, order(limit_price="90"))
    reply = execute(engine, {"op": "kill_switch", "body": {"scope": "session", "reason": "ops"}},
                    guard=guard)
    assert reply.body == {"cancelled_count": 1, "failed_count": 0, "failed_order_ids": []}
    body = rejected(submit(engine, guard, order("1")))
    assert body["message"] == "KILL_SWITCH: the session kill switch is on (ops)"
    assert body["details"] == {"reject_code": "KILL_SWITCH", "scope": "session",
                               "reason": "ops"}
    assert execute(engine, {"op": "close_position", "path": {"position_id": "pos-BTCUSDT"}},
                   guard=guard).status == 200
    assert guard.session_fields()["kill_switch"] == {"active": True, "scope": "session",
                                                     "reason": "ops"}


def test_the_sessions_kill_flag_in_the_database_blocks_a_host_that_starts_later(setup):
    engine, guard, session = setup()
    TradingSession.objects.filter(pk=session.pk).update(kill_switch_active=True,
                                                        kill_switch_reason="halted")
    body = rejected(submit(engine, guard, order("1")))
    assert body["details"] == {"reject_code": "KILL_SWITCH", "scope": "session",
                               "reason": "halted"}


def test_the_workspace_kill_switch_is_read_at_most_once_a_second(
    setup, clock, workspace, owner, django_assert_num_queries
):
    engine, guard, _ = setup()
    switch = KillSwitch.objects.create(workspace=workspace, active=True, reason="all stop",
                                       set_by=owner)
    with django_assert_num_queries(1):
        for _ in range(3):
            body = rejected(submit(engine, guard, order("1")))
    assert body["details"] == {"reject_code": "KILL_SWITCH", "scope": "workspace",
                               "reason": "all stop"}
    KillSwitch.objects.filter(pk=switch.pk).update(active=False)
    clock.value = 0.5
    assert rejected(submit(engine, guard, order("1")))["details"]["reject_code"] == "KILL_SWITCH"
    clock.value = 1.0
    assert submit(engine, guard, order("1"))[0] == 201


def test_the_host_refreshes_the_kill_flags_before_they_expire_so_orders_never_read_them(
    setup, clock, workspace, owner, django_assert_num_queries
):
    engine, guard, _ = setup()
    guard.refresh_kill_state()  # the host, between messages
    switch = KillSwitch.objects.create(workspace=workspace, active=True, reason="all stop",
                                       set_by=owner)
    clock.value = 0.79
    guard.refresh_kill_state()  # not due yet: the flags were read 0.79 s ago
    with django_assert_num_queries(0):
        assert submit(engine, guard, order("1"))[0] == 201
    clock.value = 0.8
    guard.refresh_kill_state()
    clock.value = 1.5
    with django_assert_num_queries(0):
        body = rejected(submit(engine, guard, order("1")))
    assert body["details"] == {"reject_code": "KILL_SWITCH", "scope": "workspace",
                               "reason": "all stop"}
    KillSwitch.objects.filter(pk=switch.pk).update(active=False)
    clock.value = 1.8  # a host too busy to refresh: the order reads the expired flags itself
    with django_assert_num_queries(1):
        assert submit(engine, guard, order("1"))[0] == 201


def test_blocked_orders_are_audited_in_bulk(setup, clock, django_assert_num_queries):
    engine, guard, session = setup(max_order_quantity=D(1))
    with django_assert_num_queries(1):  # the kill flags are read; nothing is written yet
        rejected(submit(engine, guard, order("2")))
        clock.value = 0.4
        rejected(submit(engine, guard, order("3", limit_price="100")))
    assert SessionAudit.objects.count() == 0
    clock.value = 1.0
    rejected(submit(engine, guard, order("4")))  # a second after the first: all three written
    rows = list(SessionAudit.objects.filter(session=session).values_list(
        "kind", "reject_code", "message", "simulated_at"))
    assert rows == [("order_blocked", "MAX_ORDER_QUANTITY",
                     f"MAX_ORDER_QUANTITY: quantity {q} is above the limit 1", T0)
                    for q in (2, 3, 4)]
    second = SessionAudit.objects.filter(session=session).order_by("id")[1]
    assert second.details == {"op": "submit_order", "reject_code": "MAX_ORDER_QUANTITY",
                              "limit": "1", "value": "3",
                              "request": order("3", limit_price="100")}
    rejected(submit(engine, guard, order("5")))
    guard.flush()  # what the host does at the end of the session
    assert SessionAudit.objects.filter(session=session).count() == 4


def test_session_fields_show_the_limits_and_the_kill_switch(setup):
    _, guard, _ = setup(max_order_notional=D("2500.5"), max_open_orders=3)
    assert guard.session_fields() == {
        "risk_limits": {"max_order_quantity": None, "max_order_notional": "2500.5",
                        "max_position_quantity": None, "max_open_orders": 3,
                        "max_orders_per_minute": None, "daily_loss_limit": None,
                        "allowed_symbols": ["BTCUSDT"]},
        "kill_switch": {"active": False, "scope": None, "reason": ""},
    }
