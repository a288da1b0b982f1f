"""One comparison table of pretraining methods from the outputs of the other stages.

Rows are methods; every input is optional, and a column whose input is missing (or lacks the
method) is NA, so the same command serves simulated data (with a truth check) and real data.

Columns (TSV name: source):
- ``n_loci``: rows of the method's ``contig clump`` OUT.loci.tsv (``--loci``), else the truth
  table's ``n_loci``.
- ``planted_major``, ``major_found``, ``major_recall``, ``false_loci``, ``lambda_gc_null``:
  the ``contig truth`` summary (``lambda_gc_null`` = its median over phenotypes).
- ``replicated_loci``: ``n_replicated`` of the method's ``contig replicate`` OUT.summary.tsv.
- ``<label>_<metric>_{mean,sd,n_seeds}`` per requested probe (default ``disease:auroc`` and
  ``severity:kappa_quadratic``): the ``contig evaluate`` OUT.summary.tsv, columns
  ``method label metric fraction n_seeds mean sd``, at the requested label fraction (1.0).
- ``retrieval_top1`` (and ``retrieval_chance_top1``, ``retrieval_n_folds``): validation
  image→genetics top-1 retrieval accuracy of the last row (last epoch) of each fold's
  ``contig train`` metrics.tsv, averaged over the folds that report one (NA for methods without
  a genetic encoder).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from contig.atomic import atomic_paths
from contig.errors import InputError
from contig.tables import read_tsv

PROBE_SUMMARY_COLUMNS = ["method", "label", "metric", "fraction", "n_seeds", "mean", "sd"]
DEFAULT_PROBES = ("disease:auroc", "severity:kappa_quadratic")
METRIC_DISPLAY = {"auroc": "AUROC", "kappa_quadratic": "κ", "kappa": "κ",
                  "auroc_vs_lowest": "AUROC vs lowest grade"}
TRUTH_COLUMNS = {"n_loci": "n_loci", "planted_major": "planted_major", "major_found": "major_found",
                 "major_recall": "major_recall", "loci_false": "false_loci",
                 "lambda_gc_null_median": "lambda_gc_null"}


@dataclass(frozen=True)
class Probe:
    """A probe column: ``label`` (downstream label) scored by ``metric`` as ``contig evaluate``
    names it (``auroc``, ``kappa_quadratic``, ``auroc_vs_lowest``)."""

    label: str
    metric: str

    @classmethod
    def parse(cls, text: str) -> Probe:
        label, sep, metric = text.partition(":")
        if not sep or not label or not metric:
            raise ValueError(f"expected LABEL:METRIC (e.g. disease:auroc), got {text!r}")
        return cls(label, metric)

    @property
    def column(self) -> str:
        return f"{self.label}_{self.metric}"


def _method_rows(table: pl.DataFrame, path: str | Path, column: str = "method") -> None:
    """Raise InputError at the second row of a method that appears twice."""
    duplicated = table[column].is_duplicated()
    if duplicated.any():
        row = int(duplicated.arg_true()[1])
        raise InputError(f"method {table[column][row]!r} appears twice", path, row + 2, column)


def loci_counts(loci_paths: Mapping[str, str | Path]) -> dict[str, int]:
    """Number of loci (rows) in each method's loci table."""
    return {method: read_tsv(path, required=["LEAD_ID"]).height for method, path in loci_paths.items()}


def truth_columns(path: str | Path) -> dict[str, dict[str, float | int | None]]:
    """method -> the truth-check values this table shows (see module doc)."""
    table = read_tsv(path, required=["method", *TRUTH_COLUMNS],
                     dtypes={c: pl.Float64 if c in ("major_recall", "lambda_gc_null_median")
                             else pl.Int64 for c in TRUTH_COLUMNS})
    _method_rows(table, path)
    return {row["method"]: {new: row[old] for old, new in TRUTH_COLUMNS.items()}
            for row in table.iter_rows(named=True)}


def replication_count(path: str | Path) -> int | None:
    """``n_replicated`` of a ``contig replicate`` summary (one row)."""
    table = read_tsv(path, required=["n_replicated"], dtypes={"n_replicated": pl.Int64})
    if table.height != 1:
        raise InputError(f"expected one summary row, found {table.height}", path)
    return table["n_replicated"][0]


def probe_columns(path: str | Path, probes: Sequence[Probe], fraction: float = 1.0
                  ) -> dict[str, dict[str, float | int | None]]:
    """method -> ``<probe>_mean``, ``<probe>_sd``, ``<probe>_n_seeds`` at ``fraction``."""
    table = read_tsv(path, required=PROBE_SUMMARY_COLUMNS,
                     dtypes={"fraction": pl.Float64, "n_seeds": pl.Int64, "mean": pl.Float64,
                             "sd": pl.Float64})
    table = table.with_row_index("ROW", offset=2)
    at = table.filter((pl.col("fraction") - fraction).abs() < 1e-9)
    keys = ["method", "label", "metric"]
    duplicated = at.select(keys).is_duplicated()
    if duplicated.any():
        row = at.filter(duplicated)["ROW"][1]
        raise InputError(f"more than one row for this method, label and metric at fraction "
                         f"{fraction:g}", path, int(row))
    out: dict[str, dict[str, float | int | None]] = {}
    for probe in probes:
        rows = at.filter((pl.col("label") == probe.label) & (pl.col("metric") == probe.metric))
        for row in rows.iter_rows(named=True):
            values = out.setdefault(row["method"], {})
            values[f"{probe.column}_mean"] = row["mean"]
            values[f"{probe.column}_sd"] = row["sd"]
            values[f"{probe.column}_n_seeds"] = row["n_seeds"]
    return out


def final_retrieval(metrics_paths: Sequence[str | Path]) -> dict[str, float | int | None]:
    """Mean over folds of the last row's ``val_top1`` and ``chance_top1`` (folds with a value)."""
    top1, chance = [], []
    for path in metrics_paths:
        table = read_tsv(path, required=["epoch", "val_top1"],
                         dtypes={"val_top1": pl.Float64, "chance_top1": pl.Float64})
        if table.height == 0:
            raise InputError("no epoch rows", path)
        last = table.row(table.height - 1, named=True)
        if last["val_top1"] is not None and np.isfinite(last["val_top1"]):
            top1.append(last["val_top1"])
            if last.get("chance_top1") is not None:
                chance.append(last["chance_top1"])
    return {"retrieval_top1": float(np.mean(top1)) if top1 else None,
            "retrieval_chance_top1": float(np.mean(chance)) if chance else None,
            "retrieval_n_folds": len(top1)}


def comparison_schema(probes: Sequence[Probe]) -> dict[str, pl.DataType]:
    """Column names and types of the comparison TSV."""
    schema: dict[str, pl.DataType] = {
        "method": pl.Utf8, "n_loci": pl.Int64, "planted_major": pl.Int64, "major_found": pl.Int64,
        "major_recall": pl.Float64, "false_loci": pl.Int64, "lambda_gc_null": pl.Float64,
        "replicated_loci": pl.Int64}
    for probe in probes:
        schema[f"{probe.column}_mean"] = pl.Float64
        schema[f"{probe.column}_sd"] = pl.Float64
        schema[f"{probe.column}_n_seeds"] = pl.Int64
    schema.update({"retrieval_top1": pl.Float64, "retrieval_chance_top1": pl.Float64,
                   "retrieval_n_folds": pl.Int64})
    return schema


def comparison_table(methods: Sequence[str], loci: Mapping[str, str | Path] | None = None,
                     truth: str | Path | None = None,
                     replication: Mapping[str, str | Path] | None = None,
                     probes_path: str | Path | None = None,
                     probes: Sequence[Probe] = tuple(Probe.parse(p) for p in DEFAULT_PROBES),
                     probe_fraction: float = 1.0,
                     metrics: Mapping[str, Sequence[str | Path]] | None = None,
                     ) -> tuple[pl.DataFrame, list[str]]:
    """The methods × columns table (schema :func:`comparison_schema`, NA where an input is
    missing) and notes on what was missing or ignored, for the log."""
    if len(set(methods)) != len(methods):
        raise ValueError("methods must be distinct")
    notes: list[str] = []
    rows = {m: {"method": m} for m in methods}

    def merge(source: str, values: Mapping[str, Mapping]) -> None:
        ignored = sorted(set(values) - set(methods))
        if ignored:
            notes.append(f"{source}: ignored method(s) not compared: {', '.join(ignored)}")
        absent = [m for m in methods if m not in values]
        if absent:
            notes.append(f"{source}: no values for {', '.join(absent)} (NA)")
        for m in methods:
            rows[m].update(values.get(m, {}))

    if truth is not None:
        merge(f"truth table {truth}", truth_columns(truth))
    if loci:
        merge("--loci", {m: {"n_loci": n} for m, n in loci_counts(loci).items()})
    if replication:
        merge("--replication", {m: {"replicated_loci": replication_count(p)}
                                for m, p in replication.items()})
    if probes_path is not None:
        merge(f"probe summary {probes_path} at fraction {probe_fraction:g}",
              probe_columns(probes_path, probes, probe_fraction))
    if metrics:
        merge("--metrics", {m: final_retrieval(paths) for m, paths in metrics.items()})
    schema = comparison_schema(probes)
    table = pl.DataFrame([{c: rows[m].get(c) for c in schema} for m in methods], schema=schema,
                         orient="row")
    return table, notes


# ---------------------------------------------------------------------------------------------
# Markdown


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "NA"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown_table(table: pl.DataFrame, probes: Sequence[Probe], header: str) -> str:
    """A Markdown table for the README: ``header`` line, blank line, then the table."""
    titles = ["method", "loci", "planted major found (recall)", "false loci", "λGC null chr.",
              "replicated across eyes"]
    titles += [f"{p.label} {METRIC_DISPLAY.get(p.metric, p.metric)}" for p in probes]
    titles.append("retrieval top-1 (chance)")
    lines = [header, "", "| " + " | ".join(titles) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(titles) - 1)) + "|"]
    for row in table.iter_rows(named=True):
        if row["major_found"] is None:
            major = "NA"
        else:
            major = f"{row['major_found']}/{row['planted_major']} ({_fmt(row['major_recall'], 2)})"
        cells = [row["method"], _fmt(row["n_loci"], 0), major, _fmt(row["false_loci"], 0),
                 _fmt(row["lambda_gc_null"], 3), _fmt(row["replicated_loci"], 0)]
        for p in probes:
            mean, sd = row[f"{p.column}_mean"], row[f"{p.column}_sd"]
            cells.append("NA" if mean is None else
                         _fmt(mean, 3) + ("" if sd is None else f" ± {_fmt(sd, 3)}"))
        top1 = row["retrieval_top1"]
        chance = row["retrieval_chance_top1"]
        cells.append("NA" if top1 is None else
                     _fmt(top1, 3) + ("" if chance is None else f" ({_fmt(chance, 3)})"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_comparison(table: pl.DataFrame, markdown: str, out_prefix: str | Path) -> dict[str, Path]:
    """OUT.tsv (NA for missing) and OUT.md, atomically."""
    paths = {"tsv": Path(f"{out_prefix}.tsv"), "md": Path(f"{out_prefix}.md")}
    with atomic_paths(list(paths.values())) as (tsv, md):
        table.write_csv(tsv, separator="\t", null_value="NA")
        md.write_text(markdown)
    return paths
