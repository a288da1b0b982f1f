"""Dense reference computations for the heritability tests: Haseman-Elston regression with the
full GRM, and LD scores from the full correlation matrix."""

from __future__ import annotations

import numpy as np


def dense_standardized(genotypes: np.ndarray, alt_freq: np.ndarray) -> np.ndarray:
    """``X (n, m)``: ``(g − 2p)/sqrt(2p(1 − p))`` of int8 genotypes ``(m, n)``, missing → 0."""
    x = (genotypes.astype(float) - 2 * alt_freq[:, None]) / np.sqrt(2 * alt_freq * (1 - alt_freq))[:, None]
    x[genotypes < 0] = 0.0
    return x.T


def dense_he_regression(x: np.ndarray, covariates: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(σ_g², σ_e²) of the literal HE regression: least squares of every entry of ``y_r y_rᵀ`` on
    the entries of ``PKP`` and ``P`` (``K = XXᵀ/m``, ``P`` the projection off ``[1, covariates]``)."""
    n, m = x.shape
    design = np.column_stack([np.ones(n), covariates])
    projection = np.eye(n) - design @ np.linalg.pinv(design)
    k_p = projection @ (x @ x.T / m) @ projection
    y_r = projection @ y
    regressors = np.column_stack([k_p.ravel(), projection.ravel()])
    coef = np.linalg.lstsq(regressors, np.outer(y_r, y_r).ravel(), rcond=None)[0]
    return float(coef[0]), float(coef[1])


def dense_ld_scores(genotypes: np.ndarray, chrom: np.ndarray, pos: np.ndarray, window_bp: float) -> np.ndarray:
    """``Σ_k (r² − (1 − r²)/(n − 2))`` over same-chromosome variants within ``window_bp``, from the
    full correlation matrix of the mean-imputed genotypes ``(m, n)``."""
    g = genotypes.astype(float)
    missing = genotypes < 0
    g[missing] = np.nan
    g = np.where(missing, np.nanmean(g, axis=1, keepdims=True), g)
    n = g.shape[1]
    r = np.corrcoef(g)
    r2 = r * r - (1 - r * r) / (n - 2)
    near = (chrom[:, None] == chrom[None, :]) & (np.abs(pos[:, None] - pos[None, :]) <= window_bp)
    return np.where(near, r2, 0.0).sum(axis=1)
