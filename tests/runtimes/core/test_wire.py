"""Domain -> protocol JSON, checked against the unmodified tektii SDK's own pydantic models."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel, TypeAdapter
from tektii import models as sdk

from runtimes.core.bars import Bar
from runtimes.core.domain import (
    Account,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    Quote,
    RejectReason,
    Side,
    TimeInForce,
    TrailingType,
)
from runtimes.core.events import (
    AccountEvent,
    CandleEvent,
    OrderEvent,
    OrderEventKind,
    PositionEvent,
    PositionEventKind,
    QuoteEvent,
    TradeEvent,
)
from runtimes.core.wire import (
    account_json,
    backtest_complete_frame,
    bar_json,
    connection_frame,
    decimal_str,
    encode_frame,
    error_frame,
    event_frame,
    fill_json,
    order_handle_json,
    order_json,
    ping_frame,
    position_json,
    quote_json,
    timestamp_str,
)

T0 = datetime(2025, 1, 15, 10, 30, tzinfo=UTC)
T1 = T0 + timedelta(minutes=1)
EVENTS = TypeAdapter(sdk.GatewayEvent)


M = TypeVar("M", bound=BaseModel)


def sdk_model(model: type[M], payload: dict[str, Any]) -> M:
    """Validate as the SDK does after json.loads, in strict mode so no coercion hides drift."""
    return model.model_validate_json(json.dumps(payload), strict=True)


def sdk_event(frame: dict[str, Any]) -> object:
    return EVENTS.validate_json(encode_frame(frame))


def make_order(**changes: Any) -> Order:
    fields: dict[str, Any] = {
        "id": "ord-1",
        "symbol": "AAPL",
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "quantity": Decimal("10.00"),
        "status": OrderStatus.PARTIALLY_FILLED,
        "time_in_force": TimeInForce.GTC,
        "created_at": T0,
        "updated_at": T1,
        "filled_quantity": Decimal("2.5"),
        "limit_price": Decimal("185.50"),
        "average_fill_price": Decimal("185.25"),
    }
    fields.update(changes)
    return Order(**fields)


FILL = Fill(
    id="fill-1",
    order_id="ord-1",
    symbol="AAPL",
    side=Side.SELL,
    quantity=Decimal("2.50"),
    price=Decimal("185.2500"),
    commission=Decimal("0.0100"),
    commission_currency="USD",
    timestamp=T1,
    base_price=Decimal("185.3"),
)
POSITION = Position(
    id="AAPL_position",
    symbol="AAPL",
    side=PositionSide.SHORT,
    quantity=Decimal("2.5"),
    average_entry_price=Decimal("185.25"),
    current_price=Decimal("186"),
    unrealized_pnl=Decimal("-1.875"),
    realized_pnl=Decimal("0E-8"),
    opened_at=T0,
    updated_at=T1,
)
ACCOUNT = Account(
    balance=Decimal("100000.00"),
    equity=Decimal("99998.125"),
    margin_used=Decimal("0"),
    margin_available=Decimal("99998.125"),
    unrealized_pnl=Decimal("-1.875"),
    realized_pnl=Decimal("0"),
    total_commission=Decimal("0.01"),
)
BAR = Bar(
    symbol="BTCUSDT",
    timeframe="1m",
    timestamp=T0,
    open=Decimal("42000.10"),
    high=Decimal("42100"),
    low=Decimal("41950.5"),
    close=Decimal("42050.00"),
    volume=Decimal("12.3400"),
)


# -- scalars ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1"), "1"),
        (Decimal("1.00000000"), "1"),
        (Decimal("185.50"), "185.5"),
        (Decimal("1E+2"), "100"),
        (Decimal("1E-7"), "0.0000001"),
        (Decimal("0.00000010"), "0.0000001"),
        (Decimal("-0"), "0"),
        (Decimal("-0.000"), "0"),
        (Decimal("0E-8"), "0"),
        (Decimal("-12.340"), "-12.34"),
        (Decimal("1200"), "1200"),
        (Decimal("1.2E+5"), "120000"),
        (Decimal("27.008777852802160702228224170000"), "27.00877785280216070222822417"),
        (Decimal("123456789012345678901234567890.5"), "123456789012345678901234567890.5"),
    ],
)
def test_decimal_str_is_normalised_plain_text(value: Decimal, expected: str) -> None:
    assert decimal_str(value) == expected


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_decimal_str_refuses_non_finite_values(value: Decimal) -> None:
    with pytest.raises(ValueError, match="has no wire form"):
        decimal_str(value)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (T0, "2025-01-15T10:30:00Z"),
        (T0.replace(microsecond=500_000), "2025-01-15T10:30:00.500Z"),
        (T0.replace(microsecond=123_456), "2025-01-15T10:30:00.123456Z"),
        (
            datetime(2025, 1, 15, 12, 30, tzinfo=timezone(timedelta(hours=2))),
            "2025-01-15T10:30:00Z",
        ),
    ],
)
def test_timestamp_str_is_rfc3339_utc_with_z(moment: datetime, expected: str) -> None:
    assert timestamp_str(moment) == expected


def test_timestamp_str_rejects_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        timestamp_str(datetime(2025, 1, 15, 10, 30))


# -- models -------------------------------------------------------------------------------------


def test_order_json_has_exact_fields_and_omits_absent_ones() -> None:
    assert order_json(make_order(), correlation_id="corr-1") == {
        "id": "ord-1",
        "symbol": "AAPL",
        "side": "BUY",
        "order_type": "LIMIT",
        "quantity": "10",
        "filled_quantity": "2.5",
        "remaining_quantity": "7.5",
        "limit_price": "185.5",
        "average_fill_price": "185.25",
        "status": "PARTIALLY_FILLED",
        "reduce_only": False,
        "post_only": False,
        "hidden": False,
        "correlation_id": "corr-1",
        "time_in_force": "GTC",
        "created_at": "2025-01-15T10:30:00Z",
        "updated_at": "2025-01-15T10:31:00Z",
    }


def test_order_json_validates_against_the_sdk_order_model() -> None:
    parsed = sdk_model(sdk.Order, order_json(make_order()))
    assert isinstance(parsed, sdk.Order)
    assert parsed.remaining_quantity == "7.5"
    assert parsed.status is sdk.OrderStatus.PARTIALLY_FILLED
    assert parsed.created_at == T0


def test_order_json_with_every_optional_field_validates_against_the_sdk() -> None:
    order = make_order(
        order_type=OrderType.TRAILING_STOP,
        limit_price=None,
        stop_price=Decimal("180.00"),
        stop_loss=Decimal("170"),
        take_profit=Decimal("200"),
        trailing_distance=Decimal("2.50"),
        trailing_type=TrailingType.PERCENT,
        status=OrderStatus.REJECTED,
        reject_reason=RejectReason.INSUFFICIENT_BALANCE,
        client_order_id="my-1",
        position_id="AAPL_position",
        parent_order_id="ord-0",
        reduce_only=True,
        display_quantity=Decimal("1.0"),
        oco_group_id="oco-1",
    )
    payload = order_json(order)
    parsed = sdk_model(sdk.Order, payload)
    assert isinstance(parsed, sdk.Order)
    assert parsed.trailing_type is sdk.TrailingType.PERCENT
    assert parsed.reject_reason is sdk.RejectReason.INSUFFICIENT_BALANCE
    assert (payload["trailing_distance"], payload["display_quantity"]) == ("2.5", "1")
    assert payload["parent_order_id"] == "ord-0"


def test_an_order_sized_at_fill_echoes_its_size_and_still_parses_in_the_sdk() -> None:
    order = make_order(
        order_type=OrderType.MARKET,
        limit_price=None,
        quantity=Decimal(0),
        filled_quantity=Decimal(0),
        average_fill_price=None,
        status=OrderStatus.OPEN,
        notional=Decimal("250.50"),
    )
    payload = order_json(order)
    assert (payload["quantity"], payload["remaining_quantity"], payload["notional"]) == (
        "0",
        "0",
        "250.5",
    )
    assert "equity_fraction" not in payload
    parsed = sdk_model(sdk.Order, payload)
    assert (parsed.quantity, parsed.status) == ("0", sdk.OrderStatus.OPEN)
    fraction = order_json(replace(order, notional=None, equity_fraction=Decimal("0.50")))
    assert fraction["equity_fraction"] == "0.5"
    assert isinstance(sdk_model(sdk.Order, fraction), sdk.Order)


def test_order_handle_json_validates_against_the_sdk() -> None:
    payload = order_handle_json(make_order(client_order_id="my-1"), correlation_id="corr-1")
    assert payload == {
        "id": "ord-1",
        "client_order_id": "my-1",
        "correlation_id": "corr-1",
        "status": "PARTIALLY_FILLED",
    }
    assert isinstance(sdk_model(sdk.OrderHandle, payload), sdk.OrderHandle)
    assert order_handle_json(make_order()) == {"id": "ord-1", "status": "PARTIALLY_FILLED"}


def test_fill_json_is_the_wire_trade() -> None:
    payload = fill_json(FILL)
    assert payload == {
        "id": "fill-1",
        "order_id": "ord-1",
        "symbol": "AAPL",
        "side": "SELL",
        "quantity": "2.5",
        "price": "185.25",
        "commission": "0.01",
        "commission_currency": "USD",
        "is_maker": False,
        "timestamp": "2025-01-15T10:31:00Z",
    }
    assert isinstance(sdk_model(sdk.Trade, payload), sdk.Trade)


def test_position_json_validates_against_the_sdk() -> None:
    payload = position_json(POSITION)
    assert payload == {
        "id": "AAPL_position",
        "symbol": "AAPL",
        "side": "SHORT",
        "quantity": "2.5",
        "average_entry_price": "185.25",
        "current_price": "186",
        "unrealized_pnl": "-1.875",
        "realized_pnl": "0",
        "opened_at": "2025-01-15T10:30:00Z",
        "updated_at": "2025-01-15T10:31:00Z",
    }
    assert isinstance(sdk_model(sdk.Position, payload), sdk.Position)


def test_position_json_carries_leverage_when_set() -> None:
    payload = position_json(replace(POSITION, leverage=Decimal("2.0")))
    assert payload["leverage"] == "2"
    assert sdk_model(sdk.Position, payload).leverage == "2"


def test_account_json_has_exactly_the_protocol_fields() -> None:
    payload = account_json(ACCOUNT)
    assert payload == {
        "balance": "100000",
        "equity": "99998.125",
        "margin_used": "0",
        "margin_available": "99998.125",
        "unrealized_pnl": "-1.875",
        "currency": "USD",
    }
    assert isinstance(sdk_model(sdk.Account, payload), sdk.Account)


def test_quote_json_validates_against_the_sdk() -> None:
    quote = Quote("AAPL", "backtest", Decimal("185.50"), Decimal("185.5"), Decimal("185.5"), T0)
    payload = quote_json(quote)
    assert payload == {
        "symbol": "AAPL",
        "provider": "backtest",
        "bid": "185.5",
        "ask": "185.5",
        "last": "185.5",
        "timestamp": "2025-01-15T10:30:00Z",
    }
    assert isinstance(sdk_model(sdk.Quote, payload), sdk.Quote)
    with_volume = quote_json(
        Quote("AAPL", "backtest", Decimal(1), Decimal(1), Decimal(1), T0, Decimal("5.0"))
    )
    assert with_volume["volume"] == "5"


def test_bar_json_validates_against_the_sdk() -> None:
    payload = bar_json(BAR, "backtest")
    assert payload == {
        "symbol": "BTCUSDT",
        "provider": "backtest",
        "timeframe": "1m",
        "timestamp": "2025-01-15T10:30:00Z",
        "open": "42000.1",
        "high": "42100",
        "low": "41950.5",
        "close": "42050",
        "volume": "12.34",
    }
    parsed = sdk_model(sdk.Bar, payload)
    assert isinstance(parsed, sdk.Bar)
    assert parsed.timeframe == "1m"


# -- event frames -------------------------------------------------------------------------------


def test_candle_event_frame_is_an_sdk_candle_event() -> None:
    frame = event_frame(CandleEvent(BAR, T0), event_id="evt-1", provider="backtest")
    assert frame == {
        "type": "candle",
        "bar": bar_json(BAR, "backtest"),
        "timestamp": "2025-01-15T10:30:00Z",
        "event_id": "evt-1",
    }
    event = sdk_event(frame)
    assert isinstance(event, sdk.CandleEvent)
    assert (event.event_id, event.bar.close) == ("evt-1", "42050")


def test_quote_event_frame_is_an_sdk_quote_event() -> None:
    quote = Quote("AAPL", "mock", Decimal("189.98"), Decimal("190.02"), Decimal("190.00"), T0)
    frame = event_frame(QuoteEvent(quote, T0), event_id="evt-2", provider="mock")
    assert frame == {
        "type": "quote",
        "quote": {
            "symbol": "AAPL",
            "provider": "mock",
            "bid": "189.98",
            "ask": "190.02",
            "last": "190",
            "timestamp": "2025-01-15T10:30:00Z",
        },
        "timestamp": "2025-01-15T10:30:00Z",
        "event_id": "evt-2",
    }
    event = sdk_event(frame)
    assert isinstance(event, sdk.QuoteEvent)
    assert (event.event_id, event.quote.bid, event.quote.ask) == ("evt-2", "189.98", "190.02")


def test_order_event_frame_is_an_sdk_order_event() -> None:
    order = make_order(status=OrderStatus.FILLED, filled_quantity=Decimal(10))
    frame = event_frame(
        OrderEvent(OrderEventKind.ORDER_FILLED, order, T1), event_id="evt-2", provider="backtest"
    )
    assert list(frame) == ["type", "event", "order", "timestamp", "event_id"]
    assert (frame["type"], frame["event"], frame["timestamp"]) == (
        "order",
        "ORDER_FILLED",
        "2025-01-15T10:31:00Z",
    )
    event = sdk_event(frame)
    assert isinstance(event, sdk.OrderEvent)
    assert event.event is sdk.OrderEventType.ORDER_FILLED
    assert event.order.remaining_quantity == "0"
    assert event.parent_order_id is None


def test_order_event_frame_of_an_exit_leg_carries_parent_order_id() -> None:
    leg = make_order(id="ord-2", parent_order_id="ord-1")
    frame = event_frame(
        OrderEvent(OrderEventKind.ORDER_CREATED, leg, T1, parent_order_id="ord-1"),
        event_id="evt-3",
        provider="backtest",
    )
    event = sdk_event(frame)
    assert isinstance(event, sdk.OrderEvent)
    assert event.parent_order_id == "ord-1"


def test_trade_event_frame_is_an_sdk_trade_event() -> None:
    frame = event_frame(TradeEvent(FILL, T1), event_id="evt-4", provider="backtest")
    assert (frame["type"], frame["event"], frame["trade"]) == (
        "trade",
        "TRADE_FILLED",
        fill_json(FILL),
    )
    event = sdk_event(frame)
    assert isinstance(event, sdk.TradeEvent)
    assert event.trade.price == "185.25"


def test_position_event_frame_is_an_sdk_position_event() -> None:
    frame = event_frame(
        PositionEvent(PositionEventKind.POSITION_OPENED, POSITION, T1),
        event_id="evt-5",
        provider="backtest",
    )
    assert (frame["type"], frame["event"]) == ("position", "POSITION_OPENED")
    event = sdk_event(frame)
    assert isinstance(event, sdk.PositionEvent)
    assert event.event is sdk.PositionEventType.POSITION_OPENED


def test_account_event_frame_is_an_sdk_balance_update() -> None:
    frame = event_frame(AccountEvent(ACCOUNT, T1), event_id="evt-6", provider="backtest")
    assert (frame["type"], frame["event"], frame["account"]) == (
        "account",
        "BALANCE_UPDATED",
        account_json(ACCOUNT),
    )
    event = sdk_event(frame)
    assert isinstance(event, sdk.AccountEvent)
    assert event.account.equity == "99998.125"


def test_event_frame_refuses_objects_that_are_not_engine_events() -> None:
    with pytest.raises(TypeError, match="not an engine event: str"):
        event_frame("candle", event_id="evt-1", provider="backtest")  # type: ignore[arg-type]


def test_backtest_complete_frame_parses_as_the_sdk_terminal() -> None:
    frame = backtest_complete_frame(event_id="evt-9", timestamp=T1, broker="backtest")
    assert frame == {
        "type": "backtest_complete",
        "broker": "backtest",
        "timestamp": "2025-01-15T10:31:00Z",
        "event_id": "evt-9",
    }
    event = sdk_event(frame)
    assert isinstance(event, sdk.BacktestCompleteEvent)
    assert event.event_id == "evt-9"


def test_backtest_complete_frame_without_time_omits_the_timestamp() -> None:
    frame = backtest_complete_frame(event_id="evt-1", timestamp=None)
    assert frame == {"type": "backtest_complete", "event_id": "evt-1"}
    assert isinstance(sdk_event(frame), sdk.BacktestCompleteEvent)


def test_connection_frame_parses_as_an_sdk_connection_event() -> None:
    frame = connection_frame("DISCONNECTING", timestamp=T0, event_id="evt-7")
    assert frame == {
        "type": "connection",
        "event": "DISCONNECTING",
        "timestamp": "2025-01-15T10:30:00Z",
        "event_id": "evt-7",
    }
    event = sdk_event(frame)
    assert isinstance(event, sdk.ConnectionEvent)
    assert event.event is sdk.ConnectionEventType.DISCONNECTING


def test_error_frame_parses_as_an_sdk_error_event() -> None:
    frame = error_frame(
        "INVALID_MESSAGE", "message is not valid JSON", {"field": "type"}, timestamp=T0
    )
    assert frame == {
        "type": "error",
        "code": "INVALID_MESSAGE",
        "message": "message is not valid JSON",
        "details": {"field": "type"},
        "timestamp": "2025-01-15T10:30:00Z",
    }
    event = sdk_event(frame)
    assert isinstance(event, sdk.ErrorEvent)
    assert event.code is sdk.WsErrorCode.INVALID_MESSAGE


def test_ping_frame_parses_as_an_sdk_ping_without_an_id() -> None:
    frame = ping_frame(timestamp=T0)
    assert frame == {"type": "ping", "timestamp": "2025-01-15T10:30:00Z"}
    assert type(sdk_event(frame)).__name__ == "PingEvent"


def test_encode_frame_is_compact_json_in_insertion_order() -> None:
    frame = backtest_complete_frame(event_id="evt-2", timestamp=T0)
    assert encode_frame(frame) == (
        '{"type":"backtest_complete","timestamp":"2025-01-15T10:30:00Z","event_id":"evt-2"}'
    )
