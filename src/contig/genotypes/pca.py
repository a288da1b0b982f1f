"""Principal components of standardized genotypes, as ``plink2 --pca approx`` computes them.

Genotypes are standardized per variant the way plink2 does: x = (g - 2p) / sqrt(2p(1-p)), with p the
ALT frequency among founders and missing calls set to 0 (mean imputation). The PCs are the top
eigenvectors of the sample x sample matrix A = X^T X / M (M = number of variants), which are what
plink2 writes to .eigenvec (unit length) and whose eigenvalues it writes to .eigenval.

Method: randomized block Krylov iteration (Musco & Musco 2015) on A. Every application of A is one
streamed pass over the variants: for each chunk X_c, A Q += X_c^T (X_c Q) / M. Standardized chunks
are kept in memory while they fit in ``cache_gb`` (then later passes are matrix products only);
beyond that budget chunks are decoded again on every pass, so memory never has to grow with the
number of variants.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_path
from contig.core.errors import InputError
from contig.genotypes.plinkio import Genotypes, founder_mask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PCASettings:
    """The options of :func:`genotype_pca` (and ``contig pca``) with their defaults."""

    n_pcs: int = 10
    n_passes: int = 6  # passes over the genotypes of the block Krylov eigensolver
    oversample: int = 10  # extra columns in each Krylov block
    seed: int = 0  # seed of the random start block
    chunk_size: int = 4096  # variants per streamed chunk
    cache_gb: float = 2.0  # standardized genotypes kept in memory up to this size (else streamed)


DEFAULTS = PCASettings()


def standardization(genotypes: Genotypes, variant_idx: np.ndarray,
                    sample_idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ALT frequency among founders, mean 2p and 1/sqrt(2p(1-p)) per variant, each ``(n_variants,)``.

    The frequency is NaN for variants without founder calls; the scale is 0 for variants without
    variance (p in {0, 1} or NaN), which therefore contribute nothing.
    """
    samples = np.arange(genotypes.n_samples) if sample_idx is None else np.asarray(sample_idx)
    founders = samples[founder_mask(genotypes.fam)[samples]]
    subset = None if len(founders) == genotypes.n_samples else founders
    counts = genotypes.genotype_counts(sample_idx=subset, variant_idx=variant_idx).astype(np.float64)
    called = counts[:, 0] + counts[:, 1] + counts[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        alt_freq = (counts[:, 1] + 2 * counts[:, 2]) / (2 * called)
        variance = 2 * alt_freq * (1 - alt_freq)
        scale = np.where(variance > 0, 1.0 / np.sqrt(variance), 0.0)
    mean = np.nan_to_num(2 * alt_freq)
    return alt_freq, mean, scale


def standardize_chunk(chunk: np.ndarray, mean: np.ndarray, scale: np.ndarray,
                      out: np.ndarray | None = None) -> np.ndarray:
    """int8 ALT counts ``(v, n)`` (-9 missing) -> float32 ``(v, n)`` (g - mean) * scale, missing -> 0."""
    out = np.empty(chunk.shape, dtype=np.float32) if out is None else out
    np.copyto(out, chunk, casting="unsafe")
    out -= mean[:, None].astype(np.float32)
    out *= scale[:, None].astype(np.float32)
    np.putmask(out, chunk < 0, np.float32(0))
    return out


class GramOperator:
    """A = X^T X / M for standardized genotypes X ``(M variants, n samples)``, applied chunk by chunk."""

    def __init__(self, genotypes: Genotypes, variant_idx: np.ndarray, mean: np.ndarray,
                 scale: np.ndarray, sample_idx: np.ndarray | None = None,
                 chunk_size: int = DEFAULTS.chunk_size, cache_gb: float = DEFAULTS.cache_gb) -> None:
        self.genotypes = genotypes
        self.variant_idx = np.asarray(variant_idx)
        self.mean, self.scale = mean, scale
        self.sample_idx = sample_idx
        self.n = genotypes.n_samples if sample_idx is None else len(sample_idx)
        self.chunk_size = chunk_size
        self.cache_bytes = cache_gb * 2**30
        self.cache: list[np.ndarray] = []
        self.cache_complete = False
        self.streaming = False  # set once the standardized matrix proved larger than the budget
        self.passes = 0

    @property
    def n_variants(self) -> int:
        return len(self.variant_idx)

    def _chunks(self):
        """Yield standardized float32 chunks ``(v, n)``, from the cache where it holds them."""
        if self.cache_complete:
            yield from self.cache
            return
        cached_bytes = sum(c.nbytes for c in self.cache)
        position = 0
        for idx, chunk in self.genotypes.iter_chunks(self.chunk_size, self.sample_idx, self.variant_idx):
            sel = slice(position, position + len(idx))
            position += len(idx)
            x = standardize_chunk(chunk, self.mean[sel], self.scale[sel])
            if not self.streaming and cached_bytes + x.nbytes <= self.cache_bytes:
                self.cache.append(x)
                cached_bytes += x.nbytes
            else:
                self.streaming = True
                self.cache.clear()
            yield x
        self.cache_complete = not self.streaming

    def matmat(self, Q: np.ndarray) -> np.ndarray:
        """A @ Q for Q ``(n, l)``: one pass over the variants. Returns ``(n, l)`` float64."""
        Q32 = np.ascontiguousarray(Q, dtype=np.float32)
        out = np.zeros((self.n, Q.shape[1]), dtype=np.float64)
        for x in self._chunks():
            out += (x.T @ (x @ Q32)).astype(np.float64)
        self.passes += 1
        return out / self.n_variants


@dataclass
class PCAResult:
    """Top principal components: ``eigenvectors`` (n_samples, k) unit columns, ``eigenvalues`` (k,)."""

    eigenvectors: np.ndarray
    eigenvalues: np.ndarray
    n_variants: int
    n_passes: int


def _orthonormalize(block: np.ndarray, basis: list[np.ndarray]) -> np.ndarray:
    """Orthonormalize ``block`` against the blocks in ``basis`` and itself (two rounds of Gram-Schmidt)."""
    for _ in range(2):
        for previous in basis:
            block = block - previous @ (previous.T @ block)
        block, _ = np.linalg.qr(block)
    return block


def block_krylov_eigh(operator: GramOperator, k: int, n_passes: int = DEFAULTS.n_passes,
                      oversample: int = DEFAULTS.oversample,
                      seed: int = DEFAULTS.seed) -> tuple[np.ndarray, np.ndarray]:
    """Top-k eigenpairs of the symmetric PSD operator by randomized block Krylov iteration.

    Builds K = [Q0, Q1, ...] with Q_{i+1} = orth(A Q_i) (one pass each) and solves the projected
    problem K^T A K exactly (Rayleigh-Ritz); A K is known from the passes, so no extra pass is needed.
    Returns (eigenvalues ``(k,)`` descending, eigenvectors ``(n, k)``) with a deterministic sign
    (largest-magnitude entry positive).
    """
    rng = np.random.default_rng(seed)
    n = operator.n
    block_size = min(k + oversample, n)
    basis: list[np.ndarray] = []
    images: list[np.ndarray] = []
    block = _orthonormalize(rng.standard_normal((n, block_size)), [])
    for _ in range(n_passes):
        basis.append(block)
        image = operator.matmat(block)
        images.append(image)
        if sum(b.shape[1] for b in basis) + block_size > n:
            break
        block = _orthonormalize(image, basis)
    K = np.hstack(basis)
    AK = np.hstack(images)
    T = K.T @ AK
    values, vectors = np.linalg.eigh((T + T.T) / 2)
    order = np.argsort(values)[::-1][:k]
    values, vectors = values[order], K @ vectors[:, order]
    vectors /= np.linalg.norm(vectors, axis=0)
    signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(vectors.shape[1])])
    return values, vectors * signs


def genotype_pca(genotypes: Genotypes, n_pcs: int = DEFAULTS.n_pcs,
                 variant_idx: np.ndarray | None = None, n_passes: int = DEFAULTS.n_passes,
                 oversample: int = DEFAULTS.oversample,
                 seed: int = DEFAULTS.seed, chunk_size: int = DEFAULTS.chunk_size,
                 cache_gb: float = DEFAULTS.cache_gb) -> PCAResult:
    """PCA of all samples on ``variant_idx`` (default all variants); variants without variance among
    founders are left out (logged)."""
    variant_idx = np.arange(genotypes.n_variants) if variant_idx is None else np.asarray(variant_idx)
    _, mean, scale = standardization(genotypes, variant_idx)
    informative = scale > 0
    if not informative.all():
        log.info("PCA: %d variants without variance among founders left out", int((~informative).sum()))
    variant_idx, mean, scale = variant_idx[informative], mean[informative], scale[informative]
    if len(variant_idx) < 2:
        raise InputError("PCA needs at least 2 variants with variance", genotypes.parts[0].prefix)
    if n_pcs >= genotypes.n_samples:
        raise InputError(f"--n-pcs {n_pcs} must be below the number of samples ({genotypes.n_samples})")
    operator = GramOperator(genotypes, variant_idx, mean, scale, chunk_size=chunk_size, cache_gb=cache_gb)
    values, vectors = block_krylov_eigh(operator, n_pcs, n_passes=n_passes, oversample=oversample,
                                        seed=seed)
    return PCAResult(vectors, values, len(variant_idx), operator.passes)


def write_eigenvec(path: str | Path, fam: pl.DataFrame, eigenvectors: np.ndarray) -> None:
    """plink2 layout: header ``#FID IID PC1 .. PCk``, tab-separated, 6 significant digits."""
    table = fam.select("FID", "IID").rename({"FID": "#FID"})
    pcs = pl.DataFrame({f"PC{i + 1}": eigenvectors[:, i] for i in range(eigenvectors.shape[1])})
    lines = ["\t".join(table.columns + pcs.columns)]
    values = np.char.mod("%.6g", eigenvectors)
    for (fid, iid), row in zip(table.iter_rows(), values):
        lines.append("\t".join([fid, iid, *row]))
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")


def write_eigenval(path: str | Path, eigenvalues: np.ndarray) -> None:
    """One eigenvalue per line, as plink2 writes .eigenval."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(f"{v:.6g}\n" for v in eigenvalues))


def read_color_column(spec: str, iids: pl.Series) -> tuple[str, list[str | None]]:
    """``FILE:COLUMN`` (TSV with an IID column) -> (column name, value per sample in ``iids`` order)."""
    from contig.core.tables import read_tsv

    if ":" not in spec:
        raise InputError(f"--color-by {spec!r} must be FILE:COLUMN")
    file, column = spec.rsplit(":", 1)
    table = read_tsv(file, required=["IID", column])
    lookup = dict(zip(table["IID"].to_list(), table[column].cast(pl.String).to_list()))
    return column, [lookup.get(iid) for iid in iids.to_list()]


MIN_CELL_COUNT = 5  # density plots hide cells with fewer people (disclosure control)


def plot_pcs(path: str | Path, eigenvectors: np.ndarray, eigenvalues: np.ndarray,
             color: tuple[str, list[str | None]] | None = None, density: bool = False) -> None:
    """PC1 vs PC2 (PNG): a scatter coloured by a categorical column when given, or, with
    ``density``, an aggregate-only hexagonal-bin count that hides cells with < MIN_CELL_COUNT people."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=120)
    pc2 = eigenvectors[:, 1] if eigenvectors.shape[1] > 1 else np.zeros(len(eigenvectors))
    if density:
        cells = ax.hexbin(eigenvectors[:, 0], pc2, gridsize=40, mincnt=MIN_CELL_COUNT, cmap="viridis")
        fig.colorbar(cells, ax=ax, label=f"people (cells with < {MIN_CELL_COUNT} hidden)")
    elif color is None:
        ax.scatter(eigenvectors[:, 0], pc2, s=6, alpha=0.6, linewidths=0)
    else:
        name, values = color
        labels = np.array(["NA" if v is None else v for v in values])
        for label in sorted(set(labels)):
            sel = labels == label
            ax.scatter(eigenvectors[sel, 0], pc2[sel], s=6, alpha=0.6, linewidths=0, label=label)
        ax.legend(title=name, markerscale=2, fontsize="small", frameon=False)
    ax.set_xlabel(f"PC1 (eigenvalue {eigenvalues[0]:.3g})")
    if len(eigenvalues) > 1:
        ax.set_ylabel(f"PC2 (eigenvalue {eigenvalues[1]:.3g})")
    ax.set_title("Genetic principal components")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
