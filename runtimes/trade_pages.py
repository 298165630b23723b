"""What the result page and the management API show of a backtest's trade analysis: a sorted
page of round trips (from the compact rows SessionResult.round_trips stores, read alone), the
per-symbol table, the monthly returns heatmap and the benchmark's cards. Plain reads; nothing
here writes."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from django.http import QueryDict

from runtimes.core.trade_analysis import ROUND_TRIP_FIELDS
from runtimes.models import SessionResult, TradingSession
from runtimes.result_pages import Column, stored_decimal

TRIPS_PER_PAGE = 50
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ZERO = Decimal(0)
HEAT_LEVELS = 4  # shades of each colour in the heatmap (app.css: .heat-pos-1 … .heat-neg-4)

ROUND_TRIP_COLUMNS = (
    Column("number", "#", numeric=True), Column("symbol", "Symbol"), Column("side", "Side"),
    Column("quantity", "Quantity", numeric=True), Column("entry_time", "Entry"),
    Column("entry_price", "Entry price", numeric=True), Column("exit_time", "Exit"),
    Column("exit_price", "Exit price", numeric=True),
    Column("gross_pnl", "Gross P&L", numeric=True), Column("fees", "Fees", numeric=True),
    Column("net_pnl", "Net P&L", numeric=True), Column("return", "Return", numeric=True),
    Column("duration_seconds", "Duration", numeric=True), Column("mae", "MAE", numeric=True),
    Column("mfe", "MFE", numeric=True), Column("exit_reason", "Exit reason"),
)
TEXT_FIELDS = frozenset({"symbol", "side", "entry_time", "exit_time", "exit_reason"})
EXIT_REASONS = {"signal": "Signal", "stop_loss": "Stop-loss", "take_profit": "Take-profit",
                "end_of_data": "End of data (open)"}


class SortError(ValueError):
    """A sort the round trips do not have."""


# -- round trips ---------------------------------------------------------------------------------


def stored_round_trips(session: TradingSession) -> list[list[Any]] | None:
    """The round trips of `session`'s result row, read alone (not its orders, fills and equity:
    a page of trips needs none of them); None when the session has no result row."""
    rows: list[list[Any]] | None = (SessionResult.objects.filter(session=session)
                                    .values_list("round_trips", flat=True).first())
    return rows


def trip_dicts(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Stored round trips as dicts keyed by ROUND_TRIP_FIELDS."""
    return [dict(zip(ROUND_TRIP_FIELDS, row, strict=False)) for row in rows]


def round_trip_table(rows: Sequence[Sequence[Any]], *, query: QueryDict, partial_url: str
                     ) -> dict[str, Any]:
    """One page of round trips for the result page, sorted by `?trips_sort=[-]field` (default
    and unknown: the stored order, by the time they closed) and paged by `?trips_page=N`
    (clamped), in the shape of result_pages.table_page: `url` links reload the page (without
    JavaScript), `hx` ones fetch `partial_url`, which answers this table alone (htmx swaps it).
    Only the shown page is turned into dicts: a run may have 100,000 trips."""
    wanted = query.get("trips_sort", "")
    column = next((c for c in ROUND_TRIP_COLUMNS if c.key == wanted.removeprefix("-")),
                  ROUND_TRIP_COLUMNS[0])
    descending = wanted.startswith("-") and column.key == wanted[1:]
    ordered = _sorted_rows(rows, column.key, descending=descending)
    pages = max(1, -(-len(rows) // TRIPS_PER_PAGE))
    number = min(max(_int(query.get("trips_page")), 1), pages)
    shown = ordered[(number - 1) * TRIPS_PER_PAGE:number * TRIPS_PER_PAGE]
    current = ("-" if descending else "") + column.key

    def links(sort: str, page: int) -> dict[str, str]:
        params = query.copy()
        params["trips_sort"], params["trips_page"] = sort, str(page)
        return {"url": f"?{params.urlencode()}#trips",
                "hx": f"{partial_url}?{params.urlencode()}"}

    before = links(current, number - 1) if number > 1 else {}
    after = links(current, number + 1) if number < pages else {}
    return {
        "columns": [{"label": c.label, "numeric": c.numeric,
                     **links(f"-{c.key}" if c is column and not descending else c.key, 1),
                     "sorted": ("descending" if descending else "ascending")
                     if c is column else ""} for c in ROUND_TRIP_COLUMNS],
        "rows": [_display(trip) for trip in trip_dicts(shown)],
        "total": len(rows), "number": number, "pages": pages,
        "first": (number - 1) * TRIPS_PER_PAGE + 1 if rows else 0,
        "last": (number - 1) * TRIPS_PER_PAGE + len(shown),
        "previous_url": before.get("url"), "previous_hx": before.get("hx"),
        "next_url": after.get("url"), "next_hx": after.get("hx"),
    }


def sorted_trip_rows(rows: Sequence[Sequence[Any]], sort: str) -> Sequence[Sequence[Any]]:
    """The stored round trips sorted by `sort` ("[-]field", "" for the stored order: by the time
    they closed), still compact: turn only the page shown into dicts (`trip_dicts`). Raises
    SortError for a field round trips do not have."""
    key = sort.removeprefix("-")
    if key and key not in ROUND_TRIP_FIELDS:
        raise SortError(key)
    return _sorted_rows(rows, key or "number", descending=sort.startswith("-"))


def _sorted_rows(rows: Sequence[Sequence[Any]], key: str, *, descending: bool
                 ) -> Sequence[Sequence[Any]]:
    """Stored rows ordered by field `key`; missing values last either way round."""
    if key == "number" and not descending:
        return rows  # stored in this order
    at = ROUND_TRIP_FIELDS.index(key)
    missing, present = not descending, descending  # so missing values sort last both ways
    if key in TEXT_FIELDS:
        def text(row: Sequence[Any]) -> tuple[bool, str]:
            value = row[at]
            return (missing, "") if value is None else (present, str(value))
        return sorted(rows, key=text, reverse=descending)

    def number(row: Sequence[Any]) -> tuple[bool, Decimal]:
        value = row[at]
        if value is None:
            return missing, _ZERO
        try:
            return present, Decimal(value)
        except (InvalidOperation, TypeError, ValueError):
            return missing, _ZERO
    return sorted(rows, key=number, reverse=descending)


def _int(text: str | None) -> int:
    try:
        return int(text or 1)
    except ValueError:
        return 1


def _display(trip: dict[str, Any]) -> dict[str, Any]:
    net = stored_decimal(trip.get("net_pnl"))
    return {
        **trip,
        "entry_text": _time(trip.get("entry_time")),
        "exit_text": _time(trip.get("exit_time")),
        "gross_text": _money(trip.get("gross_pnl")),
        "fees_text": _money(trip.get("fees")),
        "net_text": _money(trip.get("net_pnl")),
        "net_tone": "" if not net else "pos" if net > 0 else "neg",
        "return_text": _percent(trip.get("return")),
        "duration_text": duration_text(trip.get("duration_seconds")),
        "mae_text": f"{_money(trip.get('mae'))} ({_percent(trip.get('mae_fraction'))})",
        "mfe_text": f"{_money(trip.get('mfe'))} ({_percent(trip.get('mfe_fraction'))})",
        "reason_text": EXIT_REASONS.get(str(trip.get("exit_reason")), trip.get("exit_reason")),
        "open": trip.get("exit_reason") == "end_of_data",
    }


def csv_export(result: Any) -> tuple[Sequence[str], Sequence[Sequence[Any]]]:
    """`(header, rows)` of a SessionResult's round trips: the stored values as they are."""
    return ROUND_TRIP_FIELDS, result.round_trips


def duration_text(seconds: Any) -> str:
    """"3d 4h", "2h 5m", "45m", "30s", "0s"."""
    if not isinstance(seconds, int):
        return "—"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{secs}s"


# -- per symbol, monthly, benchmark --------------------------------------------------------------


def symbol_rows(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-symbol table: counts as stored, money and fractions as text."""
    rows = []
    for entry in analysis.get("symbols", []):
        net = stored_decimal(entry.get("net_pnl"))
        rows.append({**entry, "win_rate_text": _percent(entry.get("win_rate")),
                     "net_text": _money(entry.get("net_pnl")),
                     "net_tone": "" if not net else "pos" if net > 0 else "neg",
                     "fees_text": _money(entry.get("fees")),
                     "contribution_text": _percent(entry.get("return_contribution"))})
    return rows


def monthly_heatmap(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """`[{year, months: [{text, tone}] * 12, total: {text, tone}}]`; a month's shade is its
    return's size relative to the largest monthly move in the table, in HEAT_LEVELS steps."""
    years = analysis.get("monthly", [])
    moves = [abs(r) for year in years for r in map(stored_decimal, year["months"]) if r is not None]
    largest = max(moves, default=Decimal(0))
    return [{"year": year["year"],
             "months": [_heat(stored_decimal(r), largest) for r in year["months"]],
             "total": _heat(stored_decimal(year.get("total")), None)} for year in years]


def _heat(value: Decimal | None, largest: Decimal | None) -> dict[str, str]:
    if value is None:
        return {"text": "", "tone": "heat-none"}
    text = _percent(value)
    if not value:
        return {"text": text, "tone": "heat-0"}
    sign = "pos" if value > 0 else "neg"
    if largest is None:  # a year's total: coloured by sign only
        return {"text": text, "tone": f"heat-{sign}-total"}
    level = max(1, min(HEAT_LEVELS, -(-abs(value) * HEAT_LEVELS // largest)))
    return {"text": text, "tone": f"heat-{sign}-{level}"}


def benchmark_cards(analysis: dict[str, Any]) -> list[dict[str, str]]:
    """The benchmark's return and CAGR, and the strategy's alpha and beta against it. As the
    run's own metrics (docs/metrics.md, "Short runs"), annualised figures from fewer daily
    returns than a quarter of a year say so: a few weeks annualised are mostly noise."""
    benchmark = analysis.get("benchmark") or {}
    returns, year = benchmark.get("daily_returns"), benchmark.get("days_per_year")
    short = ""
    if isinstance(returns, int) and isinstance(year, int) and returns * 4 < year:
        short = f"annualised from {returns} day{'' if returns == 1 else 's'}"
    cards = []
    for label, key, show, hint in (
            ("Buy & hold return", "total_return", _percent, ""),
            ("Buy & hold CAGR", "cagr", _percent, short),
            ("Alpha (annualised)", "alpha", _percent, short),
            ("Beta", "beta", _ratio, "")):
        number = stored_decimal(benchmark.get(key))
        if number is None and key in {"alpha", "beta"} and isinstance(returns, int) \
                and returns < 2:
            hint = "needs two daily returns"
        tone = "" if key == "beta" or not number else "pos" if number > 0 else "neg"
        cards.append({"label": label, "value": "—" if number is None else show(number),
                      "tone": tone, "hint": hint})
    return cards


# -- text ----------------------------------------------------------------------------------------


def _money(value: Any) -> str:
    number = stored_decimal(value)
    return "—" if number is None else f"{number:,.2f}"


def _percent(value: Any) -> str:
    number = stored_decimal(value)
    return "—" if number is None else f"{number * 100:,.2f}%"


def _ratio(value: Decimal) -> str:
    return f"{value:,.2f}"


def _time(value: Any) -> str:
    return "—" if not value else str(value).replace("T", " ").removesuffix("Z")[:16]
