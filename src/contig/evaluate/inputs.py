"""Inputs of the probes and of trait decodability: embeddings of several methods, a label sheet,
a trait sheet, and the people they share."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.errors import InputError
from contig.core.tables import read_tsv, special_code_warnings
from contig.gwas.phenotypes import read_embeddings

METHOD_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
EmbeddingTable = tuple[np.ndarray, np.ndarray]  # IIDs (n,), values (n, d)
log = logging.getLogger("contig.evaluate.probes")


@dataclass
class Label:
    """One label column: ``classes`` in order, people ``iid (n,)`` with a value, ``y (n,)`` indices."""

    name: str
    kind: str  # "binary" or "ordinal"
    classes: list[str]
    iid: np.ndarray
    y: np.ndarray
    n_missing: int


def check_iids(sheet: pl.DataFrame, path: Path) -> None:
    """Raise InputError on an empty or a duplicate IID (naming its row)."""
    if sheet["IID"].is_null().any():
        raise InputError("empty IID", path, int(sheet["IID"].is_null().arg_true()[0]) + 2, "IID")
    duplicated = sheet["IID"].is_duplicated()
    if duplicated.any():
        row = int(duplicated.arg_true()[1])
        raise InputError(f"duplicate IID {sheet['IID'][row]!r}", path, row + 2, "IID")


def _number_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _binary_label(values: pl.Series, distinct: list[str]) -> tuple[list[str], np.ndarray]:
    """Classes (the larger value second, numerically when both are numbers) and 0/1 ``y`` of the
    people with a value."""
    numbers = [_number_or_none(v) for v in distinct]
    key = (lambda v: float(v)) if None not in numbers else (lambda v: v)
    classes = sorted(distinct, key=key)
    return classes, (values.drop_nulls() == classes[1]).cast(pl.Int64).to_numpy()


def _ordinal_label(values: pl.Series, path: Path) -> tuple[list[str], np.ndarray]:
    """Integer grades as classes and the grade index ``y`` of the people with a value."""
    grades = values.cast(pl.Int64, strict=False)
    bad = grades.is_null() & values.is_not_null()
    if bad.any():
        row = int(bad.arg_true()[0])
        raise InputError(f"value {values[row]!r} is not an integer grade (a label with more than "
                         f"two values is ordinal: integer grades)", path, row + 2, values.name)
    grade_values = sorted(grades.drop_nulls().unique().to_list())
    y = np.searchsorted(np.array(grade_values), grades.drop_nulls().to_numpy())
    return [str(g) for g in grade_values], y


def read_labels(path: str | Path,
                columns: Sequence[str] | None = None) -> tuple[np.ndarray, list[Label]]:
    """IIDs ``(n_rows,)`` of a label sheet and its label columns (all when ``columns`` is None).

    Two distinct values make a binary label (the larger one, in numeric order when both are
    numbers, is the positive class); more must be integer grades (ordinal). A column with fewer
    than two classes, a non-integer grade, a missing or duplicate IID raise InputError. Empty cells
    and ``NA`` are missing values; those people are left out of that label only.
    """
    path = Path(path)
    sheet = read_tsv(path, required=["IID", *(columns or [])])
    if columns is None:
        columns = [c for c in sheet.columns if c != "IID"]
    if not columns:
        raise InputError("no label columns besides IID", path)
    check_iids(sheet, path)
    for warning in special_code_warnings(sheet, list(dict.fromkeys(columns)), path, "label sheet"):
        log.warning(warning)
    labels = []
    for name in dict.fromkeys(columns):
        values = sheet[name]
        present = values.is_not_null()
        distinct = values.drop_nulls().unique().to_list()
        if len(distinct) < 2:
            found = f"only the value {distinct[0]!r}" if distinct else "no values"
            raise InputError(f"label has {found}; a probe needs at least two classes", path, None, name)
        kind = "binary" if len(distinct) == 2 else "ordinal"
        classes, y = (_binary_label(values, distinct) if kind == "binary"
                      else _ordinal_label(values, path))
        labels.append(Label(name, kind, classes, sheet["IID"].filter(present).to_numpy().astype(str),
                            y.astype(np.int64), int((~present).sum())))
    return sheet["IID"].to_numpy().astype(str), labels


def parse_embedding_specs(specs: Sequence[str]) -> dict[str, Path]:
    """``METHOD=PARQUET`` strings (or a bare ``PARQUET``, named by its stem) -> {method: path}."""
    methods: dict[str, Path] = {}
    for spec in specs:
        method, sep, path = spec.partition("=")
        if not sep:
            method, path = Path(spec).stem, spec
        if not METHOD_NAME.match(method) or not path:
            raise InputError(f"--embeddings {spec!r}: expected METHOD=PARQUET with a method name of "
                             f"letters, digits, '_', '.', '+' or '-'")
        if method in methods:
            raise InputError(f"--embeddings: method {method!r} is given twice")
        methods[method] = Path(path)
    if not methods:
        raise InputError("--embeddings: no embeddings given")
    return methods


def load_embeddings(
    embeddings: Mapping[str, str | Path | EmbeddingTable],
) -> dict[str, EmbeddingTable]:
    """{method: (iid (n,), values (n, d))}: parquet paths are read, loaded tables pass through."""
    tables = {}
    for method, source in embeddings.items():
        if isinstance(source, tuple):
            tables[method] = source
        else:
            iid, values, _ = read_embeddings(source)
            tables[method] = (iid, values)
    return tables


def common_people(
    embedding_iids: Mapping[str, np.ndarray], sheet_iids: np.ndarray, sheet_path: Path,
    sheet: str = "label",
) -> tuple[np.ndarray, dict[str, dict[str, int]]]:
    """Sorted IIDs with a row in the sheet and embeddings from every method, and per-method counts.

    ``sheet`` names the sheet's kind in the error raised when nobody is shared.
    """
    listed = set(sheet_iids.tolist())
    common = set(listed)
    for iid in embedding_iids.values():
        common &= set(iid.tolist())
    counts = {}
    for method, iid in embedding_iids.items():
        mine = set(iid.tolist())
        counts[method] = {
            "embeddings": len(mine),
            "without_row": len(mine - listed),
            "rows_without_embedding": len(listed - mine),
            "missing_from_another_method": len((mine & listed) - common),
        }
    if not common:
        raise InputError(f"no person has both a {sheet} row and embeddings from every method "
                         f"({', '.join(embedding_iids)})", sheet_path)
    return np.array(sorted(common)), counts


def row_indices(iid: np.ndarray, people: np.ndarray) -> np.ndarray:
    """Row in ``iid (n,)`` of each of ``people (m,)``, ``(m,)`` (all must be present)."""
    row_of = {person: row for row, person in enumerate(iid)}
    return np.array([row_of[person] for person in people], dtype=np.int64)


def shared_embeddings(tables: Mapping[str, EmbeddingTable],
                      people: np.ndarray) -> dict[str, np.ndarray]:
    """{method: embeddings ``(m, d)`` of ``people (m,)`` in that order}."""
    return {method: values[row_indices(iid, people)] for method, (iid, values) in tables.items()}


# ---------------------------------------------------------------------------------------------
# trait sheet


@dataclass
class Traits:
    """A trait sheet: IIDs ``(n_rows,)``, numeric traits ``values (n_rows, n_traits)`` (NaN = missing).

    ``ignored`` maps each left-out column to the reason (non-numeric, no values).
    """

    path: Path
    iid: np.ndarray
    names: list[str]
    values: np.ndarray
    ignored: dict[str, str] = field(default_factory=dict)


def _trait_values(raw: pl.Series, path: Path, explicit: bool) -> np.ndarray | str:
    """The column as floats ``(n_rows,)`` (NaN = missing), or the reason it is not a trait column.

    A column named explicitly must be numeric (InputError otherwise); infinite or NaN values are
    always an InputError.
    """
    numbers = raw.cast(pl.Float64, strict=False)
    bad = numbers.is_null() & raw.is_not_null()
    if bad.any():
        row = int(bad.arg_true()[0])
        if explicit:
            raise InputError(f"value {raw[row]!r} is not a number", path, row + 2, raw.name)
        return f"not numeric (row {row + 2}: {raw[row]!r})"
    if numbers.is_null().all():
        if explicit:
            raise InputError("trait has no values", path, None, raw.name)
        return "no values"
    array = numbers.to_numpy().astype(np.float64)  # nulls become NaN
    non_finite = np.flatnonzero(np.isinf(array) | (np.isnan(array) & raw.is_not_null().to_numpy()))
    if non_finite.size:
        row = int(non_finite[0])
        raise InputError(f"value {raw[row]!r} is not a finite number", path, row + 2, raw.name)
    return array


def read_traits(path: str | Path, columns: Sequence[str] | None = None) -> Traits:
    """Numeric trait columns of a sheet ``IID`` + columns (all numeric ones when ``columns`` is None).

    Without ``columns``, non-numeric columns (e.g. ``population``) and empty ones are ignored and
    reported in ``Traits.ignored``; a column named in ``columns`` must be numeric. Empty cells and
    ``NA`` are missing values. Infinite or NaN values, an empty or duplicate IID, or no numeric
    trait column at all raise InputError.
    """
    path = Path(path)
    sheet = read_tsv(path, required=["IID", *(columns or [])])
    explicit = columns is not None
    candidates = list(dict.fromkeys(columns)) if explicit else [c for c in sheet.columns if c != "IID"]
    check_iids(sheet, path)
    names, values, ignored = [], [], {}
    for name in candidates:
        column = _trait_values(sheet[name], path, explicit)
        if isinstance(column, str):
            ignored[name] = column
        else:
            names.append(name)
            values.append(column)
    if not names:
        reasons = "; ".join(f"{c}: {why}" for c, why in ignored.items()) or "none"
        raise InputError(f"no numeric trait columns besides IID (ignored columns: {reasons})", path)
    return Traits(path, sheet["IID"].to_numpy().astype(str), names, np.column_stack(values), ignored)
