"""Compiled (Numba) kernel of the score accumulation: .bed rows -> ALT dosages with plink2
``--score``'s mean imputation, in one pass (no int8 decoding, no separate frequency pass); the
dosages then meet the weights in one BLAS product per chunk (contig.scores.prs.compute_scores)."""

from __future__ import annotations

import numpy as np
from numba import njit

from contig.genotypes.bitops import EVEN_BITS, popcount, row_words, slot_mask


@njit(cache=True, nogil=True)
def _founder_fill(rows: np.ndarray, v: int, founder_mask: np.ndarray) -> float:
    """2 x ALT frequency over the founders' calls at variant ``v`` (0 without a call)."""
    whole, tail = row_words(rows, v)
    n_founders, n_missing, n_het, n_hom_ref = 0, 0, 0, 0
    for w in range(len(founder_mask)):
        word = whole[w] if w < len(whole) else tail
        mask = founder_mask[w]
        b0 = word & EVEN_BITS
        b1 = (word >> np.uint64(1)) & EVEN_BITS
        n_founders += popcount(mask)
        n_missing += popcount(b0 & ~b1 & mask)
        n_het += popcount(b1 & ~b0 & mask)
        n_hom_ref += popcount(b0 & b1 & mask)
    called = n_founders - n_missing
    if called == 0:
        return 0.0
    alt = n_het + 2 * (called - n_het - n_hom_ref)
    return 2.0 * (alt / (2.0 * called))


@njit(cache=True, nogil=True)
def packed_dosages(rows: np.ndarray, n_samples: int, founder_mask: np.ndarray, mean_imputation: bool,
                   dosage: np.ndarray, missing: np.ndarray) -> bool:
    """Fill ``dosage`` float64 ``(n_variants, n_samples)`` with ALT counts from .bed ``rows``
    (C-contiguous uint8 ``(n_variants, n_bytes)``); a missing call's dosage is 2 x the founders'
    ALT frequency (``founder_mask``: uint64 ``(n_words,)``, bit 2s of word w = sample 32 w + s)
    with ``mean_imputation``, else 0 and then ``missing`` bool (same shape as ``dosage``) marks
    the missing calls (left untouched with ``mean_imputation``). Returns whether any call was
    missing."""
    any_missing = False
    lookup = np.empty(4)
    full_bytes = n_samples // 4
    for v in range(rows.shape[0]):
        fill = _founder_fill(rows, v, founder_mask) if mean_imputation else 0.0
        lookup[0], lookup[1], lookup[2], lookup[3] = 2.0, fill, 1.0, 0.0  # .bed codes 00 01 10 11
        row = rows[v]
        out = dosage[v]
        for j in range(full_bytes):
            byte = row[j]
            out[4 * j] = lookup[byte & 3]
            out[4 * j + 1] = lookup[(byte >> 2) & 3]
            out[4 * j + 2] = lookup[(byte >> 4) & 3]
            out[4 * j + 3] = lookup[(byte >> 6) & 3]
        for s in range(4 * full_bytes, n_samples):
            out[s] = lookup[(row[s >> 2] >> ((s & 3) * 2)) & 3]
        if _has_missing(rows, v, founder_mask.shape[0], n_samples):
            any_missing = True
            if not mean_imputation:
                for s in range(n_samples):
                    missing[v, s] = ((row[s >> 2] >> ((s & 3) * 2)) & 3) == 1
        elif not mean_imputation:
            missing[v, :] = False
    return any_missing


@njit(cache=True, nogil=True)
def _has_missing(rows: np.ndarray, v: int, n_words: int, n_samples: int) -> bool:
    """Whether any of the ``n_samples`` calls of .bed row ``v`` is missing (code 01)."""
    whole, tail = row_words(rows, v)
    for w in range(n_words):
        word = whole[w] if w < len(whole) else tail
        if word & ~(word >> np.uint64(1)) & slot_mask(w, n_samples):
            return True
    return False
