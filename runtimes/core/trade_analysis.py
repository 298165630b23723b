"""What a finished backtest's trades were, the way peers report them: each round trip with its
return, duration, maximum adverse and favourable excursion and exit reason (a trip still open
at the end included, marked at the last close), results per symbol, monthly returns and the
buy-and-hold benchmark. Plain data in and out; definitions in docs/metrics.md."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from typing import Any

from runtimes.core.bars import BarSeries, scaled_to_decimal
from runtimes.core.benchmark import CONTEXT, Benchmark, buy_and_hold
from runtimes.core.daily import daily_closes
from runtimes.core.domain import Fill, Order, OrderType
from runtimes.core.engine_result import round_trips_with_open
from runtimes.core.market_data import MarketData
from runtimes.core.metrics import EquityPoint, RoundTrip
from runtimes.core.timeframes import Calendar

RATIO_PLACES = Decimal("0.000001")  # returns and fractions
MONEY_PLACES = Decimal("0.00000001")  # P&L, fees, excursions
PRICE_PLACES = Decimal("0.0000000001")  # volume-weighted prices

SIGNAL, STOP_LOSS, TAKE_PROFIT, END_OF_DATA = "signal", "stop_loss", "take_profit", "end_of_data"
_STOP_TYPES = frozenset({OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP})
_ZERO = Decimal(0)

# The order of a stored round trip's values (SessionResult.round_trips holds one list a trip).
ROUND_TRIP_FIELDS = (
    "number", "symbol", "side", "quantity", "entry_time", "entry_price", "exit_time",
    "exit_price", "gross_pnl", "fees", "net_pnl", "return", "duration_seconds", "mae",
    "mae_fraction", "mfe", "mfe_fraction", "exit_reason",
)


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One round trip and what peers show of it. `mae` ≤ 0 and `mfe` ≥ 0 are money at the
    trip's quantity; their fractions are of the entry price."""

    number: int  # 1-based, in the order trips closed (open ones last)
    trip: RoundTrip
    trade_return: Decimal | None  # net P&L / (entry price * quantity)
    duration_seconds: int
    mae: Decimal
    mae_fraction: Decimal
    mfe: Decimal
    mfe_fraction: Decimal
    exit_reason: str

    def row(self) -> list[str | int | None]:
        """The stored values, in ROUND_TRIP_FIELDS order."""
        t = self.trip
        return [self.number, t.symbol, t.side, _text(t.quantity), _stamp(t.entry_time),
                _text(_round(t.entry_price, PRICE_PLACES)), _stamp(t.exit_time),
                _text(_round(t.exit_price, PRICE_PLACES)), _text(_round(t.gross_pnl)),
                _text(_round(t.fees)), _text(_round(t.net_pnl)), _text(self.trade_return),
                self.duration_seconds, _text(self.mae), _text(self.mae_fraction),
                _text(self.mfe), _text(self.mfe_fraction), self.exit_reason]


@dataclass(frozen=True, slots=True)
class SymbolSummary:
    """One symbol's trips: counts and win rate of the closed ones; net P&L and fees also of a
    trip still open (valued at the last close); `return_contribution` = net P&L / initial cash."""

    symbol: str
    trades: int
    wins: int
    win_rate: Decimal | None
    net_pnl: Decimal
    fees: Decimal
    return_contribution: Decimal | None
    open_trips: int


@dataclass(frozen=True, slots=True)
class YearReturns:
    year: int
    months: tuple[Decimal | None, ...]  # January..December; None: no daily close that month
    total: Decimal | None


@dataclass(frozen=True)
class TradeAnalysis:
    trades: list[TradeRecord]
    symbols: list[SymbolSummary]
    monthly: list[YearReturns]
    benchmark: Benchmark

    def rows(self) -> list[list[str | int | None]]:
        return [record.row() for record in self.trades]

    def summary(self) -> dict[str, Any]:
        """Everything but the trips, as JSON values (Decimals as plain strings)."""
        b = self.benchmark
        closed = sum(1 for t in self.trades if t.exit_reason != END_OF_DATA)
        return {
            "round_trips": {"count": len(self.trades), "closed": closed,
                            "open": len(self.trades) - closed},
            "symbols": [{"symbol": s.symbol, "trades": s.trades, "wins": s.wins,
                         "win_rate": _text(s.win_rate), "net_pnl": _text(_round(s.net_pnl)),
                         "fees": _text(_round(s.fees)),
                         "return_contribution": _text(s.return_contribution),
                         "open_trips": s.open_trips} for s in self.symbols],
            "monthly": [{"year": y.year, "months": [_text(m) for m in y.months],
                         "total": _text(y.total)} for y in self.monthly],
            "benchmark": {
                "method": "equal_weight_buy_and_hold",
                "weights": {s: _text(w) for s, w in b.weights.items()},
                "initial_equity": _text(b.initial_equity),
                "final_equity": _text(_round(b.final_equity)),
                "total_return": _text(b.total_return), "cagr": _text(b.cagr),
                "alpha": _text(b.alpha), "beta": _text(b.beta),
                "days_per_year": b.days_per_year, "daily_returns": b.daily_returns,
                "span_seconds": b.span_seconds,
                "curve": {"time": [t for t, _ in b.curve],
                          "value": [_text(_round(v)) for _, v in b.curve]},
            },
        }


def analyse_backtest(
    *,
    fills: Sequence[Fill],
    orders: Sequence[Order],
    equity_curve: Iterable[EquityPoint],
    data: MarketData,
    initial_cash: Decimal,
    calendar: Calendar,
    chart_points: int = 2000,
) -> TradeAnalysis:
    """Round trips (closed, then those open at the end), per-symbol results, monthly returns of
    `equity_curve` and the buy-and-hold benchmark of a run over `data` that started with
    `initial_cash`. `calendar`: "stocks" (252 days a year) or "crypto" (365)."""
    with localcontext(CONTEXT):
        seen: list[datetime] = []
        closes = daily_closes(_last_time_kept(equity_curve, seen))
        if seen and len(data.timeline()) and seen[0].timestamp() < data.timeline()[-1]:
            data = data.slice(None, seen[0])  # a run stopped early: only the bars it stepped
        trips = round_trips_with_open(fills, _marks(data))
        reasons = _exit_reasons(orders)
        columns = {s.symbol: _Extremes(s) for s in data.all_series()}
        records = [_record(n, trip, reasons, columns[trip.symbol])
                   for n, trip in enumerate(trips, start=1)]
        return TradeAnalysis(
            trades=records,
            symbols=[_symbol_summary(s, records, initial_cash) for s in data.symbols],
            monthly=monthly_returns(closes, initial_cash),
            benchmark=buy_and_hold(data=data, initial_cash=initial_cash, strategy_closes=closes,
                                   calendar=calendar, chart_points=chart_points),
        )


def _last_time_kept(curve: Iterable[EquityPoint], seen: list[datetime]
                    ) -> Iterator[tuple[datetime, Decimal]]:
    """(time, equity) of each point, leaving the last time in `seen` (one pass: the curve is
    priced as it is read)."""
    last: EquityPoint | None = None
    for last in curve:
        yield last.timestamp, last.equity
    if last is not None:
        seen.append(last.timestamp)


# -- round trips ---------------------------------------------------------------------------------


def _marks(data: MarketData) -> dict[str, tuple[datetime, Decimal]]:
    """Each symbol's last bar: (its time, its close), where a trip still open is valued."""
    return {s.symbol: (s.timestamp_at(len(s) - 1), s.close_at(len(s) - 1))
            for s in data.all_series() if len(s)}


def _exit_reasons(orders: Sequence[Order]) -> dict[str, str]:
    """Order id -> exit reason of a trip it closes: stop-loss for any stop order (a bracket's
    stop leg or one the strategy placed), take-profit for a bracket's limit leg, else signal.

    A leg's parent_order_id is cleared once it ends (the wire's rule), so a take-profit leg is
    known by what the exchange gives it: LIMIT, reduce-only, client order id "<entry's client
    order id or id>-tp" or "-tp-<n>" of an entry that carries a take_profit."""
    bases = {o.client_order_id or o.id for o in orders if o.take_profit is not None}
    reasons = {}
    for order in orders:
        if order.order_type in _STOP_TYPES:
            reasons[order.id] = STOP_LOSS
        elif order.order_type is OrderType.LIMIT and (
                order.parent_order_id is not None or _is_take_profit_leg(order, bases)):
            reasons[order.id] = TAKE_PROFIT
    return reasons


def _is_take_profit_leg(order: Order, bases: set[str]) -> bool:
    if not order.reduce_only or not order.client_order_id:
        return False
    base, marker, tranche = order.client_order_id.rpartition("-tp")
    return bool(marker) and base in bases and (
        tranche == "" or (tranche[:1] == "-" and tranche[1:].isdigit()))


class _Extremes:
    """A symbol's lows and highs as scaled integers, read once: min/max over a trip's bars."""

    def __init__(self, series: BarSeries) -> None:
        self.series = series
        self.lows = series.scaled_column("low")
        self.highs = series.scaled_column("high")

    def between(self, start: datetime, end: datetime, *, through_end: bool
                ) -> tuple[Decimal, Decimal] | None:
        """(lowest low, highest high) of the bars from the one at `start` up to the one at
        `end` (included when `through_end`), or None when there is none."""
        first = max(0, self.series.index_at_or_before(int(start.timestamp())))
        last = self.series.index_at_or_before(int(end.timestamp())) + int(through_end)
        if last <= first:
            return None
        dp = self.series.price_decimals
        return (scaled_to_decimal(min(self.lows[first:last]), dp),
                scaled_to_decimal(max(self.highs[first:last]), dp))


def _record(number: int, trip: RoundTrip, reasons: dict[str, str], bars: _Extremes
            ) -> TradeRecord:
    """MAE and MFE from the lowest and highest price while open: the entry and exit prices and
    the bars from the entry's bar up to the exit's (its own range only for a trip still open at
    the end: an exit at a bar's open never saw the rest of that bar)."""
    still_open = trip.exit_order_id is None
    prices = [trip.entry_price, trip.exit_price]
    seen = bars.between(trip.entry_time, trip.exit_time, through_end=still_open)
    if seen is not None:
        prices.extend(seen)
    lowest, highest = min(prices), max(prices)
    entry, qty = trip.entry_price, trip.quantity
    if trip.side == "LONG":
        adverse, favourable = lowest - entry, highest - entry
    else:
        adverse, favourable = entry - highest, entry - lowest
    notional = entry * qty
    return TradeRecord(
        number=number,
        trip=trip,
        trade_return=_round(trip.net_pnl / notional, RATIO_PLACES) if notional else None,
        duration_seconds=int((trip.exit_time - trip.entry_time).total_seconds()),
        mae=_round(adverse * qty),
        mae_fraction=_round(adverse / entry, RATIO_PLACES) if entry else _ZERO,
        mfe=_round(favourable * qty),
        mfe_fraction=_round(favourable / entry, RATIO_PLACES) if entry else _ZERO,
        exit_reason=END_OF_DATA if still_open else reasons.get(trip.exit_order_id or "", SIGNAL),
    )


# -- per symbol and per month --------------------------------------------------------------------


def _symbol_summary(symbol: str, records: Sequence[TradeRecord], initial_cash: Decimal
                    ) -> SymbolSummary:
    mine = [r.trip for r in records if r.trip.symbol == symbol]
    closed = [r.trip for r in records
              if r.trip.symbol == symbol and r.exit_reason != END_OF_DATA]
    wins = sum(1 for t in closed if t.net_pnl > 0)
    net = sum((t.net_pnl for t in mine), _ZERO)
    return SymbolSummary(
        symbol=symbol,
        trades=len(closed),
        wins=wins,
        win_rate=_round(Decimal(wins) / len(closed), RATIO_PLACES) if closed else None,
        net_pnl=net,
        fees=sum((t.fees for t in mine), _ZERO),
        return_contribution=_round(net / initial_cash, RATIO_PLACES) if initial_cash > 0 else None,
        open_trips=len(mine) - len(closed),
    )


def monthly_returns(closes: Sequence[tuple[date, Decimal]], initial: Decimal) -> list[YearReturns]:
    """Each calendar month's return (UTC) from daily closes: its last close over the previous
    month's (the initial value before the first), and each year's from its last close over the
    previous year's. None for a month without a close, or when a base is at or below zero."""
    month_end: dict[tuple[int, int], Decimal] = {}
    for day, value in closes:
        month_end[(day.year, day.month)] = value
    years = sorted({year for year, _ in month_end})
    result: list[YearReturns] = []
    base = year_base = initial
    for year in years:
        months: list[Decimal | None] = []
        for month in range(1, 13):
            close = month_end.get((year, month))
            months.append(None if close is None else _change(base, close))
            base = base if close is None else close
        result.append(YearReturns(year, tuple(months), _change(year_base, base)))
        year_base = base
    return result


def _change(before: Decimal, after: Decimal) -> Decimal | None:
    return _round(after / before - 1, RATIO_PLACES) if before > 0 else None


# -- rendering -----------------------------------------------------------------------------------


def _round(value: Decimal, places: Decimal = MONEY_PLACES) -> Decimal:
    return value.quantize(places, context=CONTEXT)


def _text(value: Decimal | None) -> str | None:
    if value is None:
        return None
    return "0" if value == 0 else format(value.normalize(CONTEXT), "f")


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
