"""The one parser of decimal input: order fields, session settings, dashboard forms, bar files.

Whatever a client sends becomes a Decimal of bounded size or is refused before any arithmetic:
a text of at most MAX_TEXT_LENGTH characters in plain number syntax, finite, with at most
`digits - places` digits before the point, rounded (half even) to `places` decimals. So no input
can make a later computation overflow or a rendered number larger than the text that was sent
("1e-999999999" once rendered as a gigabyte of zeros).
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Final

from runtimes.core.errors import OrderValidationError

# The platform's precision, that of its decimal columns (risk limits: 30 digits, 12 places).
PLATFORM_DIGITS: Final = 30
PLATFORM_PLACES: Final = 12
MAX_TEXT_LENGTH: Final = 100  # any number within the bounds above fits with room to spare
SHOWN_LENGTH: Final = 40  # of a refused text, this much is echoed back in `details.provided`

_SYNTAX: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE](?P<exponent>[+-]?\d+))?", re.ASCII)
_NOT_FINITE: Final = frozenset({"nan", "snan", "inf", "infinity"})


class InvalidDecimal(OrderValidationError):
    """A decimal input refused: INVALID_REQUEST when it is not a number at all (wrong JSON type,
    not number syntax), INVALID_VALUE when it is one the platform does not take (not finite,
    too long, too large, finer than the precision). `details` name the field; `reason` is the
    message without the field's name, for callers that name the field their own way."""

    def __init__(self, field: str, provided: object, reason: str, *, code: str) -> None:
        details = {"field": field}
        if code == "INVALID_VALUE":
            details["provided"] = _shown(provided)
        super().__init__(f"{field} {reason}", code=code, details=details)
        self.reason = reason


def parse_decimal(
    raw: object,
    *,
    field: str,
    places: int = PLATFORM_PLACES,
    digits: int = PLATFORM_DIGITS,
) -> Decimal:
    """A JSON string or number (or a Decimal) -> a finite Decimal with at most `places` decimals
    and `digits - places` integer digits; more decimals are rounded half even, unless that
    would round a non-zero value to zero. Booleans, other types and text that is not a plain
    number raise InvalidDecimal INVALID_REQUEST; non-finite or out of range values raise
    InvalidDecimal INVALID_VALUE, both with `details.field` = `field`."""
    value = _decimal_of(raw, field)
    if not value.is_finite():
        raise InvalidDecimal(field, raw, "must be a finite decimal", code="INVALID_VALUE")
    if not value:
        return Decimal(0)
    _check_integer_digits(value, raw, field, digits - places)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        rounding = Context(prec=digits + 1, rounding=ROUND_HALF_EVEN)  # + 1: room for a carry
        value = value.quantize(Decimal(1).scaleb(-places), context=rounding)
        if not value:
            raise InvalidDecimal(
                field,
                raw,
                f"is smaller than the precision of {places} decimal places",
                code="INVALID_VALUE",
            )
        _check_integer_digits(value, raw, field, digits - places)  # 99.999 may round to 100.00
    return value


def _check_integer_digits(value: Decimal, raw: object, field: str, most: int) -> None:
    if value.adjusted() >= most:
        raise InvalidDecimal(
            field,
            raw,
            f"must have at most {most} digits before the decimal point",
            code="INVALID_VALUE",
        )


def _decimal_of(raw: object, field: str) -> Decimal:
    if isinstance(raw, Decimal):
        return raw
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise InvalidDecimal(
            field, raw, "must be a decimal string or number", code="INVALID_REQUEST"
        )
    # str() of a float is its shortest round-trip text, i.e. the JSON literal that was sent;
    # an int's text is bounded by the JSON parser (4,300 digits) and checked here like any.
    text = raw.strip() if isinstance(raw, str) else str(raw)
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidDecimal(
            field, raw, f"must have at most {MAX_TEXT_LENGTH} characters", code="INVALID_VALUE"
        )
    number = _SYNTAX.fullmatch(text)
    if number is None:
        if text.lstrip("+-").lower() in _NOT_FINITE:
            raise InvalidDecimal(field, raw, "must be a finite decimal", code="INVALID_VALUE")
        raise InvalidDecimal(field, raw, "is not a decimal number", code="INVALID_REQUEST")
    try:
        return Decimal(text)
    except InvalidOperation:  # an exponent beyond what Decimal holds: far out of any range
        tiny = (number["exponent"] or "").startswith("-")
        reason = "is smaller than the precision" if tiny else "is too large"
        raise InvalidDecimal(field, raw, reason, code="INVALID_VALUE") from None


def _shown(raw: object) -> str:
    """What was sent, as text, cut short: an error never echoes more than SHOWN_LENGTH."""
    text = str(raw)  # a Decimal's str() keeps exponent form, so it is as short as its digits
    return text if len(text) <= SHOWN_LENGTH else text[:SHOWN_LENGTH] + "..."
