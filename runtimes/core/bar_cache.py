"""A disk cache of parsed bar files, keyed by the file's content hash: a dataset's text is parsed
and validated once (at registration or first use) and later runs load its int64 columns back in
milliseconds. Bounded in bytes (least recently used entries go first); anything wrong with an
entry (torn, corrupt, another version) is a miss, and a cache that cannot write is no cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import sys
import tempfile
import time
from array import array
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO, Final

from runtimes.core.bars import BarSeries

FORMAT: Final = 2  # bump when the entry layout or what parsing accepts changes
MAGIC: Final = b"PARBARS\x00"
SUFFIX: Final = ".bars"
_HEADER_LENGTH = struct.Struct("<I")
_MAX_HEADER = 4096
_COLUMNS = 6  # timestamps, opens, highs, lows, closes, volumes
_STALE_TEMP_SECONDS = 3600.0  # a temporary file this old was left by a writer that died
_CHUNK = 1 << 20


def content_digest(source: Path | bytes) -> str:
    """Hex BLAKE2b-160 of a file's bytes (read in chunks: memory stays flat) or of `bytes`."""
    digest = hashlib.blake2b(digest_size=20)
    if isinstance(source, bytes):
        digest.update(source)
        return digest.hexdigest()
    with source.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class BarCache:
    """Parsed series on disk under `directory`, at most `max_bytes` of them (0: disabled).

    An entry holds what parsing a file gave (its columns, decimals and timeframe), not its
    symbol, which a caller names. Its key is the file's content digest and the parse's inputs
    (the timeframe asked for, `assume_utc`), so an edited file is simply another key."""

    def __init__(self, directory: Path | str, *, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    def get(
        self, digest: str, *, symbol: str, timeframe: str | None, assume_utc: bool
    ) -> BarSeries | None:
        """The series parsed from the content `digest` with these inputs, or None (a miss)."""
        if self.max_bytes <= 0:
            return None
        path = self._entry(digest, timeframe, assume_utc)
        try:
            with path.open("rb") as handle:
                series = _read_entry(handle, symbol)
        except OSError:
            return None  # absent, or evicted meanwhile
        if series is None:
            _remove(path)  # corrupt or of another format: parsed again, written again
            return None
        _touch(path)
        return series

    def put(self, digest: str, series: BarSeries, *, timeframe: str | None,
            assume_utc: bool) -> None:
        """Keep `series`, parsed from content `digest` with these inputs. A series asked for
        without a timeframe is also kept for the one it inferred: every gap of its bars is at
        least that long, so parsing with it gives the same series. Never raises for the disk."""
        columns = _int64_columns(series)
        size = len(series) * _COLUMNS * 8
        if columns is None or self.max_bytes <= 0 or size > self.max_bytes:
            return  # values beyond int64 (rare) or too large to keep: parsed every time
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = self._entry(digest, timeframe, assume_utc)
            _write_entry(path, series, columns)
            if timeframe is None:
                _link(path, self._entry(digest, series.timeframe, assume_utc))
            self._evict()
        except OSError:
            return  # a full or read-only disk costs speed, never a run

    def _entry(self, digest: str, timeframe: str | None, assume_utc: bool) -> Path:
        # Hashed: a timeframe is caller input and must not shape a file name.
        inputs = f"{FORMAT}|{digest}|{timeframe or ''}|{int(assume_utc)}|{sys.byteorder}"
        return self.directory / (hashlib.blake2b(inputs.encode(), digest_size=20).hexdigest()
                                 + SUFFIX)

    def _evict(self) -> None:
        """Remove the least recently used entries until the total fits, and temporary files
        left by writers that died."""
        now = time.time()
        entries = []
        for item in self.directory.iterdir():
            try:
                stat = item.stat()
            except OSError:
                continue
            if item.suffix == SUFFIX:
                entries.append((stat.st_mtime, stat.st_size, item))
            elif item.name.endswith(".tmp") and now - stat.st_mtime > _STALE_TEMP_SECONDS:
                _remove(item)
        total = sum(size for _, size, _ in entries)
        for _, size, item in sorted(entries, key=lambda entry: entry[0]):
            if total <= self.max_bytes:
                break
            _remove(item)
            total -= size


def _int64_columns(series: BarSeries) -> list[Any] | None:
    columns = [series.timestamps(), *(series.scaled_column(name) for name in
                                      ("open", "high", "low", "close", "volume"))]
    if not all(isinstance(column, memoryview) for column in columns):
        return None
    return columns


def _write_entry(path: Path, series: BarSeries, columns: Iterable[Any]) -> None:
    payload = hashlib.blake2b(digest_size=20)
    views = [memoryview(column).cast("B") for column in columns]
    for view in views:
        payload.update(view)
    header = json.dumps({
        "format": FORMAT, "timeframe": series.timeframe, "rows": len(series),
        "price_decimals": series.price_decimals, "volume_decimals": series.volume_decimals,
        "payload": payload.hexdigest(),
    }).encode()
    # Written aside and renamed into place: a reader sees a whole entry or none.
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(MAGIC + _HEADER_LENGTH.pack(len(header)) + header)
            for view in views:
                out.write(view)
        os.replace(temporary, path)
    except BaseException:
        _remove(Path(temporary))
        raise


def _read_entry(handle: BinaryIO, symbol: str) -> BarSeries | None:
    """The series of an entry, or None when it is not a whole, intact entry of this format."""
    head = handle.read(len(MAGIC) + _HEADER_LENGTH.size)
    if len(head) != len(MAGIC) + _HEADER_LENGTH.size or not head.startswith(MAGIC):
        return None
    (length,) = _HEADER_LENGTH.unpack(head[len(MAGIC):])
    if length > _MAX_HEADER:
        return None
    try:
        header = json.loads(handle.read(length))
        rows = header["rows"]
        if header["format"] != FORMAT or not isinstance(rows, int) or rows < 0:
            return None
        body = handle.read(rows * _COLUMNS * 8 + 1)
        if len(body) != rows * _COLUMNS * 8:
            return None
        if hashlib.blake2b(body, digest_size=20).hexdigest() != header["payload"]:
            return None
        view, width = memoryview(body), rows * 8
        columns = [array("q") for _ in range(_COLUMNS)]
        for number, column in enumerate(columns):
            column.frombytes(view[number * width:(number + 1) * width])
        return BarSeries(
            symbol=symbol, timeframe=header["timeframe"],
            price_decimals=int(header["price_decimals"]),
            volume_decimals=int(header["volume_decimals"]),
            timestamps=columns[0], opens=columns[1], highs=columns[2], lows=columns[3],
            closes=columns[4], volumes=columns[5])
    except (ValueError, KeyError, TypeError):
        return None  # an unreadable header, or a timeframe this version does not know


def _link(path: Path, alias: Path) -> None:
    # An alias that exists already is of the same content's entry: it never goes stale.
    with contextlib.suppress(FileExistsError):
        os.link(path, alias)


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: evicted last


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
