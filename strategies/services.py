"""Writes of the strategies app: registering datasets (uploads and imports come later)."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction

from accounts.models import Workspace
from runtimes.core.datasets import load_bar_series
from strategies.models import Dataset, DatasetFile


@transaction.atomic
def register_dataset(*, workspace: Workspace, name: str, files: dict[str, Path]) -> Dataset:
    """Validate one file per symbol with the core loader and record the dataset.

    Every file must parse (any bad row raises `runtimes.core.datasets.DatasetError`) and all files
    must share one timeframe (ValueError otherwise). Nothing is recorded when anything fails.
    """
    if not files:
        raise ValueError("a dataset needs at least one file")
    loaded = {
        symbol: (Path(path), load_bar_series(path, symbol=symbol)) for symbol, path in files.items()
    }
    empty = sorted(symbol for symbol, (_, series) in loaded.items() if not len(series))
    if empty:
        raise ValueError(f"files without bars: {', '.join(empty)}")
    timeframes = {series.timeframe for _, series in loaded.values()}
    if len(timeframes) != 1:
        raise ValueError(f"files have different timeframes: {', '.join(sorted(timeframes))}")
    dataset = Dataset.objects.create(workspace=workspace, name=name, timeframe=timeframes.pop())
    DatasetFile.objects.bulk_create(
        DatasetFile(
            dataset=dataset,
            symbol=symbol,
            path=str(path.resolve()),
            rows=len(series),
            first_timestamp=series.timestamp_at(0),
            last_timestamp=series.timestamp_at(len(series) - 1),
        )
        for symbol, (path, series) in loaded.items()
    )
    return dataset
