"""Writing a PLINK 1 fileset whose .bed rows are a selection of an existing one's, every sample
kept: long runs of consecutive variants are copied file to file by the kernel
(``os.copy_file_range``), short ones gathered in memory (QC's output when it removes no one)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from contig.genotypes.plinkio import BED_MAGIC, Genotypes, bed_bytes_per_variant, write_bfile, write_fileset

# Below this mean length of a run of kept variants, one copy_file_range call per run costs more
# than reading the rows into memory and writing them (on ext4 the two meet near 24 KiB; with runs
# of ~100 KiB the copy takes 25% less time).
MIN_COPY_RUN_BYTES = 32 * 1024
COPY_BUFFER_BYTES = 8 << 20  # the read-and-write fallback's buffer


def write_bfile_variants(prefix: str | Path, genotypes: Genotypes, variant_idx: np.ndarray,
                         chunk_size: int = 8192) -> None:
    """Write ``prefix.bed/.bim/.fam`` atomically: every sample of ``genotypes``, the variants
    ``variant_idx`` (increasing global indices), their .bed rows copied as they are.

    Long runs of consecutive variants are copied file to file by the kernel
    (:func:`copy_bed_rows`); a selection of mostly short runs is gathered in memory in chunks of
    ``chunk_size`` rows and written.
    """
    variant_idx = np.asarray(variant_idx, dtype=np.int64)
    bim = genotypes.bim[variant_idx]
    n_bytes = bed_bytes_per_variant(genotypes.n_samples)
    starts, _ = variant_runs(variant_idx)
    if len(variant_idx) * n_bytes >= MIN_COPY_RUN_BYTES * max(len(starts), 1):
        write_fileset(prefix, genotypes.fam, bim,
                       lambda handle: copy_bed_rows(genotypes, variant_idx, handle.fileno()),
                       buffering=0)
        return
    chunks = (rows for _, rows in genotypes.iter_packed_chunks(chunk_size, variant_idx))
    write_bfile(prefix, genotypes.fam, bim, chunks, packed=True)


def variant_runs(variant_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The maximal runs of consecutive indices in increasing ``variant_idx`` ``(m,)``: their first
    indices and their ends (last + 1), int64 ``(n_runs,)`` each."""
    variant_idx = np.asarray(variant_idx, dtype=np.int64)
    if not len(variant_idx):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    breaks = np.flatnonzero(np.diff(variant_idx) != 1) + 1
    starts = variant_idx[np.concatenate([[0], breaks])]
    ends = variant_idx[np.concatenate([breaks - 1, [len(variant_idx) - 1]])] + 1
    return starts, ends


def copy_bed_rows(genotypes: Genotypes, variant_idx: np.ndarray, out_fd: int) -> int:
    """Append the .bed rows of the variants ``variant_idx`` (increasing global indices) to the file
    open at ``out_fd`` (at its current offset), run by run; returns how many rows it copied.

    Each run of consecutive variants is one byte range of its .bed: copied by
    ``os.copy_file_range`` (in the kernel, no copy through user memory) or, where the system does
    not support that, read and written.
    """
    n_bytes = bed_bytes_per_variant(genotypes.n_samples)
    copier = _RangeCopier(out_fd)
    variant_idx = np.asarray(variant_idx, dtype=np.int64)
    for part_no, part in enumerate(genotypes.parts):
        lo, hi = int(genotypes.offsets[part_no]), int(genotypes.offsets[part_no + 1])
        local = variant_idx[(variant_idx >= lo) & (variant_idx < hi)] - lo
        if not len(local):
            continue
        with open(part.bed_path, "rb", buffering=0) as source:
            for start, end in zip(*(x.tolist() for x in variant_runs(local))):
                copier.copy(source.fileno(), len(BED_MAGIC) + start * n_bytes, (end - start) * n_bytes)
    return len(variant_idx)


class _RangeCopier:
    """Appends byte ranges of source files to ``out_fd``: by ``os.copy_file_range`` until it
    fails once (unsupported system call or file systems), then by reading and writing."""

    def __init__(self, out_fd: int) -> None:
        self.out_fd = out_fd
        self.in_kernel = hasattr(os, "copy_file_range")

    def copy(self, source_fd: int, offset: int, length: int) -> None:
        """Append ``length`` bytes of ``source_fd`` from ``offset``."""
        while length:
            copied = self._kernel_copy(source_fd, offset, length) if self.in_kernel else 0
            if not copied:
                copied = self._read_write(source_fd, offset, min(length, COPY_BUFFER_BYTES))
            offset += copied
            length -= copied

    def _kernel_copy(self, source_fd: int, offset: int, length: int) -> int:
        """Bytes copied by copy_file_range; 0 (and off from now on) where it is not supported."""
        try:
            copied = os.copy_file_range(source_fd, self.out_fd, length, offset)
        except OSError:
            copied = 0
        if not copied:  # 0 also at the source's end: the fallback then reports the truncation
            self.in_kernel = False
        return copied

    def _read_write(self, source_fd: int, offset: int, length: int) -> int:
        """Copy ``length`` bytes from ``offset`` by pread and write; returns ``length``."""
        data = memoryview(os.pread(source_fd, length, offset))
        if len(data) < length:
            raise ValueError(f"the .bed ended at byte {offset + len(data)}, expected {offset + length}")
        while len(data):
            data = data[os.write(self.out_fd, data):]
        return length
