"""The one error type for bad market data: which file, which rows, which columns, what is wrong.

A file's bad rows are collected, not only the first: up to MAX_REPORTED_ROWS of them, each with
the file's own line number when it has lines (CSV), and a count of the ones beyond.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_REPORTED_ROWS = 100


@dataclass(frozen=True, slots=True)
class BadRow:
    """One bad row. `row` counts data rows from 1 (a header is not a row); `line` is the line of
    the file an editor shows (the header is line 1), None for JSON and Parquet."""

    row: int
    line: int | None
    column: str | None
    problem: str

    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else f"row {self.row}"


class DatasetError(ValueError):
    """Bad or unreadable bar data; nothing of the file was imported.

    A problem of the whole file has `row` None and no `bad_rows`. Otherwise `bad_rows` lists the
    first bad rows (at most MAX_REPORTED_ROWS), `more` counts the bad rows after them, and `row`,
    `line`, `column`, `problem` repeat the first one. The message names file, place and problem.
    """

    def __init__(
        self,
        *,
        file: str,
        problem: str,
        row: int | None = None,
        column: str | None = None,
        line: int | None = None,
        bad_rows: Sequence[BadRow] = (),
        more: int = 0,
    ) -> None:
        if row is not None and not bad_rows:
            bad_rows = (BadRow(row=row, line=line, column=column, problem=problem),)
        if bad_rows:
            first = bad_rows[0]
            row, line, column, problem = first.row, first.line, first.column, first.problem
        self.file = file
        self.row = row
        self.line = line
        self.column = column
        self.problem = problem
        self.bad_rows: tuple[BadRow, ...] = tuple(bad_rows)
        self.more = more
        prefix = f"{file} {bad_rows[0].where()}" if bad_rows else file
        others = max(len(self.bad_rows) - 1, 0) + more
        tail = f" (and {others} more bad row{'s' if others > 1 else ''})" if others else ""
        super().__init__(f"{prefix}: {problem}{tail}")


class BadRows:
    """Collects a file's bad rows: the first MAX_REPORTED_ROWS kept, the rest counted."""

    def __init__(self, limit: int = MAX_REPORTED_ROWS) -> None:
        self.limit = limit
        self.kept: list[BadRow] = []
        self.more = 0

    def __bool__(self) -> bool:
        return bool(self.kept)

    def add(self, row: int, line: int | None, column: str | None, problem: str) -> None:
        if len(self.kept) < self.limit:
            self.kept.append(BadRow(row=row, line=line, column=column, problem=problem))
        else:
            self.more += 1

    def error(self, file: str) -> DatasetError:
        first = self.kept[0]
        return DatasetError(file=file, problem=first.problem, bad_rows=self.kept, more=self.more)
