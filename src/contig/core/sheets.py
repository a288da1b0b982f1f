"""Validation of input sheets (TSV tables) against the JSON Schemas in workflow/schemas/.

A sheet schema describes one row (``properties`` per column, ``required`` columns). Columns are
cast to the schema's ``type`` first, then every row is validated; the first problem is raised as
an :class:`InputError` naming the file, the row (header = row 1) and the column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import polars as pl
import yaml

from contig.core.errors import InputError
from contig.core.tables import read_tsv

_POLARS_TYPE = {"integer": pl.Int64, "number": pl.Float64, "boolean": pl.Boolean}


def load_schema(path: str | Path) -> dict[str, Any]:
    """Load a YAML or JSON schema file."""
    with open(path) as handle:
        return yaml.safe_load(handle)


def _column_type(subschema: dict[str, Any]) -> type[pl.DataType] | None:
    kind = subschema.get("type")
    return _POLARS_TYPE.get(kind) if isinstance(kind, str) else None


def validate_sheet(path: str | Path, schema: dict[str, Any]) -> pl.DataFrame:
    """Read the TSV at ``path`` and validate every row against ``schema``; return the typed table."""
    properties: dict[str, Any] = schema.get("properties", {})
    dtypes = {name: t for name, sub in properties.items() if (t := _column_type(sub)) is not None}
    table = read_tsv(path, required=schema.get("required", []), dtypes=dtypes)
    if table.height == 0:
        raise InputError("the table has a header but no rows", path)
    validator = jsonschema.Draft202012Validator(schema)
    checked = [c for c in table.columns if c in properties]
    for index, record in enumerate(table.select(checked).iter_rows(named=True)):
        record = {k: v for k, v in record.items() if v is not None}
        error = jsonschema.exceptions.best_match(validator.iter_errors(record))
        if error is not None:
            column = str(error.path[0]) if error.path else None
            if column is None and error.validator == "required":
                column = error.message.split("'")[1]
            raise InputError(error.message, path, index + 2, column)
    return table
