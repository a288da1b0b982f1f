"""Compiled (Numba) kernels of LD pruning: genotype bit planes, and plink's greedy window pass
with r^2 computed on demand.

Genotypes are held as three bit planes per variant, 64 samples per uint64 word (as plink2 works on
packed genotypes with popcounts): ``low`` (ALT count >= 1), ``high`` (ALT count = 2) and
``present`` (called). A missing call has ``low = high = 0``. For a pair (i, j), over the samples
called at both:

- n = popcount(present_i & present_j)
- sum g_i = popcount(low_i & present_j) + popcount(high_i & present_j)
- sum g_i^2 = popcount(low_i & present_j) + 3 popcount(high_i & present_j)   (g^2 = low + 3 high)
- sum g_i g_j = popcount over the four products of (low + high)_i and (low + high)_j

which are exact integers, so r^2 is compared exactly as plink2 compares it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from contig.genotypes.bitops import EVEN_BITS, popcount, row_words, slot_mask

SMALL_EPSILON = 2.0**-44


@njit(cache=True, nogil=True)
def bit_planes(genotypes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int8 ALT counts ``(n_variants, n_samples)`` (negative = missing) -> ``low``, ``high``,
    ``present``, each uint64 ``(n_variants, ceil(n_samples / 64))``."""
    n_variants, n_samples = genotypes.shape
    words = (n_samples + 63) // 64
    low = np.zeros((n_variants, words), dtype=np.uint64)
    high = np.zeros((n_variants, words), dtype=np.uint64)
    present = np.zeros((n_variants, words), dtype=np.uint64)
    for v in range(n_variants):
        for w in range(words):
            lo = np.uint64(0)
            hi = np.uint64(0)
            pr = np.uint64(0)
            first = w * 64
            last = min(first + 64, n_samples)
            for s in range(first, last):
                g = genotypes[v, s]
                bit = np.uint64(1) << np.uint64(s - first)
                if g >= 0:
                    pr |= bit
                    if g >= 1:
                        lo |= bit
                    if g == 2:
                        hi |= bit
            low[v, w] = lo
            high[v, w] = hi
            present[v, w] = pr
    return low, high, present


@njit(cache=True, nogil=True)
def _packed_planes(word: np.uint64, valid: np.uint64) -> tuple[np.uint64, np.uint64, np.uint64]:
    """low, high, present on the even bits of one word of .bed codes (00 hom A1 = 2 ALT, 01 missing,
    10 het, 11 hom A2 = 0 ALT; A1 is the ALT allele)."""
    b0 = word & EVEN_BITS
    b1 = (word >> np.uint64(1)) & EVEN_BITS
    missing = b0 & ~b1
    low = ~b0 & valid
    high = ~b0 & ~b1 & valid
    present = ~missing & valid
    return low, high, present


@njit(cache=True, nogil=True, inline="always")
def _packed_word(whole: np.ndarray, tail: np.uint64, w: int) -> np.uint64:
    """Word ``w`` of a .bed row split by :func:`row_words` into whole words and a partial tail."""
    return whole[w] if w < len(whole) else tail


@njit(cache=True, nogil=True)
def packed_bit_planes(rows: np.ndarray, n_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """.bed rows, C-contiguous uint8 ``(n_variants, n_bytes)`` -> ``low``, ``high``, ``present``,
    uint64 ``(n_variants, ceil(n_packed / 2))`` with ``n_packed = ceil(n_bytes / 8)`` words a row.

    Packed words 2k and 2k + 1 fill the even and the odd bits of plane word k: the samples are
    permuted, the same way for every variant, which leaves every sum over samples unchanged.
    """
    n_variants, n_bytes = rows.shape
    n_packed = (n_bytes + 7) // 8
    n_plane = (n_packed + 1) // 2
    valid = np.empty(n_packed, dtype=np.uint64)
    for w in range(n_packed):
        valid[w] = slot_mask(w, n_samples)
    low = np.empty((n_variants, n_plane), dtype=np.uint64)  # every element is written below
    high = np.empty((n_variants, n_plane), dtype=np.uint64)
    present = np.empty((n_variants, n_plane), dtype=np.uint64)
    # plane words made of two whole words of 32 samples each: no masking, no tail (vectorizable)
    n_simple = min(n_bytes // 16, n_samples // 64)
    # Serial: pruning runs one subcontig per thread (contig.genotypes.ld).
    for v in range(n_variants):
        whole, tail = row_words(rows, v)
        for k in range(n_simple):
            lo, hi, pr = _packed_planes(whole[2 * k], EVEN_BITS)
            lo1, hi1, pr1 = _packed_planes(whole[2 * k + 1], EVEN_BITS)
            low[v, k] = lo | (lo1 << np.uint64(1))
            high[v, k] = hi | (hi1 << np.uint64(1))
            present[v, k] = pr | (pr1 << np.uint64(1))
        for k in range(n_simple, n_plane):
            lo, hi, pr = _packed_planes(_packed_word(whole, tail, 2 * k), valid[2 * k])
            if 2 * k + 1 < n_packed:
                lo1, hi1, pr1 = _packed_planes(_packed_word(whole, tail, 2 * k + 1), valid[2 * k + 1])
                lo |= lo1 << np.uint64(1)
                hi |= hi1 << np.uint64(1)
                pr |= pr1 << np.uint64(1)
            low[v, k] = lo
            high[v, k] = hi
            present[v, k] = pr
    return low, high, present


@njit(cache=True, nogil=True)
def plane_genotype_counts(low: np.ndarray, high: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per-variant counts of 0, 1, 2 ALT alleles and calls, int64 ``(n_variants, 4)``
    (columns hom_ref, het, hom_alt, called)."""
    n_variants, words = low.shape
    counts = np.zeros((n_variants, 4), dtype=np.int64)
    for v in range(n_variants):
        called = 0
        n_low = 0
        n_high = 0
        for w in range(words):
            called += popcount(present[v, w])
            n_low += popcount(low[v, w])
            n_high += popcount(high[v, w])
        counts[v, 0] = called - n_low
        counts[v, 1] = n_low - n_high
        counts[v, 2] = n_high
        counts[v, 3] = called
    return counts


@njit(cache=True, nogil=True)
def _pair_above(low: np.ndarray, high: np.ndarray, present: np.ndarray, i: int, j: int,
                r2: float) -> bool:
    """Whether r^2(i, j) over samples called at both exceeds ``r2`` (plink2's comparison)."""
    n_both = 0
    sum_i_low = 0
    sum_i_high = 0
    sum_j_low = 0
    sum_j_high = 0
    dot = 0
    for w in range(low.shape[1]):
        pi = present[i, w]
        pj = present[j, w]
        li = low[i, w]
        hi = high[i, w]
        lj = low[j, w]
        hj = high[j, w]
        n_both += popcount(pi & pj)
        sum_i_low += popcount(li & pj)
        sum_i_high += popcount(hi & pj)
        sum_j_low += popcount(lj & pi)
        sum_j_high += popcount(hj & pi)
        # sum g_i g_j = |li lj| + |li hj| + |hi lj| + |hi hj|; as high is within low,
        # (li hj) & (hi lj) = hi hj, so |li hj| + |hi lj| = |(li hj) ^ (hi lj)| + 2 |hi hj|:
        # three popcounts instead of four (popcounts bound this loop).
        dot += popcount(li & lj) + popcount((li & hj) ^ (hi & lj)) + 3 * popcount(hi & hj)
    sum_i = sum_i_low + sum_i_high
    sq_i = sum_i_low + 3 * sum_i_high
    sum_j = sum_j_low + sum_j_high
    sq_j = sum_j_low + 3 * sum_j_high
    cov = float(dot * n_both - sum_i * sum_j)
    var_i = float(sq_i * n_both - sum_i * sum_i)
    var_j = float(sq_j * n_both - sum_j * sum_j)
    return cov * cov > (r2 * var_i) * var_j


@njit(cache=True, nogil=True)
def prune_windows(low: np.ndarray, high: np.ndarray, present: np.ndarray, offset: int,
                  removed: np.ndarray, first_unchecked: np.ndarray, maj_freq: np.ndarray,
                  window_starts: np.ndarray, window_stops: np.ndarray, r2: float) -> int:
    """plink's greedy pass over the windows ``[window_starts[k], window_stops[k])`` of one
    subcontig, in order; updates ``removed`` and ``first_unchecked`` (both ``(n,)``, indexed by
    variant within the subcontig) and returns the number of r^2 computed.

    The planes ``(n_rows, n_words)`` hold variants ``offset .. offset + n_rows - 1``, which must
    cover every window given. Within a window, each variant still in meets its later variants from
    ``first_unchecked`` on, skipping removed ones; at the first with r^2 > ``r2`` the variant with
    the higher major allele frequency (lower MAF) goes, the later one on ties; passes repeat until
    one removes nothing. r^2 is computed only when the greedy pass asks for it (as plink2 does), so
    pairs with an already removed variant cost nothing, and never twice: a variant's unchecked
    partners only move forward.
    """
    n_computed = 0
    for k in range(len(window_starts)):
        start = window_starts[k]
        stop = window_stops[k]
        changed = True
        while changed:
            changed = False
            for i in range(start, stop):
                if removed[i]:
                    continue
                j = first_unchecked[i]
                while j < stop:
                    if not removed[j]:
                        n_computed += 1
                        if _pair_above(low, high, present, i - offset, j - offset, r2):
                            break
                    j += 1
                if j < stop:
                    if maj_freq[i] > maj_freq[j] * (1.0 + SMALL_EPSILON):
                        removed[i] = True
                        first_unchecked[i] = j
                    else:
                        removed[j] = True
                        first_unchecked[i] = j + 1
                    changed = True
                else:
                    first_unchecked[i] = max(first_unchecked[i], stop)
    return n_computed
