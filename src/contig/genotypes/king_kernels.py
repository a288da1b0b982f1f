"""Compiled (Numba) pair counts for KING-robust kinship, on bit planes of the genotypes.

Each person's calls over a chunk of variants become four bit planes, uint64 ``(n_samples,
n_words)`` with 64 variants per word: heterozygous, homozygous REF, homozygous ALT, called. A
pair's counts over the chunk are popcounts of the ANDs of their planes, word by word, as plink2
counts them.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from contig.genotypes.bitops import popcount

N_COUNTS = 5  # nsnp, hethet, ibs0, het_first, het_second (the order of accumulate_pair_counts)


def pack_plane(indicator: np.ndarray) -> np.ndarray:
    """bool ``(n_samples, v)`` -> uint64 ``(n_samples, ceil(v / 64))``, variant k at bit k % 64."""
    packed = np.packbits(indicator, axis=1, bitorder="little")
    padded = np.zeros((packed.shape[0], -(-packed.shape[1] // 8) * 8), dtype=np.uint8)
    padded[:, : packed.shape[1]] = packed
    return padded.view("<u8")


def sample_planes(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """int8 ALT counts ``(v, n)`` (-9 missing) -> planes het, hom-REF, hom-ALT, called, each
    uint64 ``(n, ceil(v / 64))``."""
    g = np.ascontiguousarray(chunk.T)
    return pack_plane(g == 1), pack_plane(g == 0), pack_plane(g == 2), pack_plane(g >= 0)


@njit(cache=True, parallel=True)
def accumulate_pair_counts(het: np.ndarray, ref: np.ndarray, alt: np.ndarray, called: np.ndarray,
                           start: int, stop: int, out: np.ndarray) -> None:
    """Add the counts of every pair (start + r, j), j < start + r < stop, into ``out`` int32
    ``(N_COUNTS, stop - start, stop)``: called by both, both het, opposite homozygotes, first het
    (both called), second het (both called)."""
    n_words = het.shape[1]
    for r in prange(stop - start):
        i = start + r
        for j in range(i):
            nsnp = 0
            hethet = 0
            ibs0 = 0
            het_first = 0
            het_second = 0
            for w in range(n_words):
                ci, cj = called[i, w], called[j, w]
                hi, hj = het[i, w], het[j, w]
                nsnp += popcount(ci & cj)
                hethet += popcount(hi & hj)
                ibs0 += popcount((alt[i, w] & ref[j, w]) | (ref[i, w] & alt[j, w]))
                het_first += popcount(hi & cj)
                het_second += popcount(ci & hj)
            out[0, r, j] += nsnp
            out[1, r, j] += hethet
            out[2, r, j] += ibs0
            out[3, r, j] += het_first
            out[4, r, j] += het_second


@njit(cache=True, parallel=True)
def kinship_matrix(counts: np.ndarray, start: int) -> np.ndarray:
    """KING-robust kinship of the pairs in ``counts`` (from :func:`accumulate_pair_counts`, rows
    start.., all columns): float64 ``(n_rows, n_cols)``, NaN where j >= start + r (not a pair) or
    where either person has no heterozygous call among the shared variants.

    phi = 1/2 - (N_i + N_j - 2 HETHET + 4 IBS0) / (4 min(N_i, N_j)).
    """
    n_rows, n_cols = counts.shape[1], counts.shape[2]
    kinship = np.full((n_rows, n_cols), np.nan)
    for r in prange(n_rows):
        for j in range(min(start + r, n_cols)):
            het_i, het_j = counts[3, r, j], counts[4, r, j]
            het_min = min(het_i, het_j)
            if het_min > 0 and counts[0, r, j] > 0:
                squared_difference = het_i + het_j - 2.0 * counts[1, r, j] + 4.0 * counts[2, r, j]
                kinship[r, j] = 0.5 - squared_difference / (4.0 * het_min)
    return kinship
