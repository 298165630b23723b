"""How deep the JSON a client sends may nest. Python's parser stops only at its recursion limit
(a RecursionError, not a ValueError), and whatever walks the value later may stop sooner."""

from __future__ import annotations

from typing import Any, Final

MAX_JSON_DEPTH: Final = 32  # an order body nests 1 level, an ack 2, a schedule's params a few


def nested_deeper_than(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether decoded JSON `value` has more than `limit` levels of arrays and objects (a scalar
    has none). Level by level, so any depth is measured without recursion."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):  # one pass per level: no recursion, nothing built per scalar
        deeper = []
        for item in level:
            for child in item.values() if isinstance(item, dict) else item:
                if isinstance(child, dict | list):
                    deeper.append(child)
        if not deeper:
            return False
        level = deeper
    return bool(level)  # containers left at depth limit + 1
