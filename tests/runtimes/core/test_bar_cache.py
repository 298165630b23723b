"""The cache of parsed bar files: a hit is the parse's exact series; anything doubtful a miss."""

import os
from decimal import Decimal
from pathlib import Path

import pytest

from runtimes.core import datasets
from runtimes.core.bar_cache import SUFFIX, BarCache, content_digest
from runtimes.core.bars import BarSeries
from runtimes.core.datasets import DatasetError, load_bar_series, load_market_data, parse_bar_series

HEADER = "timestamp,open,high,low,close,volume\n"
ROWS = (
    "2021-04-02T00:00:00Z,58720.45,58840.43,58720.44,58760.34,61.685675\n"
    "2021-04-02T00:01:00Z,58760.34,58820.97,58739.28,58750.01,25.392093\n"
    "2021-04-02T00:03:00Z,58750.01,58790.1,58700,58701.5,3\n"
)
ENTRY_BYTES = 3 * 6 * 8  # rows x columns x int64


def columns(series: BarSeries) -> list[list[int]]:
    return [list(series.timestamps()),
            *(list(series.scaled_column(n)) for n in ("open", "high", "low", "close", "volume"))]


def same_series(a: BarSeries, b: BarSeries) -> bool:
    return (a.symbol, a.timeframe, a.price_decimals, a.volume_decimals, columns(a)) == (
        b.symbol, b.timeframe, b.price_decimals, b.volume_decimals, columns(b))


@pytest.fixture
def cache(tmp_path: Path) -> BarCache:
    return BarCache(tmp_path / "cache", max_bytes=1 << 20)


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "BTCUSDT.csv"
    path.write_text(HEADER + ROWS)
    return path


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files actually parsed (not served by the cache)."""
    seen: list[str] = []
    real = datasets._load_file

    def counting(path: Path, *args: object) -> BarSeries:
        seen.append(path.name)
        return real(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(datasets, "_load_file", counting)
    return seen


def entries(cache: BarCache) -> list[Path]:
    return sorted(cache.directory.glob(f"*{SUFFIX}"))


def test_a_file_loaded_again_comes_from_the_cache_with_the_same_series(csv_file, cache, parses):
    first = load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    again = load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    assert parses == ["BTCUSDT.csv"]
    assert same_series(again, first)
    assert same_series(again, load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m"))
    assert again.close_at(2) == Decimal("58701.50")
    assert again.volume_at(2) == Decimal("3.000000")


def test_the_symbol_is_the_callers_not_the_entrys(csv_file, cache, parses):
    load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    other = load_bar_series(csv_file, symbol="XBT", timeframe="1m", cache=cache)
    assert parses == ["BTCUSDT.csv"]
    assert other.symbol == "XBT"


def test_an_edited_file_is_parsed_again(csv_file, cache, parses):
    load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    csv_file.write_text(HEADER + ROWS.replace("58701.5,3", "58702.5,4"))
    edited = load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    assert parses == ["BTCUSDT.csv", "BTCUSDT.csv"]
    assert (edited.close_at(2), edited.volume_at(2)) == (Decimal("58702.50"), Decimal("4.000000"))


def test_other_parse_inputs_are_other_entries(csv_file, cache, parses):
    load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    with pytest.raises(DatasetError, match="1 minute apart but the timeframe given is 5m"):
        load_bar_series(csv_file, symbol="BTCUSDT", timeframe="5m", cache=cache)
    load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", assume_utc=True, cache=cache)
    assert parses == ["BTCUSDT.csv"] * 3
    assert len(entries(cache)) == 2


def test_a_file_registered_without_timeframe_serves_runs_asking_for_the_inferred_one(
        csv_file, cache, parses):
    inferred = load_bar_series(csv_file, symbol="BTCUSDT", cache=cache)
    run = load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    again = load_bar_series(csv_file, symbol="BTCUSDT", cache=cache)
    assert parses == ["BTCUSDT.csv"]
    assert inferred.timeframe == "1m"
    assert same_series(run, inferred) and same_series(again, inferred)
    assert len(entries(cache)) == 2
    assert entries(cache)[0].stat().st_ino == entries(cache)[1].stat().st_ino  # one copy


def test_an_uploads_bytes_serve_the_file_that_stores_them(csv_file, cache, parses):
    uploaded = parse_bar_series(csv_file.read_bytes(), filename="up.csv", symbol="BTCUSDT",
                                cache=cache)
    stored = load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    assert parses == []
    assert same_series(stored, uploaded)
    assert content_digest(csv_file) == content_digest(csv_file.read_bytes())


def test_market_data_loads_through_the_cache(csv_file, cache, parses):
    load_market_data({"BTCUSDT": csv_file}, timeframe="1m", cache=cache)
    data = load_market_data({"BTCUSDT": csv_file}, timeframe="1m", cache=cache)
    assert parses == ["BTCUSDT.csv"]
    assert len(data) == 3


@pytest.mark.parametrize("damage", ["payload", "truncated", "header", "magic", "empty"])
def test_a_damaged_entry_is_a_miss_and_is_written_again(csv_file, cache, parses, damage):
    good = load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    (entry,) = entries(cache)
    data = bytearray(entry.read_bytes())
    if damage == "payload":
        data[-1] ^= 0x01
    elif damage == "truncated":
        del data[-8:]
    elif damage == "header":
        data[12:14] = b"[]"
    elif damage == "magic":
        data[0:1] = b"X"
    else:
        data = bytearray()
    entry.write_bytes(bytes(data))
    reloaded = load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    assert parses == ["BTCUSDT.csv", "BTCUSDT.csv"]
    assert same_series(reloaded, good)
    assert len(entry.read_bytes()) > ENTRY_BYTES  # whole again
    load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    assert len(parses) == 2


def test_a_file_that_changes_while_it_is_parsed_is_not_kept(csv_file, cache, monkeypatch):
    versions = iter([(1, 100, 1), (1, 100, 2)])  # its mtime moved between hash and parse
    monkeypatch.setattr(datasets, "_version", lambda path: next(versions))
    series = load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    assert len(series) == 3
    assert entries(cache) == []


def test_least_recently_used_entries_go_first_past_the_bound(tmp_path, parses):
    cache = BarCache(tmp_path / "cache", max_bytes=2 * (ENTRY_BYTES + 200))
    files = []
    for number in range(3):
        path = tmp_path / f"f{number}.csv"
        path.write_text(HEADER + ROWS.replace(",3\n", f",{number + 3}\n"))
        files.append(path)
    load_bar_series(files[0], symbol="A", timeframe="1m", cache=cache)
    load_bar_series(files[1], symbol="A", timeframe="1m", cache=cache)
    oldest = min(entries(cache), key=lambda p: p.stat().st_mtime_ns)
    os.utime(oldest, (1, 1))  # files[1]'s entry made older than files[0]'s by a hit below
    for entry in entries(cache):
        if entry != oldest:
            os.utime(entry, (2, 2))
    load_bar_series(files[0], symbol="A", timeframe="1m", cache=cache)  # a hit: now the newest
    load_bar_series(files[2], symbol="A", timeframe="1m", cache=cache)  # evicts one
    assert len(entries(cache)) == 2
    parses.clear()
    load_bar_series(files[0], symbol="A", timeframe="1m", cache=cache)
    load_bar_series(files[2], symbol="A", timeframe="1m", cache=cache)
    assert parses == []
    load_bar_series(files[1], symbol="A", timeframe="1m", cache=cache)
    assert parses == ["f1.csv"]


def test_a_series_larger_than_the_bound_is_not_kept(csv_file, tmp_path):
    cache = BarCache(tmp_path / "cache", max_bytes=ENTRY_BYTES - 1)
    load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    assert not cache.directory.exists()


def test_a_disabled_cache_keeps_nothing(csv_file, tmp_path, parses):
    cache = BarCache(tmp_path / "cache", max_bytes=0)
    load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    assert parses == ["BTCUSDT.csv", "BTCUSDT.csv"]
    assert not cache.directory.exists()


def test_a_cache_that_cannot_write_costs_speed_not_the_load(csv_file, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    cache = BarCache(blocked / "cache", max_bytes=1 << 20)
    series = load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    assert len(series) == 3


def test_prices_beyond_int64_are_parsed_every_time(tmp_path, cache, parses):
    path = tmp_path / "big.csv"
    huge = "92233720368547758.08"  # 2**63 scaled by 100: one past what int64 holds
    path.write_text(HEADER + f"2021-04-02T00:00:00Z,{huge},{huge},{huge},{huge},1\n"
                    f"2021-04-02T00:01:00Z,{huge},{huge},{huge},{huge},1\n")
    load_bar_series(path, symbol="X", timeframe="1m", cache=cache)
    series = load_bar_series(path, symbol="X", timeframe="1m", cache=cache)
    assert parses == ["big.csv", "big.csv"]
    assert series.close_at(1) == Decimal(huge)


def test_temporary_files_of_writers_that_died_are_removed(csv_file, cache):
    cache.directory.mkdir(parents=True)
    stale, fresh = cache.directory / "a.tmp", cache.directory / "b.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (1, 1))
    load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    assert (stale.exists(), fresh.exists()) == (False, True)


def test_a_file_that_cannot_be_read_is_a_dataset_error(tmp_path, cache):
    with pytest.raises(DatasetError, match="cannot read file"):
        load_bar_series(tmp_path / "missing.csv", symbol="BTCUSDT", cache=cache)


def test_a_missing_symbol_is_refused_with_or_without_a_cache(csv_file, cache):
    load_bar_series(csv_file, symbol="BTCUSDT", timeframe="1m", cache=cache)
    with pytest.raises(DatasetError, match="a symbol is required"):
        load_bar_series(csv_file, symbol="", timeframe="1m", cache=cache)
