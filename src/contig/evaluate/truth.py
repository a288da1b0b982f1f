"""Truth check of GWAS loci against what the simulator planted (simulated cohorts only).

Planted elements come from the simulator's ``truth.tsv``: SNPs with role ``major`` (a few large
effects per trait) or ``polygenic`` (many small effects), and genes with role ``burden`` (a
rare-variant burden effect; the element is the gene's region ``start..end``).

A locus (a row of ``contig clump``'s OUT.tsv) covers its span ``START..END``: the lead and
every clumped variant with p ≤ p2, all in LD (r² > r2) with the lead. A locus *tags* a planted
element on the same chromosome when the gap between the locus span and the element (0 if they
overlap) is at most ``window`` base pairs. Using the span rather than the lead alone counts a
locus whose significant LD partners reach a planted SNP; for single-variant loci both agree.
The per-locus table also names the planted element nearest to each lead, whatever its role or
distance.

- A planted SNP or gene is *found* when at least one locus tags it (recall = found / planted,
  counting distinct IDs of that role).
- Each locus gets one class, by precedence ``major`` > ``burden`` > ``polygenic`` (the role of
  the largest planted effect it tags), and ``false`` when it tags no planted element at all.
  Loci on null chromosomes (no planted element) are always false; they are also counted apart,
  as the cleanest false-positive count (on causal chromosomes a window around one of hundreds
  of polygenic SNPs covers much of the sequence).

Joint test: with loci of the joint multivariate test (``joint_loci_paths``, same columns), each
method's summary row gains the joint-test columns (``*_joint``: loci, false loci, planted major
and burden found), and the per-locus table a ``test`` column (``combined`` or ``joint``). With
the combined table of a method (``combined_paths``, ``contig gwas``'s OUT.combined.parquet), also
``lambda_gc_null_joint``: λGC of the joint test over the variants of the null chromosomes.

Calibration: λGC over the variants of the null chromosomes (1..n_chromosomes minus the causal
chromosomes that the simulator actually used, :meth:`SimulationConfig.resolved_causal_chromosomes`),
computed per phenotype from the per-phenotype summary statistics of ``contig gwas`` and
summarized by the median and mean over phenotypes. The combined statistic (min p × k) is not
χ²(1) under the null, so its λGC would mean nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_paths
from contig.core.errors import InputError
from contig.core.tables import read_tsv
from contig.gwas.stats import lambda_gc
from contig.gwas.sumstats import read_sumstats
from contig.gwas.wide import is_wide, read_wide_phenotype, wide_file, wide_phenotypes
from contig.scores.pgs_catalog import normalize_chrom
from contig.simulate.config import read_simulation_json

ROLES = ("major", "burden", "polygenic")
"""Planted roles in classification precedence (largest effect first)."""
CLASSES = ROLES + ("false",)
LOCI_COLUMNS = ["LEAD_ID", "CHROM", "LEAD_POS", "START", "END"]


@dataclass(frozen=True)
class TruthSettings:
    """Settings of ``contig truth`` (its flag defaults)."""

    window_kb: float = 250.0


def normalized_names(chromosomes: Sequence[str]) -> list[str]:
    """Chromosome names as :func:`contig.scores.pgs_catalog.normalize_chrom` writes them."""
    table = pl.DataFrame({"CHROM": [str(c) for c in chromosomes]}, schema={"CHROM": pl.Utf8})
    return table.select(normalize_chrom(pl.col("CHROM")))["CHROM"].to_list()


# ---------------------------------------------------------------------------------------------
# inputs


def read_truth(path: str | Path) -> pl.DataFrame:
    """Planted elements: ``ID KIND ROLE CHROM START END TRAIT`` (one row per truth.tsv row).

    Raises :class:`InputError` naming row and column for an unknown kind or role, a SNP whose
    start and end differ, or a gene whose end precedes its start.
    """
    table = read_tsv(path, required=["kind", "id", "chrom", "start", "end", "role"],
                     dtypes={"start": pl.Int64, "end": pl.Int64})
    for column, allowed in (("kind", ("snp", "gene")), ("role", ROLES)):
        bad = ~table[column].is_in(list(allowed)) | table[column].is_null()
        if bad.any():
            i = int(bad.arg_true()[0])
            raise InputError(f"{table[column][i]!r} is not one of {', '.join(allowed)}", path, i + 2,
                             column)
    for column in ("id", "chrom", "start", "end"):
        empty = table[column].is_null()
        if empty.any():
            raise InputError("empty value", path, int(empty.arg_true()[0]) + 2, column)
    bad = (table["end"] < table["start"]) | ((table["kind"] == "snp") & (table["end"] != table["start"]))
    if bad.any():
        raise InputError("end must equal start for a SNP and not precede start for a gene", path,
                         int(bad.arg_true()[0]) + 2, "end")
    trait = (table["trait"] if "trait" in table.columns
             else pl.Series([None] * table.height, dtype=pl.Utf8))
    return pl.DataFrame({"ID": table["id"], "KIND": table["kind"], "ROLE": table["role"],
                         "CHROM": table["chrom"], "START": table["start"], "END": table["end"],
                         "TRAIT": trait}).with_columns(normalize_chrom(pl.col("CHROM")))


def read_loci(path: str | Path) -> pl.DataFrame:
    """A loci table of ``contig clump`` (OUT.tsv); LOCUS is numbered 1.. if absent."""
    table = read_tsv(path, required=LOCI_COLUMNS,
                     dtypes={"LEAD_POS": pl.Int64, "START": pl.Int64, "END": pl.Int64,
                             "LOCUS": pl.Int64, "P": pl.Float64, "LOG10P": pl.Float64})
    for column in LOCI_COLUMNS:
        empty = table[column].is_null()
        if empty.any():
            raise InputError("empty value", path, int(empty.arg_true()[0]) + 2, column)
    bad = (table["START"] > table["LEAD_POS"]) | (table["END"] < table["LEAD_POS"])
    if bad.any():
        raise InputError("the locus span START..END must contain LEAD_POS", path,
                         int(bad.arg_true()[0]) + 2, "START")
    if "LOCUS" not in table.columns:
        table = table.with_columns(pl.int_range(1, table.height + 1, dtype=pl.Int64).alias("LOCUS"))
    if "LOG10P" not in table.columns:
        table = table.with_columns((-pl.col("P").log10()).alias("LOG10P") if "P" in table.columns
                                   else pl.lit(None, dtype=pl.Float64).alias("LOG10P"))
    return table.with_columns(normalize_chrom(pl.col("CHROM")))


def null_chromosomes(simulation_json: str | Path) -> list[str]:
    """Chromosomes of the simulated cohort without any planted effect, as normalized text (``"9"``,
    ...)."""
    config = read_simulation_json(simulation_json)
    causal = set(config.resolved_causal_chromosomes())
    return normalized_names([c for c in range(1, config.n_chromosomes + 1) if c not in causal])


def _natural_key(name: str) -> list:
    """Sort key that puts PC2 before PC10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def phenotype_sumstats_paths(location: str | Path) -> dict[str, Path]:
    """Per-phenotype summary statistics of one GWAS, by phenotype name. ``location`` is either

    - a folder (``contig gwas``/``gwas-gather --per-pheno-dir``): every ``<pheno>.parquet`` in it
      (``<pheno>.tsv.gz`` when it has no parquet files), or
    - the ``--out`` prefix of ``contig gwas``: the phenotypes listed in PREFIX.summary.tsv (of
      ``contig gwas-summary``; ``combined`` and ``joint`` excluded), PREFIX.<pheno>.parquet (or
      .tsv.gz when there is no parquet).

    Where a folder or prefix holds only the wide layout (``all.wide.parquet``), every phenotype
    maps to that file (:func:`contig.gwas.wide.read_wide_phenotype` reads its columns).
    """
    folder = Path(location)
    if folder.is_dir():
        files = (sorted(f for f in folder.glob("*.parquet") if not is_wide(f))
                 or sorted(f for f in folder.glob("*.tsv.gz") if not f.name.endswith(".ssf.tsv.gz")))
        wide = wide_file(folder)
        if not files and wide is not None:  # the wide layout: one file, a column per phenotype
            return {name: wide for name in wide_phenotypes(wide)}
        if not files:
            raise InputError("folder has no <pheno>.parquet, <pheno>.tsv.gz or all.wide.parquet files",
                             folder)
        paths = {f.name.removesuffix(".parquet").removesuffix(".tsv.gz"): f for f in files}
        return {name: paths[name] for name in sorted(paths, key=_natural_key)}
    summary_path = Path(f"{location}.summary.tsv")
    if not summary_path.exists():
        raise InputError("neither a folder of per-phenotype summary statistics nor a `contig gwas "
                         f"--out` prefix ({summary_path.name} not found)", location)
    summary = read_tsv(summary_path, required=["PHENO"])
    paths = {}
    for i, pheno in enumerate(summary["PHENO"].to_list()):
        if pheno in ("combined", "joint"):  # rows of `contig gwas-summary` that are no phenotype
            continue
        if pheno is None:
            raise InputError("empty phenotype name", summary_path, i + 2, "PHENO")
        parquet, tsv = Path(f"{location}.{pheno}.parquet"), Path(f"{location}.{pheno}.tsv.gz")
        wide = wide_file(location)
        paths[pheno] = (wide if wide is not None and not parquet.exists() and not tsv.exists() else
                        parquet if parquet.exists() or not tsv.exists() else tsv)
    if not paths:
        raise InputError("lists no phenotype", summary_path)
    return paths


# ---------------------------------------------------------------------------------------------
# classification


def span_distances(loci: pl.DataFrame, planted: pl.DataFrame) -> np.ndarray:
    """Gap in bp between every locus span and every planted element, ``(n_loci, n_planted)``:
    0 where they overlap, +inf on different chromosomes."""
    same = (loci["CHROM"].to_numpy().astype(str)[:, None]
            == planted["CHROM"].to_numpy().astype(str)[None, :])
    l_start = loci["START"].to_numpy().astype(np.float64)[:, None]
    l_end = loci["END"].to_numpy().astype(np.float64)[:, None]
    p_start = planted["START"].to_numpy().astype(np.float64)[None, :]
    p_end = planted["END"].to_numpy().astype(np.float64)[None, :]
    gap = np.maximum(0.0, np.maximum(p_start - l_end, l_start - p_end))
    return np.where(same, gap, np.inf)


def classify_loci(loci: pl.DataFrame, planted: pl.DataFrame, window_bp: float) -> pl.DataFrame:
    """``loci`` plus CLASS (major/burden/polygenic/false), MATCH_ID MATCH_TRAIT MATCH_DISTANCE
    (the tagged element of the winning role nearest to the span, and its gap to the span in bp)
    and NEAREST_ID NEAREST_ROLE NEAREST_DISTANCE (the planted element of any role nearest to the
    lead variant on its chromosome, whatever the window, and its distance to the lead in bp)."""
    dist = span_distances(loci, planted)  # (n_loci, n_planted)
    roles = planted["ROLE"].to_numpy().astype(str)
    ids = planted["ID"].to_numpy().astype(str)
    traits = np.asarray(planted["TRAIT"].to_list(), dtype=object)
    n = loci.height
    cls = np.full(n, "false", dtype=object)
    match = np.full(n, -1)
    for role in reversed(ROLES):  # lowest precedence first; higher roles overwrite
        cols = np.flatnonzero(roles == role)
        if cols.size == 0 or n == 0:
            continue
        sub = dist[:, cols]
        best = np.argmin(sub, axis=1)
        tagged = sub[np.arange(n), best] <= window_bp
        cls[tagged] = role
        match[tagged] = cols[best[tagged]]
    has = match >= 0
    lead = span_distances(loci.with_columns(pl.col("LEAD_POS").alias("START"),
                                            pl.col("LEAD_POS").alias("END")), planted)
    nearest = np.argmin(lead, axis=1) if lead.shape[1] else np.zeros(n, np.int64)
    near_ok = (np.isfinite(lead[np.arange(n), nearest]) if lead.shape[1] else np.zeros(n, bool))

    def pick(values: np.ndarray, index: np.ndarray, ok: np.ndarray) -> list:
        return [values[i] if good else None for i, good in zip(index, ok)]

    def gap(d: np.ndarray, index: np.ndarray, ok: np.ndarray) -> list:
        return [int(d[r, i]) if good else None for r, (i, good) in enumerate(zip(index, ok))]

    return loci.with_columns(
        pl.Series("CLASS", cls.astype(str), dtype=pl.Utf8),
        pl.Series("MATCH_ID", pick(ids, match, has), dtype=pl.Utf8),
        pl.Series("MATCH_TRAIT", pick(traits, match, has), dtype=pl.Utf8),
        pl.Series("MATCH_DISTANCE", gap(dist, match, has), dtype=pl.Int64),
        pl.Series("NEAREST_ID", pick(ids, nearest, near_ok), dtype=pl.Utf8),
        pl.Series("NEAREST_ROLE", pick(roles, nearest, near_ok), dtype=pl.Utf8),
        pl.Series("NEAREST_DISTANCE", gap(lead, nearest, near_ok), dtype=pl.Int64),
    )


def found_elements(loci: pl.DataFrame, planted: pl.DataFrame, role: str,
                   window_bp: float) -> tuple[int, int]:
    """(distinct planted IDs of ``role``, how many of them at least one locus tags)."""
    elements = planted.filter(pl.col("ROLE") == role).unique("ID", keep="first", maintain_order=True)
    if elements.height == 0:
        return 0, 0
    if loci.height == 0:
        return elements.height, 0
    tagged = (span_distances(loci, elements) <= window_bp).any(axis=0)
    return elements.height, int(tagged.sum())


# ---------------------------------------------------------------------------------------------
# calibration


def null_chromosome_log10p(table: pl.DataFrame, column: str, null_chroms: Sequence[str]
                           ) -> np.ndarray:
    """The finite values of ``column`` (a −log10 p) on the variants of ``null_chroms``, ``(m,)``."""
    wanted = [str(c) for c in null_chroms]
    lp = (table.with_columns(normalize_chrom(pl.col("CHROM"))).filter(pl.col("CHROM").is_in(wanted))
          [column].fill_null(np.nan).to_numpy())
    return lp[np.isfinite(lp)]


def joint_null_lambda(combined_path: str | Path, null_chroms: Sequence[str]) -> float | None:
    """λGC of the joint test (column ``LOG10P_JOINT`` of a combined table) over the variants on
    ``null_chroms`` that have a p-value; None when there are none."""
    table = read_sumstats(combined_path)
    if "LOG10P_JOINT" not in table.columns:
        raise InputError("no LOG10P_JOINT column (a combined table of `contig gwas`?)",
                         combined_path)
    lp = null_chromosome_log10p(table, "LOG10P_JOINT", null_chroms)
    return lambda_gc(lp) if lp.size else None


def null_lambdas(pheno_paths: Mapping[str, str | Path], null_chroms: Sequence[str]) -> pl.DataFrame:
    """λGC of each phenotype over its variants on ``null_chroms``: ``PHENO N_VARIANTS LAMBDA_GC``
    (N_VARIANTS counts variants with a p-value; LAMBDA_GC null when there are none)."""
    rows = []
    for pheno, path in pheno_paths.items():
        table = (read_wide_phenotype(path, pheno, ["CHROM", "GENPOS", "ID", "LOG10P"]) if is_wide(path)
                 else read_sumstats(path))
        lp = null_chromosome_log10p(table, "LOG10P", null_chroms)
        rows.append((pheno, int(lp.size), lambda_gc(lp) if lp.size else None))
    return pl.DataFrame(rows, schema={"PHENO": pl.Utf8, "N_VARIANTS": pl.Int64,
                                      "LAMBDA_GC": pl.Float64}, orient="row")


# ---------------------------------------------------------------------------------------------
# the check


@dataclass
class TruthCheck:
    """``summary``: one row per method; ``loci``: every locus classified; ``lambdas``: λGC per
    method × phenotype on the null chromosomes."""

    summary: pl.DataFrame
    loci: pl.DataFrame
    lambdas: pl.DataFrame


SUMMARY_SCHEMA = {
    "method": pl.Utf8, "n_loci": pl.Int64, "loci_major": pl.Int64, "loci_burden": pl.Int64,
    "loci_polygenic": pl.Int64, "loci_false": pl.Int64, "loci_false_null_chrom": pl.Int64,
    "planted_major": pl.Int64, "major_found": pl.Int64, "major_recall": pl.Float64,
    "planted_burden": pl.Int64, "burden_found": pl.Int64, "window_kb": pl.Float64,
    "n_phenotypes": pl.Int64, "lambda_gc_null_median": pl.Float64, "lambda_gc_null_mean": pl.Float64,
}


def check_method(method: str, loci: pl.DataFrame, planted: pl.DataFrame, window_bp: float,
                 null_chroms: Sequence[str], lambdas: pl.DataFrame | None) -> tuple[dict, pl.DataFrame]:
    """The summary row of one method and its classified loci."""
    classified = classify_loci(loci, planted, window_bp)
    counts = {c: int((classified["CLASS"] == c).sum()) for c in CLASSES}
    planted_major, major_found = found_elements(loci, planted, "major", window_bp)
    planted_burden, burden_found = found_elements(loci, planted, "burden", window_bp)
    values = (lambdas["LAMBDA_GC"].drop_nulls().to_numpy() if lambdas is not None
              else np.zeros(0))
    row = {
        "method": method, "n_loci": loci.height, "loci_major": counts["major"],
        "loci_burden": counts["burden"], "loci_polygenic": counts["polygenic"],
        "loci_false": counts["false"],
        "loci_false_null_chrom": int(classified["CHROM"].is_in(list(null_chroms)).sum()),
        "planted_major": planted_major, "major_found": major_found,
        "major_recall": major_found / planted_major if planted_major else None,
        "planted_burden": planted_burden, "burden_found": burden_found,
        "window_kb": window_bp / 1000.0,
        "n_phenotypes": lambdas.height if lambdas is not None else None,
        "lambda_gc_null_median": float(np.median(values)) if values.size else None,
        "lambda_gc_null_mean": float(np.mean(values)) if values.size else None,
    }
    return row, classified.select(pl.lit(method).alias("method"), pl.all())


JOINT_COLUMNS = {"n_loci": "n_loci_joint", "loci_false": "loci_false_joint",
                 "loci_false_null_chrom": "loci_false_null_chrom_joint",
                 "major_found": "major_found_joint", "major_recall": "major_recall_joint",
                 "burden_found": "burden_found_joint"}
"""Summary columns of the combined test repeated for the joint test, and their names there."""
LAMBDA_SCHEMA = {"method": pl.Utf8, "PHENO": pl.Utf8, "N_VARIANTS": pl.Int64, "LAMBDA_GC": pl.Float64}


def check_joint_loci(method: str, path: str | Path, planted: pl.DataFrame, window_bp: float,
                     null_chroms: Sequence[str]) -> tuple[dict, pl.DataFrame]:
    """The joint-test columns of a method's summary row, and its joint-test loci classified."""
    row, classified = check_method(method, read_loci(path), planted, window_bp, null_chroms, None)
    return ({joint: row[name] for name, joint in JOINT_COLUMNS.items()},
            classified.select("method", pl.lit("joint").alias("test"), pl.exclude("method")))


def _only_for_methods_with_loci(named: Mapping[str, str | Path], loci_paths: Mapping[str, object],
                                what: str) -> None:
    """InputError when ``named`` has a method that has no loci table."""
    unknown = sorted(set(named) - set(loci_paths))
    if unknown:
        raise InputError(f"{what} given for method(s) {', '.join(unknown)} without a loci table",
                         str(named[unknown[0]]))


def truth_check(loci_paths: Mapping[str, str | Path], truth_path: str | Path,
                simulation_json: str | Path, window_kb: float = TruthSettings.window_kb,
                pheno_sumstats: Mapping[str, str | Path] | None = None,
                joint_loci_paths: Mapping[str, str | Path] | None = None,
                combined_paths: Mapping[str, str | Path] | None = None) -> TruthCheck:
    """Check every method's loci against the truth; λGC on null chromosomes for the methods in
    ``pheno_sumstats`` (see :func:`phenotype_sumstats_paths`; methods without get null λ); with
    ``joint_loci_paths``, the joint-test columns (null for methods without joint loci); with
    ``combined_paths``, the joint test's λGC on the null chromosomes."""
    pheno_sumstats, joint = dict(pheno_sumstats or {}), dict(joint_loci_paths or {})
    combined = dict(combined_paths or {})
    _only_for_methods_with_loci(combined, loci_paths, "combined tables")
    _only_for_methods_with_loci(pheno_sumstats, loci_paths, "summary statistics")
    _only_for_methods_with_loci(joint, loci_paths, "joint-test loci")
    planted = read_truth(truth_path)
    null_chroms = null_chromosomes(simulation_json)
    window_bp = window_kb * 1000.0
    rows, loci_tables, lambda_tables = [], [], []
    for method, path in loci_paths.items():
        lambdas = None
        if method in pheno_sumstats:
            lambdas = null_lambdas(phenotype_sumstats_paths(pheno_sumstats[method]), null_chroms)
            lambda_tables.append(lambdas.select(pl.lit(method).alias("method"), pl.all()))
        row, classified = check_method(method, read_loci(path), planted, window_bp, null_chroms,
                                       lambdas)
        if joint:
            classified = classified.select("method", pl.lit("combined").alias("test"),
                                           pl.exclude("method"))
        if method in joint:
            joint_row, joint_classified = check_joint_loci(method, joint[method], planted,
                                                           window_bp, null_chroms)
            row |= joint_row
            classified = pl.concat([classified, joint_classified], how="diagonal_relaxed")
        if method in combined:
            row["lambda_gc_null_joint"] = joint_null_lambda(combined[method], null_chroms)
        rows.append(row)
        loci_tables.append(classified)
    schema = SUMMARY_SCHEMA | ({joint_name: SUMMARY_SCHEMA[name] for name, joint_name
                                in JOINT_COLUMNS.items()} if joint else {})
    if combined:
        schema = schema | {"lambda_gc_null_joint": pl.Float64}
    summary = pl.DataFrame([{c: row.get(c) for c in schema} for row in rows], schema=schema,
                           orient="row")
    lambdas_all = pl.concat(lambda_tables) if lambda_tables else pl.DataFrame(schema=LAMBDA_SCHEMA)
    loci_all = pl.concat(loci_tables, how="diagonal_relaxed") if loci_tables else pl.DataFrame()
    return TruthCheck(summary, loci_all, lambdas_all)


def truth_output_paths(out: str | Path) -> dict[str, Path]:
    """OUT (summary), OUT-stem.loci.tsv and OUT-stem.lambda_gc.tsv (``stem`` = OUT without .tsv)."""
    out = Path(out)
    stem = str(out)[:-4] if str(out).endswith(".tsv") else str(out)
    return {"summary": out, "loci": Path(f"{stem}.loci.tsv"), "lambda": Path(f"{stem}.lambda_gc.tsv")}


def write_truth_check(check: TruthCheck, out: str | Path) -> dict[str, Path]:
    """Write the three tables atomically (all or none); NA for missing values."""
    paths = truth_output_paths(out)
    with atomic_paths(list(paths.values())) as (summary, loci, lambdas):
        check.summary.write_csv(summary, separator="\t", null_value="NA")
        check.loci.write_csv(loci, separator="\t", null_value="NA")
        check.lambdas.write_csv(lambdas, separator="\t", null_value="NA")
    return paths
