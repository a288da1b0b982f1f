"""One comparison table of pretraining methods from the outputs of the other stages.

Rows are methods; every input is optional, and a column whose input is missing (or lacks the
method) is NA, so the same command serves simulated data (with a truth check) and real data.

Columns (TSV name: source):
- ``n_loci``: rows of the method's ``contig clump`` OUT.tsv (``--loci``), else the truth
  table's ``n_loci``.
- ``planted_major``, ``major_found``, ``major_recall``, ``false_loci``, ``lambda_gc_null``:
  the ``contig truth`` summary (``lambda_gc_null`` = its median over phenotypes).
- with ``--loci-joint`` only: ``n_loci_joint`` (rows of the method's loci table of the joint
  multivariate test), ``major_found_joint``, ``major_recall_joint``, ``false_loci_joint`` (the
  truth summary's joint-test columns, written by ``contig truth --loci-joint``) and
  ``lambda_gc_null_joint`` (the joint test's λGC on the null chromosomes, from ``contig truth
  --combined``; NA without it).
- ``replicated_loci``: ``n_replicated`` of the method's ``contig replicate`` OUT.summary.tsv.
- ``<label>_<metric>_{mean,lower,upper,n_seeds}`` per probe: the ``contig probes``
  OUT.summary.tsv (columns ``method label kind metric fraction n_seeds mean sd lower upper``) at
  the requested label fraction (1.0): the mean over seeds and its bootstrap interval. The probes
  default to every label of the summary with its primary metric (``auroc`` for binary labels,
  ``kappa_quadratic`` for ordinal ones), in the summary's order.
- ``retrieval_top1`` (and ``retrieval_chance_top1``, ``retrieval_n_folds``): validation
  image→genetics top-1 retrieval accuracy of the epoch each fold's model.pt holds (the row of
  ``contig train``'s metrics.tsv with ``selected`` = 1; the last row for files without that
  column), averaged over the folds that report one (NA for methods without a genetic encoder).
  With best-epoch selection the value is slightly optimistic: the epoch was chosen on the same
  validation people.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_paths
from contig.core.errors import InputError
from contig.core.tables import read_tsv
from contig.evaluate.metrics import PRIMARY_METRIC

PROBE_SUMMARY_COLUMNS = ["method", "label", "kind", "metric", "fraction", "n_seeds", "mean",
                         "lower", "upper"]
PROBE_VALUES = {"mean": pl.Float64, "lower": pl.Float64, "upper": pl.Float64, "n_seeds": pl.Int64}
METRIC_DISPLAY = {"auroc": "AUROC", "kappa_quadratic": "κ", "kappa": "κ",
                  "auroc_vs_lowest": "AUROC vs lowest grade"}
TRUTH_COLUMNS = {"n_loci": "n_loci", "planted_major": "planted_major", "major_found": "major_found",
                 "major_recall": "major_recall", "loci_false": "false_loci",
                 "lambda_gc_null_median": "lambda_gc_null"}
TRUTH_JOINT_COLUMNS = {"major_found_joint": "major_found_joint",
                       "major_recall_joint": "major_recall_joint",
                       "loci_false_joint": "false_loci_joint"}
FLOAT_TRUTH_COLUMNS = ("major_recall", "lambda_gc_null_median", "major_recall_joint",
                       "lambda_gc_null_joint")


@dataclass(frozen=True)
class CompareSettings:
    """Settings of ``contig compare`` (its flag defaults)."""

    probe_fraction: float = 1.0


@dataclass(frozen=True)
class Probe:
    """A probe column: ``label`` (downstream label) scored by ``metric`` as ``contig probes``
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


def truth_columns(path: str | Path, joint: bool = False) -> dict[str, dict[str, float | int | None]]:
    """method -> the truth-check values this table shows (see module doc); with ``joint`` also
    those of the joint test when the truth table has them."""
    header = read_tsv(path).columns
    wanted = dict(TRUTH_COLUMNS)
    if joint and all(c in header for c in TRUTH_JOINT_COLUMNS):
        wanted |= TRUTH_JOINT_COLUMNS
        if "lambda_gc_null_joint" in header:
            wanted["lambda_gc_null_joint"] = "lambda_gc_null_joint"
    table = read_tsv(path, required=["method", *wanted],
                     dtypes={c: pl.Float64 if c in FLOAT_TRUTH_COLUMNS else pl.Int64
                             for c in wanted})
    _method_rows(table, path)
    return {row["method"]: {new: row[old] for old, new in wanted.items()}
            for row in table.iter_rows(named=True)}


def replication_count(path: str | Path) -> int | None:
    """``n_replicated`` of a ``contig replicate`` summary (one row)."""
    table = read_tsv(path, required=["n_replicated"], dtypes={"n_replicated": pl.Int64})
    if table.height != 1:
        raise InputError(f"expected one summary row, found {table.height}", path)
    return table["n_replicated"][0]


def read_probe_summary(path: str | Path, fraction: float) -> pl.DataFrame:
    """The rows of a ``contig probes`` summary at ``fraction`` (with their file row as ROW);
    InputError when a method, label and metric appear twice there."""
    table = read_tsv(path, required=PROBE_SUMMARY_COLUMNS,
                     dtypes={"fraction": pl.Float64, **PROBE_VALUES})
    table = table.with_row_index("ROW", offset=2)
    at = table.filter((pl.col("fraction") - fraction).abs() < 1e-9)
    duplicated = at.select("method", "label", "metric").is_duplicated()
    if duplicated.any():
        row = at.filter(duplicated)["ROW"][1]
        raise InputError(f"more than one row for this method, label and metric at fraction "
                         f"{fraction:g}", path, int(row))
    return at


def primary_probes(path: str | Path) -> list[Probe]:
    """Every label of a probe summary with its kind's primary metric, in the summary's order."""
    table = read_tsv(path, required=PROBE_SUMMARY_COLUMNS).with_row_index("ROW", offset=2)
    probes = []
    for row in table.unique(["label"], keep="first", maintain_order=True).iter_rows(named=True):
        if row["kind"] not in PRIMARY_METRIC:
            raise InputError(f"unknown label kind {row['kind']!r} (expected "
                             f"{' or '.join(PRIMARY_METRIC)})", path, row["ROW"], "kind")
        probes.append(Probe(row["label"], PRIMARY_METRIC[row["kind"]]))
    return probes


def probe_columns(path: str | Path, probes: Sequence[Probe], fraction: float = 1.0
                  ) -> dict[str, dict[str, float | int | None]]:
    """method -> ``<probe>_mean``, ``_lower``, ``_upper`` and ``_n_seeds`` at ``fraction``."""
    at = read_probe_summary(path, fraction)
    out: dict[str, dict[str, float | int | None]] = {}
    for probe in probes:
        rows = at.filter((pl.col("label") == probe.label) & (pl.col("metric") == probe.metric))
        for row in rows.iter_rows(named=True):
            values = out.setdefault(row["method"], {})
            for name in PROBE_VALUES:
                values[f"{probe.column}_{name}"] = row[name]
    return out


def final_retrieval(metrics_paths: Sequence[str | Path]) -> dict[str, float | int | None]:
    """Mean over folds of the selected epoch's ``val_top1`` and ``chance_top1`` (folds with a
    value); the selected epoch is the row with ``selected`` = 1, else the last row."""
    top1, chance = [], []
    for path in metrics_paths:
        table = read_tsv(path, required=["epoch", "val_top1"],
                         dtypes={"val_top1": pl.Float64, "chance_top1": pl.Float64})
        if table.height == 0:
            raise InputError("no epoch rows", path)
        if "selected" in table.columns:
            table = table.filter(pl.col("selected").cast(pl.Int64) == 1)
            if table.height != 1:
                raise InputError(f"{table.height} rows with selected = 1, expected 1", path)
        last = table.row(table.height - 1, named=True)
        if last["val_top1"] is not None and np.isfinite(last["val_top1"]):
            top1.append(last["val_top1"])
            if last.get("chance_top1") is not None:
                chance.append(last["chance_top1"])
    return {"retrieval_top1": float(np.mean(top1)) if top1 else None,
            "retrieval_chance_top1": float(np.mean(chance)) if chance else None,
            "retrieval_n_folds": len(top1)}


def comparison_schema(probes: Sequence[Probe], joint: bool = False) -> dict[str, pl.DataType]:
    """Column names and types of the comparison TSV (with the joint-test columns if ``joint``)."""
    schema: dict[str, pl.DataType] = {
        "method": pl.Utf8, "n_loci": pl.Int64, "planted_major": pl.Int64, "major_found": pl.Int64,
        "major_recall": pl.Float64, "false_loci": pl.Int64, "lambda_gc_null": pl.Float64}
    if joint:
        schema |= {"n_loci_joint": pl.Int64, "major_found_joint": pl.Int64,
                   "major_recall_joint": pl.Float64, "false_loci_joint": pl.Int64,
                   "lambda_gc_null_joint": pl.Float64}
    schema["replicated_loci"] = pl.Int64
    for probe in probes:
        schema |= {f"{probe.column}_{name}": dtype for name, dtype in PROBE_VALUES.items()}
    schema.update({"retrieval_top1": pl.Float64, "retrieval_chance_top1": pl.Float64,
                   "retrieval_n_folds": pl.Int64})
    return schema


@dataclass(frozen=True)
class ComparisonInputs:
    """What ``contig compare`` reads; every input is optional. ``probes`` None means every label
    of the probe summary with its primary metric; ``metrics`` lists each method's fold files."""

    loci: Mapping[str, str | Path] | None = None
    loci_joint: Mapping[str, str | Path] | None = None
    truth: str | Path | None = None
    replication: Mapping[str, str | Path] | None = None
    probes_path: str | Path | None = None
    probes: Sequence[Probe] | None = None
    probe_fraction: float = CompareSettings.probe_fraction
    metrics: Mapping[str, Sequence[str | Path]] | None = None

    def chosen_probes(self) -> list[Probe]:
        """The probe columns: as given, else the summary's labels, else none."""
        if self.probes is not None:
            return list(self.probes)
        return primary_probes(self.probes_path) if self.probes_path is not None else []


def comparison_values(methods: Sequence[str], inputs: ComparisonInputs, probes: Sequence[Probe]
                      ) -> tuple[dict[str, dict], list[str]]:
    """{method: {column: value}} from every input given, and notes on what was missing or
    ignored, for the log."""
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

    if inputs.truth is not None:
        merge(f"truth table {inputs.truth}", truth_columns(inputs.truth, bool(inputs.loci_joint)))
    if inputs.loci:
        merge("--loci", {m: {"n_loci": n} for m, n in loci_counts(inputs.loci).items()})
    if inputs.loci_joint:
        merge("--loci-joint", {m: {"n_loci_joint": n}
                               for m, n in loci_counts(inputs.loci_joint).items()})
    if inputs.replication:
        merge("--replication", {m: {"replicated_loci": replication_count(p)}
                                for m, p in inputs.replication.items()})
    if inputs.probes_path is not None:
        merge(f"probe summary {inputs.probes_path} at fraction {inputs.probe_fraction:g}",
              probe_columns(inputs.probes_path, probes, inputs.probe_fraction))
    if inputs.metrics:
        merge("--metrics", {m: final_retrieval(paths) for m, paths in inputs.metrics.items()})
    return rows, notes


def comparison_table(methods: Sequence[str], inputs: ComparisonInputs = ComparisonInputs()
                     ) -> tuple[pl.DataFrame, list[Probe], list[str]]:
    """The methods × columns table (schema :func:`comparison_schema`, NA where an input is
    missing), its probe columns, and notes on what was missing or ignored, for the log."""
    if len(set(methods)) != len(methods):
        raise ValueError("methods must be distinct")
    probes = inputs.chosen_probes()
    rows, notes = comparison_values(methods, inputs, probes)
    schema = comparison_schema(probes, joint=bool(inputs.loci_joint))
    table = pl.DataFrame([{c: rows[m].get(c) for c in schema} for m in methods], schema=schema,
                         orient="row")
    return table, probes, notes


# ---------------------------------------------------------------------------------------------
# Markdown


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "NA"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _found(row: Mapping, found: str, recall: str) -> str:
    """``found/planted (recall)``, or NA."""
    if row[found] is None:
        return "NA"
    return f"{row[found]}/{row['planted_major']} ({_fmt(row[recall], 2)})"


def _probe_cell(row: Mapping, probe: Probe) -> str:
    """``mean [lower, upper]`` (the bootstrap interval), or NA."""
    mean, lower, upper = (row[f"{probe.column}_{name}"] for name in ("mean", "lower", "upper"))
    if mean is None:
        return "NA"
    interval = "" if lower is None or upper is None else f" [{_fmt(lower, 2)}, {_fmt(upper, 2)}]"
    return _fmt(mean, 3) + interval


def markdown_table(table: pl.DataFrame, probes: Sequence[Probe], header: str) -> str:
    """A Markdown table for the README: ``header`` line, blank line, then the table."""
    joint = "n_loci_joint" in table.columns
    titles = ["method", "loci", "planted major found (recall)", "false loci", "λGC null chr."]
    if joint:
        titles += ["joint-test loci", "joint: planted major found (recall)", "joint: false loci",
                   "joint: λGC null chr."]
    titles.append("replicated across eyes")
    titles += [f"{p.label} {METRIC_DISPLAY.get(p.metric, p.metric)}" for p in probes]
    titles.append("retrieval top-1 (chance)")
    lines = [header, "", "| " + " | ".join(titles) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(titles) - 1)) + "|"]
    for row in table.iter_rows(named=True):
        cells = [row["method"], _fmt(row["n_loci"], 0), _found(row, "major_found", "major_recall"),
                 _fmt(row["false_loci"], 0), _fmt(row["lambda_gc_null"], 3)]
        if joint:
            cells += [_fmt(row["n_loci_joint"], 0),
                      _found(row, "major_found_joint", "major_recall_joint"),
                      _fmt(row["false_loci_joint"], 0), _fmt(row["lambda_gc_null_joint"], 3)]
        cells.append(_fmt(row["replicated_loci"], 0))
        cells += [_probe_cell(row, p) for p in probes]
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
