"""Bars and bar series: validated, immutable OHLCV columns stored compactly, read as Decimal.

A BarSeries keeps each column as 64-bit integers scaled by a per-series power of ten (one scale
for the four prices, one for volume) and timestamps as epoch seconds, so a million bars take about
48 MB; Decimals are made on demand (every price of a series carries the series' number of
decimals, e.g. 1968.30 next to 1968.05) and memoised. Several series are aligned by
runtimes/core/market_data.py.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, Rounded

from runtimes.core.dataset_errors import DatasetError
from runtimes.core.timeframes import parse_timeframe

# Bounded so a long series with many distinct prices cannot grow the memo without limit. Small:
# the repeats it catches are neighbours; 1 << 17 held ~35 MB per hosted run of a year of BTCUSDT
# 1m bars (prices and volumes) for no speed measurable over 1 << 13 (~1 MB).
_DECIMAL_CACHE_LIMIT = 1 << 13
_EXACT = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[Inexact, Rounded])


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar; `timestamp` is the bar's open time, tz-aware UTC."""

    symbol: str
    timeframe: str
    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def scaled_to_decimal(value: int, decimals: int) -> Decimal:
    """Exact Decimal of `value / 10**decimals`, without trailing zeros or exponent form."""
    while decimals > 0 and value % 10 == 0:
        value //= 10
        decimals -= 1
    if decimals == 0:
        return Decimal(value)
    sign = 1 if value < 0 else 0
    return Decimal((sign, tuple(int(ch) for ch in str(abs(value))), -decimals))


def scaled_to_text(value: int, decimals: int) -> str:
    """The plain decimal text of a scaled integer, as a person would write it."""
    return format(scaled_to_decimal(value, decimals), "f")


def decimal_to_scaled(value: Decimal, decimals: int) -> int:
    """`value * 10**decimals` as an int; ValueError when `value` has more decimals than that."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"{value} is not a finite number")
    mantissa = int("".join(map(str, digits)) or "0")
    shift = decimals + exponent
    factor = int(10 ** abs(shift))
    if shift < 0:
        if mantissa % factor:
            raise ValueError(f"{value} has more than {decimals} decimals")
        mantissa //= factor
    else:
        mantissa *= factor
    return -mantissa if sign else mantissa


def row_problem(
    open_: int, high: int, low: int, close: int, volume: int, price_dp: int, volume_dp: int
) -> tuple[str, str] | None:
    """The first OHLCV consistency problem of one scaled row as (column, text), or None."""
    if high < low:
        return "high", f"high {_t(high, price_dp)} is below low {_t(low, price_dp)}"
    for name, value in (("open", open_), ("close", close)):
        if value > high:
            return name, f"{name} {_t(value, price_dp)} is above high {_t(high, price_dp)}"
        if value < low:
            return name, f"{name} {_t(value, price_dp)} is below low {_t(low, price_dp)}"
    if volume < 0:
        return "volume", f"volume {_t(volume, volume_dp)} is negative"
    return None


_t = scaled_to_text


def _int_column(values: Iterable[int]) -> Sequence[int]:
    """An array('q') when every value fits in 64 bits (the norm), else a plain list."""
    items = values if isinstance(values, array) else list(values)
    try:
        return array("q", items)
    except OverflowError:
        return list(items)


def epoch_to_datetime(epoch_seconds: int) -> datetime:
    """Tz-aware UTC datetime of an epoch second."""
    return datetime.fromtimestamp(epoch_seconds, UTC)


def datetime_to_epoch(moment: datetime) -> int:
    """Epoch seconds of a tz-aware datetime; ValueError for naive or sub-second values."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} is a naive datetime; bars need tz-aware UTC")
    if moment.microsecond:
        raise ValueError(f"{moment.isoformat()} has fractions of a second")
    return int(moment.timestamp())


class _DecimalMemo:
    """Scaled int -> Decimal, memoised because neighbouring bars repeat most prices."""

    __slots__ = ("_cache", "_exponent", "decimals")

    def __init__(self, decimals: int) -> None:
        self.decimals = decimals
        self._exponent = -decimals
        self._cache: dict[int, Decimal] = {}

    def make(self, value: int) -> Decimal:
        """Decimal of `value` with exactly `decimals` places (slow path after a memo miss)."""
        if len(self._cache) >= _DECIMAL_CACHE_LIMIT:
            self._cache.clear()
        # scaleb is exact here: the fixed context has far more digits than an int64 holds.
        result = self._cache[value] = Decimal(value).scaleb(self._exponent, _EXACT)
        return result


class BarSeries:
    """One symbol at one timeframe: ascending unique timestamps, validated, immutable.

    Build it with `from_bars` (validates) or `datasets.load_bar_series`; `from_scaled_columns`
    is the fast path for code that has already validated its columns.
    """

    __slots__ = (
        "_closes",
        "_closes_float",
        "_highs",
        "_lows",
        "_opens",
        "_price_cache",
        "_price_memo",
        "_timestamps",
        "_volume_cache",
        "_volume_memo",
        "_volumes",
        "symbol",
        "timeframe",
    )

    def __init__(
        self,
        *,
        symbol: str,
        timeframe: str,
        price_decimals: int,
        volume_decimals: int,
        timestamps: Sequence[int],
        opens: Sequence[int],
        highs: Sequence[int],
        lows: Sequence[int],
        closes: Sequence[int],
        volumes: Sequence[int],
    ) -> None:
        """Wrap already validated scaled columns (use `from_scaled_columns` to validate)."""
        self.symbol = symbol
        self.timeframe = parse_timeframe(timeframe)
        self._timestamps = timestamps
        self._opens, self._highs, self._lows, self._closes = opens, highs, lows, closes
        self._volumes = volumes
        self._price_memo = _DecimalMemo(price_decimals)
        self._volume_memo = _DecimalMemo(volume_decimals)
        self._price_cache = self._price_memo._cache
        self._volume_cache = self._volume_memo._cache
        self._closes_float: array[float] | None = None

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_scaled_columns(
        cls,
        *,
        symbol: str,
        timeframe: str,
        price_decimals: int,
        volume_decimals: int,
        timestamps: Iterable[int],
        opens: Iterable[int],
        highs: Iterable[int],
        lows: Iterable[int],
        closes: Iterable[int],
        volumes: Iterable[int],
        source: str = "<columns>",
        validate: bool = True,
    ) -> BarSeries:
        """A series from integer columns scaled by 10**decimals; DatasetError on bad rows."""
        columns = [_int_column(c) for c in (timestamps, opens, highs, lows, closes, volumes)]
        if len({len(c) for c in columns}) > 1:
            raise DatasetError(file=source, problem="columns have different lengths")
        series = cls(
            symbol=symbol,
            timeframe=timeframe,
            price_decimals=price_decimals,
            volume_decimals=volume_decimals,
            timestamps=columns[0],
            opens=columns[1],
            highs=columns[2],
            lows=columns[3],
            closes=columns[4],
            volumes=columns[5],
        )
        if validate:
            series._validate(source)
        return series

    @classmethod
    def from_bars(cls, bars: Iterable[Bar], *, source: str = "<bars>") -> BarSeries:
        """A validated series from Bars of one symbol and timeframe, in ascending time order."""
        items = list(bars)
        if not items:
            raise DatasetError(file=source, problem="no bars")
        first = items[0]
        for n, bar in enumerate(items, start=1):
            if (bar.symbol, bar.timeframe) != (first.symbol, first.timeframe):
                raise DatasetError(file=source, row=n, problem="bars mix symbols or timeframes")
        price_dp = max(_decimals_of(v) for b in items for v in (b.open, b.high, b.low, b.close))
        volume_dp = max(_decimals_of(b.volume) for b in items)

        def scaled(attr: str, dp: int) -> list[int]:
            return [decimal_to_scaled(getattr(b, attr), dp) for b in items]

        return cls.from_scaled_columns(
            symbol=first.symbol,
            timeframe=first.timeframe,
            price_decimals=price_dp,
            volume_decimals=volume_dp,
            timestamps=[datetime_to_epoch(b.timestamp) for b in items],
            opens=scaled("open", price_dp),
            highs=scaled("high", price_dp),
            lows=scaled("low", price_dp),
            closes=scaled("close", price_dp),
            volumes=scaled("volume", volume_dp),
            source=source,
        )

    def _validate(self, source: str) -> None:
        """Raise DatasetError for the first unsorted/duplicate timestamp or inconsistent row."""
        ts = self._timestamps
        pdp, vdp = self.price_decimals, self.volume_decimals
        rows = zip(self._opens, self._highs, self._lows, self._closes, self._volumes, strict=True)
        for i, (o, h, low, c, v) in enumerate(rows):
            if i and ts[i] <= ts[i - 1]:
                word = "repeats" if ts[i] == ts[i - 1] else "is earlier than"
                raise DatasetError(
                    file=source,
                    row=i + 1,
                    column="timestamp",
                    problem=f"timestamp {_iso(ts[i])} {word} the previous row's {_iso(ts[i - 1])}",
                )
            problem = row_problem(o, h, low, c, v, pdp, vdp)
            if problem:
                raise DatasetError(file=source, row=i + 1, column=problem[0], problem=problem[1])

    # -- scalar access ------------------------------------------------------------------------

    @property
    def price_decimals(self) -> int:
        """Number of decimals the integer price columns are scaled by."""
        return self._price_memo.decimals

    @property
    def volume_decimals(self) -> int:
        """Number of decimals the integer volume column is scaled by."""
        return self._volume_memo.decimals

    def __len__(self) -> int:
        return len(self._timestamps)

    def __repr__(self) -> str:
        span = f"{_iso(self._timestamps[0])}..{_iso(self._timestamps[-1])}" if len(self) else ""
        return f"BarSeries({self.symbol!r}, {self.timeframe!r}, {len(self)} bars {span})"

    def bar(self, i: int) -> Bar:
        """Materialise bar `i` (negative indexes count from the end)."""
        return Bar(
            symbol=self.symbol,
            timeframe=self.timeframe,
            timestamp=epoch_to_datetime(self._timestamps[i]),
            open=self.open_at(i),
            high=self.high_at(i),
            low=self.low_at(i),
            close=self.close_at(i),
            volume=self.volume_at(i),
        )

    def __iter__(self) -> Iterator[Bar]:
        return (self.bar(i) for i in range(len(self)))

    def epoch_seconds(self, i: int) -> int:
        """Open time of bar `i` in epoch seconds."""
        return self._timestamps[i]

    def timestamp_at(self, i: int) -> datetime:
        """Open time of bar `i` as a tz-aware UTC datetime."""
        return epoch_to_datetime(self._timestamps[i])

    def index_at_or_before(self, epoch: int) -> int:
        """Index of the last bar opening at or before `epoch`, or -1 when there is none."""
        return bisect_right(self._timestamps, epoch) - 1

    def index_at(self, epoch: int) -> int:
        """Index of the bar opening exactly at `epoch`, or -1."""
        i = bisect_left(self._timestamps, epoch)
        return i if i < len(self._timestamps) and self._timestamps[i] == epoch else -1

    def open_at(self, i: int) -> Decimal:
        """Open price of bar `i`."""
        v = self._opens[i]
        d = self._price_cache.get(v)
        return self._price_memo.make(v) if d is None else d

    def high_at(self, i: int) -> Decimal:
        """High price of bar `i`."""
        v = self._highs[i]
        d = self._price_cache.get(v)
        return self._price_memo.make(v) if d is None else d

    def low_at(self, i: int) -> Decimal:
        """Low price of bar `i`."""
        v = self._lows[i]
        d = self._price_cache.get(v)
        return self._price_memo.make(v) if d is None else d

    def close_at(self, i: int) -> Decimal:
        """Close price of bar `i`."""
        v = self._closes[i]
        d = self._price_cache.get(v)
        return self._price_memo.make(v) if d is None else d

    def volume_at(self, i: int) -> Decimal:
        """Volume of bar `i`."""
        v = self._volumes[i]
        d = self._volume_cache.get(v)
        return self._volume_memo.make(v) if d is None else d

    # -- bulk access --------------------------------------------------------------------------

    def timestamps(self) -> Sequence[int]:
        """All open times in epoch seconds (read-only view, no copy)."""
        return readonly_column(self._timestamps)

    def scaled_column(self, name: str) -> Sequence[int]:
        """Raw integer column `open|high|low|close|volume` (divide by 10**decimals); no copy."""
        columns = {
            "open": self._opens,
            "high": self._highs,
            "low": self._lows,
            "close": self._closes,
            "volume": self._volumes,
        }
        return readonly_column(columns[name])

    def closes_float(self) -> Sequence[float]:
        """Closes as floats, for indicators only (never for money); computed once."""
        if self._closes_float is None:
            scale = 10**self.price_decimals
            self._closes_float = array("d", (c / scale for c in self._closes))
        return _readonly_floats(self._closes_float)

    def column_float(self, name: str) -> Sequence[float]:
        """Any of `open|high|low|close|volume` as floats, for indicators; a new array each call."""
        if name == "close":
            return self.closes_float()
        dp = self.volume_decimals if name == "volume" else self.price_decimals
        scale = 10**dp
        return array("d", (v / scale for v in self.scaled_column(name)))

    def slice(self, start: datetime | None, end: datetime | None) -> BarSeries:
        """Bars whose open time lies in [start, end], both inclusive; None means unbounded."""
        lo = 0 if start is None else bisect_left(self._timestamps, datetime_to_epoch(start))
        hi = len(self) if end is None else bisect_right(self._timestamps, datetime_to_epoch(end))
        return self.take(lo, hi)

    def take(self, lo: int, hi: int) -> BarSeries:
        """Bars with indexes lo <= i < hi, sharing this series' Decimal memo."""
        part = BarSeries(
            symbol=self.symbol,
            timeframe=self.timeframe,
            price_decimals=self.price_decimals,
            volume_decimals=self.volume_decimals,
            timestamps=self._timestamps[lo:hi],
            opens=self._opens[lo:hi],
            highs=self._highs[lo:hi],
            lows=self._lows[lo:hi],
            closes=self._closes[lo:hi],
            volumes=self._volumes[lo:hi],
        )
        part._price_memo, part._volume_memo = self._price_memo, self._volume_memo
        part._price_cache, part._volume_cache = self._price_cache, self._volume_cache
        return part

    def nbytes(self) -> int:
        """Approximate bytes held by the columns (for benchmarks and capacity checks)."""
        columns = (self._timestamps, self._opens, self._highs, self._lows, self._closes)
        total = 0
        for column in (*columns, self._volumes):
            total += (
                column.itemsize * len(column) if isinstance(column, array) else 36 * len(column)
            )
        return total


def readonly_column(column: Sequence[int]) -> Sequence[int]:
    if isinstance(column, array):
        return memoryview(column).toreadonly()
    return tuple(column)


def _readonly_floats(column: array[float]) -> Sequence[float]:
    view: Sequence[float] = memoryview(column).toreadonly()  # indexing yields floats
    return view


def _decimals_of(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        raise ValueError(f"{value} is not a finite number")
    return max(0, -exponent)


def _iso(epoch_seconds: int) -> str:
    return epoch_to_datetime(epoch_seconds).strftime("%Y-%m-%dT%H:%M:%SZ")
