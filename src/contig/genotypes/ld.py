"""LD pruning with plink's ``--indep-pairwise`` meaning (the PLINK 1.x window algorithm plink2 2.00a3.5 runs).

Per chromosome (in .bim order), a window of WINDOW variants (or WINDOW kb) slides by STEP variants
(kb windows advance by the smallest step that brings in a new variant, as plink2 does). Within each
window, pairs of variants with r^2 > R2 are pruned greedily: scanning variants in order, each one is
compared with later ones it has not been compared with yet; at the first pair over the threshold the
variant with the lower minor allele frequency is removed (the later one on ties), and the scan
repeats until a pass removes nothing. Variants without variance among founders (all calls the same
homozygote, or all heterozygous) are removed on sight; a chromosome with one variant is kept as is.

r^2 is the squared Pearson correlation of ALT counts over founders called at both variants, computed
from exact integer sums and compared as plink2 compares it (cov^2 > R2 * var1 * var2), so the kept set
equals plink2's (tested). Known differences: chrX/chrY are treated as diploid autosomes here (plink2
counts males as haploid there).

The r^2 of all pairs that can share a window is computed block-wise by a compiled kernel on bit
planes of the genotypes, with popcounts (``contig.genotypes.ld_kernels``); the greedy pass, also
compiled, then runs over the sparse list of pairs above the threshold.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contig.core.atomic import atomic_paths
from contig.core.errors import InputError
from contig.genotypes.plinkio import Genotypes, bed_bytes_per_variant, founder_mask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneWindow:
    """``--indep-pairwise`` parameters: window size in variants (or bp when ``in_bp``), step, r^2."""

    size: int
    step: int
    r2: float
    in_bp: bool = False

    @classmethod
    def parse(cls, window: str, step: str | int, r2: str | float) -> PruneWindow:
        """Parse plink-style ``WINDOW[kb] STEP R2``, e.g. ``("50", "5", "0.2")`` or ``("200kb", "1", "0.1")``."""
        match = re.fullmatch(r"(\d+(?:\.\d+)?)(kb)?", str(window).strip(), flags=re.IGNORECASE)
        if not match:
            raise ValueError(f"window {window!r} is not a number of variants or a size like 200kb")
        in_bp = match.group(2) is not None
        size = int(round(float(match.group(1)) * 1000)) if in_bp else int(float(match.group(1)))
        step_value, r2_value = int(step), float(r2)
        if not in_bp and size < 2:
            raise ValueError("window must hold at least 2 variants")
        if step_value < 1:
            raise ValueError("step must be at least 1")
        if not 0.0 <= r2_value < 1.0:
            raise ValueError(f"r2 threshold must be in [0, 1), got {r2_value}")
        return cls(size, step_value, r2_value, in_bp)


def _subcontigs(chrom: np.ndarray, pos: np.ndarray, window: PruneWindow) -> list[tuple[int, int]]:
    """Runs ``[start, stop)`` of variants pruned together: chromosomes, split at gaps wider than a kb window.

    ``chrom`` ``(n,)``: the chromosome of each variant, as names or any codes that change where the
    name changes; ``pos`` ``(n,)``: base-pair positions."""
    breaks = np.flatnonzero(chrom[1:] != chrom[:-1]) + 1
    if window.in_bp:
        gaps = np.flatnonzero(pos[1:] - window.size > pos[:-1]) + 1
        breaks = np.union1d(breaks, gaps)
    edges = np.concatenate([[0], breaks, [len(chrom)]]).astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b - a > 1]


def _band_limits(pos: np.ndarray, window: PruneWindow) -> np.ndarray:
    """For each variant i of a subcontig, one past the last j that can share a window with it: ``(n,)``."""
    n = len(pos)
    if window.in_bp:
        return np.searchsorted(pos, pos + window.size, side="right")
    return np.minimum(np.arange(n) + window.size, n)


def _block_rows(n_samples: int, band_width: int) -> int:
    """Variants per block of :func:`band_partners`: ~64 MB of int8 genotypes and at most ~128 MB
    of partner slots (``band_width`` per variant), 64 to 16,384."""
    rows = min(2**26 // max(n_samples, 1), 2**24 // max(band_width, 1))
    return int(np.clip(rows, 64, 16384))


def read_bit_planes(genotypes: Genotypes, variant_idx: np.ndarray,
                    sample_idx: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bit planes ``low``, ``high``, ``present`` of the variants ``variant_idx`` (increasing), each
    uint64 ``(len(variant_idx), n_words)``: straight from the .bed bytes when every sample is used,
    else from the decoded genotypes of ``sample_idx``."""
    from contig.genotypes.ld_kernels import bit_planes, packed_bit_planes

    if sample_idx is not None:
        return bit_planes(genotypes.read(variant_idx, sample_idx))
    chunks = [rows for _, rows in genotypes.iter_packed_chunks(len(variant_idx) or 1, variant_idx)]
    if len(chunks) == 1:
        rows = np.ascontiguousarray(chunks[0])
    else:  # variants of several files (or none)
        rows = np.concatenate(chunks or [np.zeros((0, bed_bytes_per_variant(genotypes.n_samples)),
                                                  dtype=np.uint8)])
    return packed_bit_planes(rows, genotypes.n_samples)


def _monomorphic(counts: np.ndarray) -> np.ndarray:
    """``(n_variants,)`` bool from counts ``(n_variants, 4)`` (hom_ref, het, hom_alt, called):
    no variance among the calls (one homozygote only, all heterozygous, or no calls)."""
    hom_ref, hom_alt, called = counts[:, 0], counts[:, 2], counts[:, 3]
    return ((hom_ref == 0) & (hom_alt == 0)) | (hom_ref == called) | (hom_alt == called)


@dataclass
class BandPartners:
    """Above-threshold pairs of one subcontig as CSR: variant i's later partners (local indices,
    increasing) are ``partners[pointer[i]:pointer[i + 1]]``; ``counts`` ``(n, 4)`` are the
    founders' hom_ref, het, hom_alt and called counts per variant."""

    pointer: np.ndarray
    partners: np.ndarray
    counts: np.ndarray


def band_partners(genotypes: Genotypes, variant_idx: np.ndarray, sample_idx: np.ndarray | None,
                  limits: np.ndarray, r2: float, block: int | None = None) -> BandPartners:
    """For each variant i (local index into ``variant_idx``), the local j > i, j < ``limits[i]``,
    with r^2(i, j) > ``r2`` over the samples called at both; variants without variance pair with
    none. Reads blocks of ``block`` variants (plus the band reaching past them) and runs the
    compiled bit-plane kernel on each."""
    from contig.genotypes.ld_kernels import band_pairs_above, plane_genotype_counts

    n_var = len(variant_idx)
    width = int((limits - np.arange(n_var)).max())
    block = block or _block_rows(genotypes.n_samples if sample_idx is None else len(sample_idx), width)
    row_counts, flat, counts = [], [], []
    for a in range(0, n_var, block):
        b = min(a + block, n_var)
        c = max(b, int(limits[a:b].max()))
        low, high, present = read_bit_planes(genotypes, variant_idx[a:c], sample_idx)
        chunk_counts = plane_genotype_counts(low, high, present)  # (c - a, 4)
        found, partners = band_pairs_above(low, high, present, b - a, (limits[a:b] - a).astype(np.int64),
                                           ~_monomorphic(chunk_counts), float(r2))
        row_counts.append(found)
        flat.append(partners[np.arange(partners.shape[1])[None, :] < found[:, None]] + a)
        counts.append(chunk_counts[: b - a])
    pointer = np.concatenate([[0], np.cumsum(np.concatenate(row_counts))]).astype(np.int64)
    return BandPartners(pointer, np.concatenate(flat).astype(np.int64), np.concatenate(counts))


def _windows(pos: np.ndarray, window: PruneWindow) -> list[tuple[int, int]]:
    """The successive windows ``[start, stop)`` plink2 processes over one subcontig."""
    n = len(pos)
    if not window.in_bp:
        out, start = [], 0
        while True:
            stop = min(start + window.size, n)
            out.append((start, stop))
            if stop == n:
                return out
            start += window.step
    # kb windows: the first covers pos[0] + size; then the start advances just enough for the end to
    # take in the next variant.
    stop = int(np.searchsorted(pos, pos[0] + window.size, side="right"))
    stop = max(stop, 1)
    out, start = [(0, stop)], 0
    while stop < n:
        min_start_bp = pos[stop] - window.size
        start += 1
        while pos[start] < min_start_bp:
            start += 1
        threshold = pos[start] + window.size
        stop += 1
        while stop < n and pos[stop] <= threshold:
            stop += 1
        out.append((start, stop))
    return out


def _major_allele_frequency(counts: np.ndarray) -> np.ndarray:
    """max(ALT, REF) frequency over calls from counts ``(n_variants, 4)``; NaN without calls."""
    with np.errstate(invalid="ignore", divide="ignore"):
        alt_freq = (counts[:, 1] + 2 * counts[:, 2]) / (2.0 * counts[:, 3])
    return np.maximum(alt_freq, 1.0 - alt_freq)


def indep_pairwise(genotypes: Genotypes, window: PruneWindow, variant_idx: np.ndarray | None = None,
                   sample_idx: np.ndarray | None = None) -> np.ndarray:
    """plink ``--indep-pairwise``: which of ``variant_idx`` (default all) to keep, bool ``(n_selected,)``.

    r^2 and allele frequencies use the founders among ``sample_idx`` (default: all samples).
    """
    # Numba is imported here, not at module level: importing it costs ~0.3 s, which commands that
    # import this module without pruning (qc, snps) should not pay.
    from contig.genotypes.ld_kernels import greedy_prune

    bim = genotypes.bim
    if variant_idx is None:
        variant_idx = np.arange(genotypes.n_variants)
    else:
        variant_idx = np.asarray(variant_idx)
        bim = bim[variant_idx]
    samples = np.arange(genotypes.n_samples) if sample_idx is None else np.asarray(sample_idx)
    founders = samples[founder_mask(genotypes.fam)[samples]]
    if len(founders) < 2:
        raise InputError("LD pruning needs at least 2 founders (PAT and MAT '0' in the .fam)")
    subset = None if len(founders) == genotypes.n_samples else founders
    chrom = bim["CHROM"].rle_id().to_numpy()  # changes where the chromosome name changes
    pos = bim["POS"].to_numpy()
    removed = np.zeros(len(variant_idx), dtype=bool)
    monomorphic = np.zeros(len(variant_idx), dtype=bool)
    for start, stop in _subcontigs(chrom, pos, window):
        local_pos = pos[start:stop]
        band = band_partners(genotypes, variant_idx[start:stop], subset, _band_limits(local_pos, window),
                             window.r2)
        monomorphic[start:stop] = _monomorphic(band.counts)
        local_removed = monomorphic[start:stop].copy()
        windows = np.asarray(_windows(local_pos, window), dtype=np.int64).reshape(-1, 2)
        greedy_prune(band.pointer, band.partners, local_removed, _major_allele_frequency(band.counts),
                     windows[:, 0].copy(), windows[:, 1].copy())
        removed[start:stop] = local_removed
    log.info("--indep-pairwise %s%s %d %g: %d of %d variants pruned (%d without variance)",
             window.size // 1000 if window.in_bp else window.size, "kb" if window.in_bp else "",
             window.step, window.r2, int(removed.sum()), len(removed),
             int((monomorphic & removed).sum()))
    return ~removed


def prune_list_paths(out: str | Path) -> tuple[Path, Path]:
    """``OUT.prune.in`` and ``OUT.prune.out`` for output prefix ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".prune.in"), out.with_name(out.name + ".prune.out")


def write_prune_lists(out: str | Path, ids: Sequence[str], keep: np.ndarray) -> tuple[Path, Path]:
    """Write the IDs kept (``OUT.prune.in``) and pruned (``OUT.prune.out``), one per line in .bim
    order, as plink2 ``--indep-pairwise`` writes them; both or neither.

    ``ids``: variant IDs ``(n_variants,)``; ``keep``: bool ``(n_variants,)`` from :func:`indep_pairwise`.
    """
    paths = prune_list_paths(out)
    keep = np.asarray(keep, dtype=bool)
    with atomic_paths(list(paths)) as (kept_tmp, pruned_tmp):
        for tmp, mask in ((kept_tmp, keep), (pruned_tmp, ~keep)):
            chosen = [ids[i] for i in np.flatnonzero(mask).tolist()]
            tmp.write_text("\n".join(chosen) + "\n" if chosen else "")
    return paths
