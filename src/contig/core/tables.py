"""Reading user tables (TSV with a header) through polars, with errors that name file, row and column."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_path
from contig.core.errors import InputError


def read_tsv(
    path: str | Path,
    required: Sequence[str] = (),
    dtypes: Mapping[str, type[pl.DataType] | pl.DataType] | None = None,
    comment_prefix: str | None = None,
) -> pl.DataFrame:
    """Read a tab-separated table with a header line; every column is read as text first.

    ``required`` columns must be present; ``dtypes`` casts named columns strictly, and a value that
    does not parse raises :class:`InputError` naming its row (header = row 1) and column.
    Empty cells and ``NA`` become null.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    try:
        table = pl.read_csv(
            path,
            separator="\t",
            infer_schema=False,
            null_values=["", "NA"],
            comment_prefix=comment_prefix,
        )
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as error:
        raise InputError(f"cannot parse as a tab-separated table ({str(error).splitlines()[0]})",
                         path) from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InputError(f"missing required column(s) {', '.join(missing)}; found "
                         f"{', '.join(table.columns)}", path)
    for column, dtype in (dtypes or {}).items():
        if column not in table.columns:
            continue
        cast = table[column].cast(dtype, strict=False)
        bad = cast.is_null() & table[column].is_not_null()
        if bad.any():
            index = int(bad.arg_true()[0])
            raise InputError(f"value {table[column][index]!r} is not {dtype}", path, index + 2, column)
        table = table.with_columns(cast)
    return table


def write_tsv(table: pl.DataFrame, path: str | Path) -> None:
    """Write a table as TSV atomically (gzip-compressed when the path ends in .gz)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".gz":
            import gzip

            with gzip.open(tmp, "wb", compresslevel=6) as handle:
                table.write_csv(handle, separator="\t", null_value="NA")
        else:
            table.write_csv(tmp, separator="\t", null_value="NA")


@dataclass
class NumericTable:
    """A table of numbers indexed by person: ``values`` is ``(n_people, n_columns)``, NaN = missing."""

    path: Path
    iid: np.ndarray  # (n_people,) str
    values: np.ndarray  # (n_people, n_columns) float64
    columns: list[str]
    missing_coded: int = 0  # cells read as missing because they held the missing code


def read_numeric_table(path: str | Path, columns: Sequence[str] | None = None,
                       what: str = "table", missing_code: float | None = None) -> NumericTable:
    """Read ``IID`` (after an optional leading ``FID``/``#FID``) + numeric columns (all, or
    ``columns``); empty cells and ``NA`` are missing, and so are cells equal to ``missing_code``
    (plink2's ``--input-missing-phenotype``, -9 for phenotype files; counted in
    ``missing_coded``); text in a numeric cell is an InputError."""
    path = Path(path)
    table = read_tsv(path)
    names = list(table.columns)
    if names and names[0] in ("FID", "#FID"):
        names = names[1:]
    if not names or names[0] != "IID":
        raise InputError(f"the first column of a {what} must be IID (after an optional FID); "
                         f"found {', '.join(table.columns[:3])}", path)
    available = names[1:]
    if columns is None:
        columns = available
    unknown = [c for c in columns if c not in available]
    if unknown:
        raise InputError(f"column(s) {', '.join(unknown)} not found; the {what} has "
                         f"{', '.join(available) or 'no data columns'}", path)
    if not columns:
        raise InputError(f"the {what} has no data columns besides IID", path)
    duplicated = table["IID"].is_duplicated()
    if duplicated.any():
        row = int(duplicated.arg_true()[1]) + 2
        raise InputError(f"duplicate IID {table['IID'][row - 2]!r}", path, row, "IID")
    missing_iid = table["IID"].is_null()
    if missing_iid.any():
        raise InputError("empty IID", path, int(missing_iid.arg_true()[0]) + 2, "IID")
    values = np.empty((table.height, len(columns)))
    for j, column in enumerate(columns):
        cast = table[column].cast(pl.Float64, strict=False)
        bad = cast.is_null() & table[column].is_not_null()
        if bad.any():
            row = int(bad.arg_true()[0])
            raise InputError(f"value {table[column][row]!r} is not a number", path, row + 2, column)
        values[:, j] = cast.fill_null(np.nan).to_numpy()
        infinite = np.isinf(values[:, j])
        if infinite.any():
            raise InputError("infinite value", path, int(np.flatnonzero(infinite)[0]) + 2, column)
    coded = 0
    if missing_code is not None:
        is_code = values == missing_code
        coded = int(is_code.sum())
        values[is_code] = np.nan
    return NumericTable(path, table["IID"].to_numpy().astype(str), values, list(columns), coded)


SPECIAL_CODES = ("-9", "-1", "-3")
"""Values that often mean "missing" rather than a number: PLINK's missing code (-9) and UK
Biobank's "do not know" (-1) and "prefer not to answer" (-3)."""


def special_code_warnings(sheet: pl.DataFrame, columns: Sequence[str], path: str | Path,
                          what: str) -> list[str]:
    """One warning per column of ``sheet`` holding any of :data:`SPECIAL_CODES` (as written in
    the file, or as the same number), naming the file, column and counts; read as values."""
    warnings = []
    for column in columns:
        text = sheet[column].cast(pl.Utf8, strict=False)
        number = sheet[column].cast(pl.Float64, strict=False)
        found = {code: int(((text == code) | (number == float(code))).fill_null(False).sum())
                 for code in SPECIAL_CODES}
        found = {code: n for code, n in found.items() if n}
        if found:
            counts = ", ".join(f"{n} x {code}" for code, n in found.items())
            warnings.append(f"{path}: column {column} of the {what} holds {counts}: read as values; "
                            "if they are missing codes (PLINK -9, UK Biobank -1 'do not know', -3 "
                            "'prefer not to answer'), write them as NA")
    return warnings
