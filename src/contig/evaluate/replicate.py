"""Replication of GWAS loci between two independent GWAS, e.g. of the left and the right eye.

A locus found in GWAS A (a row of ``contig clump``'s OUT.tsv) *replicates* in GWAS B when
its lead variant's combined p in B (``contig gwas``'s OUT.combined.parquet, ``P = k·min p``) is
below ``alpha / n_A``, Bonferroni over the ``n_A`` loci of A that are tested (iGWAS's criterion).
A lead absent from B's summary statistics (or NA there) does not replicate and is counted.
With both directions given, the loci of B are tested in A the same way.

Distinct replicated loci: replicated loci of A and of B that lie on the same chromosome with
locus spans at most ``window`` bp apart are one locus (they are the same signal seen in both
eyes); the count is the number of connected groups, where links only join a locus of A with a
locus of B.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_paths
from contig.core.errors import InputError
from contig.evaluate.truth import read_loci
from contig.gwas.sumstats import read_sumstats


@dataclass(frozen=True)
class ReplicationSettings:
    """Settings of ``contig replicate`` (its flag defaults)."""

    alpha: float = 0.05
    window_kb: float = 250.0
    name: str = "left"
    name_other: str = "right"

    def validate(self) -> None:
        """Raise InputError for a setting out of range."""
        if not 0 < self.alpha < 1:
            raise InputError(f"alpha must be in (0, 1), got {self.alpha:g}")
        if self.window_kb < 0:
            raise InputError(f"the window must not be negative, got {self.window_kb:g} kb")
        if self.name == self.name_other:
            raise InputError(f"the two GWAS need different names, both are {self.name!r}")

REPLICATION_COLUMNS = {"EYE": pl.Utf8, "OTHER": pl.Utf8, "LOCUS": pl.Int64, "LEAD_ID": pl.Utf8,
                       "CHROM": pl.Utf8, "POS": pl.Int64, "START": pl.Int64, "END": pl.Int64,
                       "P": pl.Float64, "LOG10P": pl.Float64, "P_OTHER": pl.Float64,
                       "LOG10P_OTHER": pl.Float64, "THRESHOLD": pl.Float64, "REPLICATED": pl.Boolean}


def replicate_direction(loci: pl.DataFrame, other: pl.DataFrame, alpha: float, name: str,
                        other_name: str) -> pl.DataFrame:
    """Test each locus of ``loci`` (a loci table) in ``other`` (summary statistics with ID and
    LOG10P): one row per locus, columns :data:`REPLICATION_COLUMNS`."""
    n = loci.height
    lookup = other.select("ID", pl.col("LOG10P").alias("LOG10P_OTHER")).unique("ID", keep="first")
    joined = loci.with_row_index("ORDER").join(lookup, left_on="LEAD_ID", right_on="ID",
                                               how="left").sort("ORDER")
    threshold = alpha / n if n else alpha
    lp_other = joined["LOG10P_OTHER"].fill_nan(None)
    # p < alpha/n  <=>  LOG10P > -log10(alpha/n); exact in log space where p underflows.
    replicated = (lp_other > -np.log10(threshold)).fill_null(False)
    return pl.DataFrame({
        "EYE": [name] * n, "OTHER": [other_name] * n, "LOCUS": joined["LOCUS"],
        "LEAD_ID": joined["LEAD_ID"], "CHROM": joined["CHROM"], "POS": joined["LEAD_POS"],
        "START": joined["START"], "END": joined["END"],
        "P": (10.0 ** -joined["LOG10P"]), "LOG10P": joined["LOG10P"],
        "P_OTHER": 10.0 ** -lp_other, "LOG10P_OTHER": lp_other,
        "THRESHOLD": [threshold] * n, "REPLICATED": replicated,
    }, schema=REPLICATION_COLUMNS)


def distinct_loci(a: pl.DataFrame, b: pl.DataFrame, window_bp: float) -> int:
    """Connected groups of the loci in ``a`` and ``b`` (CHROM START END), linking a locus of ``a``
    with one of ``b`` when on the same chromosome their spans are at most ``window_bp`` apart."""
    na, nb = a.height, b.height
    parent = list(range(na + nb))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if na and nb:
        same = a["CHROM"].to_numpy().astype(str)[:, None] == b["CHROM"].to_numpy().astype(str)[None, :]
        gap = np.maximum(0, np.maximum(b["START"].to_numpy()[None, :] - a["END"].to_numpy()[:, None],
                                       a["START"].to_numpy()[:, None] - b["END"].to_numpy()[None, :]))
        for i, j in zip(*np.nonzero(same & (gap <= window_bp))):
            parent[root(int(i))] = root(na + int(j))
    return len({root(i) for i in range(na + nb)})


@dataclass
class Replication:
    """``loci``: every tested locus of both directions; ``summary``: one row of counts."""

    loci: pl.DataFrame
    summary: pl.DataFrame


SUMMARY_SCHEMA = {"name_a": pl.Utf8, "name_b": pl.Utf8, "n_loci_a": pl.Int64, "n_loci_b": pl.Int64,
                  "replicated_a_in_b": pl.Int64, "replicated_b_in_a": pl.Int64,
                  "lead_missing_in_b": pl.Int64, "lead_missing_in_a": pl.Int64,
                  "n_replicated": pl.Int64, "alpha": pl.Float64, "window_kb": pl.Float64}


def replicate(loci_a: str | Path, sumstats_b: str | Path, loci_b: str | Path | None = None,
              sumstats_a: str | Path | None = None,
              settings: ReplicationSettings = ReplicationSettings()) -> Replication:
    """Test A's loci in B (and B's in A when ``loci_b`` and ``sumstats_a`` are both given)."""
    if (loci_b is None) != (sumstats_a is None):
        raise ValueError("the reverse direction needs both loci_b and sumstats_a")
    settings.validate()
    alpha, window_kb = settings.alpha, settings.window_kb
    name_a, name_b = settings.name, settings.name_other
    table_a = read_loci(loci_a)
    a_in_b = replicate_direction(table_a, read_sumstats(sumstats_b), alpha, name_a, name_b)
    tested = [a_in_b]
    b_in_a = None
    if loci_b is not None:
        b_in_a = replicate_direction(read_loci(loci_b), read_sumstats(sumstats_a), alpha, name_b, name_a)
        tested.append(b_in_a)
    window_bp = window_kb * 1000.0
    rep_a = a_in_b.filter(pl.col("REPLICATED"))
    rep_b = b_in_a.filter(pl.col("REPLICATED")) if b_in_a is not None else rep_a.clear()
    summary = pl.DataFrame([{
        "name_a": name_a, "name_b": name_b, "n_loci_a": a_in_b.height,
        "n_loci_b": b_in_a.height if b_in_a is not None else None,
        "replicated_a_in_b": rep_a.height,
        "replicated_b_in_a": rep_b.height if b_in_a is not None else None,
        "lead_missing_in_b": int(a_in_b["LOG10P_OTHER"].is_null().sum()),
        "lead_missing_in_a": int(b_in_a["LOG10P_OTHER"].is_null().sum()) if b_in_a is not None else None,
        "n_replicated": distinct_loci(rep_a, rep_b, window_bp),
        "alpha": alpha, "window_kb": window_kb}], schema=SUMMARY_SCHEMA, orient="row")
    return Replication(pl.concat(tested), summary)


def replication_output_paths(out: str | Path) -> dict[str, Path]:
    """OUT (per locus) and OUT-stem.summary.tsv (``stem`` = OUT without .tsv)."""
    out = Path(out)
    stem = str(out)[:-4] if str(out).endswith(".tsv") else str(out)
    return {"loci": out, "summary": Path(f"{stem}.summary.tsv")}


def write_replication(result: Replication, out: str | Path) -> dict[str, Path]:
    """Write both tables atomically (all or none); NA for missing values."""
    paths = replication_output_paths(out)
    with atomic_paths(list(paths.values())) as (loci, summary):
        result.loci.write_csv(loci, separator="\t", null_value="NA")
        result.summary.write_csv(summary, separator="\t", null_value="NA")
    return paths
