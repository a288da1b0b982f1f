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

The r^2 of all pairs that can share a window is computed block-wise with one float32 matrix product
per block (exact for integer genotypes) plus sparse corrections for missing calls; the greedy pass
then runs over the sparse list of pairs above the threshold.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from contig.core.atomic import atomic_paths
from contig.core.errors import InputError
from contig.genotypes.plinkio import Genotypes, founder_mask

log = logging.getLogger(__name__)

SMALL_EPSILON = 2.0**-44


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
    """Runs ``[start, stop)`` of variants pruned together: chromosomes, split at gaps wider than a kb window."""
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


def _decode(chunk: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
    """int8 ALT counts ``(v, n)`` -> float32 counts with missing as 0, and the sparse missing mask."""
    missing = chunk < 0
    values = np.where(missing, 0, chunk).astype(np.float32)
    return values, sp.csr_matrix(missing.astype(np.float32))


def pairs_above_threshold(genotypes: Genotypes, variant_idx: np.ndarray, sample_idx: np.ndarray | None,
                          limits: np.ndarray, r2: float, usable: np.ndarray,
                          block: int = 256) -> list[np.ndarray]:
    """For each variant i (local index into ``variant_idx``), the sorted local j > i, j < limits[i],
    with r^2(i, j) > r2 over samples called at both. ``usable`` (bool, per variant) excludes variants
    from all pairs (monomorphic ones)."""
    n_var = len(variant_idx)
    partners: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * n_var
    n_samples = genotypes.n_samples if sample_idx is None else len(sample_idx)
    for a in range(0, n_var, block):
        b = min(a + block, n_var)
        c = int(limits[a:b].max())
        if c <= a + 1:
            continue
        chunk = genotypes.read(variant_idx[a:c], sample_idx)
        values, missing = _decode(chunk)
        squares = values * values
        rows, cols = values[: b - a], values
        dot = rows @ cols.T  # (b-a, c-a) sum over samples of g_i g_j (missing contribute 0)
        total = values.sum(axis=1).astype(np.int64)  # (c-a,)
        total_sq = squares.sum(axis=1).astype(np.int64)
        n_missing = np.asarray(missing.sum(axis=1)).ravel().astype(np.int64)
        if missing.nnz:
            miss_rows, miss_cols = missing[: b - a], missing
            # sums of g_i (and g_i^2) over samples missing at j, and counts missing at both
            g_i_at_missing_j = np.asarray((miss_cols @ rows.T).T)  # (b-a, c-a)
            g2_i_at_missing_j = np.asarray((miss_cols @ squares[: b - a].T).T)
            g_j_at_missing_i = np.asarray(miss_rows @ cols.T)
            g2_j_at_missing_i = np.asarray(miss_rows @ squares.T)
            both_missing = (miss_rows @ miss_cols.T).toarray()
        else:
            g_i_at_missing_j = g2_i_at_missing_j = g_j_at_missing_i = g2_j_at_missing_i = 0.0
            both_missing = 0.0
        i_local = np.arange(b - a)
        n_both = (n_samples - n_missing[i_local, None] - n_missing[None, :]
                  + np.asarray(both_missing, dtype=np.int64))
        sum_i = total[i_local, None] - np.asarray(g_i_at_missing_j, dtype=np.int64)
        sq_i = total_sq[i_local, None] - np.asarray(g2_i_at_missing_j, dtype=np.int64)
        sum_j = total[None, :] - np.asarray(g_j_at_missing_i, dtype=np.int64)
        sq_j = total_sq[None, :] - np.asarray(g2_j_at_missing_i, dtype=np.int64)
        dot = np.rint(dot).astype(np.int64)
        cov = (dot * n_both - sum_i * sum_j).astype(np.float64)
        var_i = (sq_i * n_both - sum_i * sum_i).astype(np.float64)
        var_j = (sq_j * n_both - sum_j * sum_j).astype(np.float64)
        above = cov * cov > (r2 * var_i) * var_j
        # keep only j in (i, limits[i]) and usable pairs
        j_global = np.arange(a, c)
        in_band = (j_global[None, :] > (a + i_local)[:, None]) & (j_global[None, :] < limits[a:b, None])
        above &= in_band & usable[a:b, None] & usable[None, a:c]
        for i in np.flatnonzero(above.any(axis=1)):
            partners[a + i] = j_global[above[i]]
    return partners


def _greedy_prune(partners: list[np.ndarray], removed: np.ndarray, maj_freq: np.ndarray,
                  windows: list[tuple[int, int]]) -> None:
    """Run plink's greedy window pass over precomputed above-threshold pairs; updates ``removed``."""
    first_unchecked = np.arange(1, len(removed) + 1)
    pointer = np.zeros(len(removed), dtype=np.int64)
    has_partners = np.array([len(p) > 0 for p in partners], dtype=bool)
    partner_lists = [p.tolist() for p in partners]
    for start, stop in windows:
        candidates = [i for i in np.flatnonzero(has_partners[start:stop]).tolist()]
        candidates = [start + i for i in candidates]
        changed = True
        while changed:
            changed = False
            for i in candidates:
                if removed[i]:
                    continue
                plist = partner_lists[i]
                k = pointer[i]
                floor = first_unchecked[i]
                # skip partners already checked or removed (removal is permanent)
                while k < len(plist) and (plist[k] < floor or removed[plist[k]]):
                    k += 1
                pointer[i] = k
                if k < len(plist) and plist[k] < stop:
                    j = plist[k]
                    if maj_freq[i] > maj_freq[j] * (1.0 + SMALL_EPSILON):
                        removed[i] = True
                    else:
                        removed[j] = True
                        first_unchecked[i] = j + 1
                    changed = True
                else:
                    first_unchecked[i] = max(floor, stop)


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


def indep_pairwise(genotypes: Genotypes, window: PruneWindow, variant_idx: np.ndarray | None = None,
                   sample_idx: np.ndarray | None = None) -> np.ndarray:
    """plink ``--indep-pairwise``: which of ``variant_idx`` (default all) to keep, bool ``(n_selected,)``.

    r^2 and allele frequencies use the founders among ``sample_idx`` (default: all samples).
    """
    variant_idx = np.arange(genotypes.n_variants) if variant_idx is None else np.asarray(variant_idx)
    samples = np.arange(genotypes.n_samples) if sample_idx is None else np.asarray(sample_idx)
    founders = samples[founder_mask(genotypes.fam)[samples]]
    if len(founders) < 2:
        raise InputError("LD pruning needs at least 2 founders (PAT and MAT '0' in the .fam)")
    subset = None if len(founders) == genotypes.n_samples else founders
    bim = genotypes.bim[variant_idx]
    chrom = bim["CHROM"].to_numpy().astype(str)
    pos = bim["POS"].to_numpy()
    counts = genotypes.genotype_counts(sample_idx=subset, variant_idx=variant_idx).astype(np.int64)
    hom_ref, het, hom_alt, _ = counts.T
    called = hom_ref + het + hom_alt
    monomorphic = ((hom_ref == 0) & (hom_alt == 0)) | (hom_ref == called) | (hom_alt == called)
    with np.errstate(invalid="ignore", divide="ignore"):
        alt_freq = (het + 2 * hom_alt) / (2.0 * called)
    maj_freq = np.maximum(alt_freq, 1.0 - alt_freq)
    removed = np.zeros(len(variant_idx), dtype=bool)
    for start, stop in _subcontigs(chrom, pos, window):
        local_pos = pos[start:stop]
        limits = _band_limits(local_pos, window)
        usable = ~monomorphic[start:stop]
        partners = pairs_above_threshold(genotypes, variant_idx[start:stop], subset, limits, window.r2,
                                         usable)
        local_removed = monomorphic[start:stop].copy()
        _greedy_prune(partners, local_removed, maj_freq[start:stop], _windows(local_pos, window))
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
            tmp.write_text("".join(f"{ids[i]}\n" for i in np.flatnonzero(mask)))
    return paths
