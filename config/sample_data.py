"""Where a real historical series lives: bundled in the repository's data/ (gzip'd CSV, enough
for the tests, the demo and the benchmarks), to which the full collection in ../shared/data
beside the clone (PARITY_SHARED_DATA overrides the path) only adds. See data/README.md."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from config.env import Env

REPOSITORY = Path(__file__).resolve().parents[1]
BUNDLED_DATA_DIR = REPOSITORY / "data"
# Bundled files holding only the first rows of a longer real file: the full one wins when present.
BUNDLED_SLICES = frozenset({"crypto-1m/ETHUSDT.csv"})


def shared_data_dir(env: Env | None = None) -> Path:
    """The full collection's folder: PARITY_SHARED_DATA, else ../shared/data beside the clone."""
    default = REPOSITORY.parent / "shared" / "data"
    return Path((env or Env()).str("PARITY_SHARED_DATA", str(default)))


def series_path(
    relative: str, *, bundled: Path = BUNDLED_DATA_DIR, shared: Path | None = None
) -> Path | None:
    """The file holding `relative` (as the full collection names it, "crypto-1m/BTCUSDT.csv"):
    the bundled `<relative>.gz`, unless it is a slice and `shared` (default shared_data_dir())
    has the whole file; the file in `shared` for a series not bundled; None when neither has it."""
    whole = (shared if shared is not None else shared_data_dir()) / relative
    copy = bundled / f"{relative}.gz"
    if copy.is_file() and not (relative in BUNDLED_SLICES and whole.is_file()):
        return copy
    return whole if whole.is_file() else None


def require_series(relative: str) -> Path:
    """series_path(relative), or FileNotFoundError naming both places looked in."""
    path = series_path(relative)
    if path is None:
        raise FileNotFoundError(
            f"{relative} is neither in {BUNDLED_DATA_DIR} (as .gz) nor in {shared_data_dir()}"
        )
    return path


def series_names(folder: str) -> list[str]:
    """The series of `folder` ("stocks-daily") found bundled or in the full collection, sorted,
    as relative names ("stocks-daily/AAPL.csv")."""
    bundled = {
        f"{folder}/{p.name.removesuffix('.gz')}"
        for p in (BUNDLED_DATA_DIR / folder).glob("*.csv.gz")
    }
    shared = {f"{folder}/{p.name}" for p in (shared_data_dir() / folder).glob("*.csv")}
    return sorted(bundled | shared)


@contextmanager
def open_series(relative: str) -> Iterator[io.TextIOBase]:
    """The text of a series (header first), wherever require_series finds it, gzip'd or not."""
    path = require_series(relative)
    if path.suffix == ".gz":
        stream: io.TextIOBase = io.TextIOWrapper(gzip.GzipFile(path, "rb"), "utf-8", newline="")
    else:
        stream = path.open(encoding="utf-8", newline="")
    with stream:
        yield stream


def head_of(relative: str, rows: int, target: Path) -> Path:
    """The header and first `rows` rows of a series, written to `target` as plain CSV."""
    with open_series(relative) as source, target.open("w", newline="") as out:
        for number, line in enumerate(source):
            if number > rows:
                break
            out.write(line)
    return target
