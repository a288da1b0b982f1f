"""QC counts: genotype counts per variant and missing calls per sample, by the compiled popcount
kernel on the packed .bed rows (contig.genotypes.qc_kernels) or, below
:data:`KERNEL_MIN_GENOTYPES` genotypes, by pgenlib (where importing Numba would cost more than
the kernel saves)."""

from __future__ import annotations

import numpy as np

from contig.genotypes.plinkio import Genotypes

# From this many genotypes (samples x variants) on, QC counts with the compiled kernel: it saves
# ~0.5 s per 10^9 genotypes, what importing Numba costs (measured on bench/genotypes.py's data).
KERNEL_MIN_GENOTYPES = 10**9


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
    """Whether the compiled kernel pays for importing Numba (~0.5 s of CPU): on at least
    :data:`KERNEL_MIN_GENOTYPES` genotypes; below that the NumPy path is as fast."""
    return genotypes.n_samples * genotypes.n_variants >= KERNEL_MIN_GENOTYPES


def genotype_counts(genotypes: Genotypes, sample_idx: np.ndarray | None) -> np.ndarray:
    """Counts of 0, 1, 2 ALT copies and missing calls per variant over ``sample_idx`` (None: all),
    uint32 ``(n_variants, 4)``: by the compiled kernel or by pgenlib (:func:`use_qc_kernel`)."""
    if use_qc_kernel(genotypes):
        return packed_qc_counts(genotypes, sample_idx)[0]
    return genotypes.genotype_counts(sample_idx=sample_idx)
