"""QC counts: genotype counts per variant and missing calls per sample, by the compiled popcount
kernel on the packed .bed rows (contig.genotypes.qc_kernels) or, below
:data:`KERNEL_MIN_GENOTYPES` genotypes, by pgenlib (variants) and NumPy bit operations on the
packed rows (samples), where importing Numba would cost more than the kernel saves."""

from __future__ import annotations

import numpy as np

from contig.genotypes.plinkio import Genotypes, bed_bytes_per_variant

# From this many genotypes (samples x variants) on, QC counts with the compiled kernel: it saves
# ~0.2 s per 10^9 genotypes over the NumPy/pgenlib path, and importing Numba and loading the cached
# kernels costs ~0.6 s (measured on bench/genotypes.py's data, 5,000 people, 100,000-300,000 variants).
KERNEL_MIN_GENOTYPES = 3 * 10**9


def packed_qc_counts(genotypes: Genotypes, sample_idx: np.ndarray | None,
                     variant_idx: np.ndarray | None = None, track_missing: bool = False,
                     chunk_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Genotype counts uint32 ``(n_selected_variants, 4)`` (0, 1, 2 ALT copies, missing) over the
    samples ``sample_idx`` (sorted; None = all), and, with ``track_missing``, the missing calls of
    each of those samples over the variants, int64 ``(n_selected_samples,)`` (else zeros).

    One pass over the packed .bed rows by a compiled popcount kernel (contig.genotypes.qc_kernels).
    """
    from contig.genotypes.bitops import sample_slot_mask
    from contig.genotypes.qc_kernels import add_missing_per_sample, packed_genotype_counts

    mask = sample_slot_mask(genotypes.n_samples, sample_idx)
    per_sample = np.zeros(len(mask) * 32, dtype=np.int64)
    variant_idx = None if variant_idx is None else np.asarray(variant_idx, dtype=np.int64)
    parts = [np.zeros((0, 4), dtype=np.uint32)]
    for _, rows in genotypes.iter_packed_chunks(chunk_size, variant_idx):
        rows = np.ascontiguousarray(rows)
        parts.append(packed_genotype_counts(rows, mask))
        if track_missing:
            add_missing_per_sample(rows, mask, per_sample)
    selected = slice(genotypes.n_samples) if sample_idx is None else np.asarray(sample_idx)
    return np.concatenate(parts), per_sample[selected]


def use_qc_kernel(genotypes: Genotypes) -> bool:
    """Whether the compiled kernel pays for importing Numba (~0.6 s of CPU): on at least
    :data:`KERNEL_MIN_GENOTYPES` genotypes; below that the NumPy path is as fast."""
    return genotypes.n_samples * genotypes.n_variants >= KERNEL_MIN_GENOTYPES


def genotype_counts(genotypes: Genotypes, sample_idx: np.ndarray | None) -> np.ndarray:
    """Counts of 0, 1, 2 ALT copies and missing calls per variant over ``sample_idx`` (None: all),
    uint32 ``(n_variants, 4)``: by the compiled kernel or by pgenlib (:func:`use_qc_kernel`)."""
    if use_qc_kernel(genotypes):
        return packed_qc_counts(genotypes, sample_idx)[0]
    return genotypes.genotype_counts(sample_idx=sample_idx)


# The NumPy missing count's vertical counters: a 2-bit field holds the sum of 3 rows, a nibble of
# 5 such sums (15 rows), a byte of 17 nibble sums (255 rows), so blocks of 255 rows never overflow.
LANE_ROWS = 255
_EVEN_BITS = np.uint8(0x55)


def _missing_flags(rows: np.ndarray) -> np.ndarray:
    """The low bit of each 2-bit field of ``rows`` (uint8 ``(n, n_bytes)``) set where the code is 01
    (missing), every other bit clear: uint8 ``(n, n_bytes)``."""
    flags = rows >> 1
    np.invert(flags, out=flags)
    flags &= rows
    flags &= _EVEN_BITS
    return flags


def _block_sum(fields: np.ndarray, group: int) -> np.ndarray:
    """Sums of ``group`` consecutive rows of uint8 ``fields`` ``(n, n_bytes)`` (n a multiple of
    ``group``), in uint8 arithmetic: ``(n // group, n_bytes)``."""
    return fields.reshape(-1, group, fields.shape[1]).sum(axis=1, dtype=np.uint8)


def add_missing_calls(rows: np.ndarray, totals: np.ndarray) -> None:
    """Add each sample's missing calls over ``rows`` (.bed rows, uint8 ``(n_variants, n_bytes)``)
    to ``totals`` (int64 ``(n_bytes, 4)``; ``[b, k]`` counts sample 4 b + k).

    Vertical counters in NumPy uint8 arithmetic (no decoding): the missing flags of 3 rows are
    summed inside their 2-bit fields, split into two nibble sets (samples 4b, 4b + 2 and 4b + 1,
    4b + 3), summed over 15 rows, split into bytes and summed over 255 rows.
    """
    n_bytes = rows.shape[1]
    short = -len(rows) % LANE_ROWS
    if short:  # zero rows (code 00) are not missing
        rows = np.concatenate([rows, np.zeros((short, n_bytes), dtype=np.uint8)])
    threes = _block_sum(_missing_flags(rows), 3)
    odd = threes >> 2
    odd &= np.uint8(0x33)
    threes &= np.uint8(0x33)
    for slot, pairs in ((0, threes), (1, odd)):
        fifteens = _block_sum(pairs, 5)
        for lane, counts in ((slot, fifteens & np.uint8(0x0F)), (slot + 2, fifteens >> 4)):
            totals[:, lane] += _block_sum(counts, 17).sum(axis=0, dtype=np.int64)


def packed_missing_counts(genotypes: Genotypes, sample_idx: np.ndarray | None,
                          variant_idx: np.ndarray | None = None, chunk_size: int = 8160) -> np.ndarray:
    """Missing calls of each sample of ``sample_idx`` (None: all) over the variants ``variant_idx``
    (increasing; None: all), int64 ``(n_selected_samples,)``: NumPy on the packed .bed rows
    (:func:`add_missing_calls`), a third of the time of decoding them with pgenlib."""
    totals = np.zeros((bed_bytes_per_variant(genotypes.n_samples), 4), dtype=np.int64)
    rows_per_chunk = max(1, chunk_size // LANE_ROWS) * LANE_ROWS
    for _, rows in genotypes.iter_packed_chunks(rows_per_chunk, variant_idx):
        add_missing_calls(rows, totals)
    per_sample = totals.reshape(-1)[: genotypes.n_samples]
    return per_sample.copy() if sample_idx is None else per_sample[np.asarray(sample_idx)]
