"""What the backtest pages show of a finished session: metric cards, the equity and drawdown
chart (downsampled for display), the price chart with a marker per fill, sorted pages of trades
and orders, the execution contract as rows, and CSV exports. Plain reads of a SessionResult's
JSON (and of the candles the caller loaded); nothing here writes."""

from __future__ import annotations

import csv
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.http import QueryDict

from runtimes.core.metrics import downsample
from strategies.previews import PeriodCandles, sample_indexes

CHART_POINTS = 2000
PRICE_CANDLES = 2000
PRICE_MARKERS = 1000
ROWS_PER_PAGE = 50


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    numeric: bool = False


TRADE_COLUMNS = (
    Column("timestamp", "Time"), Column("symbol", "Symbol"), Column("side", "Side"),
    Column("quantity", "Quantity", numeric=True), Column("price", "Price", numeric=True),
    Column("commission", "Commission", numeric=True), Column("order_id", "Order"),
)
ORDER_COLUMNS = (
    Column("created_at", "Created"), Column("symbol", "Symbol"), Column("side", "Side"),
    Column("order_type", "Type"), Column("quantity", "Quantity", numeric=True),
    Column("filled_quantity", "Filled", numeric=True),
    Column("limit_price", "Limit", numeric=True), Column("stop_price", "Stop", numeric=True),
    Column("average_fill_price", "Avg fill", numeric=True), Column("status", "Status"),
)
TRADE_CSV_FIELDS = ("id", "order_id", "symbol", "side", "quantity", "price", "commission",
                    "commission_currency", "is_maker", "timestamp")
ORDER_CSV_FIELDS = (
    "id", "client_order_id", "symbol", "side", "order_type", "quantity", "filled_quantity",
    "remaining_quantity", "limit_price", "stop_price", "stop_loss", "take_profit",
    "trailing_distance", "trailing_type", "average_fill_price", "status", "reject_reason",
    "position_id", "parent_order_id", "reduce_only", "post_only", "time_in_force", "created_at",
    "updated_at",
)

# -- metric cards --------------------------------------------------------------------------------


def _percent(value: Decimal) -> str:
    return f"{value * 100:,.2f}%"


def _ratio(value: Decimal) -> str:
    return f"{value:,.2f}"


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


# (label, metrics key, format, tone: "signed" colours by sign, "loss" is always a loss)
METRIC_CARDS: tuple[tuple[str, str, Callable[[Decimal], str], str], ...] = (
    ("Total return", "total_return", _percent, "signed"),
    ("CAGR", "cagr", _percent, "signed"),
    ("Sharpe", "sharpe", _ratio, "signed"),
    ("Sortino", "sortino", _ratio, "signed"),
    ("Max drawdown", "max_drawdown", _percent, "loss"),
    ("Volatility", "annualised_volatility", _percent, ""),
    ("Trades", "number_of_trades", lambda v: f"{v:,.0f}", ""),
    ("Win rate", "win_rate", _percent, ""),
    ("Profit factor", "profit_factor", _ratio, ""),
    ("Final equity", "final_equity", _money, ""),
    ("Total fees", "total_fees", _money, ""),
    ("Exposure", "exposure_time", _percent, ""),
)


# Figures annualised from the run's daily returns: marked on a run shorter than ~3 months.
ANNUALISED = frozenset({"cagr", "sharpe", "sortino", "annualised_volatility", "calmar"})
SHORT_RUN_NOTE = ("Annualised from {days} of returns, under a quarter of a year: "
                  "a few weeks extrapolated to a year, mostly noise (docs/metrics.md).")


def metric_cards(metrics: dict[str, Any]) -> list[dict[str, str]]:
    """`[{label, value, tone, note}]` for the result page; "—" where a metric is undefined;
    `note` explains the short-run marker of an annualised figure, else "". Results stored
    before the short-run rule have no `short_run` key and get no note."""
    cards = []
    short = metrics.get("short_run") is True
    days = metrics.get("days")
    span = "1 day" if days == 1 else f"{days} days" if isinstance(days, int) else "a few days"
    note = SHORT_RUN_NOTE.format(days=span) if short else ""
    for label, key, show, tone in METRIC_CARDS:
        number = stored_decimal(metrics.get(key))
        if number is None:
            cards.append({"label": label, "value": "—", "tone": "", "note": ""})
            continue
        if tone == "loss":
            text, shade = ("-" + show(number) if number else show(number)), "neg" if number else ""
        else:
            text = show(number)
            shade = ("pos" if number > 0 else "neg" if number < 0 else "") if tone else ""
        cards.append({"label": label, "value": text, "tone": shade,
                      "note": note if key in ANNUALISED else ""})
    return cards


def stored_decimal(value: Any) -> Decimal | None:
    """A number stored as text in a result's JSON, or None when it is missing or not one."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


# -- equity and drawdown chart -------------------------------------------------------------------


def equity_chart(equity: Sequence[Sequence[str]], *, points: int = CHART_POINTS
                 ) -> dict[str, dict[str, list[Any]]]:
    """`{"equity": {time, value}, "drawdown": {time, value}}` from `[[iso time, equity], …]`,
    each at most `points` long (peaks and troughs kept); time in epoch seconds, values as
    decimal strings, drawdown as a fraction ≤ 0 of the running peak."""
    curve = [(int(datetime.fromisoformat(stamp).timestamp()), Decimal(value))
             for stamp, value in equity]
    drawdown, peak = [], Decimal(0)
    for moment, value in curve:
        peak = max(peak, value)
        drawdown.append((moment, value / peak - 1 if peak > 0 else Decimal(0)))
    return {"equity": _columns(downsample(curve, points)),
            "drawdown": _columns(downsample(drawdown, points))}


def _columns(pairs: list[tuple[int, Decimal]]) -> dict[str, list[Any]]:
    return {"time": [t for t, _ in pairs], "value": [str(v) for _, v in pairs]}


# -- price chart with fill markers ---------------------------------------------------------------


def price_chart(candles: dict[str, PeriodCandles], trades: Sequence[dict[str, Any]], *,
                markers: int = PRICE_MARKERS) -> dict[str, dict[str, Any]]:
    """`{symbol: {time, open, high, low, close, markers: {time, side}, fills, shown}}`: each
    symbol's candles (as `strategies.previews.period_candles` gives them) and a marker per fill
    inside them, stamped with its candle's time, in time order. `fills` counts those fills,
    `shown` the markers: when more than `markers`, whole round trips (flat to flat, a reversal
    ending one and opening the next) are kept, evenly spread over the period."""
    fills_of: dict[str, list[tuple[int, dict[str, Any]]]] = {symbol: [] for symbol in candles}
    for trade in trades:
        of_symbol = fills_of.get(str(trade.get("symbol")))
        if of_symbol is not None:
            of_symbol.append((int(datetime.fromisoformat(trade["timestamp"]).timestamp()), trade))
    chart = {}
    for symbol, part in candles.items():
        times = part.columns["time"]
        fills = [(t, trade) for t, trade in fills_of[symbol]
                 if times and times[0] <= t < part.until]
        kept = [fills[i] for i in _sampled(_round_trips(fills), len(fills), markers)]
        kept.sort(key=lambda fill: fill[0])
        chart[symbol] = {
            **part.columns,
            "markers": {"time": [times[bisect_right(times, t) - 1] for t, _ in kept],
                        "side": [trade.get("side") for _, trade in kept]},
            "fills": len(fills), "shown": len(kept),
        }
    return chart


def _round_trips(fills: Sequence[tuple[int, dict[str, Any]]]) -> list[list[int]]:
    """Indexes of `fills` grouped from flat to flat; a fill that reverses the position ends one
    trip and opens the next; a position still open at the end is a trip of its own."""
    trips: list[list[int]] = []
    current: list[int] = []
    position = Decimal(0)
    for i, (_, trade) in enumerate(fills):
        before, size = position, stored_decimal(trade.get("quantity")) or Decimal(0)
        position += size if trade.get("side") == "BUY" else -size
        current.append(i)
        if not position:
            trips.append(current)
            current = []
        elif before and (position > 0) != (before > 0):
            trips.append(current)
            current = [i]
    if current:
        trips.append(current)
    return trips


def _sampled(trips: list[list[int]], total: int, limit: int) -> list[int]:
    """Indexes of at most `limit` fills: every one if they fit, else the most round trips evenly
    spread that do (fills evenly spread when a single trip has more than `limit`)."""
    if total <= limit:
        return list(range(total))
    count = len(trips)
    while True:
        kept = sorted({i for k in sample_indexes(len(trips), count) for i in trips[k]})
        if len(kept) <= limit:
            return kept
        if count == 1:
            return [kept[i] for i in sample_indexes(len(kept), limit)]
        count = max(1, min(count - 1, count * limit // len(kept)))


# -- sorted, paginated tables --------------------------------------------------------------------


@dataclass(frozen=True)
class TablePage:
    columns: list[dict[str, Any]]  # {label, numeric, url, sorted: "", "ascending", "descending"}
    rows: list[list[dict[str, Any]]]  # cells: {value, numeric, key}
    total: int
    number: int
    pages: int
    first: int  # 1-based index of the first row shown
    last: int
    previous_url: str | None
    next_url: str | None


def table_page(rows: Sequence[dict[str, Any]], *, columns: Sequence[Column], query: QueryDict,
               prefix: str, per_page: int = ROWS_PER_PAGE) -> TablePage:
    """One page of `rows` sorted by `?<prefix>_sort=[-]column` (default: the first column,
    ascending: the stored, chronological order), page `?<prefix>_page=N` (clamped)."""
    wanted = query.get(f"{prefix}_sort", "")
    descending, key = wanted.startswith("-"), wanted.removeprefix("-")
    column = next((c for c in columns if c.key == key), columns[0])
    ordered: Sequence[dict[str, Any]] = rows
    if column is not columns[0] or descending:
        ordered = sorted(rows, key=_sort_key(column), reverse=descending)
    pages = max(1, -(-len(rows) // per_page))
    number = min(max(_int(query.get(f"{prefix}_page"), 1), 1), pages)
    shown = ordered[(number - 1) * per_page:number * per_page]
    sort_text = ("-" if descending else "") + column.key

    def url(**changes: Any) -> str:
        params = query.copy()
        for name, value in changes.items():
            params[f"{prefix}_{name}"] = str(value)
        return f"?{params.urlencode()}#{prefix}"

    return TablePage(
        columns=[{"label": c.label, "numeric": c.numeric,
                  "url": url(sort=f"-{c.key}" if c is column and not descending else c.key,
                             page=1),
                  "sorted": ("descending" if descending else "ascending") if c is column else ""}
                 for c in columns],
        rows=[[{"value": row.get(c.key), "numeric": c.numeric, "key": c.key} for c in columns]
              for row in shown],
        total=len(rows), number=number, pages=pages,
        first=(number - 1) * per_page + 1 if rows else 0,
        last=(number - 1) * per_page + len(shown),
        previous_url=url(page=number - 1, sort=sort_text) if number > 1 else None,
        next_url=url(page=number + 1, sort=sort_text) if number < pages else None,
    )


def _sort_key(column: Column) -> Callable[[dict[str, Any]], tuple[bool, Any]]:
    if column.numeric:
        return lambda row: (stored_decimal(row.get(column.key)) is None,
                            stored_decimal(row.get(column.key)) or Decimal(0))
    return lambda row: (row.get(column.key) is None, str(row.get(column.key) or ""))


def _int(text: str | None, default: int) -> int:
    try:
        return int(text or default)
    except ValueError:
        return default


# -- execution contract --------------------------------------------------------------------------


def contract_sections(contract: dict[str, Any]) -> list[dict[str, Any]]:
    """`[{title, rows: [(name, text)]}]`: the nested contract as readable tables."""
    general: list[tuple[str, str]] = []
    sections = []
    for name, value in contract.items():
        if isinstance(value, dict):
            sections.append({"title": _label(name), "rows": list(_flat(value))})
        else:
            general.append((_label(name), _text(value)))
    return ([{"title": "General", "rows": general}] if general else []) + sections


def _flat(values: dict[str, Any], parent: str = "") -> Iterator[tuple[str, str]]:
    for name, value in values.items():
        label = f"{parent} · {_label(name)}" if parent else _label(name)
        if isinstance(value, dict):
            yield from _flat(value, label)
        else:
            yield label, _text(value)


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value) or "—"
    return str(value)


# -- CSV -----------------------------------------------------------------------------------------


class _Echo:
    def write(self, line: str) -> str:
        return line


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """CSV text line by line (for a streaming response)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow(["" if v is None else v for v in row])


def csv_export(kind: str, result: Any) -> tuple[Sequence[str], Iterable[Sequence[Any]]]:
    """`(header, rows)` of `kind` ("equity", "trades" or "orders") of a SessionResult."""
    if kind == "equity":
        return ("timestamp", "equity"), result.equity
    fields = TRADE_CSV_FIELDS if kind == "trades" else ORDER_CSV_FIELDS
    rows = result.trades if kind == "trades" else result.orders
    return fields, ([row.get(f) for f in fields] for row in rows)
