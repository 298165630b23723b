"""Protocol JSON -> domain: lenient where the protocol is, exact codes and fields elsewhere."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from tektii._generated.models import OrderRequest as SdkOrderRequest

from runtimes.core.domain import (
    MarginMode,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TrailingType,
)
from runtimes.core.errors import OrderValidationError, TradingError
from runtimes.core.wire_parse import (
    ClosePositionRequest,
    EventAck,
    InvalidMessage,
    ModifyOrderRequest,
    Pong,
    parse_client_message,
    parse_close_position_request,
    parse_datetime_param,
    parse_event_ack,
    parse_last_event_id,
    parse_limit,
    parse_modify_request,
    parse_order_request,
    parse_status_filter,
)

MARKET_BUY = {"symbol": "AAPL", "side": "buy", "quantity": "1", "order_type": "market"}


def order(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {**MARKET_BUY, **changes}
    return {key: value for key, value in body.items() if value is not ...}


def error_of(call: Any, *args: Any) -> TradingError:
    with pytest.raises(TradingError) as caught:
        call(*args)
    return caught.value


def assert_error(error: TradingError, code: str, details: dict[str, Any]) -> None:
    assert (error.code, error.status, error.details) == (code, 400, details)


# -- order requests: accepted shapes ------------------------------------------------------------


def test_the_sdk_default_market_buy_parses() -> None:
    assert parse_order_request(MARKET_BUY) == OrderRequest(
        symbol="AAPL", side=Side.BUY, quantity=Decimal(1), order_type=OrderType.MARKET
    )


@pytest.mark.parametrize(
    ("text", "expected"), [("buy", Side.BUY), ("SELL", Side.SELL), ("Sell", Side.SELL)]
)
def test_side_is_accepted_in_any_case(text: str, expected: Side) -> None:
    assert parse_order_request(order(side=text)).side is expected


@pytest.mark.parametrize(
    ("text", "prices", "expected"),
    [
        ("market", {}, OrderType.MARKET),
        ("limit", {"limit_price": "10"}, OrderType.LIMIT),
        ("stop", {"stop_price": "10"}, OrderType.STOP),
        ("stop_limit", {"stop_price": "10", "limit_price": "9"}, OrderType.STOP_LIMIT),
        ("STOP_LIMIT", {"stop_price": "10", "limit_price": "9"}, OrderType.STOP_LIMIT),
        (
            "trailing_stop",
            {"trailing_distance": "2", "trailing_type": "percent"},
            OrderType.TRAILING_STOP,
        ),
    ],
)
def test_order_type_is_accepted_in_any_case(
    text: str, prices: dict[str, str], expected: OrderType
) -> None:
    assert parse_order_request(order(order_type=text, **prices)).order_type is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gtc", TimeInForce.GTC),
        ("day", TimeInForce.DAY),
        ("ioc", TimeInForce.IOC),
        ("FOK", TimeInForce.FOK),
    ],
)
def test_time_in_force_is_accepted_in_any_case(text: str, expected: TimeInForce) -> None:
    assert parse_order_request(order(time_in_force=text)).time_in_force is expected


def test_time_in_force_defaults_to_gtc_when_absent_or_null() -> None:
    assert parse_order_request(order()).time_in_force is TimeInForce.GTC
    assert parse_order_request(order(time_in_force=None)).time_in_force is TimeInForce.GTC


@pytest.mark.parametrize(
    ("text", "expected"), [("absolute", TrailingType.ABSOLUTE), ("Percent", TrailingType.PERCENT)]
)
def test_trailing_type_is_accepted_in_any_case(text: str, expected: TrailingType) -> None:
    body = order(order_type="trailing_stop", trailing_distance="2", trailing_type=text)
    assert parse_order_request(body).trailing_type is expected


@pytest.mark.parametrize(
    ("text", "expected"), [("cross", MarginMode.CROSS), ("ISOLATED", MarginMode.ISOLATED)]
)
def test_margin_mode_is_accepted_in_any_case(text: str, expected: MarginMode) -> None:
    assert parse_order_request(order(margin_mode=text)).margin_mode is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", Decimal("1")),
        ("1E-7", Decimal("1E-7")),
        ("0.0000001", Decimal("1E-7")),
        ("27.008777852802", Decimal("27.008777852802")),
        ("123456789012345678.123456789012", Decimal("123456789012345678.123456789012")),
        (3, Decimal(3)),
        (0.1, Decimal("0.1")),
        (1e-7, Decimal("1E-7")),
    ],
)
def test_quantity_is_a_string_or_number_up_to_the_platforms_precision(
    raw: object, expected: Decimal
) -> None:
    quantity = parse_order_request(order(quantity=raw)).quantity
    assert (quantity, str(quantity)) == (expected, str(expected))


def test_decimals_finer_than_twelve_places_are_rounded_half_even() -> None:
    parsed = parse_order_request(order(quantity="27.00877785280216070222822417"))
    assert str(parsed.quantity) == "27.008777852802"
    assert str(parse_order_request(order(quantity="0.0000000000025")).quantity) == "2E-12"


@pytest.mark.parametrize(
    ("raw", "provided"),
    [
        ("1e-999999999", "1e-999999999"),  # once accepted, then rendered as a gigabyte of zeros
        ("0.0000000000001", "0.0000000000001"),
    ],
)
def test_a_quantity_finer_than_the_precision_is_invalid_value(raw: str, provided: str) -> None:
    error = error_of(parse_order_request, order(quantity=raw))
    assert_error(error, "INVALID_VALUE", {"field": "quantity", "provided": provided})
    assert error.message == "quantity is smaller than the precision of 12 decimal places"


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("quantity", "1e999999999"),  # once an Overflow in the risk check, failing the session
        ("quantity", "1e99999999999999999999"),
        ("limit_price", "1000000000000000000"),
        ("stop_loss", 1e300),
        ("quantity", 10**40),
    ],
)
def test_a_decimal_with_more_than_eighteen_integer_digits_is_invalid_value(
    field: str, raw: object
) -> None:
    body = order(**{"order_type": "limit", "limit_price": "1", field: raw})
    error = error_of(parse_order_request, body)
    assert (error.code, error.details["field"]) == ("INVALID_VALUE", field)


def test_a_decimal_text_longer_than_a_hundred_characters_is_invalid_value_shown_cut_short() -> None:
    raw = "0." + "0" * 99 + "1"
    error = error_of(parse_order_request, order(quantity=raw))
    assert_error(error, "INVALID_VALUE", {"field": "quantity", "provided": raw[:40] + "..."})
    assert error.message == "quantity must have at most 100 characters"


@pytest.mark.parametrize("raw", ["1_000", "\u0661", "0x10", "1e", "--1", "1 000"])
def test_text_that_is_not_plain_number_syntax_is_invalid_request(raw: str) -> None:
    assert_error(
        error_of(parse_order_request, order(quantity=raw)), "INVALID_REQUEST", {"field": "quantity"}
    )


def test_numbers_decoded_from_json_text_keep_their_literal_value() -> None:
    body = json.loads(
        '{"symbol":"X","side":"buy","quantity":0.3,"order_type":"limit","limit_price":185.1}'
    )
    parsed = parse_order_request(body)
    assert (parsed.quantity, parsed.limit_price) == (Decimal("0.3"), Decimal("185.1"))


def test_every_optional_field_is_carried_and_unknown_fields_are_ignored() -> None:
    body = order(
        order_type="limit",
        limit_price="185.50",
        stop_loss="170",
        take_profit="200",
        position_id="AAPL_position",
        reduce_only=True,
        post_only=True,
        hidden=False,
        quantity="10",
        display_quantity="2",
        leverage="2",
        margin_mode="cross",
        client_order_id="c" * 64,
        oco_group_id="o" * 64,
        time_in_force="day",
        cancel_associated_orders=True,
        something_new={"nested": 1},
    )
    assert parse_order_request(body) == OrderRequest(
        symbol="AAPL",
        side=Side.BUY,
        quantity=Decimal(10),
        order_type=OrderType.LIMIT,
        limit_price=Decimal("185.50"),
        stop_loss=Decimal(170),
        take_profit=Decimal(200),
        position_id="AAPL_position",
        reduce_only=True,
        post_only=True,
        hidden=False,
        display_quantity=Decimal(2),
        margin_mode=MarginMode.CROSS,
        leverage=Decimal(2),
        client_order_id="c" * 64,
        oco_group_id="o" * 64,
        time_in_force=TimeInForce.DAY,
    )


def test_what_the_sdk_request_model_serialises_parses() -> None:
    sdk_body = SdkOrderRequest.model_validate(
        {
            "symbol": "AAPL",
            "side": "BUY",
            "quantity": "1E-7",
            "order_type": "LIMIT",
            "limit_price": "9",
        }
    ).model_dump(mode="json", exclude_none=True)
    parsed = parse_order_request(sdk_body)
    assert (parsed.quantity, parsed.limit_price) == (Decimal("1E-7"), Decimal(9))


# -- order requests: errors ---------------------------------------------------------------------


def test_a_body_that_is_not_an_object_is_invalid_request() -> None:
    error = error_of(parse_order_request, ["AAPL"])
    assert_error(error, "INVALID_REQUEST", {})
    assert error.message == "request body must be a JSON object"


@pytest.mark.parametrize("field", ["symbol", "side", "quantity", "order_type"])
def test_a_missing_required_field_is_invalid_request_naming_it(field: str) -> None:
    assert_error(
        error_of(parse_order_request, order(**{field: ...})), "INVALID_REQUEST", {"field": field}
    )


@pytest.mark.parametrize("field", ["symbol", "side", "quantity", "order_type"])
def test_a_null_required_field_is_invalid_request_naming_it(field: str) -> None:
    assert_error(
        error_of(parse_order_request, order(**{field: None})), "INVALID_REQUEST", {"field": field}
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("symbol", 123),
        ("side", 1),
        ("order_type", ["market"]),
        ("quantity", True),
        ("quantity", [1]),
        ("quantity", {"v": 1}),
        ("quantity", "one"),
        ("quantity", ""),
        ("limit_price", False),
        ("time_in_force", 5),
        ("client_order_id", 7),
        ("reduce_only", "true"),
        ("post_only", 1),
        ("hidden", "no"),
    ],
)
def test_a_wrongly_typed_or_malformed_field_is_invalid_request(field: str, value: object) -> None:
    assert_error(
        error_of(parse_order_request, order(**{field: value})), "INVALID_REQUEST", {"field": field}
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("side", "long"),
        ("order_type", "stop-limit"),
        ("time_in_force", "gtd"),
        ("trailing_type", "relative"),
        ("margin_mode", "portfolio"),
    ],
)
def test_an_unknown_enum_value_is_invalid_value_with_what_was_provided(
    field: str, value: str
) -> None:
    assert_error(
        error_of(parse_order_request, order(**{field: value})),
        "INVALID_VALUE",
        {"field": field, "provided": value},
    )


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-inf", "sNaN", float("nan"), float("inf")])
def test_non_finite_quantities_are_invalid_value(raw: object) -> None:
    assert_error(
        error_of(parse_order_request, order(quantity=raw)),
        "INVALID_VALUE",
        {"field": "quantity", "provided": str(raw)},
    )


@pytest.mark.parametrize(
    ("raw", "provided"), [("0", "0"), ("-1.50", "-1.5"), (-2, "-2"), ("0E-7", "0")]
)
def test_a_non_positive_quantity_is_invalid_value(raw: object, provided: str) -> None:
    assert_error(
        error_of(parse_order_request, order(quantity=raw)),
        "INVALID_VALUE",
        {"field": "quantity", "provided": provided},
    )


def test_an_empty_symbol_is_invalid_value() -> None:
    assert_error(
        error_of(parse_order_request, order(symbol="")),
        "INVALID_VALUE",
        {"field": "symbol", "provided": ""},
    )


def test_symbols_of_twenty_characters_pass_and_longer_ones_are_invalid_value() -> None:
    assert parse_order_request(order(symbol="S" * 20)).symbol == "S" * 20
    assert_error(
        error_of(parse_order_request, order(symbol="S" * 21)),
        "INVALID_VALUE",
        {"field": "symbol", "provided": "S" * 21},
    )


@pytest.mark.parametrize("field", ["client_order_id", "oco_group_id"])
def test_ids_longer_than_64_characters_are_invalid_value(field: str) -> None:
    assert_error(
        error_of(parse_order_request, order(**{field: "x" * 65})),
        "INVALID_VALUE",
        {"field": field, "provided": "x" * 65},
    )


def test_cross_field_rules_come_from_validation() -> None:
    assert_error(
        error_of(parse_order_request, order(order_type="limit")),
        "INVALID_REQUEST",
        {"field": "limit_price"},
    )
    assert_error(
        error_of(parse_order_request, order(limit_price="10")),
        "INVALID_VALUE",
        {"field": "limit_price", "provided": "10"},
    )
    assert_error(
        error_of(
            parse_order_request,
            order(order_type="trailing_stop", trailing_distance="100", trailing_type="percent"),
        ),
        "INVALID_VALUE",
        {"field": "trailing_distance", "provided": "100"},
    )
    assert_error(
        error_of(parse_order_request, order(order_type="trailing_stop", trailing_distance="1")),
        "INVALID_REQUEST",
        {"field": "trailing_type"},
    )
    assert_error(
        error_of(parse_order_request, order(stop_loss="-1")),
        "INVALID_VALUE",
        {"field": "stop_loss", "provided": "-1"},
    )


def test_order_errors_are_order_validation_errors() -> None:
    assert isinstance(error_of(parse_order_request, order(side="up")), OrderValidationError)


# -- modify and close ---------------------------------------------------------------------------


def test_modify_takes_any_subset_of_its_decimals() -> None:
    parsed = parse_modify_request({"limit_price": "101.50", "quantity": 3, "unknown": 1})
    assert parsed == ModifyOrderRequest(quantity=Decimal(3), limit_price=Decimal("101.50"))
    assert parsed.changes() == {"quantity": Decimal(3), "limit_price": Decimal("101.50")}


def test_modify_with_nothing_to_change_is_invalid_request() -> None:
    error = error_of(parse_modify_request, {"limit_price": None})
    assert_error(error, "INVALID_REQUEST", {})
    assert error.message == (
        "give at least one of: quantity, limit_price, stop_price, stop_loss, take_profit, "
        "trailing_distance"
    )


def test_modify_rejects_non_positive_and_malformed_values() -> None:
    assert_error(
        error_of(parse_modify_request, {"stop_price": "0"}),
        "INVALID_VALUE",
        {"field": "stop_price", "provided": "0"},
    )
    assert_error(
        error_of(parse_modify_request, {"quantity": "lots"}),
        "INVALID_REQUEST",
        {"field": "quantity"},
    )
    assert_error(error_of(parse_modify_request, "quantity=1"), "INVALID_REQUEST", {})


@pytest.mark.parametrize("body", [None, "", {}, {"cancel_associated_orders": True}])
def test_close_position_without_options_closes_everything_at_market(body: object) -> None:
    assert parse_close_position_request(body) == ClosePositionRequest(OrderType.MARKET, None, None)


def test_close_position_takes_a_partial_quantity_and_a_limit() -> None:
    parsed = parse_close_position_request(
        {"order_type": "limit", "limit_price": "99.5", "quantity": "0.5"}
    )
    assert parsed == ClosePositionRequest(OrderType.LIMIT, Decimal("99.5"), Decimal("0.5"))


def test_close_position_errors() -> None:
    assert_error(
        error_of(parse_close_position_request, {"order_type": "limit"}),
        "INVALID_REQUEST",
        {"field": "limit_price"},
    )
    assert_error(
        error_of(parse_close_position_request, {"limit_price": "99"}),
        "INVALID_VALUE",
        {"field": "limit_price", "provided": "99"},
    )
    assert_error(
        error_of(parse_close_position_request, {"order_type": "stop"}),
        "INVALID_VALUE",
        {"field": "order_type", "provided": "stop"},
    )
    assert_error(
        error_of(parse_close_position_request, {"quantity": "-1"}),
        "INVALID_VALUE",
        {"field": "quantity", "provided": "-1"},
    )
    assert_error(error_of(parse_close_position_request, [1]), "INVALID_REQUEST", {})


# -- query parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2025-01-01T00:00:00Z",
        "2025-01-01T00:00:00+00:00",
        "2025-01-01T01:00:00+01:00",
        "2024-12-31T19:00:00-05:00",
        "2025-01-01T00:00:00.000Z",
    ],
)
def test_datetime_params_accept_any_tz_aware_iso_8601(text: str) -> None:
    parsed = parse_datetime_param("since", text)
    assert parsed == datetime(2025, 1, 1, tzinfo=UTC)
    assert parsed is not None and parsed.tzinfo is UTC


def test_absent_datetime_param_is_none() -> None:
    assert parse_datetime_param("until", None) is None


@pytest.mark.parametrize("text", ["2025-01-01T00:00:00", "2025-01-01", "yesterday", ""])
def test_naive_or_unparsable_datetime_params_are_invalid_value(text: str) -> None:
    assert_error(
        error_of(parse_datetime_param, "since", text),
        "INVALID_VALUE",
        {"field": "since", "provided": text},
    )


def test_status_filter_takes_a_comma_list_in_any_case_without_repeats() -> None:
    assert parse_status_filter("open,PENDING, Partially_Filled,OPEN") == (
        OrderStatus.OPEN,
        OrderStatus.PENDING,
        OrderStatus.PARTIALLY_FILLED,
    )


def test_status_filter_takes_repeated_parameters() -> None:
    assert parse_status_filter(["FILLED", "cancelled,expired"]) == (
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.EXPIRED,
    )


@pytest.mark.parametrize("value", [None, "", "  ", []])
def test_an_absent_or_empty_status_filter_is_none(value: str | list[str] | None) -> None:
    assert parse_status_filter(value) is None


@pytest.mark.parametrize(("value", "provided"), [("OPEN,DONE", "DONE"), ("OPEN,,FILLED", "")])
def test_an_unknown_status_is_invalid_value(value: str, provided: str) -> None:
    assert_error(
        error_of(parse_status_filter, value),
        "INVALID_VALUE",
        {"field": "status", "provided": provided},
    )


@pytest.mark.parametrize(
    ("text", "expected"), [("0", 0), ("100", 100), (" 7 ", 7), ("4294967295", 4294967295)]
)
def test_limit_is_a_non_negative_integer(text: str, expected: int) -> None:
    assert parse_limit(text) == expected


@pytest.mark.parametrize("text", ["-1", "1.5", "ten", "", "4294967296", "١٢"])
def test_a_bad_limit_is_invalid_value(text: str) -> None:
    assert_error(error_of(parse_limit, text), "INVALID_VALUE", {"field": "limit", "provided": text})


def test_absent_limit_is_none() -> None:
    assert parse_limit(None) is None


@pytest.mark.parametrize(
    ("value", "expected"), [("evt-12", "evt-12"), (" evt-1 ", "evt-1"), (None, None), ("", None)]
)
def test_last_event_id_is_a_resume_cursor(value: str | None, expected: str | None) -> None:
    assert parse_last_event_id(value) == expected


@pytest.mark.parametrize("value", ["12", "evt-0", "evt-01", "evt-x", "e1"])
def test_a_malformed_last_event_id_is_invalid_value(value: str) -> None:
    assert_error(
        error_of(parse_last_event_id, value),
        "INVALID_VALUE",
        {"field": "last_event_id", "provided": value},
    )


# -- client frames ------------------------------------------------------------------------------

SDK_ACK = {
    "type": "event_ack",
    "correlation_id": "0b8f2b9e-5d1a-4c57-9d0a-2f7a3c1e4b6d",
    "events_processed": ["evt-1"],
    "timestamp": 1736937000000,
}


def test_the_sdk_ack_parses_from_text_and_from_a_dict() -> None:
    expected = EventAck("0b8f2b9e-5d1a-4c57-9d0a-2f7a3c1e4b6d", ("evt-1",), 1736937000000)
    assert parse_event_ack(json.dumps(SDK_ACK)) == expected
    assert parse_event_ack(json.dumps(SDK_ACK).encode()) == expected
    assert parse_event_ack(SDK_ACK) == expected


def test_an_ack_with_no_ids_parses_to_an_empty_tuple() -> None:
    assert parse_event_ack({**SDK_ACK, "events_processed": []}).events_processed == ()


@pytest.mark.parametrize(
    ("frame", "message", "details"),
    [
        ("{not json", "message is not valid JSON", {}),
        (b"\xff\xfe", "message is not valid JSON", {}),
        ("[1]", "message must be a JSON object", {}),
        (
            {**SDK_ACK, "type": "subscribe"},
            "unknown message type; expected event_ack or pong",
            {"field": "type"},
        ),
        (
            {k: v for k, v in SDK_ACK.items() if k != "timestamp"},
            "event_ack timestamp must be an integer of Unix milliseconds",
            {"field": "timestamp"},
        ),
        (
            {**SDK_ACK, "timestamp": "1736937000000"},
            "event_ack timestamp must be an integer of Unix milliseconds",
            {"field": "timestamp"},
        ),
        (
            {**SDK_ACK, "timestamp": True},
            "event_ack timestamp must be an integer of Unix milliseconds",
            {"field": "timestamp"},
        ),
        (
            {**SDK_ACK, "correlation_id": None},
            "event_ack correlation_id must be a string",
            {"field": "correlation_id"},
        ),
        (
            {**SDK_ACK, "events_processed": "evt-1"},
            "event_ack events_processed must be a list of event id strings",
            {"field": "events_processed"},
        ),
        (
            {**SDK_ACK, "events_processed": [1]},
            "event_ack events_processed must be a list of event id strings",
            {"field": "events_processed"},
        ),
        ("[" * 100_000 + "]" * 100_000, "message is nested too deeply", {}),
        (
            json.dumps({**SDK_ACK, "events_processed": ["evt-1"] * 40_000}),
            "message is longer than 262144 characters",
            {"limit": 262144},
        ),
    ],
)
def test_a_malformed_ack_is_invalid_message(
    frame: object, message: str, details: dict[str, str]
) -> None:
    error = error_of(parse_event_ack, frame)
    assert isinstance(error, InvalidMessage)
    assert (error.code, error.message, error.details) == ("INVALID_MESSAGE", message, details)


def test_client_messages_are_acks_or_pongs() -> None:
    assert parse_client_message('{"type":"pong"}') == Pong()
    assert parse_client_message(SDK_ACK) == parse_event_ack(SDK_ACK)
    assert error_of(parse_client_message, '{"type":"ping"}').code == "INVALID_MESSAGE"


# -- order requests sized at the fill (our extension) -------------------------------------------


def test_a_notional_order_parses_with_quantity_zero() -> None:
    request = parse_order_request(order(quantity=..., notional="250.5"))
    assert (request.quantity, request.notional, request.equity_fraction) == (
        Decimal(0),
        Decimal("250.5"),
        None,
    )


def test_an_equity_fraction_order_parses_from_a_json_number() -> None:
    request = parse_order_request(json.loads('{"symbol":"AAPL","side":"BUY","order_type":"MARKET",'
                                             '"equity_fraction":0.5}'))
    assert (request.quantity, request.equity_fraction) == (Decimal(0), Decimal("0.5"))


@pytest.mark.parametrize(
    ("sizes", "field"),
    [
        ({"notional": "100"}, "notional"),
        ({"equity_fraction": "1"}, "equity_fraction"),
        ({"quantity": ..., "notional": "100", "equity_fraction": "1"}, "equity_fraction"),
    ],
)
def test_more_than_one_size_is_invalid_request_naming_the_second(
    sizes: dict[str, Any], field: str
) -> None:
    error = error_of(parse_order_request, order(**sizes))
    assert_error(error, "INVALID_REQUEST", {"field": field})
    assert error.message == "give exactly one of quantity, notional and equity_fraction"


@pytest.mark.parametrize(
    ("field", "raw", "provided"),
    [
        ("notional", "0", "0"),
        ("notional", "-5", "-5"),
        ("equity_fraction", "0", "0"),
        ("equity_fraction", "100.5", "100.5"),
        ("notional", "1E+30", "1E+30"),
        ("notional", "NaN", "NaN"),
    ],
)
def test_a_size_out_of_bounds_is_invalid_value(field: str, raw: str, provided: str) -> None:
    assert_error(
        error_of(parse_order_request, order(quantity=..., **{field: raw})),
        "INVALID_VALUE",
        {"field": field, "provided": provided},
    )


def test_a_malformed_notional_is_invalid_request() -> None:
    assert_error(
        error_of(parse_order_request, order(quantity=..., notional=[100])),
        "INVALID_REQUEST",
        {"field": "notional"},
    )


def test_a_display_quantity_is_not_allowed_on_an_order_sized_at_fill() -> None:
    assert_error(
        error_of(parse_order_request, order(quantity=..., notional="100", display_quantity="1")),
        "INVALID_VALUE",
        {"field": "display_quantity", "provided": "1"},
    )
