"""Alpaca JSON <-> the core's domain: statuses, orders, bodies, fills, positions, account."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from runtimes.core.domain import (
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
    TimeInForce,
    TrailingType,
)
from runtimes.providers.alpaca import mapping as m
from runtimes.providers.alpaca.symbols import normalise, path_symbol

D = Decimal
IDS = m.ClientIds("pty-abcd1234-")


def order_json(**fields: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "id": "0b5e1a6a-0000-4000-8000-000000000001",
        "client_order_id": "pty-abcd1234-cmine-1",
        "created_at": "2026-01-05T14:30:00.123456789Z",
        "updated_at": "2026-01-05T14:30:01Z",
        "symbol": "BRK.B",
        "qty": "2",
        "filled_qty": "0",
        "filled_avg_price": None,
        "order_class": "simple",
        "type": "limit",
        "side": "buy",
        "time_in_force": "gtc",
        "limit_price": "410.5",
        "stop_price": None,
        "status": "new",
    }
    raw.update(fields)
    return raw


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("pending_new", OrderStatus.PENDING),
        ("held", OrderStatus.PENDING),
        ("new", OrderStatus.OPEN),
        ("partially_filled", OrderStatus.PARTIALLY_FILLED),
        ("filled", OrderStatus.FILLED),
        ("pending_cancel", OrderStatus.PENDING_CANCEL),
        ("canceled", OrderStatus.CANCELLED),
        ("replaced", OrderStatus.CANCELLED),
        ("expired", OrderStatus.EXPIRED),
        ("done_for_day", OrderStatus.EXPIRED),
        ("rejected", OrderStatus.REJECTED),
        ("suspended", OrderStatus.REJECTED),
    ],
)
def test_every_alpaca_status_has_a_protocol_status(status: str, expected: OrderStatus) -> None:
    assert m.order_status({"status": status}, market_open=True) is expected


def test_accepted_is_pending_while_the_market_is_closed_and_open_while_it_is_open() -> None:
    assert m.order_status({"status": "accepted"}, market_open=False) is OrderStatus.PENDING
    assert m.order_status({"status": "accepted"}, market_open=True) is OrderStatus.OPEN


def test_an_unknown_status_is_working_or_partially_filled_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert m.order_status({"status": "weird", "filled_qty": "0"},
                          market_open=True) is OrderStatus.OPEN
    assert m.order_status({"status": "weird", "filled_qty": "1"},
                          market_open=True) is OrderStatus.PARTIALLY_FILLED
    assert "unknown Alpaca order status 'weird'" in caplog.text


def test_an_order_maps_with_decimals_utc_times_and_the_strategy_client_id() -> None:
    order = m.to_order(order_json(), IDS, market_open=True)
    assert (order.symbol, order.side, order.order_type, order.status) == (
        "BRK.B", Side.BUY, OrderType.LIMIT, OrderStatus.OPEN)
    assert (order.quantity, order.limit_price, order.filled_quantity) == (D(2), D("410.5"), D(0))
    assert order.created_at == datetime(2026, 1, 5, 14, 30, 0, 123456, tzinfo=UTC)
    assert order.client_order_id == "mine-1"
    assert order.time_in_force is TimeInForce.GTC


def test_a_generated_client_id_is_not_shown_and_another_sessions_is_not_mine() -> None:
    generated = m.to_order(order_json(client_order_id="pty-abcd1234-gf00d"), IDS,
                           market_open=True)
    assert generated.client_order_id is None
    assert IDS.mine("pty-abcd1234-gf00d")
    assert not IDS.mine("pty-ffff0000-cmine-1")
    assert not IDS.mine(None)


def test_trailing_price_and_percent_and_bracket_legs() -> None:
    trail = m.to_order(order_json(type="trailing_stop", trail_price="1.5", stop_price="99.5",
                                  limit_price=None), IDS, market_open=True)
    assert (trail.trailing_type, trail.trailing_distance, trail.stop_price) == (
        TrailingType.ABSOLUTE, D("1.5"), D("99.5"))
    percent = m.to_order(order_json(type="trailing_stop", trail_percent="2", limit_price=None),
                         IDS, market_open=True)
    assert (percent.trailing_type, percent.trailing_distance) == (TrailingType.PERCENT, D(2))
    bracket = m.to_order(order_json(order_class="bracket", legs=[
        {"id": "leg-1", "type": "limit", "limit_price": "450"},
        {"id": "leg-2", "type": "stop", "stop_price": "390"},
    ]), IDS, market_open=True)
    assert (bracket.take_profit, bracket.stop_loss) == (D(450), D(390))


def test_order_body_sends_rounded_decimal_strings() -> None:
    request = OrderRequest(symbol="brk-b", side=Side.SELL, quantity=D("1.1234567891"),
                           order_type=OrderType.STOP_LIMIT, stop_price=D("100.005"),
                           limit_price=D("0.123456"), time_in_force=TimeInForce.DAY)
    assert m.order_body(request, "pty-x-g1") == {
        "symbol": "BRK.B",
        "qty": "1.123456789",
        "side": "sell",
        "type": "stop_limit",
        "time_in_force": "day",
        "client_order_id": "pty-x-g1",
        "limit_price": "0.1235",
        "stop_price": "100.01",
    }


def test_bracket_and_trailing_bodies() -> None:
    bracket = OrderRequest(symbol="AAPL", side=Side.BUY, quantity=D(5),
                           stop_loss=D("150"), take_profit=D("200.004"))
    body = m.order_body(bracket, "c")
    assert (body["order_class"], body["take_profit"], body["stop_loss"]) == (
        "bracket", {"limit_price": "200"}, {"stop_price": "150"})
    trailing = OrderRequest(symbol="AAPL", side=Side.SELL, quantity=D(5),
                            order_type=OrderType.TRAILING_STOP, trailing_distance=D("1.5"),
                            trailing_type=TrailingType.PERCENT)
    assert m.order_body(trailing, "c")["trail_percent"] == "1.5"


def test_a_fill_update_is_one_execution_with_no_commission() -> None:
    order = m.to_order(order_json(status="partially_filled", filled_qty="1"), IDS,
                       market_open=True)
    fill = m.fill_from_update({"event": "partial_fill", "price": "410.25", "qty": "1",
                               "execution_id": "exec-1", "position_qty": "1",
                               "timestamp": "2026-01-05T14:31:00Z"}, order)
    assert fill is not None
    assert (fill.id, fill.quantity, fill.price, fill.commission, fill.commission_currency) == (
        "exec-1", D(1), D("410.25"), D(0), "USD")
    assert fill.timestamp == datetime(2026, 1, 5, 14, 31, tzinfo=UTC)


def test_positions_and_the_account() -> None:
    moment = datetime(2026, 1, 5, tzinfo=UTC)
    short = m.to_position({"symbol": "AAPL", "qty": "-3", "side": "short",
                           "avg_entry_price": "190", "current_price": "189",
                           "unrealized_pl": "3"}, opened_at=moment, updated_at=moment)
    assert (short.side, short.quantity, short.unrealized_pnl) == (PositionSide.SHORT, D(3), D(3))
    account = m.to_account({"cash": "99000.5", "equity": "100100", "buying_power": "199000",
                            "initial_margin": "0", "currency": "USD"}, unrealized_pnl=D(3))
    assert (account.cash, account.balance, account.equity, account.margin_available) == (
        D("99000.5"), D("99000.5"), D(100100), D(199000))


@pytest.mark.parametrize(
    ("given", "expected"),
    [("BRK-B", "BRK.B"), ("BRK/B", "BRK.B"), ("brk.b", "BRK.B"), ("BTCUSD", "BTC/USD"),
     ("btc/usd", "BTC/USD"), ("AAPL", "AAPL")],
)
def test_symbols_are_normalised(given: str, expected: str) -> None:
    assert normalise(given) == expected


def test_a_crypto_path_has_no_slash() -> None:
    assert path_symbol("BTC/USD") == "BTCUSD"
