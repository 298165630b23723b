"""Import OHLCV files (CSV, JSON, Parquet) into validated BarSeries, and resample them.

A file is read and checked row by row into compact integer columns; bad rows raise one
DatasetError listing the first hundred (file, line, problem) and counting the rest, and nothing
is returned. The timeframe is the bars' most common spacing. Formats: datasets_formats.
"""

from __future__ import annotations

import bisect
import gzip
import io
import itertools
import zlib
from array import array
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runtimes.core.bar_cache import BarCache, content_digest
from runtimes.core.bars import BarSeries, decimal_to_scaled, row_problem
from runtimes.core.dataset_errors import BadRows, DatasetError
from runtimes.core.datasets_formats import (
    RawTable,
    RowProblem,
    TimestampReader,
    detect_kind,
    read_csv,
    read_json,
    read_parquet,
)
from runtimes.core.decimals import PLATFORM_PLACES, InvalidDecimal, parse_decimal
from runtimes.core.market_data import MarketData
from runtimes.core.timeframes import (
    TIMEFRAMES,
    TimeframeError,
    bucket_start,
    parse_timeframe,
    timeframe_for_seconds,
    timeframe_seconds,
)

__all__ = [
    "DatasetError",
    "load_bar_series",
    "load_market_data",
    "parse_bar_series",
    "resample",
]

_POW10 = [10**k for k in range(40)]


# -- public API ----------------------------------------------------------------------------------


def load_bar_series(
    path: Path | str,
    *,
    symbol: str,
    timeframe: str | None = None,
    source_name: str | None = None,
    assume_utc: bool = False,
    cache: BarCache | None = None,
) -> BarSeries:
    """Read one symbol's bars from a CSV, JSON or Parquet file (detected from its content).

    `timeframe` None infers it from the smallest spacing between bars. Naive timestamps are an error
    unless `assume_utc`; date-only values are UTC midnight. Raises DatasetError on any bad row.
    With a `cache`, a file parsed before (same content, same inputs) is not parsed again.
    """
    path = Path(path)
    source = source_name or path.name
    if cache is None or not symbol:  # (no symbol: the parse says what is wrong)
        return _load_file(path, symbol, timeframe, source, assume_utc)
    try:
        before = _version(path)
        digest = content_digest(path)
    except OSError as exc:
        raise DatasetError(file=source, problem=f"cannot read file ({exc.strerror})") from exc
    cached = cache.get(digest, symbol=symbol, timeframe=timeframe, assume_utc=assume_utc)
    if cached is not None:
        return cached
    series = _load_file(path, symbol, timeframe, source, assume_utc)
    try:
        unchanged = _version(path) == before
    except OSError:
        unchanged = False
    if unchanged:  # else the file changed while it was read: what was parsed is not `digest`'s
        cache.put(digest, series, timeframe=timeframe, assume_utc=assume_utc)
    return series


def _version(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _load_file(
    path: Path, symbol: str, timeframe: str | None, source: str, assume_utc: bool
) -> BarSeries:
    try:
        compressed = _is_gzip(path)
        data = _read_bytes(path, compressed, size=8)
        if detect_kind(data, path.name.removesuffix(".gz")) == "csv":
            with _open_text(path, compressed) as stream:
                return _build(read_csv(stream, source), symbol, timeframe, source, assume_utc)
        data = _read_bytes(path, compressed)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DatasetError(file=source, problem=f"cannot read file (bad gzip data: {exc})") from exc
    except OSError as exc:
        raise DatasetError(file=source, problem=f"cannot read file ({exc.strerror})") from exc
    return parse_bar_series(
        data, filename=source, symbol=symbol, timeframe=timeframe, assume_utc=assume_utc
    )


def _is_gzip(path: Path) -> bool:
    """Files on disk may be gzip'd (the repository's bundled data is); uploads never are."""
    with path.open("rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _read_bytes(path: Path, compressed: bool, size: int = -1) -> bytes:
    with gzip.open(path, "rb") if compressed else path.open("rb") as handle:
        return handle.read(size)


def _open_text(path: Path, compressed: bool) -> io.TextIOBase:
    if compressed:
        return io.TextIOWrapper(gzip.GzipFile(path, "rb"), "utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def parse_bar_series(
    data: bytes,
    *,
    filename: str,
    symbol: str,
    timeframe: str | None = None,
    assume_utc: bool = False,
    cache: BarCache | None = None,
) -> BarSeries:
    """Like load_bar_series for bytes already in memory (uploads); `filename` names errors.
    With a `cache`, the series is kept for a later load of a file holding these bytes."""
    if cache is None or not symbol:
        return _parse_bytes(data, filename, symbol, timeframe, assume_utc)
    digest = content_digest(data)
    cached = cache.get(digest, symbol=symbol, timeframe=timeframe, assume_utc=assume_utc)
    if cached is not None:
        return cached
    series = _parse_bytes(data, filename, symbol, timeframe, assume_utc)
    cache.put(digest, series, timeframe=timeframe, assume_utc=assume_utc)
    return series


def _parse_bytes(
    data: bytes, filename: str, symbol: str, timeframe: str | None, assume_utc: bool
) -> BarSeries:
    kind = detect_kind(data[:8], filename)
    if kind == "parquet":
        table = read_parquet(data, filename, assume_utc)
    elif kind == "json":
        table = read_json(data, filename)
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DatasetError(file=filename, problem="not UTF-8 text") from exc
        table = read_csv(io.StringIO(text, newline=""), filename)
    return _build(table, symbol, timeframe, filename, assume_utc)


def load_market_data(
    paths: Mapping[str, Path | str],
    *,
    timeframe: str | None = None,
    assume_utc: bool = False,
    cache: BarCache | None = None,
) -> MarketData:
    """Load one file per symbol (`{symbol: path}`) and align them; DatasetError on bad data.
    `cache` as in load_bar_series."""
    series = [
        load_bar_series(path, symbol=symbol, timeframe=timeframe, assume_utc=assume_utc,
                        cache=cache)
        for symbol, path in paths.items()
    ]
    timeframes = {s.timeframe for s in series}
    if len(timeframes) > 1:
        raise DatasetError(
            file=", ".join(str(p) for p in paths.values()),
            problem=f"files have different timeframes ({', '.join(sorted(timeframes))})",
        )
    return MarketData.from_series(series)


def resample(series: BarSeries, timeframe: str) -> BarSeries:
    """Aggregate `series` into `timeframe` buckets aligned to UTC (weeks start Monday).

    open = first, high = max, low = min, close = last, volume = sum; a bucket is stamped with
    its start and kept even when partial or when the source has gaps. Raises TimeframeError when
    `timeframe` is not a whole multiple of the series' timeframe.
    """
    source_len, target_len = timeframe_seconds(series.timeframe), timeframe_seconds(timeframe)
    if target_len == source_len:
        return series
    if target_len < source_len or target_len % source_len:
        raise TimeframeError(
            f"cannot resample {series.timeframe} bars to {timeframe}: "
            f"the target must be a larger whole multiple of {series.timeframe}"
        )
    columns = _resample_columns(series, timeframe)
    return BarSeries(
        symbol=series.symbol,
        timeframe=timeframe,
        price_decimals=series.price_decimals,
        volume_decimals=series.volume_decimals,
        timestamps=columns[0],
        opens=columns[1],
        highs=columns[2],
        lows=columns[3],
        closes=columns[4],
        volumes=columns[5],
    )


def _resample_columns(series: BarSeries, timeframe: str) -> list[Any]:
    ts = series.timestamps()
    opens, highs, lows = (series.scaled_column(n) for n in ("open", "high", "low"))
    closes, volumes = series.scaled_column("close"), series.scaled_column("volume")
    out: list[Any] = [array("q") for _ in range(6)]
    out_ts, out_o, out_h, out_l, out_c, out_v = out
    current = None
    for i in range(len(ts)):
        start = bucket_start(ts[i], timeframe)
        if start != current:
            current = start
            out_ts.append(start)
            out_o.append(opens[i])
            out_h.append(highs[i])
            out_l.append(lows[i])
            out_c.append(closes[i])
            out_v.append(volumes[i])
            continue
        if highs[i] > out_h[-1]:
            out_h[-1] = highs[i]
        if lows[i] < out_l[-1]:
            out_l[-1] = lows[i]
        out_c[-1] = closes[i]
        out_v[-1] += volumes[i]
    return out


# -- building a series from raw rows -------------------------------------------------------------


def _build(
    table: RawTable, symbol: str, timeframe: str | None, source: str, assume_utc: bool
) -> BarSeries:
    if not symbol:
        raise DatasetError(file=source, problem="a symbol is required")
    if timeframe is not None:
        try:
            parse_timeframe(timeframe)
        except TimeframeError as exc:
            raise DatasetError(file=source, problem=str(exc)) from exc
    builder = _ColumnBuilder(table, source, assume_utc)
    builder.read_all()
    if builder.bad:
        raise builder.bad.error(source)
    tf = _check_timeframe(builder, timeframe, source)
    return BarSeries(
        symbol=symbol,
        timeframe=tf,
        price_decimals=builder.price_dp,
        volume_decimals=builder.volume_dp,
        timestamps=builder.timestamps,
        opens=builder.opens,
        highs=builder.highs,
        lows=builder.lows,
        closes=builder.closes,
        volumes=builder.volumes,
    )


class _ColumnBuilder:
    """Parses, scales and checks rows one by one into int64 columns."""

    def __init__(self, table: RawTable, source: str, assume_utc: bool) -> None:
        self.table = table
        self.source = source
        self.stamps = TimestampReader(table.timestamp_column, assume_utc)
        self.price_dp = 0
        self.volume_dp = 0
        self.timestamps: Any = array("q")
        self.opens: Any = array("q")
        self.highs: Any = array("q")
        self.lows: Any = array("q")
        self.closes: Any = array("q")
        self.volumes: Any = array("q")
        self.bad = BadRows()
        self.places = _RowPlaces()

    def read_all(self) -> None:
        """Every row into the columns; a bad row is left out and noted in `bad`."""
        row_no = 0
        for row_no, raw in enumerate(self.table.rows, start=1):
            line = self.table.current_line()
            try:
                if isinstance(raw, RowProblem):
                    raise raw
                self._add(raw)
            except RowProblem as p:
                self.bad.add(row_no, line, p.column, p.problem)
            else:
                self.places.note(len(self.timestamps) - 1, row_no, line)
        if row_no == 0:
            raise DatasetError(file=self.source, problem="no data rows")

    def _add(self, raw: tuple[Any, ...]) -> None:
        epoch = self.stamps.read(raw[0])
        if self.timestamps and epoch <= self.timestamps[-1]:
            raise RowProblem("timestamp", _order_problem(epoch, self.timestamps[-1]))
        o, odp = _number(raw[1], "open")
        h, hdp = _number(raw[2], "high")
        low, ldp = _number(raw[3], "low")
        c, cdp = _number(raw[4], "close")
        v, vdp = _number(raw[5], "volume")
        dp = max(odp, hdp, ldp, cdp)
        if dp > self.price_dp:
            self._rescale_prices(dp)
        if vdp > self.volume_dp:
            self.volumes = _rescaled(self.volumes, vdp - self.volume_dp)
            self.volume_dp = vdp
        pdp = self.price_dp
        o, h = o * _POW10[pdp - odp], h * _POW10[pdp - hdp]
        low, c = low * _POW10[pdp - ldp], c * _POW10[pdp - cdp]
        v *= _POW10[self.volume_dp - vdp]
        problem = row_problem(o, h, low, c, v, pdp, self.volume_dp)
        if problem:
            raise RowProblem(*problem)
        self._append(epoch, o, h, low, c, v)

    def _append(self, epoch: int, o: int, h: int, low: int, c: int, v: int) -> None:
        try:
            self.opens.append(o)
            self.highs.append(h)
            self.lows.append(low)
            self.closes.append(c)
            self.volumes.append(v)
        except OverflowError:
            # More digits than int64 holds: fall back to plain lists (rare, slower, still exact).
            n = len(self.timestamps)
            self._to_lists()
            for column, value in zip(self._value_columns(), (o, h, low, c, v), strict=True):
                del column[n:]
                column.append(value)
        self.timestamps.append(epoch)

    def _value_columns(self) -> list[Any]:
        return [self.opens, self.highs, self.lows, self.closes, self.volumes]

    def _to_lists(self) -> None:
        self.opens, self.highs, self.lows, self.closes, self.volumes = (
            list(c) for c in self._value_columns()
        )

    def _rescale_prices(self, dp: int) -> None:
        shift = dp - self.price_dp
        self.opens = _rescaled(self.opens, shift)
        self.highs = _rescaled(self.highs, shift)
        self.lows = _rescaled(self.lows, shift)
        self.closes = _rescaled(self.closes, shift)
        self.price_dp = dp


def _rescaled(column: Any, shift: int) -> Any:
    factor = _POW10[shift]
    try:
        return array("q", [x * factor for x in column])
    except OverflowError:
        return [x * factor for x in column]


def _number(text: Any, column: str) -> tuple[int, int]:
    """(scaled integer, number of decimals) of a decimal text, exactly up to the platform's
    precision (`decimals.parse_decimal`: finer values are rounded, larger ones refused)."""
    if text is None or text == "":
        raise RowProblem(column, f"{column} is empty")
    if isinstance(text, str):
        whole, _, frac = text.partition(".")
        if (not frac or frac.isdigit()) and len(frac) <= PLATFORM_PLACES and len(whole) < 19:
            try:
                return int(whole + frac), len(frac)
            except ValueError:
                pass
    return _slow_number(text, column)


def _slow_number(text: Any, column: str) -> tuple[int, int]:
    if not isinstance(text, str):
        raise RowProblem(column, f"{column} {text!r} is not a number")
    try:
        value = parse_decimal(text, field=column)
    except InvalidDecimal as error:
        shown = error.details.get("provided", text)
        reason = "is not a number" if error.code == "INVALID_REQUEST" else error.reason
        raise RowProblem(column, f"{column} {shown!r} {reason}") from None
    exponent = value.as_tuple().exponent
    decimals = max(0, -exponent) if isinstance(exponent, int) else 0
    return decimal_to_scaled(value, decimals), decimals


def _order_problem(epoch: int, previous: int) -> str:
    if epoch == previous:
        return f"duplicate timestamp {_iso(epoch)} (same as the previous row)"
    return (
        f"timestamp {_iso(epoch)} is earlier than the previous row's {_iso(previous)}; "
        "rows must be in ascending time order"
    )


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _RowPlaces:
    """Where each kept bar was in the file (its data row and line), stored only where the step
    between bar index and row or line changes (after a blank line or a bad row)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.offsets: list[tuple[int, int | None]] = []

    def note(self, index: int, row: int, line: int | None) -> None:
        offset = (row - index, None if line is None else line - index)
        if not self.offsets or self.offsets[-1] != offset:
            self.starts.append(index)
            self.offsets.append(offset)

    def of(self, index: int) -> tuple[int, int | None]:
        """(row, line) of bar `index`."""
        row_offset, line_offset = self.offsets[bisect.bisect_right(self.starts, index) - 1]
        return index + row_offset, None if line_offset is None else index + line_offset


def bar_spacing(timestamps: Any) -> int | None:
    """The most common gap in seconds between consecutive bars (the smaller on a tie), or None
    for fewer than two bars. Nights, weekends and outages make some gaps longer; the bar length
    is still the gap most bars have."""
    counts: Counter[int] = Counter(b - a for a, b in itertools.pairwise(timestamps))
    if not counts:
        return None
    return min(counts, key=lambda gap: (-counts[gap], gap))


def describe_seconds(seconds: int) -> str:
    """'1 day', '15 minutes', '90 seconds': a spacing as a person says it."""
    for unit, length in (("week", 604_800), ("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds % length == 0:
            count = seconds // length
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _check_timeframe(builder: _ColumnBuilder, timeframe: str | None, source: str) -> str:
    """The timeframe of the bars: the one given after checking it against their spacing, or the
    one their spacing is. A given timeframe that no two bars are apart (when they are mostly
    further apart) or that is longer than the spacing is refused with the spacing found; bars
    closer than the timeframe are bad rows."""
    timestamps = builder.timestamps
    spacing = bar_spacing(timestamps)
    if timeframe is None:
        if spacing is None:
            raise DatasetError(file=source, problem="one bar only; pass the timeframe explicitly")
        inferred = timeframe_for_seconds(spacing)
        if inferred is None:
            raise DatasetError(
                file=source,
                problem=f"cannot infer the timeframe: the bars are most often {spacing} seconds "
                f"apart, which is none of {', '.join(TIMEFRAMES)}; pass the timeframe explicitly",
            )
        timeframe = inferred
    length = timeframe_seconds(timeframe)
    if spacing is not None and spacing != length:
        sparse = spacing > length and length in (b - a for a, b in itertools.pairwise(timestamps))
        if not sparse:
            raise DatasetError(file=source, problem=_mismatch(spacing, timeframe))
    _refuse_close_bars(builder, timeframe, length, source)
    return timeframe


def _mismatch(spacing: int, timeframe: str) -> str:
    said = f"the rows are {describe_seconds(spacing)} apart but the timeframe given is {timeframe}"
    found = timeframe_for_seconds(spacing)
    if found is None:
        return f"{said}, and {describe_seconds(spacing)} is none of {', '.join(TIMEFRAMES)}"
    return f"{said}; give {found}, or leave the timeframe empty to have it read from the file"


def _refuse_close_bars(builder: _ColumnBuilder, timeframe: str, length: int, source: str) -> None:
    bad = BadRows()
    timestamps = builder.timestamps
    for i in range(1, len(timestamps)):
        gap = timestamps[i] - timestamps[i - 1]
        if gap < length:
            row, line = builder.places.of(i)
            bad.add(row, line, "timestamp", f"bar is {describe_seconds(gap)} after the previous "
                                            f"one, less than one {timeframe} bar")
    if bad:
        raise bad.error(source)
