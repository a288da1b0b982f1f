"""Dense float64 reference of GWAS step 1 (the oracle of the streaming implementation): every
level-0 prediction held at once, level 1 solved by ``np.linalg.solve`` on each fold's complement."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from contig.gwas.step1 import ridge_fold_predictions


def dense_step1_loco(genotypes: np.ndarray, chrom: np.ndarray, y: np.ndarray, covariates: np.ndarray,
                     folds: np.ndarray, block_size: int, h2_grid: Sequence[float], min_maf: float
                     ) -> dict[str, np.ndarray]:
    """LOCO predictions ``{chrom: (n, p)}`` in the units of the covariate-residualized phenotype,
    from int8 ``genotypes (m, n)`` (-9 missing), phenotypes ``y (n, p)``, ``covariates (n, c)``."""
    n = y.shape[0]
    q, _ = np.linalg.qr(np.column_stack([np.ones(n), covariates]))
    y = y - q @ (q.T @ y)
    scale = np.sqrt((y * y).sum(axis=0) / (n - q.shape[1]))
    y = y / scale
    features, feature_chrom = [], []
    for name in dict.fromkeys(chrom):
        rows = np.flatnonzero(chrom == name)
        for start in range(0, len(rows), block_size):
            x = _common_standardized(genotypes[rows[start:start + block_size]], q, min_maf)
            if x.shape[1] == 0:
                continue
            lambdas = [x.shape[1] * (1 - h) / h for h in h2_grid]
            features.append(ridge_fold_predictions(x, y, folds, lambdas))
            feature_chrom += [name] * len(lambdas)
    w = np.concatenate(features)  # (F, n, p)
    feature_chrom = np.array(feature_chrom)
    loco = {name: np.empty(y.shape) for name in dict.fromkeys(chrom)}
    for j in range(y.shape[1]):
        f = w[:, :, j].T
        f = (f - f.mean(axis=0)) / f.std(axis=0)
        coefs = _best_level1(f, y[:, j], folds, h2_grid)
        for name in loco:
            other = feature_chrom != name
            for k, coef in enumerate(coefs):
                rows = folds == k
                loco[name][rows, j] = f[rows][:, other] @ coef[other] * scale[j]
    return loco


def _common_standardized(g8: np.ndarray, q: np.ndarray, min_maf: float) -> np.ndarray:
    g = np.where(g8 < 0, np.nan, g8.astype(np.float64))
    freq = np.nanmean(g, axis=1) / 2
    keep = (np.nanmax(g, axis=1) > np.nanmin(g, axis=1)) & (np.minimum(freq, 1 - freq) >= min_maf)
    g = g[keep]
    g = np.where(np.isnan(g), 0.0, g - np.nanmean(g, axis=1, keepdims=True)).T
    g -= q @ (q.T @ g)
    return g / np.sqrt((g * g).mean(axis=0))


def _best_level1(f: np.ndarray, y: np.ndarray, folds: np.ndarray, h2_grid: Sequence[float]
                 ) -> list[np.ndarray]:
    """Per fold, the level-1 coefficients at the h² with the smallest out-of-fold error."""
    n_features = f.shape[1]
    fits = [[np.linalg.solve(f[folds != k].T @ f[folds != k]
                             + n_features * (1 - h) / h * np.eye(n_features),
                             f[folds != k].T @ y[folds != k]) for h in h2_grid]
            for k in range(int(folds.max()) + 1)]
    errors = [sum(((f[folds == k] @ fits[k][r] - y[folds == k]) ** 2).sum() for k in range(len(fits)))
              for r in range(len(h2_grid))]
    best = int(np.argmin(errors))
    return [fit[best] for fit in fits]
