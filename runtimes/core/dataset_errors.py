"""The one error type for bad market data: which file, which row, which column, what is wrong."""

from __future__ import annotations


class DatasetError(ValueError):
    """Bad or unreadable bar data; nothing of the file was imported.

    `row` is the 1-based data row as a person counts it (the header is not counted), or None when
    the problem concerns the whole file. The message repeats file, row and problem.
    """

    def __init__(
        self,
        *,
        file: str,
        problem: str,
        row: int | None = None,
        column: str | None = None,
        where: str | None = None,
    ) -> None:
        self.file = file
        self.row = row
        self.column = column
        self.problem = problem
        location = where if where is not None else (f"row {row}" if row is not None else None)
        prefix = f"{file} {location}" if location else file
        super().__init__(f"{prefix}: {problem}")
