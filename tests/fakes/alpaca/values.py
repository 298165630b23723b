"""Small value helpers of the fake Alpaca: Alpaca's text forms of numbers and times, parsing of
the request fields (strings or JSON numbers, as the real API accepts both), and the API error."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

# Stable ids for a symbol's asset, so the same symbol has the same asset_id in every run.
_ASSET_NAMESPACE = uuid.UUID("6f1c2d3e-0000-4000-8000-a1a2ca000000")


class ApiError(Exception):
    """An Alpaca error answer: HTTP `status` with the JSON `body` (code and message, or only a
    message for 401)."""

    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = (
            {"message": message}
            if code is None
            else {
                "code": code,
                "message": message,
            }
        )


def unprocessable(message: str, code: int = 42210000) -> ApiError:
    """Alpaca's 422 for an order it will not take."""
    return ApiError(422, message, code)


def not_found(message: str) -> ApiError:
    return ApiError(404, message, 40410000)


def forbidden(message: str) -> ApiError:
    return ApiError(403, message, 40310000)


def asset_id(symbol: str) -> str:
    return str(uuid.uuid5(_ASSET_NAMESPACE, symbol))


def text(value: Decimal | None) -> str | None:
    """Alpaca's string form of a number: plain, no exponent, no trailing zeros ("190.01", "2")."""
    if value is None:
        return None
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, microseconds kept (Alpaca sends up to nanoseconds)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_decimal(value: Any, field: str, *, required: bool = False) -> Decimal | None:
    """A number field of a request body: a JSON string ("1.5") or number (1.5); None if absent.

    Floats go through their shortest repr, as the SDK's floats were meant (1.5 -> Decimal("1.5")).
    """
    if value is None:
        if required:
            raise unprocessable(f"{field} is required", 40010001)
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise unprocessable(f"invalid {field}", 40010001)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise unprocessable(f"invalid {field}", 40010001) from None
    if not number.is_finite():
        raise unprocessable(f"invalid {field}", 40010001)
    return number


def decimals_of(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def check_price_increment(value: Decimal, field: str) -> None:
    """Alpaca refuses sub-penny prices: at most 2 decimals at or above $1, 4 below."""
    allowed = 2 if value >= 1 else 4
    if decimals_of(value) > allowed:
        raise unprocessable(
            f"invalid {field} {text(value)}. sub-penny increment does not fulfill minimum "
            "pricing criteria"
        )


def parse_time(value: str, field: str) -> datetime:
    """A time query parameter: RFC 3339 (with Z or an offset), or a date, or naive UTC (what the
    SDK sends after converting aware datetimes)."""
    raw = value.strip()
    try:
        if len(raw) == 10:
            return datetime.fromisoformat(raw).replace(tzinfo=UTC)
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, f"invalid {field}: {value}", 42210000) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def truthy(value: str | None) -> bool:
    """requests sends Python True as "True"; Alpaca accepts true/True."""
    return value is not None and value.strip().lower() in ("true", "1", "yes")
