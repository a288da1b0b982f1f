"""GWAS step 1, regenie-style: whole-genome ridge regression giving leave-one-chromosome-out
(LOCO) predictions of every phenotype, which ``contig gwas --loco`` subtracts before testing.

A simplified, documented version of regenie's step 1 (Mbatchou et al. 2021):

1. People: as in step 2 (phenotype ∩ covariate ∩ .fam, complete cases). Phenotypes are
   residualized on ``[1, covariates]`` and scaled to unit variance; genotypes are mean-imputed,
   standardized and residualized on the covariates too. Monomorphic variants are skipped.
2. Level 0: the variants of each chromosome are cut into blocks of ``block_size`` consecutive
   variants. In every block, ridge regressions of each phenotype on the block's variants with
   ``R`` shrinkages ``λ = b·(1 − h²)/h²`` (b = variants in the block, h² in ``h2_grid``) are
   fitted by K-fold cross-validation; each person's level-0 predictions come from the fit that
   left their fold out, giving ``n_blocks · R`` features per phenotype.
3. Level 1: per phenotype, a ridge regression on those standardized features with the shrinkage
   chosen by the same K-fold split (smallest out-of-fold squared error over ``h2_grid``,
   ``λ = F·(1 − h²)/h²`` with F features).
4. LOCO: person i's prediction for chromosome c uses the level-1 fit that left i's fold out and
   only the features of blocks on other chromosomes (regenie's LOCO without refitting).

Output (``write_loco``): ``OUT.loco.tsv.gz`` with ``IID`` then one column ``<pheno>:<chrom>`` per
phenotype and chromosome, in the units of the covariate-residualized phenotype; and
``OUT.step1.tsv`` (per phenotype: chosen level-1 h², out-of-fold R² of the whole-genome fit).
Memory: the level-0 features take ``n · n_blocks · R · p`` doubles.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_paths
from contig.core.errors import InputError
from contig.genotypes.plinkio import MISSING, Genotypes
from contig.gwas.inputs import (
    LOCO_SEPARATOR,
    MISSING_PHENOTYPE,
    covariate_basis,
    load_association_data,
)

H2_GRID = (0.01, 0.25, 0.5, 0.75, 0.99)


@dataclass(frozen=True)
class Step1Settings:
    """Settings of step 1 (and the defaults of ``contig gwas-step1``)."""

    block_size: int = 500  # consecutive variants per level-0 block
    n_folds: int = 5  # cross-validation folds of both levels
    seed: int = 1  # seed of the fold assignment

    def validate(self) -> None:
        """Refuse out-of-range values (InputError naming the option)."""
        if self.block_size < 1:
            raise InputError(f"must be at least 1, got {self.block_size}", "--block-size")
        if self.n_folds < 2:
            raise InputError(f"must be at least 2, got {self.n_folds}", "--folds")
        if self.seed < 0:
            raise InputError(f"must not be negative, got {self.seed}", "--seed")


STEP1_DEFAULTS = Step1Settings()


@dataclass
class Step1Result:
    """LOCO predictions ``loco[chrom] (n, p)`` for people ``iid`` and phenotypes ``pheno_names``."""

    iid: np.ndarray
    pheno_names: list[str]
    loco: dict[str, np.ndarray]
    level1_h2: np.ndarray  # (p,)
    cv_r2: np.ndarray  # (p,) out-of-fold R² of the whole-genome prediction
    n_blocks: int
    counts: dict[str, int] = field(default_factory=dict)


def standardized_block(genotypes: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``(n, b)`` standardized, mean-imputed genotypes residualized on the basis ``q (n, k)``;
    ``genotypes`` is int8 ``(b, n)`` of polymorphic variants."""
    g = genotypes.astype(np.float64)
    observed = genotypes != MISSING
    mean = np.where(observed, g, 0).sum(axis=1) / observed.sum(axis=1)
    g = np.where(observed, g - mean[:, None], 0.0).T
    g -= q @ (q.T @ g)
    sd = np.sqrt((g * g).mean(axis=0))
    return g / np.where(sd > 0, sd, 1.0)


def ridge_fold_predictions(x: np.ndarray, y: np.ndarray, folds: np.ndarray, lambdas: Sequence[float]) -> np.ndarray:
    """Out-of-fold ridge predictions ``(len(lambdas), n, p)`` of ``y (n, p)`` from ``x (n, b)``:
    rows of fold f are predicted by the fit on the other folds (no intercept: all centred)."""
    xtx, xty = x.T @ x, x.T @ y
    out = np.empty((len(lambdas), *y.shape))
    for f in np.unique(folds):
        rows = folds == f
        xf = x[rows]
        values, vectors = np.linalg.eigh(xtx - xf.T @ xf)
        rotated = vectors.T @ (xty - xf.T @ y[rows])  # (b, p)
        xv = xf @ vectors
        for r, lam in enumerate(lambdas):
            out[r, rows] = xv @ (rotated / (np.maximum(values, 0) + lam)[:, None])
    return out


def run_step1(bfile: str | Path | Sequence[str | Path] | Genotypes, pheno: str | Path, covar: str | Path,
              block_size: int = STEP1_DEFAULTS.block_size, n_folds: int = STEP1_DEFAULTS.n_folds,
              h2_grid: Sequence[float] = H2_GRID, seed: int = STEP1_DEFAULTS.seed,
              pheno_cols: Sequence[str] | None = None,
              covar_cols: Sequence[str] | None = None,
              missing_phenotype: float | None = MISSING_PHENOTYPE) -> Step1Result:
    """Level-0 and level-1 ridge regressions and LOCO predictions (see the module docstring)."""
    Step1Settings(block_size, n_folds, seed).validate()
    genotypes = bfile if isinstance(bfile, Genotypes) else Genotypes.open(bfile)
    data = load_association_data(genotypes, pheno, covar, None, pheno_cols, covar_cols,
                                 missing_phenotype)
    n, p = data.phenotypes.shape
    if n < 2 * n_folds:
        raise InputError(f"{n} people are too few for {n_folds}-fold cross-validation", pheno)
    q = covariate_basis(data.covariates, data.covar_names, covar)
    y = data.phenotypes - q @ (q.T @ data.phenotypes)
    scale = np.sqrt((y * y).sum(axis=0) / (n - q.shape[1]))
    if np.any(scale == 0):
        raise InputError("a phenotype is constant among the people used", pheno)
    y = y / scale
    folds = np.random.default_rng(seed).permutation(n) % n_folds
    chrom = genotypes.bim["CHROM"].to_numpy().astype(str)
    features, feature_chrom = [], []
    counts = {"variants": len(chrom), "monomorphic": 0}
    for name in dict.fromkeys(chrom):
        idx = np.flatnonzero(chrom == name)
        for _, block in genotypes.iter_chunks(block_size, data.sample_idx, idx):
            observed = block != MISSING
            g = np.where(observed, block, 0)
            poly = (g.max(axis=1, where=observed, initial=0) != g.min(axis=1, where=observed, initial=2))
            counts["monomorphic"] += int((~poly).sum())
            if not poly.any():
                continue
            x = standardized_block(block[poly], q)
            lambdas = [x.shape[1] * (1 - h) / h for h in h2_grid]
            features.append(ridge_fold_predictions(x, y, folds, lambdas))  # (R, n, p)
            feature_chrom.extend([name] * len(lambdas))
    if not features:
        raise InputError("no polymorphic variant among the people used", genotypes.parts[0].prefix)
    w = np.concatenate(features, axis=0)  # (F, n, p)
    feature_chrom = np.array(feature_chrom)
    loco = {name: np.empty((n, p)) for name in dict.fromkeys(chrom)}
    level1_h2, cv_r2 = np.empty(p), np.empty(p)
    for j in range(p):
        f = w[:, :, j].T  # (n, F)
        f = (f - f.mean(axis=0)) / np.where(f.std(axis=0) > 0, f.std(axis=0), 1.0)
        lambdas = [f.shape[1] * (1 - h) / h for h in h2_grid]
        coefs = _level1_fold_coefficients(f, y[:, j], folds, lambdas)  # (K, R, F)
        oof = np.empty((len(lambdas), n))
        for k in range(n_folds):
            rows = folds == k
            oof[:, rows] = coefs[k] @ f[rows].T
        errors = ((oof - y[:, j]) ** 2).sum(axis=1)
        best = int(np.argmin(errors))
        level1_h2[j] = h2_grid[best]
        cv_r2[j] = 1 - errors[best] / (y[:, j] ** 2).sum()
        for name in loco:
            other = feature_chrom != name
            for k in range(n_folds):
                rows = folds == k
                loco[name][rows, j] = f[rows][:, other] @ coefs[k, best, other] * scale[j]
    counts["blocks"] = len(features)
    return Step1Result(data.iid, data.pheno_names, loco, level1_h2, cv_r2, len(features),
                       {**data.counts, **counts})


def _level1_fold_coefficients(f: np.ndarray, y: np.ndarray, folds: np.ndarray,
                              lambdas: Sequence[float]) -> np.ndarray:
    """Ridge coefficients ``(K, R, F)`` of ``y (n,)`` on ``f (n, F)`` fitted without each fold."""
    ftf, fty = f.T @ f, f.T @ y
    out = np.empty((len(np.unique(folds)), len(lambdas), f.shape[1]))
    for k in range(out.shape[0]):
        rows = folds == k
        values, vectors = np.linalg.eigh(ftf - f[rows].T @ f[rows])
        rotated = vectors.T @ (fty - f[rows].T @ y[rows])
        for r, lam in enumerate(lambdas):
            out[k, r] = vectors @ (rotated / (np.maximum(values, 0) + lam))
    return out


def write_loco(result: Step1Result, out: str | Path) -> dict[str, Path]:
    """Write OUT.loco.tsv.gz (IID + ``<pheno>:<chrom>`` columns) and OUT.step1.tsv, atomically."""
    out = str(out)
    paths = {"loco": Path(out + ".loco.tsv.gz"), "summary": Path(out + ".step1.tsv")}
    columns = {"IID": result.iid}
    for j, pheno in enumerate(result.pheno_names):
        for chrom, values in result.loco.items():
            columns[f"{pheno}{LOCO_SEPARATOR}{chrom}"] = values[:, j]
    text = pl.DataFrame(columns).write_csv(separator="\t").encode()
    with atomic_paths(list(paths.values())) as (loco_tmp, summary_tmp):
        loco_tmp.write_bytes(gzip.compress(text, compresslevel=6, mtime=0))  # mtime 0: same bytes on reruns
        pl.DataFrame({"PHENO": result.pheno_names, "LEVEL1_H2": result.level1_h2,
                      "CV_R2": result.cv_r2, "N_BLOCKS": [result.n_blocks] * len(result.pheno_names)}
                     ).write_csv(summary_tmp, separator="\t")
    return paths
