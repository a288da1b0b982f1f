"""Penalized linear read-outs of embeddings: logistic and proportional-odds fits, and their L2
penalty chosen by cross-validation.

- binary labels: ``P(y = 1 | x) = σ(intercept + x·w)``;
- ordinal labels (integer grades ``0..K−1``): ``P(grade <= k | x) = σ(θ_k − x·w)``.

Both fits minimize ``Σ_i −log p(y_i | x_i) + l2/2 · ‖w‖²`` exactly with L-BFGS (intercept and
thresholds unpenalized; in a preconditioned basis, see :class:`FeatureBasis`), which is
scikit-learn's ``LogisticRegression(C=1/l2)`` for binary labels.

The penalty is chosen from a grid by stratified K-fold cross-validation of the held-out negative
log-likelihood (:func:`choose_l2`): a proper score that both label kinds share, smooth in the
penalty, and smallest for a penalty that neither over- nor underfits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

# L-BFGS stopping rules, on the preconditioned parameters (Hessian ≈ identity at the start), so an
# absolute gradient tolerance is a tolerance on the parameters.
GTOL, FTOL, MAX_ITER = 1e-8, 1e-15, 20_000
# Fits that only compare penalties by held-out loss stop earlier: a parameter error of 1e-5
# moves the loss by far less than neighbouring penalties do.
SELECTION_GTOL, SELECTION_FTOL = 1e-5, 1e-10
CONVERGED_GRADIENT = 1e-4  # max |gradient| accepted as converged when the line search stalls
CURVATURE = 0.25  # the logistic log-likelihood's largest curvature, σ'(0)
SMALLEST_PROBABILITY = 1e-300  # held-out probabilities are floored here before the log


@dataclass
class LogisticFit:
    """Binary logistic probe: ``P(y = 1 | x) = σ(intercept + x·coef)``; ``coef`` is ``(n_features,)``."""

    intercept: float
    coef: np.ndarray
    converged: bool
    message: str

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Linear predictor ``(n,)`` for ``x (n, n_features)``."""
        return self.intercept + x @ self.coef

    def log_likelihoods(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``log P(y_i | x_i)`` ``(n,)`` for 0/1 ``y (n,)``."""
        return log_expit((2.0 * y - 1.0) * self.logits(x))


@dataclass
class OrdinalFit:
    """Proportional-odds probe: ``P(grade <= k | x) = σ(thresholds[k] − x·coef)``, ``k < K − 1``.

    ``thresholds`` is ``(K − 1,)`` strictly increasing, ``coef`` is ``(n_features,)``.
    """

    thresholds: np.ndarray
    coef: np.ndarray
    converged: bool
    message: str

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, K)`` for ``x (n, n_features)``."""
        eta = x @ self.coef
        cumulative = expit(self.thresholds[None, :] - eta[:, None])  # (n, K-1)
        n = len(eta)
        bounded = np.hstack([np.zeros((n, 1)), cumulative, np.ones((n, 1))])
        return np.diff(bounded, axis=1)

    def log_likelihoods(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``log P(y_i | x_i)`` ``(n,)`` for class indices ``y (n,)`` (floored, never −inf)."""
        chosen = self.probabilities(x)[np.arange(len(y)), y]
        return np.log(np.maximum(chosen, SMALLEST_PROBABILITY))


class FeatureBasis:
    """A change of variables ``w = basis @ u`` under which a penalized fit is well conditioned.

    Embedding dimensions are strongly collinear (eigenvalues of the standardized covariance span
    ~10⁵ on the demo), so L-BFGS on ``w`` crawls. With ``x = U S Vᵀ`` (thin SVD of ``x (n, p)``)
    the objective's Hessian at ``w = 0`` is ``≈ V (CURVATURE·S² + l2) Vᵀ``; ``basis = V
    (CURVATURE·S² + l2)^(−1/2)`` turns it into the identity. Directions with ``S = 0`` are
    dropped: the data do not move ``w`` there and the penalty keeps it at 0 (the minimum-norm
    solution when l2 = 0), so the optimum is unchanged. One SVD serves every penalty.
    """

    def __init__(self, x: np.ndarray):
        n, p = x.shape
        if n >= p:  # from the eigendecomposition of xᵀx: 3x faster than an SVD here
            eig, right = np.linalg.eigh(x.T @ x)
            singular = np.sqrt(np.clip(eig, 0.0, None))
        else:
            _, singular, right_t = np.linalg.svd(x, full_matrices=False)
            right = right_t.T
        # eigh's rounding error on S² is ~eps·S_max², so its S is exact to ~sqrt(eps)·S_max only
        tolerance = np.sqrt(np.finfo(float).eps) if n >= p else max(n, p) * np.finfo(float).eps
        keep = singular > (singular.max(initial=0.0) * tolerance)
        self.singular, self.right = singular[keep], right[:, keep]
        self.left = (x @ self.right) / self.singular  # U = X V / S, (n, r)

    def scale(self, l2: float) -> np.ndarray:
        """``(CURVATURE·S² + l2)^(−1/2)``, ``(r,)``."""
        return 1.0 / np.sqrt(CURVATURE * self.singular**2 + l2)

    def features(self, l2: float) -> tuple[np.ndarray, np.ndarray]:
        """``x @ basis (n, r)`` and the penalty weights ``(r,)`` on ``u``: ``l2 ‖w‖² = Σ_j
        penalty_j u_j²``."""
        scale = self.scale(l2)
        return self.left * (self.singular * scale), l2 * scale**2

    def to_coef(self, u: np.ndarray, l2: float) -> np.ndarray:
        """``w = basis @ u`` ``(p,)``."""
        return self.right @ (self.scale(l2) * u)

    def from_coef(self, coef: np.ndarray, l2: float) -> np.ndarray:
        """``u (r,)`` of the coefficients' part in the row space of ``x``."""
        return (self.right.T @ coef) / self.scale(l2)


def _minimize(objective, start: np.ndarray, precise: bool = True) -> tuple[np.ndarray, bool, str]:
    """L-BFGS on ``objective(params) -> (value, gradient)``; returns (params, converged, message).

    ``precise=False`` uses the looser stopping rules of penalty selection."""
    gtol, ftol = (GTOL, FTOL) if precise else (SELECTION_GTOL, SELECTION_FTOL)
    result = minimize(objective, start, jac=True, method="L-BFGS-B",
                      options={"maxiter": MAX_ITER, "maxfun": 2 * MAX_ITER, "gtol": gtol,
                               "ftol": ftol})
    # A line search that stalls at float precision next to the optimum is not a failure.
    converged = bool(result.success) or float(np.max(np.abs(result.jac))) < CONVERGED_GRADIENT
    return result.x, converged, str(result.message)


def logistic_objective(params: np.ndarray, x: np.ndarray, y: np.ndarray,
                       penalty: float | np.ndarray) -> tuple[float, np.ndarray]:
    """``Σ −log-likelihood + ½ Σ_j penalty_j w_j²`` and its gradient; ``params = [intercept, w (p,)]``.

    ``x`` is ``(n, p)``, ``y (n,)`` 0/1, ``penalty`` a scalar (l2) or ``(p,)``.
    """
    intercept, w = params[0], params[1:]
    z = intercept + x @ w
    sign = 2.0 * y - 1.0
    value = -log_expit(sign * z).sum() + 0.5 * (penalty * w) @ w
    residual = expit(z) - y  # d(−log-likelihood)/dz
    gradient = np.concatenate([[residual.sum()], x.T @ residual + penalty * w])
    return float(value), gradient


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, basis: FeatureBasis | None = None,
                 start: LogisticFit | None = None, precise: bool = True) -> LogisticFit:
    """L2-penalized logistic regression of ``y (n,)`` (0/1) on ``x (n, n_features)``.

    Minimizes ``Σ −log-likelihood + l2/2 ‖w‖²`` (intercept unpenalized), scikit-learn's objective
    with ``C = 1/l2``. ``basis`` (of this ``x``) saves its SVD; ``start`` is a warm start (e.g.
    the fit at a neighbouring penalty); neither changes the optimum. ``precise=False`` stops
    earlier (for penalty selection).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    basis = basis or FeatureBasis(x)
    features, penalty = basis.features(l2)
    if start is None:
        rate = np.clip(y.mean(), 1e-6, 1 - 1e-6)
        params = np.concatenate([[math.log(rate / (1 - rate))], np.zeros(features.shape[1])])
    else:
        params = np.concatenate([[start.intercept], basis.from_coef(start.coef, l2)])
    params, converged, message = _minimize(
        lambda p: logistic_objective(p, features, y, penalty), params, precise)
    return LogisticFit(float(params[0]), basis.to_coef(params[1:], l2), converged, message)


def ordinal_thresholds(params: np.ndarray) -> np.ndarray:
    """Thresholds ``(K − 1,)`` from unconstrained ``params (K − 1,)``: first, then log-gaps."""
    return np.cumsum(np.concatenate([params[:1], np.exp(params[1:])]))


def ordinal_objective(params: np.ndarray, x: np.ndarray, y: np.ndarray, n_classes: int,
                      penalty: float | np.ndarray) -> tuple[float, np.ndarray]:
    """``Σ −log-likelihood + ½ Σ_j penalty_j w_j²`` of the proportional-odds model, and its gradient.

    ``params = [threshold parameters (K − 1,), w (p,)]``; ``x`` is ``(n, p)``, ``y (n,)`` holds
    class indices 0..K−1. With ``a = θ_y − η`` and ``b = θ_{y−1} − η`` (θ_{−1} = −∞,
    θ_{K−1} = +∞) a person's probability is ``σ(a) − σ(b) = σ(a) σ(−b) (1 − e^{−(a − b)})``,
    whose log is evaluated in that form so it stays finite far in the tails.
    """
    n_cut = n_classes - 1
    theta_params, w = params[:n_cut], params[n_cut:]
    theta = ordinal_thresholds(theta_params)
    eta = x @ w
    upper_theta = np.append(theta, np.inf)[y]
    lower_theta = np.insert(theta, 0, -np.inf)[y]
    gap = upper_theta - lower_theta  # > 0, +inf for the end classes
    a = upper_theta - eta
    b = lower_theta - eta
    log_p = log_expit(a) + log_expit(-b) + np.log(-np.expm1(-gap))
    value = -log_p.sum() + 0.5 * (penalty * w) @ w
    with np.errstate(over="ignore"):  # a gap beyond ~709 (line-search trial steps) gives 0
        inverse_gap = 1.0 / np.expm1(gap)  # 0 for the end classes
    d_a = expit(-a) + inverse_gap  # d log_p / d a
    d_b = -expit(b) - inverse_gap  # d log_p / d b
    d_eta = -(d_a + d_b)
    # d/dθ_k collects d_a of people in class k and d_b of people in class k + 1.
    d_theta = (np.bincount(y, weights=d_a, minlength=n_classes)[:n_cut]
               + np.bincount(y, weights=d_b, minlength=n_classes)[1:])
    # θ = cumsum([p_0, exp(p_1), ...]): dθ_k/dp_j = exp(p_j) for j <= k (1 for j = 0).
    d_params = np.cumsum(d_theta[::-1])[::-1]
    d_params[1:] *= np.exp(theta_params[1:])
    gradient = np.concatenate([-d_params, -(x.T @ d_eta) + penalty * w])
    return float(value), gradient


def _threshold_params(thresholds: np.ndarray) -> np.ndarray:
    """Inverse of :func:`ordinal_thresholds`."""
    return np.concatenate([thresholds[:1], np.log(np.diff(thresholds))])


def fit_ordinal(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float = 1.0,
                basis: FeatureBasis | None = None, start: OrdinalFit | None = None,
                precise: bool = True) -> OrdinalFit:
    """Proportional-odds logistic regression of class indices ``y (n,)`` on ``x (n, n_features)``.

    Minimizes ``Σ −log-likelihood + l2/2 ‖w‖²`` (thresholds unpenalized). Every class
    ``0..n_classes−1`` should occur in ``y`` (otherwise a threshold runs off to ±∞). ``basis``,
    ``start`` and ``precise`` as in :func:`fit_logistic`.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    basis = basis or FeatureBasis(x)
    features, penalty = basis.features(l2)
    if start is None:
        # w = 0 with thresholds at the logits of the cumulative class shares
        counts = np.bincount(y, minlength=n_classes).astype(np.float64) + 0.5
        cumulative = np.clip(np.cumsum(counts)[:-1] / counts.sum(), 1e-6, 1 - 1e-6)
        theta = np.log(cumulative / (1 - cumulative))
        params = np.concatenate([_threshold_params(theta), np.zeros(features.shape[1])])
    else:
        params = np.concatenate([_threshold_params(start.thresholds),
                                 basis.from_coef(start.coef, l2)])
    params, converged, message = _minimize(
        lambda p: ordinal_objective(p, features, y, n_classes, penalty), params, precise)
    return OrdinalFit(ordinal_thresholds(params[:n_classes - 1]),
                      basis.to_coef(params[n_classes - 1:], l2), converged, message)


Fit = LogisticFit | OrdinalFit


def fit_probe(kind: str, x: np.ndarray, y: np.ndarray, n_classes: int, l2: float,
              basis: FeatureBasis | None = None, start: Fit | None = None,
              precise: bool = True) -> Fit:
    """The logistic (``kind`` "binary", y 0/1) or proportional-odds ("ordinal") fit."""
    if kind == "binary":
        return fit_logistic(x, y, l2, basis, start, precise)
    return fit_ordinal(x, y, n_classes, l2, basis, start, precise)


def standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale both ``(n, p)`` matrices by the training rows' mean and SD.

    A feature constant among the training rows is only centred (its SD is taken as 1).
    """
    mean = train.mean(axis=0)
    sd = train.std(axis=0)
    sd[sd == 0] = 1.0
    return (train - mean) / sd, (test - mean) / sd


def stratified_folds(y: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold index ``(n,)`` in ``0..n_folds−1`` for class indices ``y (n,)``.

    Each class in turn, shuffled, is dealt out over the folds continuing where the previous class
    stopped: fold sizes differ by at most one and a class with at least ``n_folds`` people has
    someone in every fold.
    """
    order = np.concatenate([rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)])
    folds = np.empty(len(y), dtype=np.int64)
    folds[order] = np.arange(len(y)) % n_folds
    return folds


def select_penalty(errors: np.ndarray) -> np.ndarray:
    """Index ``(n_targets,)`` of the smallest error in each column of ``errors (n_penalties,
    n_targets)`` (penalties ascending); ties go to the larger penalty, the simpler fit."""
    reversed_best = np.argmin(errors[::-1], axis=0)
    return errors.shape[0] - 1 - reversed_best


@dataclass
class PenaltyChoice:
    """The chosen ``l2``, the folds used, and the held-out negative log-likelihood per person
    ``(n_penalties,)`` of each penalty of the grid (empty when the grid has one value)."""

    l2: float
    n_folds: int
    held_out_loss: np.ndarray


def held_out_losses(kind: str, x_train: np.ndarray, y_train: np.ndarray, x_held: np.ndarray,
                    y_held: np.ndarray, n_classes: int, grid: Sequence[float]) -> np.ndarray:
    """Summed held-out ``−log p(y | x)`` ``(n_penalties,)`` of fits at each penalty of ``grid``.

    Features are standardized by the training rows; the fits run from the largest penalty down,
    each warm-started at the previous one, on one SVD, with the looser stopping rules.
    """
    x_train, x_held = standardize(x_train, x_held)
    basis = FeatureBasis(x_train)
    losses = np.empty(len(grid))
    fit = None
    for g in np.argsort(grid)[::-1]:
        fit = fit_probe(kind, x_train, y_train, n_classes, float(grid[g]), basis, fit, precise=False)
        losses[g] = -fit.log_likelihoods(x_held, y_held).sum()
    return losses


def choose_l2(kind: str, x: np.ndarray, y: np.ndarray, n_classes: int, grid: Sequence[float],
              n_folds: int, rng: np.random.Generator) -> PenaltyChoice:
    """The penalty of ``grid`` (ascending) with the smallest cross-validated held-out negative
    log-likelihood of ``y (n,)`` given ``x (n, p)``; ties go to the larger penalty.

    Folds are stratified by class (:func:`stratified_folds`); their number is ``n_folds`` or, when
    smaller, the size of the smallest class, so every training fold holds every class. A
    one-value grid is returned as is. Raises ValueError when a class has fewer than 2 people.
    """
    grid = np.asarray(grid, dtype=np.float64)
    if grid.size == 1:
        return PenaltyChoice(float(grid[0]), 0, np.zeros(0))
    smallest_class = int(np.bincount(y, minlength=n_classes).min())
    used = min(n_folds, smallest_class)
    if used < 2:
        raise ValueError(f"a class has {smallest_class} people; choosing the penalty by "
                         "cross-validation needs at least 2 per class")
    folds = stratified_folds(y, used, rng)
    losses = sum(held_out_losses(kind, x[folds != k], y[folds != k], x[folds == k],
                                 y[folds == k], n_classes, grid) for k in range(used))
    mean_loss = losses / len(y)
    return PenaltyChoice(float(grid[select_penalty(mean_loss[:, None])[0]]), used, mean_loss)
