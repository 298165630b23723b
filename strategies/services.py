"""Writes of the strategies app: strategies and their immutable versions, datasets (registered
from files on disk or uploaded), and the demo workspace's content.

Uploads are checked completely before anything is written; on any problem nothing is stored (no
row, no file) and the error lists every problem found.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Max

from accounts.models import User, Workspace
from config.errors import ApiError
from config.sample_data import series_path
from runtimes.core.bar_cache import BarCache
from runtimes.core.bars import BarSeries
from runtimes.core.dataset_errors import MAX_REPORTED_ROWS
from runtimes.core.datasets import DatasetError, load_bar_series, parse_bar_series
from runtimes.core.datasets_formats import detect_kind
from strategies.code_checks import UploadRefused, check_upload, unpacked_files
from strategies.models import Dataset, DatasetFile, Strategy, StrategyVersion

logger = logging.getLogger(__name__)

MAX_DATASET_FILES = 50
MAX_DATASET_FILE_BYTES = 64 * 1024 * 1024
MAX_SYMBOL_LENGTH = 20  # the Trading API's limit
_SYMBOL_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/")


class StrategyUploadError(ApiError):
    """400 VALIDATION_ERROR; `problems` = [{file, line, message}], nothing was stored."""

    def __init__(self, problems: list[dict[str, object]]) -> None:
        first = problems[0]
        where = f"{first['file']} line {first['line']}" if first.get("line") else first["file"]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__("VALIDATION_ERROR", f"{where}: {first['message']}{more}",
                         details={"problems": problems})
        self.problems = problems


class DatasetUploadError(ApiError):
    """400 VALIDATION_ERROR; nothing was stored. `problems` = [{file, row, line, column,
    problem}], at most MAX_REPORTED_ROWS of them (`row` counts data rows, `line` is the file's
    line, a header being line 1); `more` counts the problems found beyond them."""

    def __init__(self, problems: list[dict[str, object]], more: int = 0) -> None:
        more += max(len(problems) - MAX_REPORTED_ROWS, 0)
        problems = problems[:MAX_REPORTED_ROWS]
        first = problems[0]
        others = len(problems) - 1 + more
        tail = f" (and {others} more)" if others else ""
        where = (f" line {first['line']}" if first.get("line") else
                 f" row {first['row']}" if first.get("row") else "")
        prefix = f"{first['file']}{where}: " if first.get("file") else ""
        super().__init__("VALIDATION_ERROR", f"{prefix}{first['problem']}{tail}",
                         details={"problems": problems, "more": more})
        self.problems = problems
        self.more = more


# -- strategies ----------------------------------------------------------------------------------


def create_strategy(
    *, workspace: Workspace, by: User, name: str, description: str = ""
) -> Strategy:
    """A new, empty strategy; 400 VALIDATION_ERROR when the workspace already has that name."""
    name = name.strip()
    if not name:
        raise ApiError("VALIDATION_ERROR", "A strategy needs a name.", details={"field": "name"})
    try:
        with transaction.atomic():
            return Strategy.objects.create(workspace=workspace, name=name,
                                           description=description, created_by=by)
    except IntegrityError:
        raise ApiError("VALIDATION_ERROR", f"A strategy named {name!r} already exists.",
                       details={"field": "name"}) from None


def upload_strategy_version(
    *,
    workspace: Workspace,
    author: User,
    strategy: Strategy | str,
    filename: str,
    content: bytes,
    note: str = "",
) -> StrategyVersion:
    """Check an upload (.py, or .zip with main.py/strategy.py) and record it as the next version.

    `strategy` is a Strategy of `workspace`, or a name: the strategy of that name, created if the
    workspace has none. Stores the bytes unchanged under
    `workspaces/<ws>/strategies/<strategy>/<sha256>.<kind>` in the default storage. Raises
    StrategyUploadError (nothing stored) listing every problem; see strategies.code_checks.
    """
    if isinstance(strategy, Strategy) and strategy.workspace_id != workspace.pk:
        raise ValueError("the strategy belongs to another workspace")
    try:
        checked = check_upload(filename, content)
    except UploadRefused as refused:
        raise StrategyUploadError([p.as_dict() for p in refused.problems]) from None
    digest = hashlib.sha256(content).hexdigest()
    with transaction.atomic():
        if isinstance(strategy, str):
            strategy = _strategy_named(workspace=workspace, name=strategy, by=author)
        Strategy.objects.select_for_update().filter(pk=strategy.pk).first()  # serialise numbering
        number = (strategy.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        storage_name = f"workspaces/{workspace.pk}/strategies/{strategy.pk}/{digest}.{checked.kind}"
        with _stored(storage_name, content):
            return StrategyVersion.objects.create(
                strategy=strategy, number=number, content_hash=digest, kind=checked.kind,
                entry_point=checked.entry_point, filename=PurePosixPath(
                    filename.replace("\\", "/")).name, storage_name=storage_name,
                size=len(content), note=note, author=author,
            )


def _strategy_named(*, workspace: Workspace, name: str, by: User) -> Strategy:
    existing = Strategy.objects.for_workspace(workspace).filter(name=name.strip()).first()
    return existing or create_strategy(workspace=workspace, by=by, name=name)


@contextmanager
def _stored(storage_name: str, content: bytes) -> Iterator[None]:
    """Write `content` (unless the same bytes are already there); remove it if the block fails."""
    created = not default_storage.exists(storage_name)
    if created:
        saved = default_storage.save(storage_name, ContentFile(content))
        assert saved == storage_name, saved
    try:
        yield
    except BaseException:
        if created:
            default_storage.delete(storage_name)
        raise


def version_files(version: StrategyVersion) -> dict[str, bytes]:
    """`{path: bytes}` of every file of the version, paths from the strategy's root."""
    return unpacked_files(kind=version.kind, filename=version.filename,
                          content=version.read_bytes())


def strategy_source(version: StrategyVersion) -> dict[str, str]:
    """`{path: text}` of the version's text files (binary files are left out)."""
    source = {}
    for path, data in sorted(version_files(version).items()):
        try:
            source[path] = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            continue
    return source


def extract_strategy(*, version: StrategyVersion, into: Path) -> Path:
    """Write the version's files under the directory `into` (for a sandbox); returns the entry
    point's path. Paths were checked at upload (no absolute paths, no '..', no links)."""
    root = into.resolve()
    for path, data in version_files(version).items():
        target = (root / path).resolve()
        if not target.is_relative_to(root):  # defence in depth; uploads cannot contain these
            raise ValueError(f"{path} leaves the target directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root / version.entry_point


# -- datasets ------------------------------------------------------------------------------------


def bar_cache() -> BarCache:
    """This deployment's cache of parsed dataset files (BAR_CACHE_DIR, BAR_CACHE_MAX_MB): filled
    when a dataset is registered or uploaded, read when a backtest loads its files."""
    return BarCache(settings.BAR_CACHE_DIR, max_bytes=settings.BAR_CACHE_MAX_MB << 20)


@transaction.atomic
def register_dataset(
    *, workspace: Workspace, name: str, files: dict[str, Path], by: User | None = None
) -> Dataset:
    """Validate one file per symbol with the core loader and record the dataset.

    Every file must parse (any bad row raises `runtimes.core.datasets.DatasetError`) and all files
    must share one timeframe (ValueError otherwise). Nothing is recorded when anything fails.
    """
    if not files:
        raise ValueError("a dataset needs at least one file")
    cache = bar_cache()
    loaded = {
        symbol: (Path(path), load_bar_series(path, symbol=symbol, cache=cache))
        for symbol, path in files.items()
    }
    empty = sorted(symbol for symbol, (_, series) in loaded.items() if not len(series))
    if empty:
        raise ValueError(f"files without bars: {', '.join(empty)}")
    timeframes = {series.timeframe for _, series in loaded.values()}
    if len(timeframes) != 1:
        raise ValueError(f"files have different timeframes: {', '.join(sorted(timeframes))}")
    dataset = Dataset.objects.create(workspace=workspace, name=name, timeframe=timeframes.pop(),
                                     created_by=by)
    DatasetFile.objects.bulk_create(
        _file_row(dataset, symbol, path.resolve(), series, path.name, path.stat().st_size)
        for symbol, (path, series) in loaded.items()
    )
    return dataset


def _file_row(dataset: Dataset, symbol: str, path: Path, series: BarSeries, filename: str,
              size: int) -> DatasetFile:
    return DatasetFile(
        dataset=dataset, symbol=symbol, path=str(path), original_filename=filename, size=size,
        rows=len(series), first_timestamp=series.timestamp_at(0),
        last_timestamp=series.timestamp_at(len(series) - 1),
    )


def upload_dataset(
    *,
    workspace: Workspace,
    by: User,
    name: str,
    files: dict[str, tuple[str, bytes]],
    timeframe: str | None = None,
) -> Dataset:
    """Validate uploaded bar files (`{symbol: (filename, bytes)}`, CSV/JSON/Parquet) and store
    them under `workspaces/<ws>/datasets/<dataset>/` in the default storage.

    Every file is parsed with `runtimes.core.datasets.parse_bar_series` (all must share one
    timeframe; `timeframe` None infers it). Raises DatasetUploadError (nothing stored) with one
    problem `{file, row, column, problem}` per bad file or field.
    """
    problems = _dataset_request_problems(workspace=workspace, name=name, files=files)
    more = 0
    loaded: dict[str, BarSeries] = {}
    cache = bar_cache()
    for symbol, (filename, data) in files.items():
        if any(p["file"] == filename for p in problems):
            continue
        try:
            loaded[symbol] = parse_bar_series(data, filename=filename, symbol=symbol,
                                              timeframe=timeframe, cache=cache)
        except DatasetError as exc:
            problems.extend(_file_problems(exc))
            more += exc.more
    timeframes = {series.timeframe for series in loaded.values()}
    if not problems and len(timeframes) > 1:
        found = ", ".join(f"{files[s][0]}: {series.timeframe}" for s, series in loaded.items())
        problems.append(_problem(None, f"the files have different timeframes ({found})"))
    if problems:
        raise DatasetUploadError(problems, more=more)
    return _store_dataset(workspace=workspace, by=by, name=name.strip(), files=files,
                          loaded=loaded)


def _dataset_request_problems(
    *, workspace: Workspace, name: str, files: dict[str, tuple[str, bytes]]
) -> list[dict[str, object]]:
    problems = []
    if not name.strip():
        problems.append(_problem(None, "a dataset needs a name", column="name"))
    elif Dataset.objects.for_workspace(workspace).filter(name=name.strip()).exists():
        problems.append(_problem(None, f"a dataset named {name.strip()!r} already exists",
                                 column="name"))
    if not files:
        problems.append(_problem(None, "a dataset needs at least one file"))
    if len(files) > MAX_DATASET_FILES:
        problems.append(_problem(None, f"{len(files)} files; a dataset may have at most "
                                       f"{MAX_DATASET_FILES}"))
    for symbol, (filename, data) in files.items():
        if not symbol or len(symbol) > MAX_SYMBOL_LENGTH or set(symbol) - _SYMBOL_CHARACTERS:
            problems.append(_problem(filename, f"symbol {symbol!r} must have 1 to "
                                               f"{MAX_SYMBOL_LENGTH} characters: letters, "
                                               "digits and . _ - /", column="symbol"))
        elif len(data) > MAX_DATASET_FILE_BYTES:
            problems.append(_problem(filename, f"the file is {len(data)} bytes; at most "
                                               f"{MAX_DATASET_FILE_BYTES} (64 MB) are allowed"))
    return problems


def _problem(file: str | None, problem: str, *, row: int | None = None,
             line: int | None = None, column: str | None = None) -> dict[str, object]:
    return {"file": file, "row": row, "line": line, "column": column, "problem": problem}


def _file_problems(error: DatasetError) -> list[dict[str, object]]:
    """One problem per bad row the core reported (the first hundred), or the file's problem."""
    if not error.bad_rows:
        return [_problem(error.file, error.problem, column=error.column)]
    return [_problem(error.file, bad.problem, row=bad.row, line=bad.line, column=bad.column)
            for bad in error.bad_rows]


def _store_dataset(
    *, workspace: Workspace, by: User, name: str, files: dict[str, tuple[str, bytes]],
    loaded: dict[str, BarSeries],
) -> Dataset:
    written: list[str] = []
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(workspace=workspace, name=name, created_by=by,
                                             timeframe=next(iter(loaded.values())).timeframe)
            rows = []
            for symbol, series in loaded.items():
                filename, data = files[symbol]
                extension = detect_kind(data[:8], filename)
                safe = symbol.replace("/", "_")
                wanted = f"workspaces/{workspace.pk}/datasets/{dataset.pk}/{safe}.{extension}"
                written.append(default_storage.save(wanted, ContentFile(data)))
                path = Path(default_storage.path(written[-1]))
                rows.append(_file_row(dataset, symbol, path, series, filename, len(data)))
            DatasetFile.objects.bulk_create(rows)
            return dataset
    except BaseException:
        for storage_name in written:
            default_storage.delete(storage_name)
        raise


# -- the demo workspace --------------------------------------------------------------------------

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples" / "strategies"
DEMO_STRATEGIES = {
    "SMA crossover": ("sma_crossover.py", "Buys when the fast SMA crosses above the slow one and "
                      "sells when it crosses back (one symbol)."),
    "RSI mean reversion": ("rsi_mean_reversion.py", "Buys when RSI(14) falls below 30, with a "
                           "stop-loss and take-profit bracket."),
    "Momentum rotation": ("momentum_rotation.py", "Every N bars holds the top-k symbols by "
                          "trailing return and sells the rest."),
}
STOCKS_DAILY = [
    "AAPL", "AMZN", "BA", "BAC", "CAT", "CSCO", "CVX", "DIS", "FB", "GE", "GOOGL", "GS", "HD",
    "IBM", "INTC", "JNJ", "JPM", "KO", "MCD", "MSFT", "NFLX", "NVDA", "ORCL", "PFE", "PG", "T",
    "V", "WMT", "XOM",
]
# name -> {symbol: series as config.sample_data names it}
DEMO_DATASETS = {
    "BTCUSDT & ETHUSDT 1m": {s: f"crypto-1m/{s}.csv" for s in ("BTCUSDT", "ETHUSDT")},
    "US stocks daily 2013-2018": {s: f"stocks-daily/{s}.csv" for s in STOCKS_DAILY},
    "SPY daily 1999-2020": {"SPY": "stocks-daily/SPY.csv"},
    "SPY 1m 2011": {"SPY": "stocks-1m/SPY.csv"},
    "AAPL & MSFT 1m 2021": {s: f"stocks-1m/{s}.csv" for s in ("AAPL", "MSFT")},
}


def install_demo_content(
    *, workspace: Workspace, by: User, bundled_data: Path | None = None,
    shared_data: Path | None = None,
) -> dict[str, list[str]]:
    """Idempotently give `workspace` the example strategies (a version each, a new one only when
    the example's code changed) and the demo datasets, registered where config.sample_data finds
    them: in `bundled_data` (default settings.BUNDLED_DATA_DIR), to which `shared_data` (default
    settings.SHARED_DATA_DIR) only adds; a series in neither is skipped with a warning. Returns
    what was added: `{"strategies": [names], "datasets": [names]}`."""
    bundled_data = Path(bundled_data or settings.BUNDLED_DATA_DIR)
    shared_data = Path(shared_data or settings.SHARED_DATA_DIR)
    added: dict[str, list[str]] = {"strategies": [], "datasets": []}
    for name, (filename, description) in DEMO_STRATEGIES.items():
        content = (EXAMPLES_DIR / filename).read_bytes()
        strategy = Strategy.objects.for_workspace(workspace).filter(name=name).first()
        if strategy is None:
            strategy = create_strategy(workspace=workspace, by=by, name=name,
                                       description=description)
        digest = hashlib.sha256(content).hexdigest()
        if not strategy.versions.filter(content_hash=digest).exists():
            upload_strategy_version(workspace=workspace, author=by, strategy=strategy,
                                    filename=filename, content=content,
                                    note="Example strategy shipped with Parity")
            added["strategies"].append(name)
    existing = set(Dataset.objects.for_workspace(workspace).values_list("name", flat=True))
    for name, relative in DEMO_DATASETS.items():
        if name in existing:
            continue
        found = {s: series_path(p, bundled=bundled_data, shared=shared_data)
                 for s, p in relative.items()}
        present = {s: path for s, path in found.items() if path is not None}
        for symbol in sorted(set(relative) - set(present)):
            logger.warning("demo dataset %r: %s is in neither %s nor %s; skipped", name,
                           relative[symbol], bundled_data, shared_data)
        if present:
            register_dataset(workspace=workspace, name=name, files=present, by=by)
            added["datasets"].append(name)
    return added
