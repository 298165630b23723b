"""Decimal fields of the management API (DRF) and the dashboard's forms, parsed by the one decimal
parser of the core (`runtimes.core.decimals`) within their own digits and places.

Out of range (not finite, too large, finer than the places) is 400 INVALID_VALUE naming the field
(dotted for nested ones: `commission.percent`); text that is no number stays a field error.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from rest_framework import serializers

from config.errors import ApiError
from runtimes.core.decimals import PLATFORM_DIGITS, PLATFORM_PLACES, InvalidDecimal, parse_decimal


def bounds_of(field: Any) -> dict[str, int]:
    """`places` and `digits` of parse_decimal from a field's decimal_places and max_digits (the
    platform's where the field leaves them open)."""
    places = PLATFORM_PLACES if field.decimal_places is None else field.decimal_places
    digits = PLATFORM_DIGITS if field.max_digits is None else field.max_digits
    return {"places": places, "digits": digits}


class DecimalField(serializers.DecimalField):
    """DRF's DecimalField, parsed by `parse_decimal`: more decimals than `decimal_places` are
    rounded half even (not refused), anything out of range is ApiError INVALID_VALUE."""

    def to_internal_value(self, data: Any) -> Decimal:
        try:
            return parse_decimal(data, field=self.field_path(), **bounds_of(self))
        except InvalidDecimal as error:
            if error.code != "INVALID_VALUE":
                self.fail("invalid")  # no number at all: a field error like any other
            raise ApiError("INVALID_VALUE", error.message, details=error.details) from None

    def field_path(self) -> str:
        """`initial_cash`, or `commission.percent` for a field of a nested serializer."""
        names, field = [], self
        while field is not None and field.field_name:
            names.append(field.field_name)
            field = field.parent
        return ".".join(reversed(names))


class FormDecimalField(forms.DecimalField):
    """Django's form DecimalField, parsed by `parse_decimal` within its digits and places."""

    def to_python(self, value: Any) -> Decimal | None:
        if value in self.empty_values:
            return None
        try:
            return parse_decimal(str(value), field=self.label or "value", **bounds_of(self))
        except InvalidDecimal as error:
            if error.code == "INVALID_VALUE":
                raise forms.ValidationError(f"This value {error.reason}.", code="invalid") from None
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None
