"""Small pieces every broker provider needs alike (Alpaca, Binance): a bounded memory of what
was already told, and how long a broker asked to be left alone. Framework-free."""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Final

MAX_SEEN: Final = 5_000  # execution ids and event keys a session remembers
RETRY_AFTER_FALLBACK_SECONDS: Final = 60  # a 429 (or a ban) that says not for how long


class Bounded:
    """A set that forgets its oldest members past `limit`."""

    __slots__ = ("_members", "_order")

    def __init__(self, limit: int = MAX_SEEN) -> None:
        self._order: deque[Any] = deque(maxlen=limit)
        self._members: set[Any] = set()

    def add(self, item: Any) -> bool:
        """True when `item` was new."""
        if item in self._members:
            return False
        if len(self._order) == self._order.maxlen:
            self._members.discard(self._order[0])
        self._order.append(item)
        self._members.add(item)
        return True

    def __contains__(self, item: object) -> bool:
        return item in self._members

    def items(self) -> list[Any]:
        return list(self._order)


def int_or_none(value: Any) -> int | None:
    """A header's or a field's whole number ("12", "12.0", 12), or None when absent or not one."""
    if value is None:
        return None
    try:
        return int(float(str(value)))
    except ValueError:
        return None


def retry_after_seconds(response: Any) -> int:
    """Whole seconds to wait from a `requests` response's Retry-After (rounded up, at least 1),
    or RETRY_AFTER_FALLBACK_SECONDS when there is no response or no usable header."""
    headers = getattr(response, "headers", None)
    header = None if headers is None else headers.get("Retry-After")
    try:
        return max(1, math.ceil(float(header))) if header else RETRY_AFTER_FALLBACK_SECONDS
    except ValueError:
        return RETRY_AFTER_FALLBACK_SECONDS
