"""LD score regression (Bulik-Sullivan et al. 2015) of GWAS summary statistics: SNP heritability
and the intercept, with a block-jackknife SE, as ``ldsc --h2`` computes them without its two-step
option.

Model: ``E[χ²_j] = N_j·h²·ℓ_j/M + a`` (``a``, the intercept: 1 plus confounding). Regression of
``χ²`` on ``[N_j ℓ_j / N̄, 1]`` by weighted least squares with the weights
``1 / (2·(a + h²·N_j·ℓ_j/M)²·max(ℓ_j, 1))`` (heteroscedasticity × overcounting of variants in LD),
re-estimated twice from the current fit (IRWLS), starting from the aggregate estimate
``h² = M·(mean χ² − 1)/mean(N·ℓ)``. SE: delete-one jackknife over contiguous blocks of the
regression variants with the final weights. Variants with ``χ² > max(80, 0.001·N̄)`` are left out,
as ldsc does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.errors import InputError
from contig.gwas.wide import is_wide, read_wide_phenotype
from contig.heritability.rhe import jackknife_se
from contig.heritability.variants import contiguous_blocks

log = logging.getLogger("contig.heritability")

IRWLS_ITERATIONS = 2
CHISQ_MAX = 80.0
CHISQ_MAX_PER_N = 0.001


@dataclass
class LdscEstimate:
    """h² and the intercept of one phenotype, with jackknife SEs."""

    h2: float
    se: float
    intercept: float
    intercept_se: float
    n_variants: int  # regression variants
    n_removed: int  # left out for χ² above the cap
    mean_n: float


def regression_weights(ld: np.ndarray, n: np.ndarray, m: float, h2: float,
                       intercept: float) -> np.ndarray:
    """WLS weights ``(k,)`` of the module docstring (h² clipped to [0, 1])."""
    h2 = min(max(h2, 0.0), 1.0)
    ld = np.maximum(ld, 1.0)
    return 1.0 / (2.0 * (intercept + h2 * n * ld / m) ** 2) / ld


def weighted_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Coefficients ``(2,)`` of the WLS fit of ``y (k,)`` on ``x (k, 2)`` with weights ``w (k,)``."""
    root = np.sqrt(w / w.sum())
    return np.linalg.lstsq(x * root[:, None], y * root, rcond=None)[0]


def jackknife_fits(x: np.ndarray, y: np.ndarray, w: np.ndarray, n_blocks: int) -> np.ndarray:
    """Delete-one WLS coefficients ``(n_blocks, 2)`` over contiguous blocks of the rows."""
    root = np.sqrt(w / w.sum())
    xw, yw = x * root[:, None], y * root
    block = contiguous_blocks(len(y), n_blocks)
    xtx = np.stack([xw[block == b].T @ xw[block == b] for b in range(block[-1] + 1)])
    xty = np.stack([xw[block == b].T @ yw[block == b] for b in range(block[-1] + 1)])
    total_xtx, total_xty = xtx.sum(axis=0), xty.sum(axis=0)
    return np.array([np.linalg.solve(total_xtx - a, total_xty - c) for a, c in zip(xtx, xty)])


def ld_score_regression(chisq: np.ndarray, ld: np.ndarray, n: np.ndarray, m: float,
                        n_blocks: int) -> LdscEstimate:
    """h² and intercept from ``chisq``, LD scores ``ld`` and sample sizes ``n`` (each ``(k,)``,
    regression variants in genome order) with ``m`` variants behind the LD scores."""
    n_bar = float(n.mean())
    cap = max(CHISQ_MAX, CHISQ_MAX_PER_N * n_bar)
    kept = chisq <= cap
    chisq, ld, n = chisq[kept], ld[kept], n[kept]
    if len(chisq) < max(n_blocks, 3):
        raise InputError(f"only {len(chisq)} regression variants for {n_blocks} jackknife blocks")
    n_bar = float(n.mean())
    x = np.column_stack([n * ld / n_bar, np.ones(len(ld))])
    h2 = m * (chisq.mean() - 1.0) / float((ld * n).mean())
    w = regression_weights(ld, n, m, h2, 1.0)
    for _ in range(IRWLS_ITERATIONS):
        coef = weighted_fit(x, chisq, w)
        w = regression_weights(ld, n, m, m * coef[0] / n_bar, coef[1])
    coef = weighted_fit(x, chisq, w)
    delete = jackknife_fits(x, chisq, w, n_blocks)
    se = jackknife_se(delete)
    return LdscEstimate(float(m * coef[0] / n_bar), float(m * se[0] / n_bar), float(coef[1]),
                        float(se[1]), len(chisq), int((~kept).sum()), n_bar)


def regression_inputs(sumstats: str | Path, ld_table: pl.DataFrame, pheno: str | None = None) -> pl.DataFrame:
    """ID CHISQ N L2 of the variants in both the summary statistics (parquet or tsv.gz with ID,
    CHISQ, N; or phenotype ``pheno`` of the wide layout) and the LD score table, in the LD
    table's order; variants without χ² dropped."""
    path = Path(sumstats)
    if pheno is not None and is_wide(path):
        table = read_wide_phenotype(path, pheno)
    else:
        table = (pl.read_parquet(path) if path.suffix == ".parquet"
                 else pl.read_csv(path, separator="\t", null_values=["NA"]))
    missing = [c for c in ("ID", "CHISQ", "N") if c not in table.columns]
    if missing:
        raise InputError(f"no column {', '.join(missing)} (regenie-style summary statistics)", path)
    joined = ld_table.select("SNP", "L2").join(
        table.select(pl.col("ID").cast(pl.Utf8).alias("SNP"), pl.col("CHISQ").cast(pl.Float64),
                     pl.col("N").cast(pl.Float64)), on="SNP", how="inner", maintain_order="left")
    usable = joined.filter(pl.col("CHISQ").is_not_null() & pl.col("CHISQ").is_not_nan())
    log.info("%s: %d variants; %d not among the LD score variants, %d without chi2; %d used",
             path.name, table.height, table.height - joined.height, joined.height - usable.height,
             usable.height)
    return usable
