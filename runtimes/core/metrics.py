"""Backtest results: equity points, round trips, drawdowns and performance metrics.

Volatility, Sharpe and Sortino are computed on daily returns (equity resampled to UTC days),
annualised by the calendar's days per year (252 stocks, 365 crypto), whatever the bar timeframe.
Every statistic is computed in Decimal inside one fixed local context (28 digits, half-even), so
results are identical on every machine; formulas and conventions are in docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import TypeVar

from runtimes.core.daily import daily_closes, daily_returns
from runtimes.core.timeframes import Calendar, days_per_year, guess_calendar, timeframe_seconds

_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)
RATIO_PLACES = Decimal("0.000001")  # returns, ratios, fractions: 6 decimal places
MONEY_PLACES = Decimal("0.00000001")  # averages of money: 8 decimal places
SECONDS_PER_YEAR = Decimal(36525 * 864)  # Julian year, for CAGR over calendar time
MIN_RELIABLE_YEARS = Decimal("0.25")  # fewer daily returns than a quarter year's: a short run
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """Account value at one time; `exposure` is the gross market value of open positions."""

    timestamp: datetime
    equity: Decimal
    cash: Decimal
    exposure: Decimal


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """One closed trade: entry to exit of `quantity`, with gross and net (after fees) P&L."""

    symbol: str
    side: str  # "LONG" or "SHORT"
    quantity: Decimal
    entry_time: datetime
    entry_price: Decimal
    exit_time: datetime
    exit_price: Decimal
    gross_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    # The order whose fill closed the trip (its exit reason: runtimes/core/trade_analysis.py);
    # None for a trip still open at the end, marked at the last close.
    exit_order_id: str | None = None


@dataclass(frozen=True)
class Metrics:
    """Performance summary; None wherever a value is undefined (never NaN or infinity)."""

    start: datetime | None
    end: datetime | None
    timeframe: str
    calendar: str
    periods_per_year: Decimal  # daily returns per year the ratios are annualised by: 252 or 365
    days: int  # daily returns the ratios are computed on
    short_run: bool  # fewer days than a quarter of a year's: annualised figures are unreliable
    risk_free_rate: Decimal
    initial_equity: Decimal
    final_equity: Decimal
    total_return: Decimal | None
    cagr: Decimal | None
    annualised_volatility: Decimal | None
    sharpe: Decimal | None
    sortino: Decimal | None
    max_drawdown: Decimal
    max_drawdown_peak: datetime | None
    max_drawdown_trough: datetime | None
    max_drawdown_recovery: datetime | None
    max_drawdown_duration_seconds: int | None
    longest_drawdown_seconds: int | None
    calmar: Decimal | None
    number_of_trades: int
    win_rate: Decimal | None
    profit_factor: Decimal | None
    expectancy: Decimal | None
    average_trade_return: Decimal | None
    average_win: Decimal | None
    average_loss: Decimal | None
    best_trade: Decimal | None
    worst_trade: Decimal | None
    exposure_time: Decimal | None
    total_fees: Decimal

    def as_dict(self) -> dict[str, str | int | None]:
        """Plain values: Decimals as normalised strings, datetimes as ISO 8601 with Z."""
        return {f.name: _render(getattr(self, f.name)) for f in fields(self)}


def compute_metrics(
    *,
    equity_curve: Sequence[EquityPoint],
    round_trips: Sequence[RoundTrip],
    total_fees: Decimal,
    timeframe: str,
    risk_free_rate: Decimal = _ZERO,
    initial_equity: Decimal | None = None,
    calendar: Calendar | None = None,
    symbols: Sequence[str] = (),
) -> Metrics:
    """Metrics of one run. `initial_equity`, when given, is the value one bar before the first
    point; else the first point is the start. `calendar` None picks "crypto" when any of
    `symbols` is a crypto pair or any point falls on a Saturday or Sunday (UTC), else "stocks".
    `risk_free_rate` is annual, compounded daily. `timeframe` only places the initial value in time.
    """
    with localcontext(_CONTEXT):
        curve = _ValueCurve(equity_curve, initial_equity, timeframe_seconds(timeframe))
        chosen = calendar or guess_calendar(symbols, (day for day, _ in curve.closes))
        ppy = days_per_year(chosen)
        start_value = curve.values[0] if len(curve) else (initial_equity or _ZERO)
        final_value = curve.values[-1] if len(curve) else start_value
        returns = [r for _, r in daily_returns(curve.closes, curve.initial)]
        risk = _risk_metrics(returns, ppy, risk_free_rate)
        drawdown = _max_drawdown(curve)
        cagr = _cagr(curve)
        calmar = cagr / drawdown.depth if cagr is not None and drawdown.depth else None
        trades = _trade_metrics(round_trips)
        return Metrics(
            start=equity_curve[0].timestamp if equity_curve else None,
            end=equity_curve[-1].timestamp if equity_curve else None,
            timeframe=timeframe,
            calendar=chosen,
            periods_per_year=ppy,
            days=len(returns),
            short_run=len(returns) < ppy * MIN_RELIABLE_YEARS,
            risk_free_rate=risk_free_rate,
            initial_equity=start_value,
            final_equity=final_value,
            total_return=round_ratio(final_value / start_value - 1) if start_value > 0 else None,
            cagr=round_ratio(cagr),
            annualised_volatility=round_ratio(risk[0]),
            sharpe=round_ratio(risk[1]),
            sortino=round_ratio(risk[2]),
            max_drawdown=round_ratio(drawdown.depth) or _ZERO,
            max_drawdown_peak=drawdown.peak_time,
            max_drawdown_trough=drawdown.trough_time,
            max_drawdown_recovery=drawdown.recovery_time,
            max_drawdown_duration_seconds=drawdown.duration_seconds,
            longest_drawdown_seconds=drawdown.longest_seconds,
            calmar=round_ratio(calmar),
            exposure_time=curve.exposure_time(),
            total_fees=total_fees,
            number_of_trades=trades.number_of_trades,
            win_rate=trades.win_rate,
            profit_factor=trades.profit_factor,
            expectancy=trades.expectancy,
            average_trade_return=trades.average_trade_return,
            average_win=trades.average_win,
            average_loss=trades.average_loss,
            best_trade=trades.best_trade,
            worst_trade=trades.worst_trade,
        )


def drawdown_series(equity_curve: Sequence[EquityPoint]) -> list[tuple[datetime, Decimal]]:
    """(time, drawdown) per point: equity / running peak - 1, so 0 at a peak and negative below
    it (6 decimal places). Peaks at or below zero give 0 (a drawdown of nothing is undefined).
    """
    result: list[tuple[datetime, Decimal]] = []
    with localcontext(_CONTEXT):
        peak: Decimal | None = None
        for point in equity_curve:
            if peak is None or point.equity > peak:
                peak = point.equity
            depth = point.equity / peak - 1 if peak > 0 and point.equity < peak else _ZERO
            result.append((point.timestamp, depth.quantize(RATIO_PLACES) if depth else _ZERO))
    return result


T = TypeVar("T")


def downsample(
    points: Sequence[T], max_points: int, *, value: Callable[[T], Decimal] | None = None
) -> list[T]:
    """At most `max_points` of `points` for display, keeping the first, the last, and the lowest
    and highest point of each bucket in time order, so drawdowns and peaks stay visible.

    `value` reads a point's level: default `.equity` for EquityPoint, `[1]` for pairs.
    """
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    if len(points) <= max_points:
        return list(points)
    level = value or _default_level
    inner = points[1:-1]
    buckets = max(1, (max_points - 2) // 2)
    size = -(-len(inner) // buckets)  # ceiling division: every inner point is in a bucket
    kept: list[T] = [points[0]]
    for start in range(0, len(inner), size):
        bucket = range(start, min(start + size, len(inner)))
        low = min(bucket, key=lambda i: level(inner[i]))
        high = max(bucket, key=lambda i: level(inner[i]))
        kept.extend(inner[i] for i in sorted({low, high}))
    kept.append(points[-1])
    return kept


# -- pieces --------------------------------------------------------------------------------------


def _default_level(point: object) -> Decimal:
    if isinstance(point, EquityPoint):
        return point.equity
    if isinstance(point, tuple) and isinstance(point[1], Decimal):
        return point[1]
    raise TypeError("pass value= to read the level of these points")


class _ValueCurve:
    """The equity of every point (after the initial value one bar before the first, when
    given) as one list of values, each UTC day's last value, the count of points with an open
    position, and each point's time read only where a metric needs it.

    On a year of minutes the (time, equity) pairs and the list of returns took ~170 MB at the
    end of every run; the values alone take a pointer a point, plus the equity Decimals that
    differ from their neighbour (a flat account repeats one object). Points are in time order,
    read in one pass (the engine's curve prices each point as it is read).
    """

    __slots__ = ("_exposed", "_offset", "_points", "_step", "closes", "initial", "values")

    def __init__(
        self, equity_curve: Sequence[EquityPoint], initial_equity: Decimal | None, bar_seconds: int
    ) -> None:
        self._points = equity_curve
        self._step = timedelta(seconds=bar_seconds)
        self._offset = int(initial_equity is not None and len(equity_curve) > 0)
        self.initial = initial_equity if self._offset else None
        self.values: list[Decimal] = [] if self.initial is None else [self.initial]
        self._exposed = 0
        self.closes = daily_closes(self._read(equity_curve))

    def _read(self, equity_curve: Sequence[EquityPoint]) -> Iterator[tuple[datetime, Decimal]]:
        """(time, equity) of each point for the daily closes, keeping values and exposure."""
        values = self.values
        for point in equity_curve:
            values.append(point.equity)
            if point.exposure:
                self._exposed += 1
            yield point.timestamp, point.equity

    def exposure_time(self) -> Decimal | None:
        """Share of the points (bars) that end with an open position."""
        points = len(self.values) - self._offset
        return round_ratio(Decimal(self._exposed) / points) if points else None

    def __len__(self) -> int:
        return len(self.values)

    def time_at(self, i: int) -> datetime:
        """The time of value `i` (negative counts from the end)."""
        i = range(len(self.values))[i]
        if i < self._offset:
            return self._points[0].timestamp - self._step
        return self._points[i - self._offset].timestamp


def _risk_metrics(
    returns: Sequence[Decimal], ppy: Decimal, risk_free_rate: Decimal
) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """(annualised volatility, Sharpe, Sortino) of the simple daily returns, or Nones when there
    are fewer than two (none when a value at or below zero made them undefined)."""
    if len(returns) < 2:
        return None, None, None
    n = Decimal(len(returns))
    mean = sum(returns, _ZERO) / n
    # The daily rate that compounds to the annual one over A days (as QuantStats does).
    threshold = (1 + risk_free_rate) ** (1 / ppy) - 1 if risk_free_rate else _ZERO
    squares = downside = _ZERO
    for r in returns:
        squares += (r - mean) ** 2
        downside += min(_ZERO, r - threshold) ** 2
    variance = squares / (n - 1)
    downside = downside / n
    stdev = variance.sqrt()
    excess = mean - threshold
    root = ppy.sqrt()
    sharpe = excess / stdev * root if stdev else None
    sortino = excess / downside.sqrt() * root if downside else None
    return stdev * root, sharpe, sortino


def _cagr(curve: _ValueCurve) -> Decimal | None:
    values = curve.values
    if len(values) < 2:
        return None
    return annual_growth(values[0], values[-1],
                         (curve.time_at(-1) - curve.time_at(0)).total_seconds())


def annual_growth(start: Decimal, end: Decimal, seconds: float) -> Decimal | None:
    """CAGR from `start` to `end` over `seconds` of calendar time (Julian years); -1 when `end`
    is 0; None when undefined (no time, a start at or below zero, a negative end) or too large
    to represent (minutes of data annualised)."""
    if start <= 0 or seconds <= 0 or end < 0:
        return None
    if end == 0:
        return Decimal(-1)
    try:
        return (end / start) ** (SECONDS_PER_YEAR / Decimal(seconds)) - 1
    except ArithmeticError:
        return None


@dataclass(frozen=True, slots=True)
class _Drawdown:
    depth: Decimal  # magnitude of the deepest fall from a running peak, as a fraction
    peak_time: datetime | None
    trough_time: datetime | None
    recovery_time: datetime | None
    duration_seconds: int | None  # peak to recovery, or to the last point if not recovered
    longest_seconds: int | None  # longest stretch below a previous peak


def _max_drawdown(curve: _ValueCurve) -> _Drawdown:
    values = curve.values
    if not values:
        return _Drawdown(_ZERO, None, None, None, None, None)
    peak_at, peak = 0, values[0]  # indexes: a time is read only where one is needed
    depth, best = _ZERO, (0, 0)
    longest, underwater = 0, False
    for i, value in enumerate(values):
        if value >= peak:
            if underwater:
                longest = max(longest, _seconds_between(curve, peak_at, i))
            peak_at, peak, underwater = i, value, False
            continue
        underwater = True
        if peak > 0 and 1 - value / peak > depth:
            depth, best = 1 - value / peak, (peak_at, i)
    if underwater:
        longest = max(longest, _seconds_between(curve, peak_at, len(values) - 1))
    if not depth:
        return _Drawdown(_ZERO, None, None, None, 0, longest)
    # The first value back at the peak's level after the trough (they are in time order).
    recovered = next((i for i in range(best[1] + 1, len(values)) if values[i] >= values[best[0]]),
                     None)
    recovery = None if recovered is None else curve.time_at(recovered)
    end = recovery or curve.time_at(-1)
    duration = int((end - curve.time_at(best[0])).total_seconds())
    return _Drawdown(depth, curve.time_at(best[0]), curve.time_at(best[1]), recovery, duration,
                     longest)


def _seconds_between(curve: _ValueCurve, start: int, end: int) -> int:
    return int((curve.time_at(end) - curve.time_at(start)).total_seconds())


@dataclass(frozen=True, slots=True)
class _TradeStats:
    number_of_trades: int
    win_rate: Decimal | None
    profit_factor: Decimal | None
    expectancy: Decimal | None
    average_trade_return: Decimal | None
    average_win: Decimal | None
    average_loss: Decimal | None
    best_trade: Decimal | None
    worst_trade: Decimal | None


def _trade_metrics(round_trips: Sequence[RoundTrip]) -> _TradeStats:
    pnls = [t.net_pnl for t in round_trips]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    count = len(pnls)
    trade_returns = [
        t.net_pnl / (t.entry_price * t.quantity) for t in round_trips if t.entry_price * t.quantity
    ]
    return _TradeStats(
        number_of_trades=count,
        win_rate=round_ratio(Decimal(len(wins)) / count) if count else None,
        profit_factor=round_ratio(sum(wins, _ZERO) / -sum(losses, _ZERO)) if losses else None,
        expectancy=_money(sum(pnls, _ZERO) / count) if count else None,
        average_trade_return=round_ratio(_mean(trade_returns)),
        average_win=_money(_mean(wins)),
        average_loss=_money(_mean(losses)),
        best_trade=max(pnls) if pnls else None,
        worst_trade=min(pnls) if pnls else None,
    )


def _mean(values: Sequence[Decimal]) -> Decimal | None:
    return sum(values, _ZERO) / len(values) if values else None


def round_ratio(value: Decimal | None) -> Decimal | None:
    """Rounded to RATIO_PLACES; None when too large to show at that precision (a CAGR of a
    few profitable minutes annualised), which is as undefined as a division by zero."""
    if value is None:
        return None
    try:
        return value.quantize(RATIO_PLACES)
    except ArithmeticError:
        return None


def _money(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(MONEY_PLACES)


def _render(value: object) -> str | int | None:
    if value is None or isinstance(value, int | str):
        return value
    if isinstance(value, Decimal):
        return "0" if value == 0 else format(value.normalize(_CONTEXT), "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)
