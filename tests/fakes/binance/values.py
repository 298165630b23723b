"""Small values of the fake Binance: its error type, Binance's number formats (8-decimal
strings), epoch milliseconds, and kline intervals."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation

EIGHT = Decimal("0.00000001")
ZERO = Decimal(0)

INTERVAL_UNITS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
INTERVALS = (
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w",
    "1M",
)  # fmt: skip


class ApiError(Exception):
    """A Binance error answer: HTTP `status` with {"code", "msg"}."""

    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None):
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = headers or {}
        self.data: dict[str, object] | None = None  # cancelReplace's combined answer

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "msg": self.msg}
        if self.data is not None:
            body["data"] = self.data
        return body


def bad_request(code: int, msg: str) -> ApiError:
    return ApiError(400, code, msg)


def mandatory(name: str) -> ApiError:
    return bad_request(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def amount(value: Decimal) -> str:
    """Binance's way of writing a price or quantity: always 8 decimals ("0.01000000")."""
    return format(value.quantize(EIGHT, ROUND_DOWN), "f")


def parse_decimal(raw: str | None, name: str, *, required: bool = False) -> Decimal | None:
    """A decimal parameter as Binance reads it: plain digits only (1e-05 is illegal)."""
    if raw is None or raw == "":
        if required:
            raise mandatory(name)
        return None
    if not all(ch.isdigit() or ch == "." for ch in raw) or raw.count(".") > 1:
        raise bad_request(
            -1100,
            f"Illegal characters found in parameter '{name}'; "
            "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        )
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise bad_request(-1100, f"Illegal characters found in parameter '{name}'.") from None
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > 8 and value != value.quantize(EIGHT):
        raise bad_request(-1111, f"Parameter '{name}' has too much precision.")
    return value


def parse_int(raw: str | None, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise bad_request(-1100, f"Illegal characters found in parameter '{name}'.") from None


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_millis(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def interval_ms(interval: str) -> int:
    """The length of a kline interval; "1M" is taken as 30 days (only its name matters here)."""
    if interval == "1M":
        return 30 * INTERVAL_UNITS["d"]
    return int(interval[:-1]) * INTERVAL_UNITS[interval[-1]]


def steps_of(value: Decimal, step: Decimal) -> bool:
    """Whether `value` is a whole number of `step`s (a step of 0 disables the check)."""
    return step == 0 or value % step == 0
