"""Trait decodability (simulated cohorts, whose true image traits are known): how much of each
quantitative trait (``IID`` + numeric columns, e.g. disc size, vessel density) a linear read-out of
the embeddings recovers.

A GWAS of embedding phenotypes can only find the loci of traits the embeddings encode, so this
explains which planted loci a method can find. Per method and trait: K-fold cross-validated ridge
regression on the standardized embeddings (scaler fitted on the training folds, unpenalized
intercept); the folds are drawn once per person (seeded) and shared by every method and trait. In
each outer training fold the penalty is chosen from a fixed grid by exact leave-one-out error,
computed in closed form from one eigendecomposition of the training embeddings
(:func:`ridge_loo_mse`). The score is the out-of-fold R² over all people,
``1 − Σ(y − ŷ_oof)² / Σ(y − ȳ)²`` (negative when worse than predicting the mean).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.errors import InputError
from contig.evaluate.inputs import (
    EmbeddingTable,
    Traits,
    common_people,
    load_embeddings,
    row_indices,
    shared_embeddings,
)
from contig.evaluate.linear import select_penalty, standardize


@dataclass(frozen=True)
class TraitSettings:
    """Settings of trait decodability (the defaults of ``contig probes --trait-folds
    --ridge-alphas``; ``seed`` is shared with the probes)."""

    folds: int = 5
    alphas: tuple[float, ...] = tuple(float(a) for a in 10.0 ** np.arange(-1.0, 8.25, 0.5))
    seed: int = 0

    def validate(self) -> None:
        """Raise InputError for a setting out of range."""
        if self.folds < 2:
            raise InputError(f"trait cross-validation needs at least 2 folds, got {self.folds}")
        if not self.alphas or min(self.alphas) <= 0 or len(set(self.alphas)) != len(self.alphas):
            raise InputError("ridge alphas must be distinct positive numbers")


TRAIT_SCHEMA = {"method": pl.String, "trait": pl.String, "n": pl.Int64, "r2": pl.Float64,
                "alpha_median": pl.Float64}


def balanced_random_folds(n: int, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold index ``(n,)`` in ``0 .. n_folds − 1``: a random permutation dealt out in turn, so fold
    sizes differ by at most one."""
    folds = np.empty(n, dtype=np.int64)
    folds[rng.permutation(n)] = np.arange(n) % n_folds
    return folds


def trait_folds(n: int, n_folds: int, seed: int) -> np.ndarray:
    """The folds ``(n,)`` of the ``n`` trait people sorted by IID, for every method and trait."""
    return balanced_random_folds(n, n_folds, np.random.default_rng([seed, zlib.crc32(b"trait folds")]))


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
    chosen = select_penalty(ridge_loo_mse(z, eig, y_centered, alphas))
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


def check_trait_folds(present: np.ndarray, folds: np.ndarray, traits: Traits, n_folds: int) -> None:
    """Raise InputError for a trait with too few people with a value (``present (n, n_traits)``)
    for ``n_folds``-fold cross-validation, or with every training fold nearly empty."""
    for j, name in enumerate(traits.names):
        if present[:, j].sum() < 2 * n_folds:
            raise InputError(f"{int(present[:, j].sum())} people have a value and embeddings; "
                             f"{n_folds}-fold cross-validation needs at least {2 * n_folds}",
                             traits.path, None, name)
    for j, name in enumerate(traits.names):
        sizes = np.bincount(folds[present[:, j]], minlength=n_folds)
        if (sizes.sum() - sizes).min() < 2:  # a fit needs two people
            raise InputError(f"the people with a value fall almost all into one of the {n_folds} "
                             f"folds (sizes {sizes.tolist()}); too few to train on",
                             traits.path, None, name)


def traits_by_people(present: np.ndarray) -> list[list[int]]:
    """Trait indices grouped by identical columns of ``present (n, n_traits)``: traits with the
    same people share one decomposition per fold."""
    groups: dict[bytes, list[int]] = {}
    for j in range(present.shape[1]):
        groups.setdefault(np.packbits(present[:, j]).tobytes(), []).append(j)
    return list(groups.values())


def decode_method(x: np.ndarray, values: np.ndarray, present: np.ndarray, folds: np.ndarray,
                  alphas: tuple[float, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Out-of-fold R² ``(n_traits,)`` of one method's embeddings ``x (n, d)`` for ``values (n,
    n_traits)``, and per trait the alpha chosen in each fold that has people with a value."""
    r2 = np.empty(values.shape[1])
    chosen: list[np.ndarray] = [np.empty(0)] * values.shape[1]
    for members in traits_by_people(present):
        rows = present[:, members[0]]
        y = values[np.ix_(rows, members)]
        predicted, alphas_chosen = ridge_cv_predict(x[rows], y, folds[rows], alphas)
        r2[members] = out_of_fold_r2(y, predicted)
        for column, j in enumerate(members):
            chosen[j] = alphas_chosen[:, column]
    return r2, chosen


def alpha_at_grid_ends(method: str, names: Sequence[str], chosen: Sequence[np.ndarray],
                       alphas: tuple[float, ...]) -> list[tuple[str, str, str, int]]:
    """(method, trait, "smallest" | "largest", folds) where an end of the grid was chosen."""
    if len(alphas) == 1:
        return []
    edges = []
    for name, per_fold in zip(names, chosen):
        for side, end in (("smallest", alphas[0]), ("largest", alphas[-1])):
            hits = int((per_fold == end).sum())
            if hits:
                edges.append((method, name, side, hits))
    return edges


def decode_traits(embeddings: Mapping[str, str | Path | EmbeddingTable], traits: Traits,
                  settings: TraitSettings = TraitSettings()) -> TraitDecoding:
    """Cross-validated ridge R² of every trait from every method's embeddings.

    People: a trait row and embeddings from every method (sorted by IID; folds from
    :func:`trait_folds`), and for each trait those with a value.
    """
    settings.validate()
    alphas = tuple(sorted(float(a) for a in settings.alphas))
    tables = load_embeddings(embeddings)
    common, people = common_people({m: t[0] for m, t in tables.items()}, traits.iid, traits.path,
                                   sheet="trait")
    values = traits.values[row_indices(traits.iid, common)]  # (n_common, n_traits)
    present = ~np.isnan(values)
    folds = trait_folds(len(common), settings.folds, settings.seed)
    check_trait_folds(present, folds, traits, settings.folds)
    rows, edges = [], []
    for method, x in shared_embeddings(tables, common).items():
        r2, chosen = decode_method(x, values, present, folds, alphas)
        edges += alpha_at_grid_ends(method, traits.names, chosen, alphas)
        rows += [{"method": method, "trait": name, "n": int(present[:, j].sum()), "r2": r2[j],
                  "alpha_median": float(np.median(chosen[j]))}
                 for j, name in enumerate(traits.names)]
    table = pl.DataFrame(rows, schema=TRAIT_SCHEMA).with_columns(pl.col("r2").fill_nan(None))
    return TraitDecoding(table, list(tables), list(traits.names), people, len(common),
                         {name: int((~present[:, j]).sum()) for j, name in enumerate(traits.names)},
                         dict(traits.ignored), settings.folds, alphas, edges)


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
