"""The GWAS statistics: p-values from the regularized incomplete beta, Wald χ², genomic inflation.

Every test here reduces to a tail of the F distribution, ``P(F(d1, d2) > f) = I_x(d2/2, d1/2)``
with ``x = d2/(d2 + d1·f)`` (``I`` the regularized incomplete beta): the two-sided t test is
``d1 = 1, f = t²``; the joint test of one variant against k phenotypes is ``d1 = k`` with
``x = 1 − R²``. ``−log10 p`` stays exact far beyond where p underflows a double: there ``log I_x``
comes from the incomplete beta's continued fraction.

scipy.special is imported on first use (:func:`scipy_special`): the import takes ~0.3 s, which
``run_gwas`` hides by starting it in the background (:func:`preload_scipy_special`).
"""

from __future__ import annotations

import importlib
import threading

import numpy as np

GENOME_WIDE = 5e-8  # the default genome-wide significance threshold (config gwas.threshold)
CHI2_1DF_MEDIAN = 0.4549364231195724  # median of χ²(1) = scipy.special.chdtri(1, 0.5) (tested)
LN10 = float(np.log(10.0))
UNDERFLOW_P = 1e-290  # below this, p comes from the continued fraction of log I_x


def scipy_special():
    """The scipy.special module, imported on first use (thread-safe)."""
    return importlib.import_module("scipy.special")


def preload_scipy_special() -> None:
    """Start importing scipy.special in a background thread (a caller that needs it earlier
    waits for this import to finish)."""
    threading.Thread(target=scipy_special, name="import-scipy.special", daemon=True).start()


def log_betainc_continued_fraction(a: float, b: float, x: np.ndarray) -> np.ndarray:
    """log of the regularized incomplete beta I_x(a, b) for x < (a+1)/(a+b+2), by its continued
    fraction (modified Lentz); used where I_x underflows a double."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
    h = d.copy()
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
        c = 1.0 + aa / np.where(np.abs(c) < tiny, tiny, c)
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
        c = 1.0 + aa / np.where(np.abs(c) < tiny, tiny, c)
        delta = d * c
        h *= delta
        if np.all(np.abs(delta - 1.0) < 1e-15):
            break
    return a * np.log(x) + b * np.log1p(-x) - np.log(a) - scipy_special().betaln(a, b) + np.log(h)


def incomplete_beta_log10p(x: np.ndarray, a: float, b: float) -> np.ndarray:
    """``−log10 I_x(a, b)`` for ``x (m,)`` in [0, 1]: exact where I_x underflows; ``x = 0`` gives
    +inf, NaN stays NaN."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p = scipy_special().betainc(a, b, x)
        log_p = np.log(p)
    tail = (x > 0) & (p < UNDERFLOW_P)
    if tail.any():
        log_p[tail] = log_betainc_continued_fraction(a, b, x[tail])
    log_p[x == 0] = -np.inf
    return -log_p / LN10


def t_test_log10p(t: np.ndarray, df: float) -> np.ndarray:
    """``−log10`` of the two-sided p-value of Student's t with ``df`` degrees of freedom:
    ``p = I_x(df/2, 1/2)`` with ``x = df/(df + t²)`` (faster than the t distribution's own
    survival function and two-sided by construction). NaN stays NaN; |t| = inf gives +inf."""
    t = np.abs(np.asarray(t, dtype=np.float64))
    with np.errstate(over="ignore", invalid="ignore"):
        x = df / (df + t * t)
    return incomplete_beta_log10p(x, df / 2.0, 0.5)


def f_test_log10p(unexplained: np.ndarray, df_num: float, df_den: float) -> np.ndarray:
    """``−log10 P(F(df_num, df_den) > f)`` given ``unexplained = 1 − R² = df_den/(df_den + df_num·f)``
    (the argument of the incomplete beta, passed directly: computing it from f loses digits
    where R² is close to 1)."""
    return incomplete_beta_log10p(unexplained, df_den / 2.0, df_num / 2.0)


def wald_chisq(beta: np.ndarray, se: np.ndarray) -> np.ndarray:
    """The 1-df Wald statistic ``(β/SE)²`` (NaN where SE is NaN or 0/0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (beta / se) ** 2


def lambda_gc(log10p: np.ndarray) -> float:
    """Genomic inflation: median 1-df χ² implied by the p-values over its null median (0.4549).
    Non-finite values are left out; NaN when none is left."""
    values = log10p[np.isfinite(log10p)]
    if values.size == 0:
        return float("nan")
    median_p = 10.0 ** -np.median(values)
    return float(scipy_special().chdtri(1, median_p) / CHI2_1DF_MEDIAN)
