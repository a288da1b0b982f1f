"""Downstream probes on frozen image embeddings: how much of a label an embedding makes linear.

For every label column of a label sheet (``IID`` + label columns) and every method's embeddings
parquet (``IID``, ``dim_0000`` ...), a probe is fitted on standardized embeddings of training
people and scored on a fixed test set:

- binary labels (two distinct values; the larger one, in numeric order when both are numbers, is
  the positive class): L2-penalized logistic regression, scored by AUROC;
- ordinal labels (more than two integer grades): a cumulative-link (proportional odds) logistic
  model, ``P(grade <= k | x) = σ(θ_k − x·w)``, with L2 on ``w``; the predicted grade is the most
  probable one, scored by quadratic weighted Cohen's κ; the expected grade also scores grade >
  lowest grade against the lowest (AUROC, metric ``auroc_vs_lowest``).

Both fits minimize ``Σ_i −log p(y_i | x_i) + l2/2 · ‖w‖²`` exactly with L-BFGS (intercept and
thresholds unpenalized; in a preconditioned basis, see :func:`preconditioned_basis`), which is
scikit-learn's ``LogisticRegression(C=1/l2)`` for binary labels.

People: those with a label value and embeddings from every method (so every method is scored on
the same people; who is dropped and why is counted). Per label, they are split once into probe
train / test sets (seeded, stratified by class, independent of the method); for each label
fraction ``f`` and seed ``s`` a stratified subsample of the training people — ``round(f · n_train)``
people, at least ``min_per_class`` of each class — trains the probe, which then predicts the whole
test set, and metrics are computed on those full test predictions. A fraction that cannot give
every class its minimum is recorded as skipped with the reason.

Trait decodability (simulated cohorts, whose true image traits are known): how much of each
quantitative trait (``IID`` + numeric columns, e.g. disc size, vessel density) a linear read-out
of the embeddings recovers. A GWAS of embedding phenotypes can only find the loci of traits the
embeddings encode, so this explains which planted loci a method can find. Per method and trait:
K-fold cross-validated ridge regression on the standardized embeddings (scaler fitted on the
training folds, unpenalized intercept); the folds are drawn once per person (seeded) and shared
by every method and trait. In each outer training fold the penalty is chosen from a fixed grid by
exact leave-one-out error, computed in closed form from one eigendecomposition of the training
embeddings (:func:`ridge_loo_mse`). The score is the out-of-fold R² over all people,
``1 − Σ(y − ŷ_oof)² / Σ(y − ȳ)²`` (negative when worse than predicting the mean).
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from contig.atomic import atomic_paths
from contig.errors import InputError
from contig.phenotypes import read_embeddings
from contig.tables import read_tsv

DEFAULT_FRACTIONS = (0.01, 0.1, 1.0)
PRIMARY_METRIC = {"binary": "auroc", "ordinal": "kappa_quadratic"}
CHANCE = {"auroc": 0.5, "kappa_quadratic": 0.0, "auroc_vs_lowest": 0.5}
METHOD_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
# L-BFGS stopping rules, on the preconditioned parameters (Hessian ≈ identity at the start), so an
# absolute gradient tolerance is a tolerance on the parameters.
GTOL, FTOL, MAX_ITER = 1e-8, 1e-15, 20_000
CONVERGED_GRADIENT = 1e-4  # max |gradient| accepted as converged when the line search stalls

PROBE_SCHEMA = {
    "method": pl.String, "label": pl.String, "kind": pl.String, "metric": pl.String,
    "fraction": pl.Float64, "seed": pl.Int64, "n_train": pl.Int64, "n_test": pl.Int64,
    "value": pl.Float64, "status": pl.String,
}


# ---------------------------------------------------------------------------------------------
# metrics


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks ``(n,)`` of ``values (n,)``; tied values share the average of their ranks."""
    ordered = np.sort(values)
    below = np.searchsorted(ordered, values, side="left")  # how many are smaller
    at_or_below = np.searchsorted(ordered, values, side="right")
    return (below + at_or_below + 1) / 2.0


def auroc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of ``score (n,)`` for the boolean ``positive (n,)``.

    The Mann-Whitney form: the chance that a random positive scores above a random negative, ties
    counting one half. NaN when either class is absent.
    """
    positive = np.asarray(positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    if not np.isfinite(score).all():
        raise ValueError("scores must be finite")
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    rank_sum = average_ranks(score)[positive].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def quadratic_weighted_kappa(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """Cohen's κ with quadratic weights ``(i − j)²`` between class indices ``0..n_classes−1``.

    ``κ = 1 − Σ W·O / Σ W·E`` with ``O`` the confusion counts and ``E`` their expectation under
    independent margins. NaN when ``Σ W·E = 0`` (e.g. a single class in ``truth`` and prediction).
    """
    truth = np.asarray(truth, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    observed = np.bincount(truth * n_classes + predicted, minlength=n_classes**2)
    observed = observed.reshape(n_classes, n_classes).astype(np.float64)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    grades = np.arange(n_classes)
    weights = (grades[:, None] - grades[None, :]) ** 2.0
    disagreement_expected = float((weights * expected).sum())
    if disagreement_expected == 0:
        return math.nan
    return 1.0 - float((weights * observed).sum()) / disagreement_expected


# ---------------------------------------------------------------------------------------------
# probes


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


def _minimize(objective, start: np.ndarray) -> tuple[np.ndarray, bool, str]:
    """L-BFGS on ``objective(params) -> (value, gradient)``; returns (params, converged, message)."""
    result = minimize(objective, start, jac=True, method="L-BFGS-B",
                      options={"maxiter": MAX_ITER, "maxfun": 2 * MAX_ITER, "gtol": GTOL,
                               "ftol": FTOL})
    # A line search that stalls at float precision next to the optimum is not a failure.
    converged = bool(result.success) or float(np.max(np.abs(result.jac))) < CONVERGED_GRADIENT
    return result.x, converged, str(result.message)


def preconditioned_basis(x: np.ndarray, l2: float,
                         curvature: float = 0.25) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A change of variables ``w = basis @ u`` under which the penalized fit is well conditioned.

    Embedding dimensions are strongly collinear (eigenvalues of the standardized covariance span
    ~10⁵ on the demo), so L-BFGS on ``w`` crawls. With ``x = U S Vᵀ`` (thin SVD of ``x (n, p)``) the
    objective's Hessian at ``w = 0`` is ``≈ V (curvature·S² + l2) Vᵀ``; ``basis = V (curvature·S² +
    l2)^(−1/2)`` turns it into the identity. Directions with ``S = 0`` are dropped: the data do
    not move ``w`` there and the penalty keeps it at 0 (the minimum-norm solution when l2 = 0), so
    the optimum is unchanged. Returns ``features = x @ basis (n, r)``, ``basis (p, r)`` and the
    penalty weights ``(r,)`` on ``u``: ``l2 ‖w‖² = Σ_j penalty_j u_j²``.
    """
    left, singular, right_t = np.linalg.svd(x, full_matrices=False)
    rank_tolerance = (singular[0] if singular.size else 0.0) * max(x.shape) * np.finfo(float).eps
    keep = singular > rank_tolerance
    scale = 1.0 / np.sqrt(curvature * singular[keep] ** 2 + l2)
    features = left[:, keep] * (singular[keep] * scale)
    return features, right_t[keep].T * scale, l2 * scale**2


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


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> LogisticFit:
    """L2-penalized logistic regression of ``y (n,)`` (0/1) on ``x (n, n_features)``.

    Minimizes ``Σ −log-likelihood + l2/2 ‖w‖²`` (intercept unpenalized), scikit-learn's objective
    with ``C = 1/l2``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    features, basis, penalty = preconditioned_basis(x, l2)
    rate = np.clip(y.mean(), 1e-6, 1 - 1e-6)
    start = np.zeros(features.shape[1] + 1)
    start[0] = math.log(rate / (1 - rate))
    params, converged, message = _minimize(
        lambda p: logistic_objective(p, features, y, penalty), start)
    return LogisticFit(float(params[0]), basis @ params[1:], converged, message)


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


def fit_ordinal(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float = 1.0) -> OrdinalFit:
    """Proportional-odds logistic regression of class indices ``y (n,)`` on ``x (n, n_features)``.

    Minimizes ``Σ −log-likelihood + l2/2 ‖w‖²`` (thresholds unpenalized). Every class
    ``0..n_classes−1`` should occur in ``y`` (otherwise a threshold runs off to ±∞).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    features, basis, penalty = preconditioned_basis(x, l2)
    # Start at w = 0 with thresholds at the logits of the cumulative class shares.
    counts = np.bincount(y, minlength=n_classes).astype(np.float64) + 0.5
    cumulative = np.clip(np.cumsum(counts)[:-1] / counts.sum(), 1e-6, 1 - 1e-6)
    theta = np.log(cumulative / (1 - cumulative))
    start = np.concatenate([theta[:1], np.log(np.diff(theta)), np.zeros(features.shape[1])])
    params, converged, message = _minimize(
        lambda p: ordinal_objective(p, features, y, n_classes, penalty), start)
    return OrdinalFit(ordinal_thresholds(params[:n_classes - 1]), basis @ params[n_classes - 1:],
                      converged, message)


def standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale both ``(n, p)`` matrices by the training rows' mean and SD.

    A feature constant among the training rows is only centred (its SD is taken as 1).
    """
    mean = train.mean(axis=0)
    sd = train.std(axis=0)
    sd[sd == 0] = 1.0
    return (train - mean) / sd, (test - mean) / sd


def probe_scores(kind: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 y_test: np.ndarray, n_classes: int, l2: float) -> tuple[dict[str, float], bool, str]:
    """Fit the probe of ``kind`` on standardized features; metrics on the full test predictions.

    Returns ({metric: value}, converged, optimizer message).
    """
    x_train, x_test = standardize(x_train, x_test)
    if kind == "binary":
        fit = fit_logistic(x_train, y_train, l2)
        return {"auroc": auroc(y_test == 1, fit.logits(x_test))}, fit.converged, fit.message
    fit = fit_ordinal(x_train, y_train, n_classes, l2)
    probabilities = fit.probabilities(x_test)
    predicted = np.argmax(probabilities, axis=1)
    expected_grade = probabilities @ np.arange(n_classes)
    metrics = {"kappa_quadratic": quadratic_weighted_kappa(y_test, predicted, n_classes),
               "auroc_vs_lowest": auroc(y_test > 0, expected_grade)}
    return metrics, fit.converged, fit.message


# ---------------------------------------------------------------------------------------------
# people: splits and subsamples


class SkipProbe(Exception):
    """A (label, fraction, seed) that cannot be probed; the message is the recorded reason."""


def rounded(x: float) -> int:
    """Round half up (not to even), so sizes do not depend on the parity of a count."""
    return int(math.floor(x + 0.5))


def stratified_split(y: np.ndarray, test_fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) row indices of ``y (n,)`` class indices.

    Each class with ``n_c`` people puts ``round(test_fraction · n_c)`` of them, at least one and at
    most ``n_c − 1``, into the test set. Every class needs at least two people.
    """
    train, test = [], []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n_test = min(max(rounded(test_fraction * len(members)), 1), len(members) - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def subsample_counts(class_sizes: np.ndarray, fraction: float, min_per_class: int) -> np.ndarray:
    """People to draw per class ``(K,)``: ``round(fraction · n)`` in all, at least ``min_per_class`` each.

    Classes get shares proportional to their sizes (largest remainders); a class whose share would
    fall below the minimum gets the minimum and the others share the rest, so the draw is exactly
    stratified wherever the minimum does not bind and ``fraction = 1`` takes everyone. Raises
    :class:`SkipProbe` when a class has fewer than ``min_per_class`` people or the total cannot
    give every class its minimum.
    """
    class_sizes = np.asarray(class_sizes, dtype=np.int64)
    n_classes = len(class_sizes)
    small = np.flatnonzero(class_sizes < min_per_class)
    if small.size:
        raise SkipProbe(f"class {int(small[0])} has {int(class_sizes[small[0]])} training people, "
                        f"fewer than the minimum of {min_per_class} per class")
    total = rounded(fraction * class_sizes.sum())
    if total < n_classes * min_per_class:
        raise SkipProbe(f"fraction {fraction:g} gives {total} training people, fewer than "
                        f"{n_classes} classes x {min_per_class} per class")
    at_minimum = np.zeros(n_classes, dtype=bool)
    while True:
        # Each pass keeps every share <= its class size (shares only shrink as classes get fixed).
        rest = total - min_per_class * int(at_minimum.sum())
        quota = np.where(at_minimum, 0.0,
                         rest * class_sizes / class_sizes[~at_minimum].sum())
        below = ~at_minimum & (quota < min_per_class)
        if not below.any():
            break
        at_minimum |= below
    counts = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[: rest - counts[~at_minimum].sum()]] += 1
    counts[at_minimum] = min_per_class
    return counts


def stratified_subsample(y: np.ndarray, fraction: float, min_per_class: int, n_classes: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices of a stratified subsample of ``y (n,)`` (see :func:`subsample_counts`)."""
    sizes = np.bincount(y, minlength=n_classes)
    counts = subsample_counts(sizes, fraction, min_per_class)
    chosen = [rng.choice(np.flatnonzero(y == c), size=int(k), replace=False)
              for c, k in enumerate(counts)]
    return np.sort(np.concatenate(chosen))


def label_rng(seed: int, label: str, *stream: int) -> np.random.Generator:
    """A generator for one label (and sub-stream), the same whatever other labels or methods exist."""
    return np.random.default_rng([seed, zlib.crc32(label.encode()), *stream])


# ---------------------------------------------------------------------------------------------
# inputs


@dataclass
class Label:
    """One label column: ``classes`` in order, people ``iid (n,)`` with a value, ``y (n,)`` indices."""

    name: str
    kind: str  # "binary" or "ordinal"
    classes: list[str]
    iid: np.ndarray
    y: np.ndarray
    n_missing: int


def check_iids(sheet: pl.DataFrame, path: Path) -> None:
    """Raise InputError on an empty or a duplicate IID (naming its row)."""
    if sheet["IID"].is_null().any():
        raise InputError("empty IID", path, int(sheet["IID"].is_null().arg_true()[0]) + 2, "IID")
    duplicated = sheet["IID"].is_duplicated()
    if duplicated.any():
        row = int(duplicated.arg_true()[1])
        raise InputError(f"duplicate IID {sheet['IID'][row]!r}", path, row + 2, "IID")


def _number_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read_labels(path: str | Path,
                columns: Sequence[str] | None = None) -> tuple[np.ndarray, list[Label]]:
    """IIDs ``(n_rows,)`` of a label sheet and its label columns (all when ``columns`` is None).

    Two distinct values make a binary label; more must be integer grades (ordinal). A column with
    fewer than two classes, a non-integer grade, a missing or duplicate IID raise InputError.
    Empty cells and ``NA`` are missing values; those people are left out of that label only.
    """
    path = Path(path)
    sheet = read_tsv(path, required=["IID", *(columns or [])])
    if columns is None:
        columns = [c for c in sheet.columns if c != "IID"]
    if not columns:
        raise InputError("no label columns besides IID", path)
    check_iids(sheet, path)
    labels = []
    for name in dict.fromkeys(columns):
        values = sheet[name]
        present = values.is_not_null()
        distinct = values.drop_nulls().unique().to_list()
        if len(distinct) < 2:
            found = f"only the value {distinct[0]!r}" if distinct else "no values"
            raise InputError(f"label has {found}; a probe needs at least two classes", path, None, name)
        if len(distinct) == 2:
            numbers = [_number_or_none(v) for v in distinct]
            key = (lambda v: float(v)) if None not in numbers else (lambda v: v)
            classes = sorted(distinct, key=key)
            y = (values.filter(present) == classes[1]).cast(pl.Int64).to_numpy()
            kind = "binary"
        else:
            grades = values.cast(pl.Int64, strict=False)
            bad = grades.is_null() & present
            if bad.any():
                row = int(bad.arg_true()[0])
                raise InputError(f"value {values[row]!r} is not an integer grade (a label with more "
                                 f"than two values is ordinal: integer grades)", path, row + 2, name)
            grade_values = sorted(grades.drop_nulls().unique().to_list())
            classes = [str(g) for g in grade_values]
            y = np.searchsorted(np.array(grade_values), grades.filter(present).to_numpy())
            kind = "ordinal"
        labels.append(Label(name, kind, classes, sheet["IID"].filter(present).to_numpy().astype(str),
                            y.astype(np.int64), int((~present).sum())))
    return sheet["IID"].to_numpy().astype(str), labels


def parse_embedding_specs(specs: Sequence[str]) -> dict[str, Path]:
    """``METHOD=PARQUET`` strings (or a bare ``PARQUET``, named by its stem) -> {method: path}."""
    methods: dict[str, Path] = {}
    for spec in specs:
        method, sep, path = spec.partition("=")
        if not sep:
            method, path = Path(spec).stem, spec
        if not METHOD_NAME.match(method) or not path:
            raise InputError(f"--embeddings {spec!r}: expected METHOD=PARQUET with a method name of "
                             f"letters, digits, '_', '.', '+' or '-'")
        if method in methods:
            raise InputError(f"--embeddings: method {method!r} is given twice")
        methods[method] = Path(path)
    if not methods:
        raise InputError("--embeddings: no embeddings given")
    return methods


# ---------------------------------------------------------------------------------------------
# the evaluation


@dataclass
class Evaluation:
    """Per-probe results (``probes``, schema PROBE_SCHEMA) and the people counts behind them."""

    probes: pl.DataFrame
    kinds: dict[str, str]  # label -> kind
    methods: list[str]
    people: dict[str, dict[str, int]] = field(default_factory=dict)  # method -> counts
    labels: dict[str, dict[str, object]] = field(default_factory=dict)  # label -> counts
    n_common: int = 0


def common_people(
    embedding_iids: Mapping[str, np.ndarray], sheet_iids: np.ndarray, sheet_path: Path,
    sheet: str = "label",
) -> tuple[np.ndarray, dict[str, dict[str, int]]]:
    """Sorted IIDs with a row in the sheet and embeddings from every method, and per-method counts.

    ``sheet`` names the sheet's kind in the error raised when nobody is shared.
    """
    listed = set(sheet_iids.tolist())
    common = set(listed)
    for iid in embedding_iids.values():
        common &= set(iid.tolist())
    counts = {}
    for method, iid in embedding_iids.items():
        mine = set(iid.tolist())
        counts[method] = {
            "embeddings": len(mine),
            "without_row": len(mine - listed),
            "rows_without_embedding": len(listed - mine),
            "missing_from_another_method": len((mine & listed) - common),
        }
    if not common:
        raise InputError(f"no person has both a {sheet} row and embeddings from every method "
                         f"({', '.join(embedding_iids)})", sheet_path)
    return np.array(sorted(common)), counts


EmbeddingTable = tuple[np.ndarray, np.ndarray]  # IIDs (n,), values (n, d)


def load_embeddings(
    embeddings: Mapping[str, str | Path | EmbeddingTable],
) -> dict[str, EmbeddingTable]:
    """{method: (iid (n,), values (n, d))}: parquet paths are read, loaded tables pass through."""
    tables = {}
    for method, source in embeddings.items():
        if isinstance(source, tuple):
            tables[method] = source
        else:
            iid, values, _ = read_embeddings(source)
            tables[method] = (iid, values)
    return tables


def rows_of(iid: np.ndarray, people: np.ndarray) -> np.ndarray:
    """Row of each of ``people (m,)`` in ``iid (n,)`` (all must be present)."""
    row_of = {person: row for row, person in enumerate(iid)}
    return np.array([row_of[person] for person in people], dtype=np.int64)


def evaluate_embeddings(
    embeddings: Mapping[str, str | Path | EmbeddingTable],
    labels: str | Path,
    label_columns: Sequence[str] | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    n_seeds: int = 5,
    test_fraction: float = 0.3,
    l2: float = 1.0,
    seed: int = 0,
    min_per_class: int = 2,
) -> Evaluation:
    """Probe every method's embeddings for every label at every fraction and seed.

    ``embeddings`` maps a method name to its parquet (or its loaded table, see
    :func:`load_embeddings`). The train/test split of each label and the
    training subsample of each (fraction, seed) depend only on ``seed``, the label name and the
    people, so all methods are fitted and scored on the same people.
    """
    labels = Path(labels)
    if not 0 < test_fraction < 1:
        raise InputError(f"test fraction must be in (0, 1), got {test_fraction:g}")
    bad = [f for f in fractions if not 0 < f <= 1]
    if bad:
        raise InputError(f"label fractions must be in (0, 1], got {bad[0]:g}")
    if n_seeds < 1 or min_per_class < 1 or l2 < 0:
        raise InputError("seeds and the minimum per class must be >= 1, l2 >= 0")
    sheet_iids, label_list = read_labels(labels, label_columns)
    tables = load_embeddings(embeddings)
    common, people = common_people({m: t[0] for m, t in tables.items()}, sheet_iids, labels)
    matrices = {method: values[rows_of(iid, common)] for method, (iid, values) in tables.items()}
    common_set = set(common.tolist())

    rows: list[dict] = []
    label_counts: dict[str, dict[str, object]] = {}
    for label in label_list:
        keep = np.array([person in common_set for person in label.iid], dtype=bool)
        order = np.argsort(label.iid[keep])
        iid, y = label.iid[keep][order], label.y[keep][order]
        position = np.searchsorted(common, iid)  # rows of the method matrices
        n_classes = len(label.classes)
        present = np.bincount(y, minlength=n_classes)
        if (present < 2).any():
            c = int(np.argmin(present))
            raise InputError(f"class {label.classes[c]!r} has {int(present[c])} people with "
                             f"embeddings; each class needs at least 2 (one to train, one to test)",
                             labels, None, label.name)
        train, test = stratified_split(y, test_fraction, label_rng(seed, label.name, 0))
        label_counts[label.name] = {
            "kind": label.kind, "classes": label.classes, "missing_value": label.n_missing,
            "used": len(y), "train": len(train), "test": len(test),
            "class_sizes": present.tolist(),
        }
        metrics = ["auroc"] if label.kind == "binary" else ["kappa_quadratic", "auroc_vs_lowest"]
        # A subsample drawn before (every seed at fraction 1) gives the same fit: reuse it.
        fitted: dict[tuple[str, bytes], tuple[dict[str, float], bool, str]] = {}
        for f_index, fraction in enumerate(fractions):
            for s in range(n_seeds):
                base = {"label": label.name, "kind": label.kind, "fraction": float(fraction),
                        "seed": s, "n_test": len(test)}
                try:
                    chosen = train[stratified_subsample(
                        y[train], fraction, min_per_class, n_classes,
                        label_rng(seed, label.name, 1, f_index, s))]
                except SkipProbe as reason:
                    rows += [{**base, "method": m, "metric": metric, "n_train": 0, "value": None,
                              "status": f"skipped: {reason}"} for m in tables for metric in metrics]
                    continue
                for method, matrix in matrices.items():
                    x = matrix[position]
                    key = (method, chosen.tobytes())
                    if key not in fitted:
                        fitted[key] = probe_scores(label.kind, x[chosen], y[chosen], x[test],
                                                   y[test], n_classes, l2)
                    values, converged, message = fitted[key]
                    status = "ok" if converged else f"not converged: {message}"
                    rows += [{**base, "method": method, "metric": metric, "n_train": len(chosen),
                              "value": value, "status": status} for metric, value in values.items()]
    probes = pl.DataFrame(rows, schema=PROBE_SCHEMA).select(list(PROBE_SCHEMA))
    probes = probes.sort(
        pl.col("method").replace_strict({m: i for i, m in enumerate(tables)}, return_dtype=pl.Int64),
        pl.col("label").replace_strict({lb.name: i for i, lb in enumerate(label_list)},
                                       return_dtype=pl.Int64),
        "metric", "fraction", "seed", maintain_order=True)
    return Evaluation(probes, {lb.name: lb.kind for lb in label_list}, list(tables), people,
                      label_counts, len(common))


def summarize(probes: pl.DataFrame) -> pl.DataFrame:
    """Mean and SD (n − 1) over seeds of each (method, label, metric, fraction), ok probes only."""
    ok = pl.col("status") == "ok"
    return probes.group_by(["method", "label", "metric", "fraction"], maintain_order=True).agg(
        n_seeds=ok.sum().cast(pl.Int64),
        mean=pl.col("value").filter(ok).mean(),
        sd=pl.col("value").filter(ok).std(ddof=1),
    )


def probe_figure(summary: pl.DataFrame, kinds: Mapping[str, str]):
    """Primary metric vs label fraction: one panel per label, one line (± SD) per method.

    Returns the matplotlib figure (the caller saves and closes it).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(kinds)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        metric = PRIMARY_METRIC[kinds[name]]
        part = summary.filter((pl.col("label") == name) & (pl.col("metric") == metric))
        for method in part["method"].unique(maintain_order=True):
            line = part.filter((pl.col("method") == method) & pl.col("mean").is_not_null())
            ax.errorbar(line["fraction"].to_numpy(), line["mean"].to_numpy(),
                        yerr=line["sd"].fill_null(0).to_numpy(), marker="o", capsize=3, label=method)
        ax.axhline(CHANCE[metric], color="0.6", lw=0.8, ls="--")
        ax.set_xscale("log")
        ticks = sorted(part["fraction"].unique().to_list())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("label fraction")
        ax.set_ylabel("quadratic weighted κ" if metric == "kappa_quadratic" else "AUROC")
        ax.set_title(f"{name} ({kinds[name]})")
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# trait decodability: cross-validated ridge regression of known traits on the embeddings


DEFAULT_ALPHAS = tuple(float(a) for a in 10.0 ** np.arange(-1.0, 8.25, 0.5))  # 0.1 ... 1e8
DEFAULT_FOLDS = 5
TRAIT_SCHEMA = {"method": pl.String, "trait": pl.String, "n": pl.Int64, "r2": pl.Float64,
                "alpha_median": pl.Float64}


@dataclass
class Traits:
    """A trait sheet: IIDs ``(n_rows,)``, numeric traits ``values (n_rows, n_traits)`` (NaN = missing).

    ``ignored`` maps each left-out column to the reason (non-numeric, no values).
    """

    path: Path
    iid: np.ndarray
    names: list[str]
    values: np.ndarray
    ignored: dict[str, str] = field(default_factory=dict)


def read_traits(path: str | Path, columns: Sequence[str] | None = None) -> Traits:
    """Numeric trait columns of a sheet ``IID`` + columns (all numeric ones when ``columns`` is None).

    Without ``columns``, non-numeric columns (e.g. ``population``) and empty ones are ignored and
    reported in ``Traits.ignored``; a column named in ``columns`` must be numeric. Empty cells and
    ``NA`` are missing values. Infinite or NaN values, an empty or duplicate IID, or no numeric
    trait column at all raise InputError.
    """
    path = Path(path)
    sheet = read_tsv(path, required=["IID", *(columns or [])])
    explicit = columns is not None
    candidates = list(dict.fromkeys(columns)) if explicit else [c for c in sheet.columns if c != "IID"]
    check_iids(sheet, path)
    names, values, ignored = [], [], {}
    for name in candidates:
        raw = sheet[name]
        numbers = raw.cast(pl.Float64, strict=False)
        bad = numbers.is_null() & raw.is_not_null()
        if bad.any():
            row = int(bad.arg_true()[0])
            if explicit:
                raise InputError(f"value {raw[row]!r} is not a number", path, row + 2, name)
            ignored[name] = f"not numeric (row {row + 2}: {raw[row]!r})"
            continue
        if numbers.is_null().all():
            if explicit:
                raise InputError("trait has no values", path, None, name)
            ignored[name] = "no values"
            continue
        array = numbers.to_numpy().astype(np.float64)  # nulls become NaN
        non_finite = np.flatnonzero(np.isinf(array) | (np.isnan(array) & raw.is_not_null().to_numpy()))
        if non_finite.size:
            row = int(non_finite[0])
            raise InputError(f"value {raw[row]!r} is not a finite number", path, row + 2, name)
        names.append(name)
        values.append(array)
    if not names:
        reasons = "; ".join(f"{c}: {why}" for c, why in ignored.items()) or "none"
        raise InputError(f"no numeric trait columns besides IID (ignored columns: {reasons})", path)
    return Traits(path, sheet["IID"].to_numpy().astype(str), names, np.column_stack(values), ignored)


def assign_folds(n: int, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold index ``(n,)`` in ``0 .. n_folds − 1``: a random permutation dealt out in turn, so fold
    sizes differ by at most one."""
    folds = np.empty(n, dtype=np.int64)
    folds[rng.permutation(n)] = np.arange(n) % n_folds
    return folds


def trait_folds(n: int, n_folds: int, seed: int) -> np.ndarray:
    """The folds ``(n,)`` of the ``n`` trait people sorted by IID, for every method and trait."""
    return assign_folds(n, n_folds, np.random.default_rng([seed, zlib.crc32(b"trait folds")]))


def spectral_basis(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x (n, p) = Z Vᵀ`` with orthonormal ``V (p, r)`` and orthogonal columns of ``Z = x V (n, r)``.

    Returns ``(Z, eig, V)`` with ``eig (r,)`` the squared singular values (``Z = U S`` of the thin
    SVD). With ``n >= p`` from the eigendecomposition of the Gram matrix ``xᵀx`` (3x faster than an
    SVD here; eigenvalues rounded below 0 are set to 0), otherwise from a thin SVD.
    """
    n, p = x.shape
    if n >= p:
        eig, right = np.linalg.eigh(x.T @ x)
        return x @ right, np.clip(eig, 0.0, None), right
    left, singular, right_t = np.linalg.svd(x, full_matrices=False)
    return left * singular, singular**2, right_t.T


def ridge_loo_mse(z: np.ndarray, eig: np.ndarray, y_centered: np.ndarray,
                  alphas: np.ndarray) -> np.ndarray:
    """Exact leave-one-out mean squared error ``(n_alphas, n_targets)`` of ridge regression.

    The model is ``y = b + x·w`` with ``‖w‖²`` penalized by ``alpha`` and the intercept ``b`` not,
    fitted to column-centred features ``x (n, p)`` given by :func:`spectral_basis` (``z (n, r)``,
    ``eig (r,)``); ``y_centered (n, n_targets)`` are the targets minus their mean. The hat matrix
    is ``H = 11ᵀ/n + Z diag(1/(eig + alpha)) Zᵀ`` (a penalized least-squares fit with a fixed
    penalty), so the leave-one-out residual is ``e_i / (1 − H_ii)`` with ``e`` the full-data
    residual: no refits.
    """
    n = z.shape[0]
    inverse = 1.0 / (eig[:, None] + alphas[None, :])  # (r, A)
    leverage = 1.0 / n + (z**2) @ inverse  # (n, A)
    projected = z.T @ y_centered  # (r, t)
    n_alphas, n_targets = len(alphas), y_centered.shape[1]
    fitted = z @ (inverse[:, :, None] * projected[:, None, :]).reshape(len(eig), -1)
    residual = y_centered[:, None, :] - fitted.reshape(n, n_alphas, n_targets)
    return np.mean((residual / (1.0 - leverage)[:, :, None]) ** 2, axis=0)


def select_alpha(mse: np.ndarray) -> np.ndarray:
    """Index ``(n_targets,)`` of the smallest error in each column of ``mse (n_alphas, n_targets)``
    (alphas ascending); ties go to the larger alpha, the simpler fit."""
    reversed_best = np.argmin(mse[::-1], axis=0)
    return mse.shape[0] - 1 - reversed_best


def ridge_fold_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                       alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit ridge on one training fold, penalty per target by leave-one-out; predict the test fold.

    ``x_train (n_train, p)`` and ``x_test (n_test, p)`` are standardized by the training rows here;
    ``y_train (n_train, n_targets)``. Returns predictions ``(n_test, n_targets)`` and the chosen
    alpha indices ``(n_targets,)``. One decomposition serves every alpha and target.
    """
    x_train, x_test = standardize(x_train, x_test)
    y_mean = y_train.mean(axis=0)
    y_centered = y_train - y_mean
    z, eig, right = spectral_basis(x_train)
    chosen = select_alpha(ridge_loo_mse(z, eig, y_centered, alphas))
    # w = V diag(1/(eig + alpha)) Zᵀ y, one alpha per target
    coef = right @ ((z.T @ y_centered) / (eig[:, None] + alphas[chosen][None, :]))  # (p, t)
    return y_mean + x_test @ coef, chosen


def ridge_cv_predict(x: np.ndarray, y: np.ndarray, folds: np.ndarray,
                     alphas: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold ridge predictions ``(n, n_targets)`` of ``y (n,)`` or ``(n, n_targets)`` from
    ``x (n, p)``, and the alpha chosen in each fold ``(n_fold_ids, n_targets)``.

    Each fold id in ``folds (n,)`` is predicted by a fit on all other rows (see
    :func:`ridge_fold_predict`); with a single alpha this is scikit-learn's
    ``cross_val_predict(make_pipeline(StandardScaler(), Ridge(alpha)), x, y, cv=folds)``.
    """
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1 or alphas.size == 0 or not (alphas > 0).all() or (np.diff(alphas) <= 0).any():
        raise ValueError("alphas must be positive and strictly increasing")
    targets = y.reshape(len(y), -1).astype(np.float64)
    predicted = np.empty_like(targets)
    fold_ids = np.unique(folds)
    chosen = np.empty((len(fold_ids), targets.shape[1]))
    for k, fold in enumerate(fold_ids):
        test = folds == fold
        predicted[test], index = ridge_fold_predict(x[~test], targets[~test], x[test], alphas)
        chosen[k] = alphas[index]
    return predicted, chosen


def out_of_fold_r2(y: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """``1 − Σ(y − predicted)² / Σ(y − ȳ)²`` per column of ``(n, n_targets)`` arrays (NaN if y is
    constant)."""
    residual = ((y - predicted) ** 2).sum(axis=0)
    total = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, 1.0 - residual / np.where(total > 0, total, 1.0), np.nan)


@dataclass
class TraitDecoding:
    """Out-of-fold R² per method and trait (``table``, schema TRAIT_SCHEMA) and what lies behind it.

    ``edges`` lists (method, trait, "smallest" | "largest", folds) where the chosen alpha sat at an
    end of the grid; ``missing`` counts shared people without a value, per trait.
    """

    table: pl.DataFrame
    methods: list[str]
    traits: list[str]
    people: dict[str, dict[str, int]]
    n_common: int
    missing: dict[str, int]
    ignored: dict[str, str]
    n_folds: int
    alphas: tuple[float, ...]
    edges: list[tuple[str, str, str, int]] = field(default_factory=list)


def decode_traits(
    embeddings: Mapping[str, str | Path | EmbeddingTable],
    traits: Traits,
    n_folds: int = DEFAULT_FOLDS,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    seed: int = 0,
) -> TraitDecoding:
    """Cross-validated ridge R² of every trait from every method's embeddings.

    People: a trait row and embeddings from every method (sorted by IID; folds from
    :func:`trait_folds`), and for each trait those with a value. Traits with the same people share
    the SVDs.
    """
    alphas = tuple(sorted(float(a) for a in alphas))
    if not alphas or min(alphas) <= 0 or len(set(alphas)) != len(alphas):
        raise InputError("ridge alphas must be distinct positive numbers")
    if n_folds < 2:
        raise InputError(f"trait cross-validation needs at least 2 folds, got {n_folds}")
    tables = load_embeddings(embeddings)
    common, people = common_people({m: t[0] for m, t in tables.items()}, traits.iid, traits.path,
                                   sheet="trait")
    values = traits.values[rows_of(traits.iid, common)]  # (n_common, n_traits)
    present = ~np.isnan(values)
    for j, name in enumerate(traits.names):
        if present[:, j].sum() < 2 * n_folds:
            raise InputError(f"{int(present[:, j].sum())} people have a value and embeddings; "
                             f"{n_folds}-fold cross-validation needs at least {2 * n_folds}",
                             traits.path, None, name)
    folds = trait_folds(len(common), n_folds, seed)
    for j, name in enumerate(traits.names):
        # missing values can leave a training fold nearly empty; a fit needs two people
        sizes = np.bincount(folds[present[:, j]], minlength=n_folds)
        if (sizes.sum() - sizes).min() < 2:
            raise InputError(f"the people with a value fall almost all into one of the {n_folds} "
                             f"folds (sizes {sizes.tolist()}); too few to train on",
                             traits.path, None, name)
    groups: dict[bytes, list[int]] = {}  # traits with the same people
    for j in range(len(traits.names)):
        groups.setdefault(np.packbits(present[:, j]).tobytes(), []).append(j)
    r2, alpha_median = {}, {}
    edges = []
    for method, (iid, matrix) in tables.items():
        x = matrix[rows_of(iid, common)]
        for members in groups.values():
            rows = present[:, members[0]]
            y = values[np.ix_(rows, members)]
            predicted, chosen = ridge_cv_predict(x[rows], y, folds[rows], alphas)
            for column, j in enumerate(members):
                name = traits.names[j]
                r2[method, name] = float(out_of_fold_r2(y[:, column], predicted[:, column]))
                alpha_median[method, name] = float(np.median(chosen[:, column]))
                for side, end in (("smallest", alphas[0]), ("largest", alphas[-1])):
                    hits = int((chosen[:, column] == end).sum())
                    if hits and len(alphas) > 1:
                        edges.append((method, name, side, hits))
    rows_out = [{"method": method, "trait": name, "n": int(present[:, j].sum()),
                 "r2": r2[method, name], "alpha_median": alpha_median[method, name]}
                for method in tables for j, name in enumerate(traits.names)]
    table = pl.DataFrame(rows_out, schema=TRAIT_SCHEMA).with_columns(
        pl.col("r2").fill_nan(None))
    return TraitDecoding(table, list(tables), list(traits.names), people, len(common),
                         {name: int((~present[:, j]).sum()) for j, name in enumerate(traits.names)},
                         dict(traits.ignored), n_folds, alphas, edges)


def trait_figure(table: pl.DataFrame):
    """Heatmap of out-of-fold R², methods (rows) × traits (columns), each cell annotated.

    Colours span R² 0 to 1 (negative values take the colour of 0; the number shows the sign).
    Returns the matplotlib figure (the caller saves and closes it).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = table["method"].unique(maintain_order=True).to_list()
    names = table["trait"].unique(maintain_order=True).to_list()
    grid = np.full((len(methods), len(names)), np.nan)
    for row in table.iter_rows(named=True):
        if row["r2"] is not None:
            grid[methods.index(row["method"]), names.index(row["trait"])] = row["r2"]
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2.4, 0.55 * len(methods) + 1.8))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(np.clip(grid, 0.0, 1.0)), cmap=cmap, vmin=0.0, vmax=1.0,
                      aspect="auto")
    for i in range(len(methods)):
        for j in range(len(names)):
            value = grid[i, j]
            text = "NA" if np.isnan(value) else f"{value:.2f}"
            dark = not np.isnan(value) and value < 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize="small",
                    color="white" if dark else "black")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(methods)), methods)
    ax.set_title("trait decodability: out-of-fold ridge R²")
    fig.colorbar(image, ax=ax, label="R² (negative shown as 0)", fraction=0.05)
    fig.tight_layout()
    return fig


def write_evaluation(evaluation: Evaluation | None, out: str | Path,
                     traits: TraitDecoding | None = None) -> dict[str, Path]:
    """Write the outputs, all or none: for the probes (``evaluation``) ``OUT.probes.tsv``,
    ``OUT.summary.tsv`` and ``OUT.probes.png``; for ``traits`` ``OUT.traits.tsv`` and
    ``OUT.traits.png``. Returns {name: path} of what was written."""
    import matplotlib.pyplot as plt

    out = str(out)
    writers = {}  # name -> (path, write(tmp_path))
    figures = []
    try:
        if evaluation is not None:
            summary = summarize(evaluation.probes)
            probe_fig = probe_figure(summary, evaluation.kinds)
            figures.append(probe_fig)
            writers["probes"] = (Path(f"{out}.probes.tsv"), lambda tmp: evaluation.probes.write_csv(
                tmp, separator="\t", null_value="NA"))
            writers["summary"] = (Path(f"{out}.summary.tsv"), lambda tmp: summary.write_csv(
                tmp, separator="\t", null_value="NA"))
            writers["plot"] = (Path(f"{out}.probes.png"), lambda tmp: probe_fig.savefig(
                tmp, format="png", dpi=120))
        if traits is not None:
            trait_fig = trait_figure(traits.table)
            figures.append(trait_fig)
            writers["traits"] = (Path(f"{out}.traits.tsv"), lambda tmp: traits.table.write_csv(
                tmp, separator="\t", null_value="NA"))
            writers["traits_plot"] = (Path(f"{out}.traits.png"), lambda tmp: trait_fig.savefig(
                tmp, format="png", dpi=120))
        if not writers:
            raise ValueError("nothing to write: no probes and no trait decodability")
        with atomic_paths([path for path, _ in writers.values()]) as temporary:
            for (_, write), tmp in zip(writers.values(), temporary):
                write(tmp)
    finally:
        for fig in figures:
            plt.close(fig)
    return {name: path for name, (path, _) in writers.items()}
