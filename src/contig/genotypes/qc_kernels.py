"""Compiled (Numba) kernels of the QC counts: genotype counts per variant and missing calls per
sample, straight from the packed .bed rows with popcounts (no decoding)."""

from __future__ import annotations

import numpy as np
from numba import njit

from contig.genotypes.bitops import EVEN_BITS, popcount, row_words

LANE_ONES = np.uint64(0x0101010101010101)


@njit(cache=True, nogil=True, inline="always")
def _word_counts(word: np.uint64, mask: np.uint64) -> tuple[int, int, int]:
    """Missing, heterozygous and homozygous-A2 (0 ALT) calls among the ``mask`` samples of a word."""
    b0 = word & EVEN_BITS
    b1 = (word >> np.uint64(1)) & EVEN_BITS
    return popcount(b0 & ~b1 & mask), popcount(b1 & ~b0 & mask), popcount(b0 & b1 & mask)


@njit(cache=True, nogil=True)
def packed_genotype_counts(rows: np.ndarray, sample_mask: np.ndarray) -> np.ndarray:
    """Counts of 0, 1, 2 ALT copies and missing calls, uint32 ``(n_variants, 4)``, over the samples
    of ``sample_mask`` (uint64 ``(n_words,)``, bit 2s of word w = sample 32 w + s).

    ``rows``: .bed rows, C-contiguous uint8 ``(n_variants, n_bytes)``.
    """
    n_variants = rows.shape[0]
    n_words = len(sample_mask)
    n_selected = 0
    for w in range(n_words):
        n_selected += popcount(sample_mask[w])
    counts = np.zeros((n_variants, 4), dtype=np.uint32)
    for v in range(n_variants):
        whole, tail = row_words(rows, v)
        n_missing, n_het, n_hom_ref = 0, 0, 0
        for w in range(len(whole)):
            missing, het, hom_ref = _word_counts(whole[w], sample_mask[w])
            n_missing += missing
            n_het += het
            n_hom_ref += hom_ref
        if len(whole) < n_words:
            missing, het, hom_ref = _word_counts(tail, sample_mask[n_words - 1])
            n_missing += missing
            n_het += het
            n_hom_ref += hom_ref
        counts[v, 0] = n_hom_ref
        counts[v, 1] = n_het
        counts[v, 2] = n_selected - n_missing - n_het - n_hom_ref
        counts[v, 3] = n_missing
    return counts


@njit(cache=True, nogil=True)
def _flush_lanes(lanes: np.ndarray, sample_missing: np.ndarray) -> None:
    """Add the byte-lane counters ``lanes`` ``(n_words, 4)`` to ``sample_missing`` and zero them:
    byte b of ``lanes[w, k]`` counts sample 32 w + 4 b + k."""
    for w in range(lanes.shape[0]):
        for k in range(4):
            lane = lanes[w, k]
            for b in range(8):
                sample_missing[32 * w + 4 * b + k] += (lane >> np.uint64(8 * b)) & np.uint64(0xFF)
            lanes[w, k] = 0


@njit(cache=True, nogil=True, inline="always")
def _add_lanes(lanes: np.ndarray, w: int, word: np.uint64, mask: np.uint64) -> None:
    """Spread the missing calls of ``word`` (among ``mask``) over the four lane counters of word w."""
    missing = word & ~(word >> np.uint64(1)) & mask
    lanes[w, 0] += missing & LANE_ONES
    lanes[w, 1] += (missing >> np.uint64(2)) & LANE_ONES
    lanes[w, 2] += (missing >> np.uint64(4)) & LANE_ONES
    lanes[w, 3] += (missing >> np.uint64(6)) & LANE_ONES


@njit(cache=True, nogil=True)
def add_missing_per_sample(rows: np.ndarray, sample_mask: np.ndarray, sample_missing: np.ndarray) -> None:
    """Add each selected sample's missing calls over the variants of ``rows`` (.bed rows,
    C-contiguous uint8 ``(n_variants, n_bytes)``) to ``sample_missing`` (int64, by .fam position).

    Vertical counters: the missing bits of a word are spread over four uint64 accumulators of
    eight byte lanes each, flushed every 255 variants before a lane can overflow.
    """
    n_variants = rows.shape[0]
    n_words = len(sample_mask)
    lanes = np.zeros((n_words, 4), dtype=np.uint64)
    for v in range(n_variants):
        whole, tail = row_words(rows, v)
        for w in range(len(whole)):
            _add_lanes(lanes, w, whole[w], sample_mask[w])
        if len(whole) < n_words:
            _add_lanes(lanes, n_words - 1, tail, sample_mask[n_words - 1])
        if v % 255 == 254:
            _flush_lanes(lanes, sample_missing)
    _flush_lanes(lanes, sample_missing)


@njit(cache=True, nogil=True)
def subset_packed_rows(rows: np.ndarray, sample_idx: np.ndarray) -> np.ndarray:
    """.bed rows of the samples ``sample_idx`` (increasing .fam positions) only: uint8
    ``(n_variants, ceil(len(sample_idx) / 4))``, each 2-bit code copied as it is."""
    n_out = len(sample_idx)
    out = np.zeros((rows.shape[0], (n_out + 3) // 4), dtype=np.uint8)
    for v in range(rows.shape[0]):
        for t in range(n_out):
            s = sample_idx[t]
            code = (rows[v, s >> 2] >> ((s & 3) * 2)) & 3
            out[v, t >> 2] |= code << ((t & 3) * 2)
    return out
