"""Strategies with their immutable uploaded versions, and datasets (OHLCV files per symbol).

Every row is reached through its workspace (`Strategy.objects.for_workspace(ws)`,
`StrategyVersion.objects.for_workspace(ws)`, `Dataset.objects.for_workspace(ws)`); writes go
through `strategies.services`. Backtest schedules, which start sessions, are runtimes'
(runtimes/schedules/).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import models
from django.utils import timezone

from accounts.models import Workspace


class StrategyQuerySet(models.QuerySet["Strategy"]):
    def for_workspace(self, workspace: Workspace) -> StrategyQuerySet:
        return self.filter(workspace=workspace)


class Strategy(models.Model):
    """A named strategy of a workspace; its code lives in numbered, immutable versions."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="strategies")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = StrategyQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="strategy_name_unique")
        ]

    def __str__(self) -> str:
        return self.name

    def latest_version(self) -> StrategyVersion | None:
        return self.versions.order_by("-number").first()


class StrategyVersionQuerySet(models.QuerySet["StrategyVersion"]):
    def for_workspace(self, workspace: Workspace) -> StrategyVersionQuerySet:
        return self.filter(strategy__workspace=workspace)


class VersionKind(models.TextChoices):
    PY = "py", "Python file"
    ZIP = "zip", "Zip archive"


class ImmutableVersionError(RuntimeError):
    """A strategy version never changes once written; upload a new version instead."""


class StrategyVersion(models.Model):
    """One upload of a strategy, exactly as received (`storage_name` in the default storage).

    Immutable: `save()` refuses an existing row. Numbers count 1, 2, 3… per strategy.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64, help_text="sha256 of the uploaded bytes")
    kind = models.CharField(max_length=3, choices=VersionKind.choices)
    entry_point = models.CharField(max_length=255)
    filename = models.CharField(max_length=255, help_text="the uploaded file's name")
    storage_name = models.CharField(max_length=500)
    size = models.PositiveIntegerField()
    note = models.CharField(max_length=500, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = StrategyVersionQuerySet.as_manager()

    class Meta:
        ordering = ["strategy", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["strategy", "number"], name="strategy_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.strategy_id} v{self.number}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise ImmutableVersionError("strategy versions are immutable; upload a new version")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def read_bytes(self) -> bytes:
        """The upload exactly as received."""
        with default_storage.open(self.storage_name, "rb") as stream:
            return bytes(stream.read())


@dataclass(frozen=True)
class SymbolRange:
    """One symbol's own bars in a dataset: first and last bar (open times, UTC) and how many."""

    symbol: str
    first: datetime
    last: datetime
    bars: int


@dataclass(frozen=True)
class DatasetSpan:
    """The period all of a dataset's symbols cover together, and each one's own range."""

    first: datetime
    last: datetime
    ranges: tuple[SymbolRange, ...]

    @property
    def differ(self) -> bool:
        """Whether some symbol starts or ends elsewhere than the others."""
        return len({(r.first, r.last) for r in self.ranges}) > 1


class DatasetQuerySet(models.QuerySet["Dataset"]):
    def for_workspace(self, workspace: Workspace) -> DatasetQuerySet:
        return self.filter(workspace=workspace)


class Dataset(models.Model):
    """Bars of one timeframe for one or more symbols, owned by a workspace."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=100)
    timeframe = models.CharField(max_length=8)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = DatasetQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.timeframe})"

    def paths(self) -> dict[str, str]:
        """`{symbol: path}` of every file, as `runtimes.core.datasets.load_market_data` takes."""
        return {f.symbol: f.path for f in self.files.order_by("symbol")}

    def symbol_ranges(self, symbols: Iterable[str] | None = None) -> dict[str, SymbolRange]:
        """`{symbol: SymbolRange}` in symbol order, as recorded when each file was validated;
        `symbols` narrows to those (unknown ones are left out). Reads prefetched files."""
        wanted = None if symbols is None else set(symbols)
        files = sorted(self.files.all(), key=lambda f: f.symbol)
        return {f.symbol: SymbolRange(f.symbol, f.first_timestamp, f.last_timestamp, f.rows)
                for f in files if wanted is None or f.symbol in wanted}

    def bounds(self, symbols: Iterable[str]) -> tuple[datetime | None, datetime | None]:
        """(earliest first bar, latest last bar) of `symbols`' files, in one query; (None,
        None) when the dataset has none of them."""
        found = self.files.filter(symbol__in=list(symbols)).aggregate(
            first=models.Min("first_timestamp"), last=models.Max("last_timestamp"))
        return found["first"], found["last"]

    def span(self) -> DatasetSpan | None:
        """From the earliest first bar to the latest last bar, with each symbol's own range;
        None for a dataset without files."""
        ranges = tuple(self.symbol_ranges().values())
        if not ranges:
            return None
        return DatasetSpan(first=min(r.first for r in ranges), last=max(r.last for r in ranges),
                           ranges=ranges)


class DatasetFile(models.Model):
    """One symbol's validated file of a dataset, with its row count and time range.

    `path` is absolute: an upload's copy under the default storage (DATA_DIR/files), or a file
    registered where it already was (the demo's shared data).
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="files")
    symbol = models.CharField(max_length=32)
    path = models.CharField(max_length=500)
    original_filename = models.CharField(max_length=255, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    rows = models.PositiveIntegerField()
    first_timestamp = models.DateTimeField()
    last_timestamp = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "symbol"], name="dataset_file_symbol_unique")
        ]

    def __str__(self) -> str:
        return f"{self.symbol}: {self.path}"
