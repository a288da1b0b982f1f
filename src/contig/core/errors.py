"""Errors that reach the user as one line naming the file and, where known, row and column."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad user input: printed as ``file:row:column: message`` and exit status 2.

    ``row`` is 1-based and counts lines of the file as a text editor shows them (header = 1).
    """

    def __init__(
        self,
        message: str,
        path: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.row = row
        self.column = column
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        prefix = ": ".join([", ".join(where)]) + ": " if where else ""
        return (prefix + self.message).replace("\n", " ")
