"""Reading user tables (TSV with a header) through polars, with errors that name file, row and column."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from contig.atomic import atomic_path
from contig.errors import InputError


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
