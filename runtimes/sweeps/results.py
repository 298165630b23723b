"""Reads of a sweep's results: each point with its backtest's state and headline metrics, the
sweep's progress, the best points by a metric, the walk-forward's in-sample vs out-of-sample
table, and a heatmap of a metric over two parameters. Shared by the API and the dashboard."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Count

from runtimes.models import State
from runtimes.sweeps.models import Phase, Sweep, SweepPoint, SweepState

# The metrics a sweep ranks and maps by (as SessionResult.metrics names them), with labels.
METRICS = {
    "total_return": "Return", "sharpe": "Sharpe", "sortino": "Sortino", "cagr": "CAGR",
    "calmar": "Calmar", "max_drawdown": "Max drawdown", "win_rate": "Win rate",
    "profit_factor": "Profit factor", "expectancy": "Expectancy",
    "number_of_trades": "Trades",
}
LOWER_IS_BETTER = frozenset({"max_drawdown"})
SHOWN = ("total_return", "sharpe", "max_drawdown", "number_of_trades")  # the table's columns
AGGREGATES = ("best", "mean")
MAX_DISTINCT = 25  # values of a heatmap axis shown one by one; more are grouped into
BUCKETS = 20  # equal-width ranges (a 1,000-point random sweep would otherwise be 1,000 x 1,000)
PENDING = "pending"  # a point the quota has not let start yet (no session)
DROPPED = "dropped"  # a point that never started: its sweep was cancelled first


def point_rows(sweep: Sweep) -> list[dict[str, Any]]:
    """Every point in order: id, index, phase, params, its session's id, state and failure
    reason, and its metrics (those of METRICS; empty until it completed). One query, reading
    only the metrics of each result."""
    values = sweep.points.order_by("phase", "index").values(
        "pk", "index", "phase", "params", "checks_id", "session_id", "session__state",
        "session__failure_reason", "session__result__metrics", "failure_reason")
    return [_row(v, sweep) for v in values]


def _row(v: dict[str, Any], sweep: Sweep) -> dict[str, Any]:
    metrics = v["session__result__metrics"] or {}
    state = _state(v["session__state"], v["failure_reason"], sweep.state)
    return {
        "point_id": v["pk"], "index": v["index"], "phase": v["phase"], "params": v["params"],
        "checks": v["checks_id"], "session": None if v["session_id"] is None
        else str(v["session_id"]), "state": state,
        "failure_reason": v["session__failure_reason"] or v["failure_reason"],
        "metrics": {k: metrics.get(k) for k in METRICS} if state == State.COMPLETED else {},
    }


def _state(session_state: str | None, failure_reason: str, sweep_state: str) -> str:
    # A point's backtest's state; without one, failed (refused), dropped or pending.
    if session_state:
        return session_state
    if failure_reason:
        return State.FAILED
    return DROPPED if sweep_state == SweepState.CANCELLED else PENDING


def progress(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Points by where they are: total, completed, failed, cancelled (dropped included),
    running (a worker hosts it), queued (waiting for a worker) and pending (waiting for the
    quota to let it start)."""
    counts = defaultdict(int)
    for row in rows:
        counts[_bucket(row["state"])] += 1
    return {"total": len(rows), **{k: counts[k] for k in (
        "completed", "failed", "cancelled", "running", "queued", "pending")}}


def progress_by_sweep(sweeps: Sequence[Sweep]) -> dict[Any, dict[str, int]]:
    """`progress` of each of `sweeps` by its id, counted in one aggregate query (a list page
    would otherwise read every point's metrics)."""
    counts = (SweepPoint.objects.filter(sweep__in=[s.pk for s in sweeps])
              .values("sweep_id", "session__state", "failure_reason").annotate(n=Count("pk"))
              .order_by())
    sweep_state = {s.pk: s.state for s in sweeps}
    states: dict[Any, list[str]] = {s.pk: [] for s in sweeps}
    for count in counts:
        state = _state(count["session__state"], count["failure_reason"],
                       sweep_state[count["sweep_id"]])
        states[count["sweep_id"]] += [state] * count["n"]
    return {pk: progress([{"state": state} for state in listed])
            for pk, listed in states.items()}


def _bucket(state: str) -> str:
    if state in (State.WAITING, State.RUNNING):
        return "running"
    if state in (State.CREATED, State.QUEUED):
        return "queued"
    return "cancelled" if state == DROPPED else state


def number(value: Any) -> Decimal | None:
    """A metric as a Decimal (they are stored as strings), None when undefined."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def rank_key(row: dict[str, Any], metric: str) -> tuple[bool, Decimal, int]:
    """Sort key putting the best point by `metric` first (undefined values last)."""
    value = number(row["metrics"].get(metric))
    if value is None:
        return True, Decimal(0), row["index"]
    return False, value if metric in LOWER_IS_BETTER else -value, row["index"]


def best_points(rows: Iterable[dict[str, Any]], metric: str, *, count: int = 5,
                phase: str | None = None) -> list[dict[str, Any]]:
    """The `count` best completed points by `metric` (of `phase`; the ranking phase when
    None: in-sample for a walk-forward, else the whole range)."""
    rows = list(rows)
    wanted = phase or (Phase.IN_SAMPLE if any(r["phase"] == Phase.IN_SAMPLE for r in rows)
                       else Phase.FULL)
    ranked = [r for r in rows if r["phase"] == wanted and r["state"] == State.COMPLETED
              and number(r["metrics"].get(metric)) is not None]
    return sorted(ranked, key=lambda r: rank_key(r, metric))[:count]


def walk_forward(rows: Sequence[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Each out-of-sample point beside the in-sample point it checks: params, both sessions
    and states, and `metric` in and out of sample."""
    by_id = {r["point_id"]: r for r in rows}
    pairs = []
    for oos in (r for r in rows if r["phase"] == Phase.OUT_OF_SAMPLE):
        ins = by_id.get(oos["checks"])
        if ins is None:
            continue
        pairs.append({"params": oos["params"], "in_sample": ins["metrics"].get(metric),
                      "out_of_sample": oos["metrics"].get(metric),
                      "in_sample_session": ins["session"], "out_of_sample_session":
                      oos["session"], "state": oos["state"]})
    return pairs


def heatmap(rows: Iterable[dict[str, Any]], *, x: str, y: str, metric: str,
            aggregate: str = "best", phase: str | None = None) -> dict[str, Any]:
    """`metric` over parameters `x` and `y`: a cell per pair of values their points took;
    where other parameters vary, a cell aggregates its points (`best` by the metric's
    direction, or their `mean`). A numeric axis of more than MAX_DISTINCT values (a random
    sweep over ranges) is grouped into BUCKETS equal-width ranges, labelled "low to high", so
    the map stays at most BUCKETS x BUCKETS. Cells without a completed point are None."""
    rows = [r for r in rows if r["phase"] == (phase or _ranking_phase(rows))
            and r["state"] == State.COMPLETED and x in r["params"] and y in r["params"]]
    x_values = [_key(r["params"][x]) for r in rows]
    y_values = [_key(r["params"][y]) for r in rows]
    xs, x_of = _axis(x_values)
    ys, y_of = _axis(y_values)
    cells: dict[tuple[Any, Any], list[Decimal]] = defaultdict(list)
    for row in rows:
        value = number(row["metrics"].get(metric))
        if value is not None:
            cells[(x_of(_key(row["params"][x])), y_of(_key(row["params"][y])))].append(value)
    grid = [[_combine(cells.get((xv, yv)), metric, aggregate) for xv in xs] for yv in ys]
    values = [v for line in grid for v in line if v is not None]
    return {"x": x, "y": y, "metric": metric, "aggregate": aggregate,
            "grouped": len(xs) < len(set(x_values)) or len(ys) < len(set(y_values)),
            "xs": xs, "ys": ys, "cells": [[_text(v) for v in line] for line in grid],
            "min": _text(min(values, default=None)), "max": _text(max(values, default=None))}


def _axis(values: list[Any]) -> tuple[list[Any], Callable[[Any], Any]]:
    """An axis's labels and the label of each value: the distinct values, or (numbers, more
    than MAX_DISTINCT of them) BUCKETS equal-width ranges, the last one closed."""
    distinct = sorted(set(values), key=_order)
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in distinct)
    if len(distinct) <= MAX_DISTINCT or not numeric:
        return distinct, lambda value: value
    low, high = Decimal(str(distinct[0])), Decimal(str(distinct[-1]))
    width = (high - low) / BUCKETS
    edges = [low + width * i for i in range(BUCKETS)] + [high]
    labels = [f"{_edge(edges[i])} to {_edge(edges[i + 1])}" for i in range(BUCKETS)]

    def bucket(value: Any) -> str:
        index = int((Decimal(str(value)) - low) / width)
        return labels[min(index, BUCKETS - 1)]
    return labels, bucket


def _edge(value: Decimal) -> str:
    # Four significant digits are enough to tell twenty buckets apart.
    return format(Decimal(f"{value:.4g}").normalize(), "f")


def _ranking_phase(rows: Sequence[dict[str, Any]]) -> str:
    return Phase.IN_SAMPLE if any(r["phase"] == Phase.IN_SAMPLE for r in rows) else Phase.FULL


def _key(value: Any) -> Any:
    return value if isinstance(value, int | float | str | bool) else str(value)


def _order(value: Any) -> tuple[int, Any]:
    # Numbers by value, then strings: a parameter may mix them.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return 0, value
    return 1, str(value)


def _combine(values: list[Decimal] | None, metric: str, aggregate: str) -> Decimal | None:
    if not values:
        return None
    if aggregate == "mean":
        return sum(values, Decimal(0)) / len(values)
    return min(values) if metric in LOWER_IS_BETTER else max(values)


def _text(value: Decimal | None) -> str | None:
    if value is None:
        return None
    rounded = value.quantize(Decimal("0.000001")).normalize()
    return format(rounded, "f")


def swept_names(sweep: Sweep) -> list[str]:
    """The swept parameters' names, in the order they were given."""
    return list((sweep.space or {}).get("parameters", {}))
