"""Readers that turn CSV, JSON and Parquet bar files into rows of raw OHLCV values.

Each reader yields `(timestamp, open, high, low, close, volume)` with numbers as text (never
float), or a RowProblem for a row too short to read, and tells the file's line of the row it
yielded last (`current_line`, CSV only). Columns are matched by name, with
the usual aliases; header-less CSV and JSON arrays are positional (Binance klines, freqtrade).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from runtimes.core.dataset_errors import DatasetError

FIELDS = ("timestamp", "open", "high", "low", "close", "volume")
ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp", "datetime", "time", "date", "open_time", "opentime", "ts", "t"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v"),
}
KNOWN_NAMES = frozenset(name for names in ALIASES.values() for name in names)

RawRow = tuple[Any, Any, Any, Any, Any, Any]


class RowProblem(Exception):
    """A problem in the current row; the dataset builder adds file, row and line."""

    def __init__(self, column: str | None, problem: str) -> None:
        super().__init__(problem)
        self.column = column
        self.problem = problem


@dataclass
class RawTable:
    """Rows of raw values (or the problem of a row that cannot be read) plus the line of the file
    the last row came from and what the timestamp column was called."""

    rows: Iterator[RawRow | RowProblem]
    timestamp_column: str = "timestamp"
    headerless: bool = False
    line: int | None = None  # where the row yielded last starts (a header is line 1); CSV only

    def current_line(self) -> int | None:
        """The file's line of the row yielded last; None for formats without lines."""
        return self.line


def detect_kind(head: bytes, filename: str) -> str:
    """'parquet', 'json' or 'csv' from the magic bytes, falling back on the file extension."""
    if head.startswith(b"PAR1"):
        return "parquet"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith((b"[", b"{")):
        return "json"
    if filename.lower().endswith((".parquet", ".pq")):
        return "parquet"
    return "csv"


def map_header(names: Sequence[str], source: str) -> tuple[list[int], str]:
    """Indexes of timestamp, open, high, low, close, volume in `names` (-2 = date+time pair)."""
    lowered = [n.strip().lower().lstrip("\ufeff") for n in names]
    picked: list[int] = []
    missing: list[str] = []
    for wanted in FIELDS:
        index = next((lowered.index(a) for a in ALIASES[wanted] if a in lowered), -1)
        if wanted == "timestamp" and _has_date_and_time(lowered):
            index = -2  # separate date and time columns, joined per row
        picked.append(index)
        if index == -1:
            missing.append(wanted)
    if missing:
        found = ", ".join(n for n in lowered if n) or "nothing"
        raise DatasetError(
            file=source,
            column=missing[0],
            problem=f"missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (found: {found})",
        )
    ts_name = "date+time" if picked[0] == -2 else lowered[picked[0]]
    if picked[0] == -2:
        picked[0] = lowered.index("date")
        picked.append(lowered.index("time"))
    return picked, ts_name


def _has_date_and_time(lowered: list[str]) -> bool:
    combined = ("timestamp", "datetime", "open_time", "opentime")
    return "date" in lowered and "time" in lowered and not any(a in lowered for a in combined)


# -- timestamps ----------------------------------------------------------------------------------


class TimestampReader:
    """Converts raw timestamps to epoch seconds; the first row fixes the style of the file."""

    def __init__(self, column_name: str, assume_utc: bool) -> None:
        self.column_name = column_name
        self.assume_utc = assume_utc
        self.per_second = 0  # for integer epochs: 1 (s), 1000 (ms), 10**6 (us), 10**9 (ns)
        self.aware: bool | None = None  # None until a time with or without zone is seen
        self.first_zone_row = 0
        self.rows = 0

    def read(self, raw: Any) -> int:
        self.rows += 1
        if isinstance(raw, str):
            text = raw.strip()
            if text.lstrip("-").isdigit() and not self._is_compact_date(text):
                return self._epoch(int(text))
            return self._iso(text)
        if isinstance(raw, _EpochValue):
            return self._exact_seconds(raw.count, raw.per_second, raw)
        if isinstance(raw, datetime):
            return self._datetime(raw, raw.isoformat())
        if isinstance(raw, date):
            return int(datetime(raw.year, raw.month, raw.day, tzinfo=UTC).timestamp())
        if raw is None:
            raise RowProblem("timestamp", "timestamp is empty")
        raise RowProblem("timestamp", f"timestamp {raw!r} is not a date or time")

    def _is_compact_date(self, text: str) -> bool:
        return self.column_name == "date" and len(text) == 8

    def _epoch(self, count: int) -> int:
        if not self.per_second:
            # Unit from the first value's size: 1e11 s is the year 5138, 1e14 ms the year 5138...
            magnitude = abs(count)
            limits = ((10**11, 1), (10**14, 1000), (10**17, 10**6))
            self.per_second = next((unit for limit, unit in limits if magnitude < limit), 10**9)
        return self._exact_seconds(count, self.per_second, count)

    def _exact_seconds(self, count: int, per_second: int, shown: object) -> int:
        seconds, rest = divmod(count, per_second)
        if rest:
            raise RowProblem("timestamp", f"timestamp {shown} is not a whole second")
        return seconds

    def _iso(self, text: str) -> int:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise RowProblem("timestamp", f"timestamp {text!r} is not a date or time") from None
        if len(text) in (8, 10) and text[-1].isdigit() and "T" not in text and ":" not in text:
            return int(moment.replace(tzinfo=UTC).timestamp())  # a date: UTC midnight
        return self._datetime(moment, text)

    def _datetime(self, moment: datetime, shown: str) -> int:
        aware = moment.tzinfo is not None and moment.utcoffset() is not None
        if self.aware is None:
            self.aware, self.first_zone_row = aware, self.rows
        elif aware != self.aware:
            has, other = ("has", "has none") if aware else ("has no", "has one")
            raise RowProblem(
                "timestamp",
                f"mixed time zones: timestamp {shown!r} {has} time zone "
                f"but row {self.first_zone_row} {other}",
            )
        if not aware:
            if not self.assume_utc:
                raise RowProblem(
                    "timestamp",
                    f"timestamp {shown!r} has no time zone; write UTC times with a Z "
                    "(2021-04-02T00:00:00Z) or an offset, or pass assume_utc=True",
                )
            moment = moment.replace(tzinfo=UTC)
        if moment.microsecond:
            raise RowProblem("timestamp", f"timestamp {shown!r} is not a whole second")
        return int(moment.timestamp())


# -- CSV -----------------------------------------------------------------------------------------


def read_csv(text_stream: io.TextIOBase | io.StringIO, source: str) -> RawTable:
    """Rows of a CSV file with a header naming the columns, or a header-less positional file."""
    first_line = text_stream.readline()
    delimiter = _delimiter(first_line)
    first = next(_records(csv.reader([first_line], delimiter=delimiter), source), [])
    header = bool(first) and first[0].strip().lower().lstrip("\ufeff") in KNOWN_NAMES
    if first and not header and not _looks_like_data(first[0]):
        map_header(first, source)  # raises the missing-columns error with what was found
    table = RawTable(rows=iter(()), headerless=not header)
    reader = csv.reader(text_stream, delimiter=delimiter)
    if header:
        picked, table.timestamp_column = map_header(first, source)
        table.rows = _csv_rows(_records(reader, source), picked, table, reader)
    else:
        rest = reader if not first else _chain_first(first, reader)
        table.rows = _csv_rows(_records(rest, source), [0, 1, 2, 3, 4, 5], table, reader)
    return table


def _csv_rows(
    records: Iterator[list[str]], picked: list[int], table: RawTable, reader: Any
) -> Iterator[RawRow | RowProblem]:
    need = max(picked) + 1
    date_time = len(picked) == 7
    i_ts, i_o, i_h, i_l, i_c, i_v = picked[:6]
    i_time = picked[6] if date_time else 0
    # The first line was read apart; the reader counts the lines after it. A quoted field may
    # span lines, so a record starts on the line after where the previous one ended.
    ended = 1
    for fields in records:
        table.line = ended + 1 if reader.line_num else 1
        ended = 1 + reader.line_num
        if not fields:
            continue  # blank line
        if len(fields) < need:
            yield RowProblem(None, f"expected at least {need} fields, found {len(fields)}")
            continue
        stamp = f"{fields[i_ts].strip()}T{fields[i_time].strip()}" if date_time else fields[i_ts]
        yield (stamp, fields[i_o], fields[i_h], fields[i_l], fields[i_c], fields[i_v])


def _records(reader: Iterator[list[str]], source: str) -> Iterator[list[str]]:
    """The reader's rows; what the csv module cannot read (a field over its 128 KiB limit, a NUL
    character) is a DatasetError like any bad file, not an exception of the csv module."""
    try:
        yield from reader
    except csv.Error as exc:
        raise DatasetError(file=source, problem=f"not a readable CSV file ({exc})") from None


def _chain_first(first: list[str], reader: Iterator[list[str]]) -> Iterator[list[str]]:
    yield first
    yield from reader


def _delimiter(first_line: str) -> str:
    for candidate in (",", ";", "\t"):
        if candidate in first_line:
            return candidate
    return ","


def _looks_like_data(value: str) -> bool:
    text = value.strip().lstrip("\ufeff")
    return bool(text) and (text[0].isdigit() or text[0] in "+-")


# -- JSON ----------------------------------------------------------------------------------------


def read_json(data: bytes, source: str) -> RawTable:
    """Rows of a JSON array of arrays (freqtrade, Binance klines) or of objects with names."""
    try:
        # Numbers stay text so prices are parsed exactly, never through float.
        document = json.loads(data.decode("utf-8-sig"), parse_float=str, parse_int=str)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(file=source, problem=f"not valid JSON ({exc})") from exc
    except RecursionError:
        raise DatasetError(file=source, problem="not valid JSON (nested too deeply)") from None
    if not isinstance(document, list):
        raise DatasetError(file=source, problem="expected a JSON array of bars")
    table = RawTable(rows=iter(()))
    table.rows = _json_rows(document, source)
    return table


def _json_rows(document: list[Any], source: str) -> Iterator[RawRow | RowProblem]:
    names: list[str] | None = None
    for item in document:
        if isinstance(item, list):
            if len(item) < 6:
                yield RowProblem(None, f"expected at least 6 values, found {len(item)}")
                continue
            yield (item[0], item[1], item[2], item[3], item[4], item[5])
        elif isinstance(item, dict):
            if names is None:
                names = _object_keys(list(item), source)
            yield _object_row(item, names)
        else:
            yield RowProblem(None, "expected an array or an object")


def _object_keys(keys: list[str], source: str) -> list[str]:
    picked, _ = map_header(keys, source)
    names = [keys[i] for i in picked]
    return names


def _object_row(item: dict[str, Any], names: list[str]) -> RawRow:
    stamp = item.get(names[0])
    if len(names) == 7:
        stamp = f"{item.get(names[0])}T{item.get(names[6])}"
    return (stamp, *(item.get(n) for n in names[1:6]))  # type: ignore[return-value]


# -- Parquet -------------------------------------------------------------------------------------


def read_parquet(data: bytes | str, source: str, assume_utc: bool) -> RawTable:
    """Rows of a Parquet file; float prices go through repr() so 0.1 stays 0.1 (shortest text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        handle = pa.BufferReader(data) if isinstance(data, bytes) else data
        table = pq.read_table(handle)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(file=source, problem=f"not a readable Parquet file ({exc})") from exc
    picked, ts_name = map_header(table.column_names, source)
    columns = [_parquet_values(table.column(i), assume_utc, source) for i in picked[:6]]
    if len(picked) == 7:
        times = table.column(picked[6]).to_pylist()
        columns[0] = [f"{d}T{t}" for d, t in zip(columns[0], times, strict=True)]
    raw = RawTable(rows=iter(()), timestamp_column=ts_name)
    raw.rows = iter(zip(*columns, strict=True))
    return raw


def _parquet_values(column: Any, assume_utc: bool, source: str) -> list[Any]:
    import pyarrow as pa

    kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.tz is None and not assume_utc:
            raise DatasetError(
                file=source,
                column="timestamp",
                problem="timestamp column has no time zone; store it as UTC "
                "(timestamp with tz) or pass assume_utc=True",
            )
        per_second = {"s": 1, "ms": 1000, "us": 1_000_000, "ns": 1_000_000_000}[kind.unit]
        ints = column.cast(pa.int64()).to_pylist()
        return [_EpochValue(v, per_second) if v is not None else None for v in ints]
    values: list[Any] = column.to_pylist()
    if pa.types.is_floating(kind):
        return [repr(v) if v is not None else None for v in values]
    return [_text(v) for v in values]


def _text(value: object) -> object:
    if value is None or isinstance(value, (datetime, date, str)):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


@dataclass(frozen=True, slots=True)
class _EpochValue:
    """An exact epoch count from a typed timestamp column, with its units per second."""

    count: int
    per_second: int
