"""The GWAS statistics: p-values from the regularized incomplete beta, Wald χ², genomic inflation.

Every test here reduces to a tail of the F distribution, ``P(F(d1, d2) > f) = I_x(d2/2, d1/2)``
with ``x = d2/(d2 + d1·f)`` (``I`` the regularized incomplete beta): the two-sided t test is
``d1 = 1, f = t²``; the joint test of one variant against k phenotypes is ``d1 = k`` with
``x = 1 − R²``. ``−log10 p`` stays exact far beyond where p underflows a double: there ``log I_x``
comes from the incomplete beta's continued fraction.

The t test of a scan evaluates millions of p-values with one df: :class:`TTestTable` holds
``−log10 p`` as a piecewise polynomial in ``|t|`` for that df (fitted at Chebyshev nodes to
:func:`t_test_log10p`, relative error ~1e-15, the rounding of a double), evaluated in ~15 ns a
value instead of the ~150 ns of one incomplete beta; ``|t|`` beyond the table goes to
:func:`t_test_log10p`.

scipy.special is imported on first use (:func:`scipy_special`): the import takes ~0.3 s, which
``run_gwas`` hides by starting it in the background (:func:`preload_scipy_special`).
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass

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
    survival function and two-sided by construction). NaN stays NaN; |t| = inf gives +inf.

    Accurate to a few units of the last place, relative, at every |t|: where p ≥ 1/2 from
    ``1 − p = I_y(1/2, df/2)`` with ``y = t²/(df + t²)`` (log1p), where ``y ≤ 1/2`` from the
    complement ``I_y`` itself; only beyond that from ``x`` (which near 1 would round away the
    digits of a small t² at large df)."""
    shape = np.shape(t)
    t = np.abs(np.asarray(t, dtype=np.float64)).ravel()
    a = df / 2.0
    special = scipy_special()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        t2 = t * t
        y = t2 / (df + t2)  # NaN at |t| = inf, where x = 0
        x = df / (df + t2)
        one_minus_p = special.betainc(0.5, a, y)
        out = np.empty_like(t)
        near_one = one_minus_p <= 0.5
        out[near_one] = -np.log1p(-one_minus_p[near_one]) / LN10
        middle = np.flatnonzero(~near_one & (y <= 0.5))
        p = special.betaincc(0.5, a, y[middle])
        middle = middle[p >= UNDERFLOW_P]
        out[middle] = -np.log(p[p >= UNDERFLOW_P]) / LN10
    rest = ~near_one
    rest[middle] = False
    out[rest] = incomplete_beta_log10p(x[rest], a, 0.5)
    return out.reshape(shape)


# The table of :class:`TTestTable`: |t| up to 32 (p ~ 1e-224 at the most, above the tail of
# :func:`incomplete_beta_log10p`), 64 pieces per unit, degree 5 on each (96 KiB; the same
# accuracy as 16 of degree 8, with fewer passes to evaluate).
T_TABLE_LIMIT = 32
T_TABLE_PIECES_PER_UNIT = 64
T_TABLE_DEGREE = 5


@dataclass(frozen=True)
class TTestTable:
    """``−log10 p(s)`` of the two-sided t test with ``df`` degrees of freedom for ``s = |t|`` in
    ``[0, pieces/per_unit)``, as ``s · h(s)`` with ``h`` a polynomial on each piece: on piece i
    (``i ≤ s·per_unit < i + 1``), ``h = Σ_d coefficients[d, i]·z^d`` with
    ``z = 2·(s·per_unit − i) − 1`` in [−1, 1]."""

    df: float
    coefficients: np.ndarray  # (degree + 1, pieces) float64, lowest power first
    per_unit: float

    @property
    def limit(self) -> float:
        """|t| from which the table does not apply."""
        return self.coefficients.shape[1] / self.per_unit

    def log10p(self, t: np.ndarray) -> np.ndarray:
        """``−log10 p`` for ``t (...)`` as :func:`t_test_log10p` gives it: from the table below
        :attr:`limit`, from :func:`t_test_log10p` at or beyond it (inf included); NaN stays NaN.
        ~15 passes over the array, no mask: a NaN's piece is clipped into the table and its
        value stays NaN."""
        s = np.abs(t)
        u = np.minimum(s, np.nextafter(self.limit, 0.0))
        u *= self.per_unit
        with np.errstate(invalid="ignore"):  # NaN cast to an integer: clipped below
            piece = u.astype(np.intp)
        u -= piece
        u *= 2.0
        u -= 1.0  # z
        value = np.take(self.coefficients[-1], piece, mode="clip")
        for d in range(self.coefficients.shape[0] - 2, -1, -1):
            value *= u
            value += np.take(self.coefficients[d], piece, mode="clip")
        value *= s
        beyond = s >= self.limit
        if beyond.any():
            value[beyond] = t_test_log10p(s[beyond], self.df)
        return value


def t_test_table(df: float, limit: int = T_TABLE_LIMIT, per_unit: int = T_TABLE_PIECES_PER_UNIT,
                 degree: int = T_TABLE_DEGREE) -> TTestTable:
    """The :class:`TTestTable` of ``df``: ``h(s) = −log10 p(s)/s`` interpolated at the degree + 1
    Chebyshev nodes of each piece (never at s = 0, where h is a limit), converted to powers of z."""
    nodes = np.cos(np.pi * (np.arange(degree + 1) + 0.5) / (degree + 1))  # (degree + 1,) in (−1, 1)
    pieces = limit * per_unit
    s = (np.arange(pieces)[:, None] + (nodes[None, :] + 1.0) / 2.0) / per_unit  # (pieces, degree + 1)
    h = t_test_log10p(s, df) / s
    vandermonde = np.polynomial.chebyshev.chebvander(nodes, degree)  # (degree + 1, degree + 1)
    chebyshev = np.linalg.solve(vandermonde, h.T)  # (degree + 1, pieces)
    to_powers = np.zeros((degree + 1, degree + 1))  # row d: T_d in powers of z
    for d in range(degree + 1):
        powers = np.polynomial.chebyshev.cheb2poly(np.eye(degree + 1)[d])
        to_powers[d, :len(powers)] = powers
    return TTestTable(float(df), np.ascontiguousarray(to_powers.T @ chebyshev), float(per_unit))


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
    median_p = 10.0 ** -median_in_place(values)
    return float(scipy_special().chdtri(1, median_p) / CHI2_1DF_MEDIAN)


def median_in_place(values: np.ndarray) -> np.floating:
    """``np.median`` of ``values (n,)`` (n ≥ 1, no NaN): the same number in the same dtype, ~5x
    faster (one partition at the upper middle, the lower middle then being the largest value
    below it; np.median partitions at both). Reorders ``values``."""
    half = values.size // 2
    values.partition(half)
    if values.size % 2:
        return values[half]
    return np.mean(np.array([values[:half].max(), values[half]], dtype=values.dtype))
