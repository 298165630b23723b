"""Datasets (minimal for now): named OHLCV files per symbol on disk that backtests run over.

A later issue adds uploads and imports; today a dataset is registered from files already on disk
(`strategies.services.register_dataset`).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from accounts.models import Workspace


class DatasetQuerySet(models.QuerySet["Dataset"]):
    def for_workspace(self, workspace: Workspace) -> DatasetQuerySet:
        return self.filter(workspace=workspace)


class Dataset(models.Model):
    """Bars of one timeframe for one or more symbols, owned by a workspace."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=100)
    timeframe = models.CharField(max_length=8)
    created_at = models.DateTimeField(default=timezone.now)

    objects = DatasetQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.timeframe})"

    def paths(self) -> dict[str, str]:
        """`{symbol: path}` of every file, as `runtimes.core.datasets.load_market_data` takes."""
        return {f.symbol: f.path for f in self.files.order_by("symbol")}


class DatasetFile(models.Model):
    """One symbol's validated file of a dataset, with its row count and time range."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="files")
    symbol = models.CharField(max_length=32)
    path = models.CharField(max_length=500)
    rows = models.PositiveIntegerField()
    first_timestamp = models.DateTimeField()
    last_timestamp = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "symbol"], name="dataset_file_symbol_unique")
        ]

    def __str__(self) -> str:
        return f"{self.symbol}: {self.path}"
