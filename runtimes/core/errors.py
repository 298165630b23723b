"""Errors of the trading core: one hierarchy carrying the Trading API's codes.

The shell maps these to HTTP statuses and protocol error frames; it never invents codes itself.
`permanent` says whether retrying the same call can ever succeed.
"""

from __future__ import annotations

from typing import Any


class TradingError(Exception):
    """Base error: a protocol `code`, a human `message`, a `details` object and an HTTP status."""

    code: str = "INTERNAL_ERROR"
    status: int = 500
    permanent: bool = False

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def as_dict(self) -> dict[str, Any]:
        """The error envelope of the Trading API: code, message, details."""
        return {"code": self.code, "message": self.message, "details": dict(self.details)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r}, {self.details!r})"


class OrderValidationError(TradingError):
    """A malformed order request (400): INVALID_REQUEST for a missing field, INVALID_VALUE else."""

    status = 400
    permanent = True

    def __init__(
        self,
        message: str,
        *,
        code: str = "INVALID_VALUE",
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.code = code

    @classmethod
    def missing(cls, field: str) -> OrderValidationError:
        """A required field is absent: INVALID_REQUEST with details.field."""
        return cls(f"{field} is required", code="INVALID_REQUEST", details={"field": field})

    @classmethod
    def invalid(cls, field: str, provided: object, reason: str) -> OrderValidationError:
        """A field is forbidden or out of range: INVALID_VALUE with details.field and provided."""
        return cls(
            f"{field} {reason}",
            code="INVALID_VALUE",
            details={"field": field, "provided": _render(provided)},
        )


class OrderRejected(TradingError):
    """A well-formed order that the exchange refuses for a business reason (422)."""

    code = "ORDER_REJECTED"
    status = 422
    permanent = True

    def __init__(
        self, message: str, *, reject_code: str, details: dict[str, Any] | None = None
    ) -> None:
        merged = {**(details or {}), "reject_code": reject_code}
        super().__init__(message, details=merged)
        self.reject_code = reject_code


class OrderNotFound(TradingError):
    """No order with this id in the session (404)."""

    code = "ORDER_NOT_FOUND"
    status = 404
    permanent = True

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"order not found: {order_id}", details={"resource": "order", "id": order_id}
        )


class PositionNotFound(TradingError):
    """No open position with this id or symbol (404)."""

    code = "POSITION_NOT_FOUND"
    status = 404
    permanent = True

    def __init__(self, position_id: str) -> None:
        super().__init__(
            f"position not found: {position_id}",
            details={"resource": "position", "id": position_id},
        )


class SymbolNotFound(TradingError):
    """The symbol is not part of the session's data (404)."""

    code = "SYMBOL_NOT_FOUND"
    status = 404
    permanent = True

    def __init__(self, symbol: str) -> None:
        super().__init__(f"symbol not found: {symbol}", details={"symbol": symbol})


class OrderNotModifiable(TradingError):
    """The order is terminal (or otherwise cannot change) (409)."""

    code = "ORDER_NOT_MODIFIABLE"
    status = 409
    permanent = True

    def __init__(self, order_id: str, reason: str = "order is not open") -> None:
        super().__init__(f"{reason}: {order_id}", details={"order_id": order_id})


class UnsupportedOperation(TradingError):
    """The runtime cannot do this at all (501)."""

    code = "UNSUPPORTED_OPERATION"
    status = 501
    permanent = True

    def __init__(self, operation: str, provider: str = "backtest") -> None:
        super().__init__(
            f"{operation} is not supported by {provider}",
            details={"operation": operation, "provider": provider},
        )


def _render(value: object) -> object:
    """Decimals go out as normalised strings, as everywhere on the wire."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return format_decimal(value)
    return value


def format_decimal(value: Any) -> str:
    """A normalised decimal string: "1", "185.5", never "1.00" nor exponent form."""
    from decimal import Decimal

    d = value if isinstance(value, Decimal) else Decimal(str(value))
    if d.is_nan() or d.is_infinite():
        return str(d)
    if d == d.to_integral_value():
        return str(d.quantize(Decimal(1)))
    text = format(d.normalize(), "f")
    return text


class RateLimited(TradingError):
    """The broker's request budget of the session's connection is spent (429): retry after
    `retry_after_seconds` (also sent as the Retry-After header)."""

    code = "RATE_LIMITED"
    status = 429

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message, details={"retry_after_seconds": retry_after_seconds})
        self.retry_after_seconds = retry_after_seconds


class BrokerUnavailable(TradingError):
    """The broker cannot be reached, or its circuit breaker is open (503): retry later. The
    message says what happened in a plain sentence and never carries a secret."""

    code = "PROVIDER_UNAVAILABLE"
    status = 503

    def __init__(self, message: str, *, broker: str, retry_after_seconds: int | None = None,
                 ) -> None:
        details: dict[str, Any] = {"broker": broker}
        if retry_after_seconds is not None:
            details["retry_after_seconds"] = retry_after_seconds
        super().__init__(message, details=details)
