"""The variants behind the heritability estimates, their jackknife blocks, and standardized
genotype blocks read from the QC'd fileset.

Variants used: autosomal, polymorphic, with a minor allele frequency of at least ``maf`` among the
people used (all common variants, not an LD-pruned set: the estimators model LD, and pruning would
drop tagged signal and make the estimate depend on the pruning threshold). Jackknife blocks are
contiguous runs of equal size in genome order, as in LD score regression.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from contig.core.errors import InputError
from contig.genotypes.plinkio import Genotypes, is_autosome

log = logging.getLogger("contig.heritability")

READ_CHUNK = 2048  # variants decoded at a time


@dataclass
class VariantSet:
    """The variants used: global indices into the fileset and their ALT frequency among the
    people used (observed calls), with the jackknife block of each."""

    index: np.ndarray  # (m,) increasing global variant indices
    alt_freq: np.ndarray  # (m,)
    block: np.ndarray  # (m,) 0..n_blocks-1, non-decreasing

    @property
    def n_blocks(self) -> int:
        return int(self.block[-1]) + 1

    def block_slices(self) -> list[slice]:
        """Rows of each jackknife block."""
        edges = np.searchsorted(self.block, np.arange(self.n_blocks + 1))
        return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def contiguous_blocks(n_variants: int, n_blocks: int) -> np.ndarray:
    """Block id ``(n_variants,)`` of ``min(n_blocks, n_variants)`` contiguous, equal-sized blocks."""
    n_blocks = min(n_blocks, n_variants)
    return np.repeat(np.arange(n_blocks), [len(a) for a in np.array_split(np.arange(n_variants),
                                                                          n_blocks)])


def select_variants(genotypes: Genotypes, sample_idx: np.ndarray | None, maf: float,
                    n_blocks: int) -> VariantSet:
    """Autosomal polymorphic variants with MAF >= ``maf`` among ``sample_idx`` (None: everyone),
    cut into jackknife blocks; logs what each filter removed."""
    chrom = genotypes.bim["CHROM"].cast(str).to_numpy().astype(str)
    autosomal = is_autosome(chrom)
    counts = genotypes.genotype_counts(sample_idx, np.flatnonzero(autosomal)).astype(np.int64)
    observed = counts[:, :3].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        freq = (counts[:, 1] + 2 * counts[:, 2]) / observed
    minor = np.minimum(freq, 1 - freq)
    polymorphic = counts[:, :3].max(axis=1) < observed
    keep = polymorphic & (minor >= maf) & (minor > 0)
    log.info("variants: %d in the fileset; removed %d not autosomal, %d monomorphic among the people "
             "used, %d with MAF < %g; %d used", len(chrom), int((~autosomal).sum()),
             int((~polymorphic).sum()), int((polymorphic & ~keep).sum()), maf, int(keep.sum()))
    if keep.sum() < 2:
        raise InputError(f"fewer than 2 autosomal variants with MAF >= {maf:g}",
                         f"{genotypes.parts[0].prefix}.bim")
    index = np.flatnonzero(autosomal)[keep]
    return VariantSet(index, freq[keep], contiguous_blocks(len(index), n_blocks))


def hwe_standardized(raw: np.ndarray, alt_freq: np.ndarray) -> np.ndarray:
    """``(g − 2p) / sqrt(2p(1 − p))`` float64 ``(m, n)`` from int8 ALT counts ``raw (m, n)`` (−9
    missing → 0, i.e. mean-imputed), p the ALT frequency ``(m,)`` (GCTA's GRM scaling)."""
    x = raw.astype(np.float64)
    x -= 2 * alt_freq[:, None]
    x[raw < 0] = 0.0
    x /= np.sqrt(2 * alt_freq * (1 - alt_freq))[:, None]
    return x


def empirically_standardized(raw: np.ndarray) -> np.ndarray:
    """Mean-imputed genotypes scaled to mean 0 and variance 1 over the people, float64 ``(m, n)``
    (LD score convention: ``r = x_jᵀx_k / n``); a constant row stays 0."""
    x = raw.astype(np.float64)
    missing = raw < 0
    x[missing] = 0.0
    n_obs = np.maximum((~missing).sum(axis=1), 1)
    mean = x.sum(axis=1) / n_obs
    x -= mean[:, None]
    x[missing] = 0.0
    sd = np.sqrt(np.einsum("ij,ij->i", x, x) / x.shape[1])
    x /= np.where(sd > 0, sd, 1.0)[:, None]
    return x


def iter_raw_blocks(genotypes: Genotypes, sample_idx: np.ndarray | None, variants: VariantSet,
                    rows: slice) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(rows, raw)``: int8 ALT counts ``(len(rows), n)`` of ``variants`` rows ``rows``, in
    chunks of at most READ_CHUNK (the array is a reused buffer)."""
    start = rows.start
    for _, raw in genotypes.iter_chunks(READ_CHUNK, sample_idx, variants.index[rows]):
        yield slice(start, start + len(raw)), raw
        start += len(raw)
