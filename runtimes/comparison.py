"""Finished backtests side by side, for the compare API and page: equity curves normalised to 1.0
at their start (so runs with different cash overlay), downsampled for display, and the metrics
of each run in one table with the best value of each row marked. Reads only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.http import Http404

from accounts.models import Workspace
from config.errors import ApiError
from runtimes.core.metrics import downsample
from runtimes.core.wire import decimal_str
from runtimes.models import SessionResult, State, TradingSession
from runtimes.result_pages import METRIC_CARDS, metric_cards, stored_decimal

MIN_RUNS = 2
MAX_RUNS = 8
CURVE_POINTS = 1000
NORMALISED_PLACES = Decimal("0.00000001")
# One colour per run, in the order asked for (as many as MAX_RUNS).
COLOURS = ("#3b5bdb", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a", "#1098ad", "#f08c00",
           "#495057")
# Metrics key -> which way is better (1: higher, -1: lower); rows without one are not ranked.
BETTER = {"total_return": 1, "cagr": 1, "sharpe": 1, "sortino": 1, "max_drawdown": -1,
          "annualised_volatility": -1, "win_rate": 1, "profit_factor": 1, "final_equity": 1,
          "total_fees": -1}


def parse_ids(values: Sequence[str]) -> list[uuid.UUID]:
    """Session ids from `?ids=a,b,c` (or repeated `ids`), duplicates dropped, order kept.
    Raises ApiError VALIDATION_ERROR (400) for a malformed id, or fewer than 2 or more than 8."""
    texts = [text.strip() for value in values for text in value.split(",") if text.strip()]
    try:
        ids = list(dict.fromkeys(uuid.UUID(text) for text in texts))
    except ValueError:
        raise ApiError("VALIDATION_ERROR", "ids must be backtest ids separated by commas.",
                       details={"field": "ids"}) from None
    if not MIN_RUNS <= len(ids) <= MAX_RUNS:
        raise ApiError("VALIDATION_ERROR", f"Compare {MIN_RUNS} to {MAX_RUNS} backtests; got "
                                           f"{len(ids)}.", details={"field": "ids"})
    return ids


def compared_sessions(*, workspace: Workspace, ids: Sequence[uuid.UUID]) -> list[TradingSession]:
    """The sessions of `workspace` with these ids, in that order, their results loaded (without
    the order and trade lists). Raises Http404 when any id is not one of the workspace's
    sessions, ApiError VALIDATION_ERROR when one has no results yet."""
    found = {s.pk: s for s in TradingSession.objects.for_workspace(workspace).filter(pk__in=ids)
             .select_related("dataset", "strategy_version__strategy")}
    if len(found) != len(ids):
        raise Http404("No such backtest.")
    results = {r.session_id: r for r in SessionResult.objects.filter(
        session_id__in=ids, session__state=State.COMPLETED).defer("orders", "trades")}
    unfinished = [str(i) for i in ids if i not in results]
    if unfinished:
        raise ApiError("VALIDATION_ERROR", "Only finished backtests with results can be "
                                           "compared.", details={"field": "ids",
                                                                 "without_results": unfinished})
    for session in found.values():
        session.result = results[session.pk]
    return [found[i] for i in ids]


def normalised_curve(equity: Sequence[Sequence[str]], *, points: int = CURVE_POINTS
                     ) -> list[tuple[datetime, Decimal]]:
    """`[(time, equity / first equity)]` from `[[iso time, equity], …]`, at most `points` long
    (peaks and troughs kept), rounded to 8 places. Empty when the first equity is not positive
    (nothing to scale by)."""
    if not equity or Decimal(equity[0][1]) <= 0:
        return []
    first = Decimal(equity[0][1])
    curve = [(datetime.fromisoformat(stamp), (Decimal(value) / first).quantize(NORMALISED_PLACES))
             for stamp, value in equity]
    return downsample(curve, points)


def labels(sessions: Sequence[TradingSession]) -> list[str]:
    """A readable name per run: its name, else strategy and version when known, dataset,
    start time; the id's first characters are added where two runs would read the same."""
    names = [_label(s) for s in sessions]
    return [f"{name} · {str(s.pk)[:8]}" if names.count(name) > 1 else name
            for name, s in zip(names, sessions, strict=True)]


def _label(session: TradingSession) -> str:
    if session.name:  # what people named the run (runtimes/backtests.py)
        return session.name
    # Hosted backtests record the version they ran; sessions of remote strategies have none.
    version = getattr(session, "strategy_version", None)
    parts = [f"{version.strategy.name} v{version.number}"] if version is not None else []
    parts.append(session.dataset.name if session.dataset else "Backtest")
    parts.append(f"{session.created_at:%Y-%m-%d %H:%M}")
    return " · ".join(parts)


def compare_json(sessions: Sequence[TradingSession]) -> list[dict[str, Any]]:
    """What the compare API answers: per run `{id, label, metrics, equity: {time, value}}`, times
    as ISO 8601 with Z, values as decimal strings starting at "1"."""
    answer = []
    for session, label in zip(sessions, labels(sessions), strict=True):
        curve = normalised_curve(session.result.equity)
        answer.append({
            "id": str(session.pk), "label": label, "metrics": session.result.metrics,
            "equity": {"time": [t.isoformat().replace("+00:00", "Z") for t, _ in curve],
                       "value": [decimal_str(v) for _, v in curve]},
        })
    return answer


def chart_runs(sessions: Sequence[TradingSession]) -> list[dict[str, Any]]:
    """What the compare page draws: per run `{id, label, colour, time (epoch s), value}`."""
    runs = []
    for index, (session, label) in enumerate(zip(sessions, labels(sessions), strict=True)):
        curve = normalised_curve(session.result.equity)
        runs.append({"id": str(session.pk), "label": label, "colour": COLOURS[index],
                     "time": [int(t.timestamp()) for t, _ in curve],
                     "value": [decimal_str(v) for _, v in curve]})
    return runs


def metric_rows(sessions: Sequence[TradingSession]) -> list[dict[str, Any]]:
    """`[{label, cells: [{value, tone, best}]}]`: one row per metric of the result page, one cell
    per run; `best` marks the best value of a ranked row (none when all runs are equal)."""
    cards = [metric_cards(session.result.metrics) for session in sessions]
    rows = []
    for index, (label, key, _show, _tone) in enumerate(METRIC_CARDS):
        numbers = [stored_decimal(session.result.metrics.get(key)) for session in sessions]
        best = _best(numbers, BETTER.get(key))
        rows.append({"label": label, "cells": [
            {**run_cards[index], "best": best is not None and number == best}
            for run_cards, number in zip(cards, numbers, strict=True)]})
    return rows


def _best(numbers: list[Decimal | None], direction: int | None) -> Decimal | None:
    known = [n for n in numbers if n is not None]
    if direction is None or len(set(known)) < 2:
        return None
    return max(known) if direction > 0 else min(known)
