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

The greedy pass is compiled (``contig.genotypes.ld_kernels``) and computes r^2, with popcounts on
bit planes of the genotypes, only for the pairs it asks about, as plink2 does: a variant removed
early costs no more pairs. Each subcontig streams through blocks of variants (memory bounded by
the block, not the chromosome), and subcontigs run on ``threads`` threads at once.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contig.core.atomic import atomic_paths
from contig.core.errors import InputError
from contig.core.parallel import ordered_map
from contig.genotypes.plinkio import Genotypes, founder_mask

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
        return cls(size, int(step), float(r2), in_bp)

    def __post_init__(self) -> None:
        if not self.in_bp and self.size < 2:
            raise ValueError("window must hold at least 2 variants")
        if self.step < 1:
            raise ValueError("step must be at least 1")
        if not self.in_bp and self.step > self.size:  # plink2 refuses it too: variants no window meets
            raise ValueError(f"step {self.step} is larger than the window ({self.size} variants)")
        if not 0.0 <= self.r2 < 1.0:
            raise ValueError(f"r2 threshold must be in [0, 1), got {self.r2}")


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


def _block_rows(n_samples: int, widest_window: int) -> int:
    """Variants whose bit planes one thread holds at a time: ~32 MB of planes (24 bytes per 64
    samples and variant), at least 4 windows' worth (so that re-reading the overlap of consecutive
    blocks costs little) and at least 256."""
    planes_per_variant = 24 * -(-max(n_samples, 1) // 64)
    return max(2**25 // planes_per_variant, 4 * widest_window, 256)


def read_bit_planes(genotypes: Genotypes, variant_idx: np.ndarray,
                    sample_idx: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bit planes ``low``, ``high``, ``present`` of the variants ``variant_idx`` (increasing), each
    uint64 ``(len(variant_idx), n_words)``: straight from the .bed bytes when every sample is used,
    else from the decoded genotypes of ``sample_idx``."""
    from contig.genotypes.ld_kernels import bit_planes, packed_bit_planes

    if sample_idx is not None:
        return bit_planes(genotypes.read(variant_idx, sample_idx))
    return packed_bit_planes(genotypes.packed_rows(variant_idx), genotypes.n_samples)


def _monomorphic(counts: np.ndarray) -> np.ndarray:
    """``(n_variants,)`` bool from counts ``(n_variants, 4)`` (hom_ref, het, hom_alt, called):
    no variance among the calls (one homozygote only, all heterozygous, or no calls)."""
    hom_ref, hom_alt, called = counts[:, 0], counts[:, 2], counts[:, 3]
    return ((hom_ref == 0) & (hom_alt == 0)) | (hom_ref == called) | (hom_alt == called)


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


@dataclass
class SubcontigPruning:
    """The greedy pass's outcome on one subcontig: ``removed`` and ``monomorphic`` bool ``(n,)``
    and how many r^2 it computed."""

    removed: np.ndarray
    monomorphic: np.ndarray
    r2_computed: int


def prune_subcontig(genotypes: Genotypes, variant_idx: np.ndarray, sample_idx: np.ndarray | None,
                    pos: np.ndarray, window: PruneWindow, block: int | None = None) -> SubcontigPruning:
    """plink's greedy window pass over one subcontig: variants ``variant_idx`` (increasing) at
    positions ``pos`` ``(n,)``, r^2 over ``sample_idx`` (None: all samples).

    Reads blocks of ``block`` variants (default :func:`_block_rows`, widened to hold the widest
    window) starting at the first window not yet processed, and runs every window that fits.
    """
    # Numba is imported here, not at module level: importing it costs ~0.3 s, which commands that
    # import this module without pruning (qc, snps) should not pay.
    from contig.genotypes.ld_kernels import plane_genotype_counts, prune_windows

    n = len(variant_idx)
    windows = np.asarray(_windows(pos, window), dtype=np.int64).reshape(-1, 2)
    starts, stops = windows[:, 0].copy(), windows[:, 1].copy()
    widest = int((stops - starts).max())
    n_used = genotypes.n_samples if sample_idx is None else len(sample_idx)
    block = max(block or _block_rows(n_used, widest), widest)
    removed = np.zeros(n, dtype=bool)
    monomorphic = np.zeros(n, dtype=bool)
    maj_freq = np.empty(n)
    first_unchecked = np.arange(1, n + 1, dtype=np.int64)
    computed, k, counted_to = 0, 0, 0
    while k < len(windows):
        lo = int(starts[k])
        hi = min(n, lo + block)
        low, high, present = read_bit_planes(genotypes, variant_idx[lo:hi], sample_idx)
        if hi > counted_to:  # rows met for the first time: removed on sight if without variance
            fresh = slice(counted_to - lo, hi - lo)
            counts = plane_genotype_counts(low[fresh], high[fresh], present[fresh])
            monomorphic[counted_to:hi] = _monomorphic(counts)
            removed[counted_to:hi] |= monomorphic[counted_to:hi]
            maj_freq[counted_to:hi] = _major_allele_frequency(counts)
            counted_to = hi
        k_end = int(np.searchsorted(stops, hi, side="right"))  # windows ending inside the block
        computed += prune_windows(low, high, present, lo, removed, first_unchecked, maj_freq,
                                  starts[k:k_end], stops[k:k_end], float(window.r2))
        k = k_end
    return SubcontigPruning(removed, monomorphic, computed)


def _largest_first(subcontigs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Subcontigs ``[(start, stop), ...]`` by decreasing length: threads finish close together."""
    lengths = np.array([stop - start for start, stop in subcontigs], dtype=np.int64)
    return [subcontigs[i] for i in np.argsort(-lengths, kind="stable")]


def indep_pairwise(genotypes: Genotypes, window: PruneWindow, variant_idx: np.ndarray | None = None,
                   sample_idx: np.ndarray | None = None, threads: int | None = None) -> np.ndarray:
    """plink ``--indep-pairwise``: which of ``variant_idx`` (default all) to keep, bool ``(n_selected,)``.

    r^2 and allele frequencies use the founders among ``sample_idx`` (default: all samples).
    Subcontigs are pruned by ``threads`` threads at once (default: the CPUs this process may use).
    """
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
    subcontigs = _largest_first(_subcontigs(chrom, pos, window))

    def prune_one(bounds: tuple[int, int]) -> SubcontigPruning:
        start, stop = bounds
        return prune_subcontig(genotypes, variant_idx[start:stop], subset, pos[start:stop], window)

    workers = threads or len(os.sched_getaffinity(0))
    computed = 0
    for (start, stop), result in zip(subcontigs, ordered_map(prune_one, subcontigs, workers)):
        removed[start:stop] = result.removed
        monomorphic[start:stop] = result.monomorphic
        computed += result.r2_computed
    log.info("--indep-pairwise %s%s %d %g: %d of %d variants pruned (%d without variance); %d r^2 computed",
             window.size // 1000 if window.in_bp else window.size, "kb" if window.in_bp else "",
             window.step, window.r2, int(removed.sum()), len(removed),
             int((monomorphic & removed).sum()), computed)
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
