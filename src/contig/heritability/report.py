"""The heritability tables and figure: one table per analysis (RHE and LDSC rows), a combined
table with the planted h² of the simulated traits, and h² per phenotype per method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_path
from contig.core.errors import InputError
from contig.core.tables import read_tsv, write_tsv
from contig.heritability.run import ESTIMATE_COLUMNS, ESTIMATE_SCHEMA

TRUTH_ANALYSIS = "truth"
"""The analysis name of the estimates on the simulator's true traits."""
Z_95 = 1.959964


def read_estimates(path: str | Path) -> pl.DataFrame:
    """An estimate table written by ``contig h2-rhe`` or ``contig h2-ldsc``."""
    table = read_tsv(path, required=ESTIMATE_COLUMNS,
                     dtypes={k: v for k, v in ESTIMATE_SCHEMA.items() if k not in ("PHENO", "ESTIMATOR")})
    return table.select(ESTIMATE_COLUMNS)


def planted_h2(truth: str | Path) -> pl.DataFrame:
    """PHENO PLANTED_H2 PLANTED_H2_COMMON per trait of the simulator's truth.tsv: the summed
    in-sample variance explained by every planted element, and by the common SNPs alone (without
    the rare-variant gene burdens, which a GRM of common variants cannot capture)."""
    table = read_tsv(truth, required=("kind", "trait", "variance_explained"),
                     dtypes={"variance_explained": pl.Float64})
    return table.group_by("trait", maintain_order=True).agg(
        pl.col("variance_explained").sum().alias("PLANTED_H2"),
        pl.col("variance_explained").filter(pl.col("kind") == "snp").sum().alias("PLANTED_H2_COMMON"),
    ).rename({"trait": "PHENO"})


def combined_table(estimates: Mapping[str, Sequence[pl.DataFrame]],
                   planted: pl.DataFrame | None = None) -> pl.DataFrame:
    """ANALYSIS + the estimate columns of every analysis (+ PLANTED_H2, PLANTED_H2_COMMON for the
    simulated traits)."""
    parts = [pl.concat(tables).with_columns(pl.lit(analysis).alias("ANALYSIS"))
             for analysis, tables in estimates.items()]
    table = pl.concat(parts).select("ANALYSIS", *ESTIMATE_COLUMNS)
    if planted is not None:
        planted = planted.with_columns(pl.lit(TRUTH_ANALYSIS).alias("ANALYSIS"))
        table = table.join(planted, on=["ANALYSIS", "PHENO"], how="left", maintain_order="left")
    return table


def _draw_panel(ax, table: pl.DataFrame, title: str, planted: pl.DataFrame | None = None) -> None:
    """h² ± 1.96 SE per phenotype (x) with one offset series per analysis."""
    phenos = list(dict.fromkeys(table["PHENO"].to_list()))
    analyses = list(dict.fromkeys(table["ANALYSIS"].to_list()))
    width = 0.8 / max(len(analyses), 1)
    x = np.arange(len(phenos))
    for k, analysis in enumerate(analyses):
        rows = {r["PHENO"]: r for r in table.filter(pl.col("ANALYSIS") == analysis).iter_rows(named=True)}
        h2 = np.array([rows[p]["H2"] if p in rows else np.nan for p in phenos], dtype=float)
        se = np.array([rows[p]["SE"] if p in rows else np.nan for p in phenos], dtype=float)
        ax.errorbar(x + (k - (len(analyses) - 1) / 2) * width, h2, yerr=Z_95 * se, fmt="o",
                    capsize=2, markersize=4, label=analysis)
    if planted is not None:
        value = {r["PHENO"]: r["PLANTED_H2"] for r in planted.iter_rows(named=True)}
        ax.scatter(x, [value.get(p, np.nan) for p in phenos], marker="_", s=400, color="black",
                   zorder=3, label="planted h²")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xticks(x, phenos, rotation=30 if max(map(len, phenos)) > 4 else 0, ha="right"
                  if max(map(len, phenos)) > 4 else "center", fontsize=8)
    ax.set_ylabel("h² (± 1.96 SE)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper right")


def write_figure(table: pl.DataFrame, path: str | Path, settings_text: str) -> None:
    """One panel per estimator for the embedding phenotypes, plus the simulated traits (RHE
    against the planted h²) when the table has them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    embedding = table.filter(pl.col("ANALYSIS") != TRUTH_ANALYSIS)
    truth = table.filter(pl.col("ANALYSIS") == TRUTH_ANALYSIS)
    estimators = list(dict.fromkeys(embedding["ESTIMATOR"].to_list()))
    n_panels = len(estimators) + (truth.height > 0)
    if n_panels == 0:
        raise InputError("no estimate to draw", path)
    fig, axes = plt.subplots(n_panels, 1, figsize=(9, 3.2 * n_panels), squeeze=False)
    for ax, estimator in zip(axes[:, 0], estimators):
        _draw_panel(ax, embedding.filter(pl.col("ESTIMATOR") == estimator),
                    f"{estimator}: SNP heritability of the embedding phenotypes")
    if truth.height:
        planted = truth.select("PHENO", "PLANTED_H2") if "PLANTED_H2" in truth.columns else None
        _draw_panel(axes[-1, 0], truth, "Simulated true traits (RHE) against the planted h²", planted)
    fig.suptitle(settings_text, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_tables(table: pl.DataFrame, combined: str | Path,
                 per_analysis: Mapping[str, str | Path]) -> None:
    """The combined table and each analysis' own rows (without the ANALYSIS column)."""
    write_tsv(table, combined)
    for analysis, path in per_analysis.items():
        write_tsv(table.filter(pl.col("ANALYSIS") == analysis).select(ESTIMATE_COLUMNS), path)
