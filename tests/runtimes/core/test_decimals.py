"""The one decimal parser: bounded text, digits and exponent, finite, rounded to the precision."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtimes.core.decimals import InvalidDecimal, parse_decimal


def refusal(raw: object, **bounds: int) -> InvalidDecimal:
    with pytest.raises(InvalidDecimal) as caught:
        parse_decimal(raw, field="cash", **bounds)
    return caught.value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("185.50", "185.50"),
        (" 2 ", "2"),
        ("+1.5", "1.5"),
        (".5", "0.5"),
        ("1E+3", "1E+3"),
        (7, "7"),
        (Decimal("0.25"), "0.25"),
        ("0e-999999999", "0"),
        ("-0", "0"),
    ],
)
def test_plain_numbers_keep_their_value_and_form(raw: object, expected: str) -> None:
    assert str(parse_decimal(raw, field="cash")) == expected


def test_places_and_digits_are_the_callers_bounds() -> None:
    assert str(parse_decimal("1.23456", field="cash", places=4, digits=8)) == "1.2346"
    assert str(parse_decimal("9999.5", field="cash", places=4, digits=8)) == "9999.5"
    error = refusal("10000", places=4, digits=8)
    assert (error.code, error.message, error.details) == (
        "INVALID_VALUE",
        "cash must have at most 4 digits before the decimal point",
        {"field": "cash", "provided": "10000"},
    )


def test_a_value_that_rounds_up_past_the_integer_digits_is_refused() -> None:
    error = refusal("9.995", places=2, digits=3)
    assert (error.code, error.reason) == (
        "INVALID_VALUE",
        "must have at most 1 digits before the decimal point",
    )
    assert str(parse_decimal("9.994", field="cash", places=2, digits=3)) == "9.99"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("1e-999999999", "is smaller than the precision of 12 decimal places"),
        ("1e-99999999999999999999", "is smaller than the precision"),
        ("1e999999999", "must have at most 18 digits before the decimal point"),
        ("1e99999999999999999999", "is too large"),
        ("-Infinity", "must be a finite decimal"),
        (Decimal("NaN"), "must be a finite decimal"),
    ],
)
def test_out_of_range_values_are_invalid_value(raw: object, reason: str) -> None:
    error = refusal(raw)
    assert (error.code, error.status, error.reason) == ("INVALID_VALUE", 400, reason)
    assert error.details == {"field": "cash", "provided": str(raw)}


@pytest.mark.parametrize("raw", [True, None, [1], {"v": 1}, "", "one", "1.2.3", "1e5.5"])
def test_what_is_not_a_number_is_invalid_request_without_echo(raw: object) -> None:
    error = refusal(raw)
    assert (error.code, error.details) == ("INVALID_REQUEST", {"field": "cash"})


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=120), st.floats(), st.integers(), st.decimals()))
def test_any_input_is_a_bounded_decimal_or_a_refusal(raw: object) -> None:
    try:
        value = parse_decimal(raw, field="cash")
    except InvalidDecimal as error:
        assert len(str(error.details.get("provided", ""))) <= 43
        return
    assert value.is_finite()
    assert len(format(value, "f")) <= 32  # sign, 18 integer digits, point, 12 decimals
