"""Parameter spaces: grids of lists and stepped ranges, seeded random samples, and the bounds
(names, values, point counts) with the field each refusal names."""

from __future__ import annotations

import pytest

from runtimes.sweeps.space import MAX_POINTS, SpaceError, parse_space


def test_a_grid_is_the_product_of_its_lists_and_ranges_with_the_fixed_values_in_every_point():
    space = parse_space(mode="grid", parameters={"fast": [5, 10], "slow": {
        "start": 20, "stop": 40, "step": 10}}, fixed={"quantity": "0.5"})

    assert space.points() == [
        {"quantity": "0.5", "fast": 5, "slow": 20}, {"quantity": "0.5", "fast": 5, "slow": 30},
        {"quantity": "0.5", "fast": 5, "slow": 40}, {"quantity": "0.5", "fast": 10, "slow": 20},
        {"quantity": "0.5", "fast": 10, "slow": 30}, {"quantity": "0.5", "fast": 10, "slow": 40}]


def test_a_decimal_step_does_not_drift_and_stop_is_included():
    space = parse_space(mode="grid", parameters={"k": {"start": "0.1", "stop": "0.5",
                                                       "step": "0.1"}})

    assert [p["k"] for p in space.points()] == [0.1, 0.2, 0.3, 0.4, 0.5]


def test_repeated_values_of_a_list_count_once():
    assert parse_space(mode="grid", parameters={"fast": [5, 5, 10]}).points() == [
        {"fast": 5}, {"fast": 10}]


def test_a_random_sample_is_the_same_for_the_same_seed_and_other_for_another():
    args = {"mode": "random", "parameters": {"fast": {"min": 2, "max": 50},
                                             "slow": {"min": 0.5, "max": 1.5},
                                             "kind": ["a", "b"]}, "samples": 12}

    first = parse_space(**args, seed=7).points()
    assert first == parse_space(**args, seed=7).points()
    assert first != parse_space(**args, seed=8).points()
    assert len(first) == 12 and len({tuple(p.values()) for p in first}) == 12
    assert all(isinstance(p["fast"], int) and 2 <= p["fast"] <= 50 for p in first)
    assert all(0.5 <= p["slow"] <= 1.5 and p["kind"] in ("a", "b") for p in first)


def test_a_random_sample_larger_than_the_space_gives_each_distinct_point_once():
    space = parse_space(mode="random", parameters={"fast": [1, 2, 3]}, samples=10, seed=1)

    assert sorted(p["fast"] for p in space.points()) == [1, 2, 3]


@pytest.mark.parametrize(("kwargs", "field", "message"), [
    ({"mode": "spiral", "parameters": {"a": [1]}}, "mode", "Must be 'grid' or 'random'."),
    ({"mode": "grid", "parameters": {}}, "parameters",
     "Give at least one parameter to sweep, as an object like {\"fast\": [5, 10, 20]}."),
    ({"mode": "grid", "parameters": {"9lives": [1]}}, "parameters.9lives",
     "A parameter name is a letter or _ then letters, digits or _, at most 40 characters."),
    ({"mode": "grid", "parameters": {"a": []}}, "parameters.a", "Give at least one value."),
    ({"mode": "grid", "parameters": {"a": [[1]]}}, "parameters.a",
     "Values are numbers, strings or booleans."),
    ({"mode": "grid", "parameters": {"a": ["x" * 101]}}, "parameters.a",
     "Strings are at most 100 characters."),
    ({"mode": "grid", "parameters": {"a": {"start": 1, "stop": 5, "step": 0}}}, "parameters.a",
     "'step' must be positive."),
    ({"mode": "grid", "parameters": {"a": {"start": 5, "stop": 1, "step": 1}}}, "parameters.a",
     "'stop' must not be below 'start'."),
    ({"mode": "grid", "parameters": {"a": {"start": 0, "stop": 10**6, "step": 1}}},
     "parameters.a", "The range has 1,000,001 values; at most 1,000."),
    ({"mode": "grid", "parameters": {"a": {"min": 1, "max": 2}}}, "parameters.a",
     "A grid range is {\"start\", \"stop\", \"step\"} (stop included)."),
    ({"mode": "grid", "parameters": {"a": list(range(40)), "b": list(range(30))}},
     "parameters", "The grid has 1,200 points; at most 1,000 are allowed."),
    ({"mode": "grid", "parameters": {"a": [1]}, "fixed": {"a": 2}}, "parameters.a",
     "'a' is both swept and fixed."),
    ({"mode": "random", "parameters": {"a": {"min": 1, "max": 2}}}, "samples",
     "A random sweep needs 'samples': 1 to 1,000."),
    ({"mode": "random", "parameters": {"a": {"min": 1, "max": 2}}, "samples": 1001},
     "samples", "A random sweep needs 'samples': 1 to 1,000."),
    ({"mode": "random", "parameters": {"a": {"min": 1, "max": 2}}, "samples": 5, "seed": -1},
     "seed", "The seed is an integer from 0 to 2^32 - 1."),
    ({"mode": "random", "parameters": {"a": {"min": "nan", "max": 2}}, "samples": 5},
     "parameters.a", "'min' must be a finite number at most 10^15 in size."),
])
def test_a_bad_space_is_refused_naming_its_field(kwargs, field, message):
    with pytest.raises(SpaceError) as refused:
        parse_space(**kwargs)

    assert (refused.value.field, refused.value.message) == (field, message)


def test_the_largest_grid_allowed_has_max_points():
    space = parse_space(mode="grid", parameters={"a": list(range(40)), "b": list(range(25))})

    assert len(space.points()) == MAX_POINTS
