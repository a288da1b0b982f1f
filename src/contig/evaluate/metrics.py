"""Probe metrics, their bootstrap replicates, and percentile intervals.

Every metric here also comes in a *resampled* form that scores many bootstrap resamples of the
same people at once: a resample is given by how many times it draws each person, a row of a
``counts (n_boot, n)`` matrix, and scoring the resampled people is scoring everyone with those
counts as weights. ``counts`` of ones is the metric itself.

Metric names (as in the probe tables): ``auroc`` (binary labels), ``kappa_quadratic`` and
``auroc_vs_lowest`` (ordinal labels).
"""

from __future__ import annotations

import math

import numpy as np

PRIMARY_METRIC = {"binary": "auroc", "ordinal": "kappa_quadratic"}
"""The metric of each label kind that the comparison table and the probe figure show."""
CHANCE = {"auroc": 0.5, "kappa_quadratic": 0.0, "auroc_vs_lowest": 0.5}
METRIC_TITLES = {"auroc": "AUROC", "kappa_quadratic": "quadratic weighted κ",
                 "auroc_vs_lowest": "AUROC vs lowest grade"}


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


def resampled_auroc(positive: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AUROC ``(n_boot,)`` of each resample ``counts (n_boot, n)`` of ``positive (n,)``, ``score (n,)``.

    ``Σ_{i pos, j neg} c_i c_j ([s_i > s_j] + ½[s_i = s_j]) / (Σ_pos c · Σ_neg c)``, from the
    positive and negative weight of each distinct score; NaN where a resample lacks a class.
    """
    positive = np.asarray(positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    if not np.isfinite(score).all():
        raise ValueError("scores must be finite")
    order = np.argsort(score, kind="stable")
    ordered = score[order]
    ties = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # first of each distinct score
    weights = np.asarray(counts, dtype=np.float64)[:, order]
    pos_weight = np.add.reduceat(weights * positive[order], ties, axis=1)  # (n_boot, n_distinct)
    neg_weight = np.add.reduceat(weights * ~positive[order], ties, axis=1)
    neg_below = np.cumsum(neg_weight, axis=1) - neg_weight
    pairs = pos_weight.sum(axis=1) * neg_weight.sum(axis=1)
    concordant = (pos_weight * (neg_below + 0.5 * neg_weight)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pairs > 0, concordant / np.where(pairs > 0, pairs, 1.0), np.nan)


def resampled_quadratic_kappa(truth: np.ndarray, predicted: np.ndarray, n_classes: int,
                              counts: np.ndarray) -> np.ndarray:
    """Quadratic weighted κ ``(n_boot,)`` of each resample ``counts (n_boot, n)`` (see
    :func:`quadratic_weighted_kappa`); NaN where it is undefined."""
    truth = np.asarray(truth, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    cells = np.eye(n_classes * n_classes)[truth * n_classes + predicted]  # (n, K²) one-hot
    observed = (np.asarray(counts, dtype=np.float64) @ cells).reshape(-1, n_classes, n_classes)
    total = observed.sum(axis=(1, 2))[:, None, None]
    expected = observed.sum(axis=2)[:, :, None] * observed.sum(axis=1)[:, None, :] / total
    grades = np.arange(n_classes)
    weights = (grades[:, None] - grades[None, :]) ** 2.0
    disagreement_expected = (weights * expected).sum(axis=(1, 2))
    disagreement_observed = (weights * observed).sum(axis=(1, 2))
    defined = disagreement_expected > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(defined, 1.0 - disagreement_observed
                        / np.where(defined, disagreement_expected, 1.0), np.nan)


def quadratic_weighted_kappa(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """Cohen's κ with quadratic weights ``(i − j)²`` between class indices ``0..n_classes−1``.

    ``κ = 1 − Σ W·O / Σ W·E`` with ``O`` the confusion counts and ``E`` their expectation under
    independent margins. NaN when ``Σ W·E = 0`` (e.g. a single class in ``truth`` and prediction).
    """
    ones = np.ones((1, len(truth)))
    return float(resampled_quadratic_kappa(truth, predicted, n_classes, ones)[0])


def stratified_bootstrap_counts(y: np.ndarray, n_boot: int,
                                rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n)`` draw counts of bootstrap resamples of ``y (n,)`` class indices.

    Each class is resampled on its own, with replacement, to its own size, so every resample has
    the class counts of ``y`` (the probe test set is split stratified by class, so these counts are
    fixed by design).
    """
    counts = np.zeros((n_boot, len(y)), dtype=np.int64)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        counts[:, members] = rng.multinomial(len(members), np.full(len(members), 1 / len(members)),
                                             size=n_boot)
    return counts


def percentile_interval(replicates: np.ndarray, level: float) -> tuple[float | None, float | None]:
    """The ``(1 − level)/2`` and ``(1 + level)/2`` quantiles of the finite bootstrap ``replicates``
    (linear interpolation); (None, None) when no replicate is finite."""
    finite = np.asarray(replicates, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None, None
    lower, upper = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(lower), float(upper)
