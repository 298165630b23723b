"""Buy-and-hold of a backtest's own symbols as its benchmark: the equity of equal weights of the
initial cash bought at each symbol's first bar (no fees), its return and CAGR, and the strategy's
Jensen alpha and beta against it from daily returns. Definitions: docs/metrics.md."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

from runtimes.core import timeframes
from runtimes.core.daily import daily_closes, daily_returns
from runtimes.core.domain import utc_from_epoch
from runtimes.core.market_data import MarketData
from runtimes.core.metrics import annual_growth, round_ratio
from runtimes.core.timeframes import Calendar, timeframe_seconds

CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Benchmark:
    """Equal-weight buy-and-hold of the backtest's symbols and the strategy measured against it.
    `curve` is at most the asked number of (epoch seconds, equity) points, peaks and troughs
    kept; None wherever a value is undefined."""

    weights: dict[str, Decimal]
    initial_equity: Decimal
    final_equity: Decimal
    total_return: Decimal | None
    cagr: Decimal | None
    alpha: Decimal | None  # annualised Jensen alpha of the strategy (risk-free rate 0)
    beta: Decimal | None
    days_per_year: int
    daily_returns: int  # how many daily returns alpha and beta are computed from
    span_seconds: int  # the time CAGR annualises: the first bar's open to the last bar's end
    curve: list[tuple[int, Decimal]]


def buy_and_hold(
    *,
    data: MarketData,
    initial_cash: Decimal,
    strategy_closes: Sequence[tuple[date, Decimal]],
    calendar: Calendar,
    chart_points: int,
) -> Benchmark:
    """The benchmark of a run over `data` that started with `initial_cash`; `strategy_closes`
    are the strategy's daily closes (`daily.daily_closes` of its equity), `calendar` "stocks"
    (252 days a year) or "crypto" (365)."""
    with localcontext(CONTEXT):
        sampler = StreamingDownsample(len(data), chart_points)
        closes = daily_closes(_tapped(_equity(data, initial_cash), sampler))
        timeline = data.timeline()
        final = closes[-1][1] if closes else initial_cash
        days_per_year = int(timeframes.days_per_year(calendar))
        alpha, beta, count = alpha_beta(
            daily_returns(list(strategy_closes), initial_cash),
            daily_returns(closes, initial_cash),
            days_per_year,
        )
        span = 0
        if len(timeline):
            span = timeline[-1] - timeline[0] + timeframe_seconds(data.timeframe)
        return Benchmark(
            weights={s: round_ratio(Decimal(1) / len(data.symbols)) or _ZERO for s in data.symbols},
            initial_equity=initial_cash,
            final_equity=final,
            total_return=round_ratio(final / initial_cash - 1) if initial_cash > 0 else None,
            cagr=round_ratio(annual_growth(initial_cash, final, span)),
            alpha=round_ratio(alpha),
            beta=round_ratio(beta),
            days_per_year=days_per_year,
            daily_returns=count,
            span_seconds=span,
            curve=sampler.points,
        )


def alpha_beta(
    strategy: Sequence[tuple[date, Decimal]],
    benchmark: Sequence[tuple[date, Decimal]],
    days_per_year: int,
) -> tuple[Decimal | None, Decimal | None, int]:
    """(annualised alpha, beta, number of returns) of the strategy's daily returns against the
    benchmark's, on the days both have. beta = cov(s, b) / var(b); alpha = (1 + mean(s - beta
    * b)) ^ days_per_year - 1. None (both) with fewer than two returns or a flat benchmark."""
    by_day = dict(benchmark)
    pairs = [(s, by_day[day]) for day, s in strategy if day in by_day]
    n = len(pairs)
    if n < 2:
        return None, None, n
    with localcontext(CONTEXT):
        mean_b = sum((b for _, b in pairs), _ZERO) / n
        covariance = sum(((b - mean_b) * s for s, b in pairs), _ZERO) / n
        variance = sum(((b - mean_b) ** 2 for _, b in pairs), _ZERO) / n
        if not variance:
            return None, None, n
        beta = covariance / variance
        daily_alpha = sum((s - beta * b for s, b in pairs), _ZERO) / n
        try:
            alpha: Decimal | None = (1 + daily_alpha) ** days_per_year - 1
        except ArithmeticError:
            alpha = None
        return alpha, beta, n


def _equity(data: MarketData, initial_cash: Decimal) -> Iterator[tuple[datetime, Decimal]]:
    """(time, benchmark equity) at every step of the timeline: each symbol's share of the cash
    is held as cash until its first bar, bought at that bar's open, then marked at its close."""
    series = data.all_series()
    share = initial_cash / len(series)
    held: list[Decimal | None] = [None] * len(series)  # quantity, once bought
    value = [share] * len(series)
    for step, epoch in enumerate(data.timeline()):
        for pos, bars in enumerate(series):
            i = data.series_index_at(pos, step)
            if i < 0:
                continue
            quantity = held[pos]
            if quantity is None:
                opening = bars.open_at(i)
                quantity = held[pos] = share / opening if opening > 0 else _ZERO
            value[pos] = quantity * bars.close_at(i) if quantity else share
        yield utc_from_epoch(int(epoch)), sum(value, _ZERO)


def _tapped(points: Iterable[tuple[datetime, Decimal]], sampler: StreamingDownsample
            ) -> Iterator[tuple[datetime, Decimal]]:
    for point in points:
        sampler.add(int(point[0].timestamp()), point[1])
        yield point


class StreamingDownsample:
    """`metrics.downsample` of a series seen one point at a time, its length known up front:
    the first and last point and each bucket's lowest and highest, in time order, without
    holding the whole series (a year of minutes of benchmark equity)."""

    def __init__(self, total: int, max_points: int) -> None:
        if max_points < 2:
            raise ValueError("max_points must be at least 2")
        self.points: list[tuple[int, Decimal]] = []
        self._total = total
        self._keep_all = total <= max_points
        inner = max(0, total - 2)
        buckets = max(1, (max_points - 2) // 2)
        self._size = max(1, -(-inner // buckets))
        self._seen = 0
        self._bucket: list[tuple[int, Decimal]] = []

    def add(self, moment: int, value: Decimal) -> None:
        index, self._seen = self._seen, self._seen + 1
        if self._keep_all or index == 0:
            self.points.append((moment, value))
            return
        if index == self._total - 1:
            self._flush()
            self.points.append((moment, value))
            return
        self._bucket.append((moment, value))
        if len(self._bucket) == self._size:
            self._flush()

    def _flush(self) -> None:
        bucket = self._bucket
        if not bucket:
            return
        low = min(range(len(bucket)), key=lambda i: bucket[i][1])
        high = max(range(len(bucket)), key=lambda i: bucket[i][1])
        self.points.extend(bucket[i] for i in sorted({low, high}))
        self._bucket = []
