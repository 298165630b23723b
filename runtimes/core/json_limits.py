"""How deep the JSON a client sends may nest. Python's parser stops only at its recursion limit
(a RecursionError, not a ValueError), and whatever walks the value later may stop sooner."""

from __future__ import annotations

from typing import Any, Final

MAX_JSON_DEPTH: Final = 32  # an order body nests 1 level, an ack 2, a schedule's params a few


def nested_deeper_than(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether decoded JSON `value` has more than `limit` levels of arrays and objects (a scalar
    has none). Iterative, so any depth is measured without recursion."""
    pending = [(value, 1)] if isinstance(value, dict | list) else []
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
