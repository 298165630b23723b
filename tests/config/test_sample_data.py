"""The real data bundled in data/ is what its checksums say, and the full collection beside the
clone only adds to it: bundled copies first, a bundled slice yields to the whole file."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from config.env import Env
from config.sample_data import (
    BUNDLED_DATA_DIR,
    REPOSITORY,
    head_of,
    open_series,
    require_series,
    series_names,
    series_path,
    shared_data_dir,
)

HEADER = "timestamp,open,high,low,close,volume\n"


def listed_checksums() -> dict[str, str]:
    lines = (BUNDLED_DATA_DIR / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split("  ") for line in lines)}


def write_series(shared: Path, relative: str, text: str = HEADER) -> Path:
    path = shared / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_every_bundled_file_holds_the_csv_its_checksum_names():
    bundled = sorted(
        str(p.relative_to(BUNDLED_DATA_DIR)).removesuffix(".gz")
        for p in BUNDLED_DATA_DIR.rglob("*.csv.gz")
    )
    checksums = listed_checksums()
    assert bundled == sorted(checksums)
    assert len(bundled) == 35
    for name in bundled:
        csv = gzip.decompress((BUNDLED_DATA_DIR / f"{name}.gz").read_bytes())
        assert hashlib.sha256(csv).hexdigest() == checksums[name], name


def test_bundled_data_stays_under_four_megabytes():
    assert sum(p.stat().st_size for p in BUNDLED_DATA_DIR.rglob("*.gz")) < 4_000_000


def test_a_bundled_series_is_found_in_the_repository_even_when_shared_data_has_it(tmp_path):
    write_series(tmp_path, "crypto-1m/BTCUSDT.csv")
    assert series_path("crypto-1m/BTCUSDT.csv", shared=tmp_path) == (
        BUNDLED_DATA_DIR / "crypto-1m/BTCUSDT.csv.gz"
    )


def test_the_bundled_ethusdt_slice_yields_to_the_whole_file_in_shared_data(tmp_path):
    assert series_path("crypto-1m/ETHUSDT.csv", shared=tmp_path / "absent") == (
        BUNDLED_DATA_DIR / "crypto-1m/ETHUSDT.csv.gz"
    )
    whole = write_series(tmp_path, "crypto-1m/ETHUSDT.csv")
    assert series_path("crypto-1m/ETHUSDT.csv", shared=tmp_path) == whole


def test_a_series_that_is_not_bundled_comes_from_shared_data_or_nowhere(tmp_path):
    assert series_path("stocks-daily-long/ORCL.csv", shared=tmp_path) is None
    orcl = write_series(tmp_path, "stocks-daily-long/ORCL.csv")
    assert series_path("stocks-daily-long/ORCL.csv", shared=tmp_path) == orcl


def test_a_missing_series_names_both_places_looked_in(monkeypatch, tmp_path):
    monkeypatch.setenv("PARITY_SHARED_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError) as caught:
        require_series("stocks-daily-long/YHOO.csv")
    assert str(caught.value) == (
        f"stocks-daily-long/YHOO.csv is neither in {BUNDLED_DATA_DIR} (as .gz) nor in {tmp_path}"
    )


def test_shared_data_is_beside_the_clone_unless_parity_shared_data_says_otherwise():
    assert shared_data_dir(Env({})) == REPOSITORY.parent / "shared" / "data"
    assert shared_data_dir(Env({"PARITY_SHARED_DATA": ""})) == REPOSITORY.parent / "shared" / "data"
    assert shared_data_dir(Env({"PARITY_SHARED_DATA": "/srv/data"})) == Path("/srv/data")


def test_series_names_join_bundled_and_shared_series(monkeypatch, tmp_path):
    monkeypatch.setenv("PARITY_SHARED_DATA", str(tmp_path))
    write_series(tmp_path, "stocks-1m/QQQ.csv")
    write_series(tmp_path, "stocks-1m/SPY.csv")
    assert series_names("stocks-1m") == [
        "stocks-1m/AAPL.csv",
        "stocks-1m/MSFT.csv",
        "stocks-1m/QQQ.csv",
        "stocks-1m/SPY.csv",
    ]


def test_head_of_a_gzipped_series_is_its_header_and_first_rows_as_plain_csv(tmp_path):
    target = head_of("crypto-1m/BTCUSDT.csv", 2, tmp_path / "BTCUSDT.csv")
    assert target.read_text() == (
        HEADER
        + "2021-04-02T00:00:00Z,58720.45,58840.43,58720.44,58760.34,61.685675\n"
        + "2021-04-02T00:01:00Z,58760.34,58820.97,58739.28,58750.01,25.392093\n"
    )


def test_open_series_reads_a_plain_file_of_shared_data(monkeypatch, tmp_path):
    monkeypatch.setenv("PARITY_SHARED_DATA", str(tmp_path))
    write_series(tmp_path, "stocks-daily-long/NVDA.csv", HEADER + "1999-01-22,1,2,1,2,10\n")
    with open_series("stocks-daily-long/NVDA.csv") as stream:
        assert stream.read() == HEADER + "1999-01-22,1,2,1,2,10\n"
