"""The nesting bound of client JSON: measured without recursion, exact at the limit."""

from __future__ import annotations

import json

import pytest

from runtimes.core.json_limits import MAX_JSON_DEPTH, nested_deeper_than


@pytest.mark.parametrize(
    ("value", "limit", "deeper"),
    [
        (1, 0, False),
        ("[[[", 0, False),
        ([], 0, True),
        ([], 1, False),
        ({"a": [1, {"b": None}]}, 2, True),
        ({"a": [1, {"b": None}]}, 3, False),
        ([{}, [[]]], 2, True),
    ],
)
def test_levels_of_arrays_and_objects_are_counted(value: object, limit: int, deeper: bool) -> None:
    assert nested_deeper_than(value, limit) is deeper


def test_the_platforms_limit_is_32_levels_and_any_depth_is_measured() -> None:
    assert not nested_deeper_than(json.loads("[" * 32 + "]" * 32))
    assert nested_deeper_than(json.loads("[" * 33 + "]" * 33))
    deep: list[object] = []
    for _ in range(100_000):  # deeper than json itself would build or recursion could walk
        deep = [deep]
    assert MAX_JSON_DEPTH == 32 and nested_deeper_than(deep)
