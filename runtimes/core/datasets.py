"""Import OHLCV files (CSV, JSON, Parquet) into validated BarSeries, and resample them.

A file is read and checked row by row into compact integer columns; bad rows raise one
DatasetError listing the first hundred (file, line, problem) and counting the rest, and nothing
is returned. The timeframe is the bars' most common spacing. Formats: datasets_formats.
"""

from __future__ import annotations

import gzip
import io
import zlib
from array import array
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
from runtimes.core.datasets_spacing import RowPlaces, check_timeframe
from runtimes.core.decimals import PLATFORM_PLACES, InvalidDecimal, parse_decimal
from runtimes.core.market_data import MarketData
from runtimes.core.timeframes import (
    TimeframeError,
    bucket_start,
    parse_timeframe,
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
    tf = check_timeframe(builder.timestamps, builder.places, timeframe, source)
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
        self.places = RowPlaces()

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
