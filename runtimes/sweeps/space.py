"""Parameter spaces of sweeps: a grid, or a seeded random sample of points, expanded into the
parameter objects each point's backtest gets. Plain Python: values in, points out, errors as
`SpaceError` with the field they concern (the services map them to the API's envelope)."""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_POINTS = 1000  # points of one sweep (grid product or random samples)
MAX_PARAMETERS = 8  # parameters swept at once
MAX_FIXED = 32  # parameters given the same value at every point
MAX_TEXT = 100  # characters of a string value
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
GRID, RANDOM = "grid", "random"

Value = bool | int | float | str


class SpaceError(ValueError):
    """A parameter space that cannot be expanded: `field` names where (`parameters.fast`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


@dataclass(frozen=True)
class Space:
    """A validated space: each swept parameter's values (grid) or its range or choices (random),
    and the fixed parameters every point shares."""

    mode: str
    axes: dict[str, Any]  # name -> list of values, or ("range", low, high) for random ranges
    fixed: dict[str, Value]
    samples: int | None = None
    seed: int = 0

    def points(self) -> list[dict[str, Value]]:
        """Every point's parameters, fixed ones included, in a stable order."""
        names = list(self.axes)
        if self.mode == GRID:
            combos = itertools.product(*(self.axes[n] for n in names))
            return [{**self.fixed, **dict(zip(names, combo, strict=True))} for combo in combos]
        return [{**self.fixed, **point} for point in self._sample(names)]

    def _sample(self, names: list[str]) -> list[dict[str, Value]]:
        # Distinct points, drawn in order from one seeded generator: the same seed and space
        # give the same points. A space with fewer distinct points than asked gives them all.
        rng = random.Random(self.seed)
        wanted = self.samples or 0
        seen: dict[tuple[Value, ...], dict[str, Value]] = {}
        for _ in range(wanted * 20):
            point = {n: _draw(rng, self.axes[n]) for n in names}
            seen.setdefault(tuple(point.values()), point)
            if len(seen) == wanted:
                break
        return list(seen.values())


def parse_space(*, mode: str, parameters: Any, fixed: Any = None, samples: Any = None,
                seed: Any = None) -> Space:
    """Validate a space as the API and the form give it. `parameters` maps each swept name to a
    list of values, or (grid) {"start", "stop", "step"} with `stop` included, or (random)
    {"min", "max"} (integers when both are). Raises SpaceError for anything out of bounds:
    names, value types, more than MAX_POINTS points, a name both swept and fixed."""
    if mode not in (GRID, RANDOM):
        raise SpaceError("mode", "Must be 'grid' or 'random'.")
    if not isinstance(parameters, Mapping) or not parameters:
        raise SpaceError("parameters", "Give at least one parameter to sweep, as an object "
                         "like {\"fast\": [5, 10, 20]}.")
    if len(parameters) > MAX_PARAMETERS:
        raise SpaceError("parameters", f"At most {MAX_PARAMETERS} parameters can be swept at "
                         f"once; {len(parameters)} were given.")
    fixed_values = _fixed(fixed)
    axes: dict[str, Any] = {}
    for name, spec in parameters.items():
        field = f"parameters.{name}"
        _check_name(name, field)
        if name in fixed_values:
            raise SpaceError(field, f"'{name}' is both swept and fixed.")
        axes[name] = _axis(spec, field, mode)
    if mode == GRID:
        total = math.prod(len(values) for values in axes.values())
        if total > MAX_POINTS:
            raise SpaceError("parameters", f"The grid has {total:,} points; at most "
                             f"{MAX_POINTS:,} are allowed.")
        return Space(GRID, axes, fixed_values)
    count = _samples(samples)
    return Space(RANDOM, axes, fixed_values, samples=count, seed=_seed(seed))


def _fixed(fixed: Any) -> dict[str, Value]:
    if fixed in (None, ""):
        return {}
    if not isinstance(fixed, Mapping):
        raise SpaceError("fixed", "Must be an object of parameter names and values.")
    if len(fixed) > MAX_FIXED:
        raise SpaceError("fixed", f"At most {MAX_FIXED} fixed parameters.")
    values = {}
    for name, value in fixed.items():
        _check_name(name, f"fixed.{name}")
        values[name] = _value(value, f"fixed.{name}")
    return values


def _check_name(name: Any, field: str) -> None:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise SpaceError(field, "A parameter name is a letter or _ then letters, digits or _, "
                         "at most 40 characters.")


def _value(value: Any, field: str) -> Value:
    if isinstance(value, bool | int):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**15:
            raise SpaceError(field, "Integers are at most 10^15 in size.")
        return value
    if isinstance(value, float | Decimal):
        number = float(value)
        if not math.isfinite(number) or abs(number) > 1e15:
            raise SpaceError(field, "Numbers are finite and at most 10^15 in size.")
        return number
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise SpaceError(field, f"Strings are at most {MAX_TEXT} characters.")
        return value
    raise SpaceError(field, "Values are numbers, strings or booleans.")


def _axis(spec: Any, field: str, mode: str) -> Any:
    if isinstance(spec, list):
        if not spec:
            raise SpaceError(field, "Give at least one value.")
        if len(spec) > MAX_POINTS:
            raise SpaceError(field, f"At most {MAX_POINTS:,} values.")
        return list(dict.fromkeys(_value(v, field) for v in spec))
    if not isinstance(spec, Mapping):
        raise SpaceError(field, "Give a list of values, or a range as an object.")
    if mode == GRID:
        return _stepped(spec, field)
    return _range(spec, field)


def _number(spec: Mapping[str, Any], key: str, field: str) -> Decimal:
    raw = spec.get(key)
    if isinstance(raw, bool) or not isinstance(raw, int | float | str | Decimal):
        raise SpaceError(field, f"'{key}' must be a number.")
    try:
        number = Decimal(str(raw))
    except InvalidOperation:
        raise SpaceError(field, f"'{key}' must be a number.") from None
    if not number.is_finite() or abs(number) > 10**15:
        raise SpaceError(field, f"'{key}' must be a finite number at most 10^15 in size.")
    return number


def _stepped(spec: Mapping[str, Any], field: str) -> list[Value]:
    if set(spec) != {"start", "stop", "step"}:
        raise SpaceError(field, "A grid range is {\"start\", \"stop\", \"step\"} (stop "
                         "included).")
    start, stop, step = (_number(spec, k, field) for k in ("start", "stop", "step"))
    if step <= 0:
        raise SpaceError(field, "'step' must be positive.")
    if stop < start:
        raise SpaceError(field, "'stop' must not be below 'start'.")
    count = int((stop - start) / step) + 1
    if count > MAX_POINTS:
        raise SpaceError(field, f"The range has {count:,} values; at most {MAX_POINTS:,}.")
    integral = all(x == x.to_integral_value() for x in (start, step))
    # Decimal steps, so 0.1 + 0.2 is 0.3; integers stay integers.
    return [int(start + i * step) if integral else float(start + i * step)
            for i in range(count)]


def _range(spec: Mapping[str, Any], field: str) -> tuple[str, Value, Value]:
    if set(spec) != {"min", "max"}:
        raise SpaceError(field, "A random range is {\"min\", \"max\"} (both included).")
    low, high = _number(spec, "min", field), _number(spec, "max", field)
    if high < low:
        raise SpaceError(field, "'max' must not be below 'min'.")
    integral = all(isinstance(spec[k], int) for k in ("min", "max"))
    return ("range", int(low), int(high)) if integral else ("range", float(low), float(high))


def _draw(rng: random.Random, axis: Any) -> Value:
    if isinstance(axis, tuple):
        _, low, high = axis
        if isinstance(low, int) and isinstance(high, int):
            return rng.randint(low, high)
        return round(rng.uniform(low, high), 6)
    choice: Value = rng.choice(axis)
    return choice


def _samples(samples: Any) -> int:
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_POINTS:
        raise SpaceError("samples", f"A random sweep needs 'samples': 1 to {MAX_POINTS:,}.")
    return samples


def _seed(seed: Any) -> int:
    if seed in (None, ""):
        return 0
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise SpaceError("seed", "The seed is an integer from 0 to 2^32 - 1.")
    return seed
