"""LD scores from the cohort's own genotypes: ``ℓ_j = Σ_k r̃²_jk`` over the variants ``k`` on the
same chromosome within ``window_kb`` of ``j`` (``j`` itself included), with the small-sample
correction ``r̃² = r² − (1 − r²)/(n − 2)`` of LD score regression; ``r`` is the correlation of the
mean-imputed genotypes over the people.

The window is in kb because the workflow assumes no genetic map (a cM window needs one); 1 Mb is
close to ldsc's 1 cM. Variants are read chromosome by chromosome in chunks; each chunk is
correlated with itself and with the earlier variants still within the window (kept in a buffer), so
memory is ``n ×`` (variants in one window + one chunk).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_path
from contig.genotypes.plinkio import Genotypes
from contig.heritability.variants import (
    VariantSet,
    empirically_standardized,
    iter_raw_blocks,
)

log = logging.getLogger("contig.heritability")

LD_CHUNK = 512  # variants correlated at a time against the window buffer


def adjusted_r2(r: np.ndarray, n: int) -> np.ndarray:
    """Small-sample corrected ``r²`` (unbiased for the population r² under no LD)."""
    r2 = r * r
    return r2 - (1 - r2) / (n - 2)


def _chromosome_runs(chrom: np.ndarray) -> list[slice]:
    """Rows of each run of equal chromosome (variants are in genome order)."""
    breaks = np.flatnonzero(chrom[1:] != chrom[:-1]) + 1
    edges = np.concatenate([[0], breaks, [len(chrom)]])
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _add_chunk(scores: np.ndarray, x: np.ndarray, rows: np.ndarray, pos: np.ndarray,
               buffer_x: np.ndarray, buffer_rows: np.ndarray, window_bp: float, n: int) -> None:
    """Add to ``scores`` the pairs within the chunk ``x (n, m)`` and between it and the buffer."""
    within = adjusted_r2(x.T @ x / n, n)
    near = np.abs(pos[rows][:, None] - pos[rows][None, :]) <= window_bp
    scores[rows] += np.where(near, within, 0.0).sum(axis=1)
    if len(buffer_rows):
        cross = adjusted_r2(x.T @ buffer_x / n, n)
        near = pos[rows][:, None] - pos[buffer_rows][None, :] <= window_bp
        cross = np.where(near, cross, 0.0)
        scores[rows] += cross.sum(axis=1)
        scores[buffer_rows] += cross.sum(axis=0)


def ld_scores(genotypes: Genotypes, variants: VariantSet, window_kb: float) -> np.ndarray:
    """LD score ``(m,)`` of every variant of ``variants`` over all of them, everyone in the
    fileset as the reference panel."""
    bim = genotypes.bim
    chrom = bim["CHROM"].cast(str).to_numpy().astype(str)[variants.index]
    pos = bim["POS"].to_numpy().astype(np.float64)[variants.index]
    n = genotypes.n_samples
    window_bp = 1000.0 * window_kb
    scores = np.zeros(len(variants.index))
    for run in _chromosome_runs(chrom):
        buffer_x, buffer_rows = np.empty((n, 0)), np.empty(0, dtype=np.int64)
        for start in range(run.start, run.stop, LD_CHUNK):
            chunk = slice(start, min(start + LD_CHUNK, run.stop))
            x = np.vstack([empirically_standardized(raw)
                           for _, raw in iter_raw_blocks(genotypes, None, variants, chunk)]).T
            rows = np.arange(chunk.start, chunk.stop)
            _add_chunk(scores, x, rows, pos, buffer_x, buffer_rows, window_bp, n)
            keep_x = np.hstack([buffer_x, x])
            keep_rows = np.concatenate([buffer_rows, rows])
            inside = pos[keep_rows] >= pos[rows[-1]] - window_bp
            buffer_x, buffer_rows = keep_x[:, inside], keep_rows[inside]
    return scores


def ld_score_table(genotypes: Genotypes, variants: VariantSet, scores: np.ndarray) -> pl.DataFrame:
    """CHR SNP BP MAF L2 of the variants (ldsc's .l2.ldscore columns)."""
    bim = genotypes.bim[variants.index]
    freq = variants.alt_freq
    return pl.DataFrame({
        "CHR": bim["CHROM"].cast(pl.Utf8), "SNP": bim["ID"].cast(pl.Utf8),
        "BP": bim["POS"].cast(pl.Int64), "MAF": np.minimum(freq, 1 - freq), "L2": scores,
    })


def write_ld_scores(table: pl.DataFrame, path: str | Path) -> None:
    """The LD score table as parquet (atomically)."""
    with atomic_path(path) as tmp:
        table.write_parquet(tmp)
