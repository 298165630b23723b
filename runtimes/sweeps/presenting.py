"""How a sweep is shown, by the API and the dashboard alike: its settings, progress, points,
best points, walk-forward pairs and a heatmap, chosen by `SweepView` (metric, x, y, aggregate)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from runtimes.core.wire import decimal_str
from runtimes.sweeps import results
from runtimes.sweeps.models import Sweep
from runtimes.sweeps.services import invalid

BEST_COUNT = 5


@dataclass(frozen=True)
class SweepView:
    """What a reader asked to see: the metric ranked and mapped, and the heatmap's axes."""

    metric: str
    x: str | None
    y: str | None
    aggregate: str = "best"


def heatmap_request(sweep: Sweep, query: Mapping[str, Any]) -> SweepView:
    """The view asked in a query string; defaults: the sweep's metric, its first two swept
    parameters, `best`. Raises ApiError VALIDATION_ERROR naming a bad one."""
    names = results.swept_names(sweep)
    metric = query.get("metric") or sweep.metric
    if metric not in results.METRICS:
        raise invalid("metric", f"Unknown metric; one of {', '.join(results.METRICS)}.")
    x = query.get("x") or (names[0] if names else None)
    y = query.get("y") or (names[1] if len(names) > 1 else None)
    for field, name in (("x", x), ("y", y)):
        if name is not None and name not in names:
            raise invalid(field, f"Not a swept parameter; one of {', '.join(names)}.")
    aggregate = query.get("aggregate") or "best"
    if aggregate not in results.AGGREGATES:
        raise invalid("aggregate", "One of best, mean.")
    return SweepView(metric, x, y, aggregate)


def sweep_json(sweep: Sweep, *, detail: bool, view: SweepView | None = None,
               progress: dict[str, int] | None = None) -> dict[str, Any]:
    """The management API's view of a sweep; `detail` adds its points, the best points by the
    view's metric, the walk-forward pairs and (two swept parameters) the heatmap. A list gives
    `progress` (results.progress_by_sweep) so that no point is read."""
    rows = results.point_rows(sweep) if detail or progress is None else []
    body = {
        "id": str(sweep.id), "workspace": str(sweep.workspace_id), "name": sweep.name,
        "state": sweep.state, "strategy": str(sweep.version.strategy_id),
        "version": sweep.version.number, "version_id": str(sweep.version_id),
        "dataset": str(sweep.dataset_id), "symbols": sweep.symbols,
        "from": _stamp(sweep.start), "to": _stamp(sweep.end),
        "initial_cash": decimal_str(Decimal(sweep.initial_cash)),
        "commission": sweep.commission,
        "slippage_bps": decimal_str(Decimal(sweep.slippage_bps)),
        "space": sweep.space, "metric": sweep.metric,
        "walk_forward": None if sweep.split_at is None else {
            "split_at": _stamp(sweep.split_at), "top": sweep.oos_top},
        "progress": progress if progress is not None else results.progress(rows),
        "created_at": _stamp(sweep.created_at), "finished_at": _stamp(sweep.finished_at),
    }
    if not detail:
        return body
    view = view or heatmap_request(sweep, {})
    body["points"] = [_point_json(r) for r in rows]
    body["best"] = {"metric": view.metric,
                    "points": [_point_json(r) for r in results.best_points(
                        rows, view.metric, count=BEST_COUNT)]}
    body["walk_forward_results"] = results.walk_forward(rows, view.metric)
    body["heatmap"] = (None if view.x is None or view.y is None else results.heatmap(
        rows, x=view.x, y=view.y, metric=view.metric, aggregate=view.aggregate))
    return body


def _point_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("index", "phase", "params", "session", "state",
                                "failure_reason", "metrics")}


def _stamp(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


# -- the dashboard's page --------------------------------------------------------------------------

HEAT_LEVELS = 10  # colour classes heat-0 (worst) .. heat-9 (best) in static/css/sweeps.css
PERCENT_METRICS = frozenset({"total_return", "cagr", "max_drawdown", "win_rate"})


def page_context(sweep: Sweep, rows: list[dict[str, Any]], view: SweepView) -> dict[str, Any]:
    """What templates/runtimes/sweep_detail.html shows: progress, the table (every point,
    with sort keys), the best points, the walk-forward pairs and the heatmap's cells."""
    names = results.swept_names(sweep)
    table = [_table_row(r, names) for r in rows]
    best = results.best_points(rows, view.metric, count=BEST_COUNT)
    heat = (None if view.x is None or view.y is None else results.heatmap(
        rows, x=view.x, y=view.y, metric=view.metric, aggregate=view.aggregate))
    progress = results.progress(rows)
    ended = progress["completed"] + progress["failed"] + progress["cancelled"]
    return {
        "names": names, "table": table, "progress": progress,
        "percent_done": ended * 100 // progress["total"] if progress["total"] else 0,
        "best": [_table_row(r, names) | {"value": show(view.metric, r["metrics"].get(
            view.metric))} for r in best],
        "pairs": [p | {"in_text": show(view.metric, p["in_sample"]),
                       "out_text": show(view.metric, p["out_of_sample"])}
                  for p in results.walk_forward(rows, view.metric)],
        "heatmap": None if heat is None else _heat_cells(heat),
        "metric_label": results.METRICS[view.metric],
        "metrics": list(results.METRICS.items()), "aggregates": results.AGGREGATES,
        "shown": [(k, results.METRICS[k]) for k in results.SHOWN],
    }


def show(metric: str, value: Any) -> str:
    """A metric as the page shows it: percentages for returns and drawdowns, 2 decimals."""
    number = results.number(value)
    if number is None:
        return "—"
    if metric == "number_of_trades":
        return str(int(number))
    if metric in PERCENT_METRICS:
        return f"{number * 100:.2f} %"
    return f"{number:.2f}"


def _table_row(row: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return row | {
        "values": [row["params"].get(n) for n in names],
        "cells": [(show(k, row["metrics"].get(k)), results.number(row["metrics"].get(k)))
                  for k in results.SHOWN],
        "phase_label": {"full": "", "in_sample": "IS", "out_of_sample": "OOS"}[row["phase"]],
    }


def _heat_cells(heat: dict[str, Any]) -> dict[str, Any]:
    low, high = results.number(heat["min"]), results.number(heat["max"])
    lower_better = heat["metric"] in results.LOWER_IS_BETTER

    def level(text: str | None) -> int | None:
        value = results.number(text)
        if value is None or low is None or high is None:
            return None
        share = Decimal(1) if high == low else (value - low) / (high - low)
        share = 1 - share if lower_better else share
        return min(HEAT_LEVELS - 1, int(share * HEAT_LEVELS))

    lines = [{"y": y, "cells": [{"text": show(heat["metric"], c), "level": level(c)}
                                for c in line]}
             for y, line in zip(heat["ys"], heat["cells"], strict=True)]
    return heat | {"lines": lines}
