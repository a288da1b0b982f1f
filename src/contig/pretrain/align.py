"""One common feature space for the K encoders of a cross-fitting: generalized Procrustes.

Shapes: ``P`` people, ``D`` features, ``K`` fold encoders.

Why: with K-fold cross-fitting every person is embedded by the encoder that did not train on
them, so the pooled table mixes K separately trained encoders. Their feature spaces are not the
same space: dimension j of one encoder means nothing in another's (training from different data
permutes, rotates and rescales features), so one PCA of the pooled rows would mix K coordinate
systems and its leading components would partly encode *which fold a person was in*.

What: every encoder embeds every person (inference only). Each fold's features are centred (its
own mean over everyone) and scaled to the folds' mean total variance (so no encoder weighs more
for having larger activations), then rotated by an orthogonal matrix onto a consensus:
generalized Procrustes analysis (GPA) alternates (1) each fold's rotation = the orthogonal
Procrustes solution onto the current consensus and (2) consensus = mean of the rotated folds,
until the summed squared distance to the consensus stops falling. The consensus is the mean of
all folds rather than fold 0's space, so no fold is privileged; it starts from fold 0, which
only fixes the global orientation of the common space (one rotation of everything, invisible to
a PCA). A person's final embedding is their held-out encoder's features under that fold's map.

Why orthogonal (plus one scale per fold): it keeps distances and angles within each fold's space
— the map cannot invent structure, only re-express it — and it is the model of the usual
difference between two trainings (permuted, sign-flipped, rotated units). An unconstrained linear
map would fit noise in D² parameters.

No leakage: the maps are fitted on image features alone (:func:`generalized_procrustes` takes
nothing else); no genotype, phenotype or label enters, so aligning cannot carry genetic signal
into a held-out person's embedding.

Quality (:func:`alignment_quality`): per fold, R² = the share of the variance of the reference —
the mean of the *other* folds' aligned features (leave-one-out, so a fold is not compared with
itself) — that the fold's aligned features reproduce, over everyone and over that fold's held-out
people, and the same R² without rotation (centred and scaled only) for comparison. The rotation
has D(D − 1)/2 free parameters: with not many more people than dimensions part of the fit is
noise fitted to noise, and R² is optimistic.

Memory: the K feature matrices ``(P, D)`` twice over, in their input precision (float32 from
``contig embed``); the ``(D, D)`` cross-products and their SVDs are float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ALIGN_METHODS = ("procrustes", "none")
MAX_ITERATIONS = 100
TOLERANCE = 1e-4
"""GPA stops when the summed squared distance to the consensus falls by less than this share in
one iteration. The directions that carry signal settle within a few iterations; what keeps
falling slowly after that is the fit of the folds' noise dimensions onto each other, which no
downstream analysis wants."""


@dataclass(frozen=True)
class FoldMap:
    """One fold's map into the common space: ``x ↦ ((x − mean) · scale) @ rotation``.

    ``mean`` (D,), ``scale`` > 0, ``rotation`` (D, D) orthogonal.
    """

    mean: np.ndarray
    scale: float
    rotation: np.ndarray

    def centre_and_scale(self, features: np.ndarray) -> np.ndarray:
        """``(n, D)`` features centred and scaled, not rotated."""
        return ((features - self.mean) * self.scale).astype(features.dtype, copy=False)

    def apply(self, features: np.ndarray) -> np.ndarray:
        """``(n, D)`` features in the common space, same dtype."""
        rotation = self.rotation.astype(features.dtype, copy=False)
        return self.centre_and_scale(features) @ rotation


@dataclass(frozen=True)
class GeneralizedProcrustes:
    """The fitted maps (one per fold), GPA iterations used and whether the tolerance was met."""

    maps: list[FoldMap]
    iterations: int
    converged: bool


def orthogonal_procrustes(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The orthogonal ``R`` (D, D) minimizing ``‖source @ R − target‖_F``; both ``(n, D)``.

    Solution: ``U @ Vt`` from the SVD of ``sourceᵀ target`` (computed in float64).
    """
    if source.shape != target.shape:
        raise ValueError(f"shapes differ: {source.shape} and {target.shape}")
    cross = source.T.astype(np.float64) @ target.astype(np.float64)
    u, _, vt = np.linalg.svd(cross)
    return u @ vt


def _sum_of_squares(x: np.ndarray) -> float:
    return float(np.einsum("ij,ij->", x, x, dtype=np.float64))


def centring_and_scales(features: Sequence[np.ndarray]) -> list[FoldMap]:
    """Identity-rotation maps: each fold's mean ``(D,)`` and the scale that brings its total
    variance (sum of squares after centring) to the mean over folds (1 for a constant fold)."""
    means = [f.mean(axis=0, dtype=np.float64).astype(f.dtype) for f in features]
    totals = np.array([_sum_of_squares(f - m) for f, m in zip(features, means)])
    target = float(totals.mean())
    dim = features[0].shape[1]
    return [FoldMap(m, float(np.sqrt(target / t)) if t > 0 else 1.0, np.eye(dim))
            for m, t in zip(means, totals)]


def generalized_procrustes(features: Sequence[np.ndarray], max_iterations: int = MAX_ITERATIONS,
                           tolerance: float = TOLERANCE) -> GeneralizedProcrustes:
    """Fit one :class:`FoldMap` per fold onto the consensus of all folds (see the module text).

    ``features``: K ``(P, D)`` matrices, row p of each = the same person's image embedded by that
    fold's encoder. Image features only: nothing else can enter the fit.
    """
    if not features:
        raise ValueError("no feature matrices to align")
    shapes = {f.shape for f in features}
    if len(shapes) != 1 or len(features[0].shape) != 2:
        raise ValueError(f"every fold must embed the same people in the same dimensions: {shapes}")
    plain = centring_and_scales(features)
    centred = [m.centre_and_scale(f) for m, f in zip(plain, features)]
    # Rotations keep norms, so Σ_k ‖x_k R_k − c‖² = Σ_k ‖x_k‖² − K ‖c‖² for the mean c.
    norms = sum(_sum_of_squares(x) for x in centred)
    consensus = centred[0]
    rotations = [m.rotation for m in plain]
    previous, converged, iteration = np.inf, False, 0
    for iteration in range(1, max_iterations + 1):
        rotations = [orthogonal_procrustes(x, consensus) for x in centred]
        consensus = np.zeros_like(centred[0])
        for x, r in zip(centred, rotations):
            consensus += x @ r.astype(x.dtype)
        consensus /= len(centred)
        loss = norms - len(centred) * _sum_of_squares(consensus)
        if np.isfinite(previous) and previous - loss <= tolerance * previous:
            converged = True
            break
        previous = loss
    maps = [FoldMap(m.mean, m.scale, r) for m, r in zip(plain, rotations)]
    return GeneralizedProcrustes(maps, iteration, converged)


def pool_out_of_fold(features: Sequence[np.ndarray], maps: Sequence[FoldMap],
                     owner: np.ndarray) -> np.ndarray:
    """Each person's row from the fold that held them out, mapped: ``(P, D)``.

    ``features``: K ``(P, D)``; ``owner`` (P,) the fold index of each person.
    """
    pooled = np.empty_like(features[0])
    for k, (f, m) in enumerate(zip(features, maps)):
        mine = np.flatnonzero(owner == k)
        pooled[mine] = m.apply(f[mine])
    return pooled


def _r2(fitted: np.ndarray, reference: np.ndarray) -> float:
    """1 − SS(fitted − reference) / SS(reference − its column means); NaN under 2 rows."""
    if len(reference) < 2:
        return float("nan")
    total = _sum_of_squares(reference - reference.mean(axis=0))
    return 1.0 - _sum_of_squares(fitted - reference) / total if total > 0 else float("nan")


@dataclass(frozen=True)
class AlignmentQuality:
    """Per fold ``(K,)``: R² against the leave-one-out reference over everyone, over the fold's
    held-out people, and over everyone without the rotation (centred and scaled only)."""

    r2_all: np.ndarray
    r2_heldout: np.ndarray
    r2_unaligned_all: np.ndarray


def alignment_quality(features: Sequence[np.ndarray], maps: Sequence[FoldMap],
                      heldout: Sequence[np.ndarray]) -> AlignmentQuality:
    """R² of each fold's map (see the module text); NaN everywhere with a single fold.

    ``features``: K ``(P, D)``; ``heldout[k]``: row indices of the people fold k held out.
    """
    k_folds = len(features)
    nan = np.full(k_folds, np.nan)
    if k_folds < 2:
        return AlignmentQuality(nan, nan.copy(), nan.copy())
    total = sum(m.apply(f) for f, m in zip(features, maps))
    total_plain = sum(m.centre_and_scale(f) for f, m in zip(features, maps))
    r2_all, r2_heldout, r2_plain = nan.copy(), nan.copy(), nan.copy()
    for k, (f, m) in enumerate(zip(features, maps)):
        aligned = m.apply(f)
        reference = (total - aligned) / (k_folds - 1)
        r2_all[k] = _r2(aligned, reference)
        rows = np.asarray(heldout[k], dtype=np.int64)
        r2_heldout[k] = _r2(aligned[rows], reference[rows])
        plain = m.centre_and_scale(f)
        r2_plain[k] = _r2(plain, (total_plain - plain) / (k_folds - 1))
    return AlignmentQuality(r2_all, r2_heldout, r2_plain)
