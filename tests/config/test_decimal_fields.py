"""The management API's and the dashboard's decimal fields use the core's one decimal parser."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django import forms
from rest_framework import serializers

from config.decimal_fields import DecimalField, FormDecimalField
from config.errors import ApiError


class Costs(serializers.Serializer):
    fixed = DecimalField(max_digits=8, decimal_places=2)


class Run(serializers.Serializer):
    cash = DecimalField(max_digits=8, decimal_places=2)
    costs = Costs(required=False)


class Shares(serializers.Serializer):
    count = DecimalField(max_digits=6, decimal_places=0)


class CashForm(forms.Form):
    cash = FormDecimalField(max_digits=8, decimal_places=2, label="Cash")


def test_a_nested_field_out_of_range_is_invalid_value_with_its_dotted_name():
    with pytest.raises(ApiError) as caught:
        Run(data={"cash": "1", "costs": {"fixed": "1e999999999"}}).is_valid()
    assert (caught.value.error_code, caught.value.details) == (
        "INVALID_VALUE",
        {"field": "costs.fixed", "provided": "1e999999999"},
    )


def test_text_that_is_no_number_stays_a_field_error():
    run = Run(data={"cash": "lots"})
    assert not run.is_valid()
    assert run.errors == {"cash": ["A valid number is required."]}


def test_a_form_rounds_to_its_places_and_refuses_what_is_out_of_range():
    rounded = CashForm(data={"cash": "10.005"})
    assert rounded.is_valid() and rounded.cleaned_data["cash"] == Decimal("10.00")
    assert CashForm(data={"cash": "1e-999999999"}).errors == {
        "cash": ["This value is smaller than the precision of 2 decimal places."]
    }
    assert CashForm(data={"cash": "1e999999999"}).errors == {
        "cash": ["This value must have at most 6 digits before the decimal point."]
    }
    assert CashForm(data={"cash": "NaN"}).errors == {
        "cash": ["This value must be a finite decimal."]
    }
    assert CashForm(data={"cash": "x"}).errors == {"cash": ["Enter a number."]}


def test_a_field_without_decimal_places_rounds_to_whole_numbers():
    shares = Shares(data={"count": "12.5"})
    assert shares.is_valid() and str(shares.validated_data["count"]) == "12"
