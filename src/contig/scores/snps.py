"""The raw-SNP modality: selected variants, standardized and mean-imputed, samples x SNPs.

Selection: variants whose founder minor allele frequency is >= ``maf``, then either every k-th of
them per chromosome (the reference study took every 100th array SNP) or those kept by LD pruning
(plink's ``--indep-pairwise``). Values: (g - 2p) / sqrt(2p(1-p)) with p the founder ALT frequency
(plink2's standardization, as in ``contig.genotypes.pca``) and missing calls set to 0, i.e. to the mean.
Columns are grouped by chromosome in .bim order; ``chrom_offsets`` (n_chrom + 1,) marks the groups
so an encoder can treat chromosomes separately.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.errors import InputError
from contig.genotypes.ld import PruneWindow, indep_pairwise
from contig.scores.modality import Modality, save_modality
from contig.genotypes.pca import standardization, standardize_chunk
from contig.genotypes.plinkio import Genotypes
from contig.core.tables import write_tsv

log = logging.getLogger(__name__)


@dataclass
class SnpSelection:
    """Chosen variants (sorted indices into the .bim) and how many each step removed."""

    variant_idx: np.ndarray
    alt_freq: np.ndarray  # (n_selected,) founder ALT frequency
    removed: dict[str, int]


def chromosome_runs(chrom: np.ndarray, path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Names and offsets of the runs of equal chromosome codes: ``(n_runs,)`` str, ``(n_runs + 1,)`` int64.

    Raises InputError when a chromosome appears in two separate runs (a .bim not grouped by chromosome).
    """
    chrom = np.asarray(chrom, dtype=str)
    starts = np.concatenate([[0], np.flatnonzero(chrom[1:] != chrom[:-1]) + 1]) if len(chrom) else np.array([], int)
    names = chrom[starts]
    if len(set(names.tolist())) != len(names):
        raise InputError("variants of one chromosome are not contiguous; sort the .bim by chromosome",
                         path)
    return names, np.concatenate([starts, [len(chrom)]]).astype(np.int64)


def every_kth_per_chromosome(chrom: np.ndarray, k: int) -> np.ndarray:
    """Bool ``(n,)``: the 1st, (k+1)th, (2k+1)th, ... variant of each chromosome."""
    _, offsets = chromosome_runs(chrom)
    keep = np.zeros(len(chrom), dtype=bool)
    for start, stop in zip(offsets[:-1], offsets[1:]):
        keep[start:stop:k] = True
    return keep


def select_snps(genotypes: Genotypes, maf: float | None = None, every_kth: int | None = None,
                window: PruneWindow | None = None) -> SnpSelection:
    """MAF filter, then every k-th per chromosome or LD pruning (not both)."""
    if every_kth is not None and window is not None:
        raise ValueError("choose either every_kth or LD pruning, not both")
    chrom_all = genotypes.bim["CHROM"].to_numpy().astype(str)
    chromosome_runs(chrom_all, genotypes.parts[0].prefix.with_suffix(".bim"))
    variant_idx = np.arange(genotypes.n_variants)
    alt_freq, _, _ = standardization(genotypes, variant_idx)
    removed: dict[str, int] = {}
    minor = np.nan_to_num(np.minimum(alt_freq, 1 - alt_freq), nan=0.0)
    keep = minor > 0 if maf is None else minor >= maf
    removed["maf" if maf is not None else "monomorphic"] = int((~keep).sum())
    variant_idx, alt_freq = variant_idx[keep], alt_freq[keep]
    if every_kth is not None:
        keep = every_kth_per_chromosome(chrom_all[variant_idx], every_kth)
        removed[f"every-{every_kth}th"] = int((~keep).sum())
        variant_idx, alt_freq = variant_idx[keep], alt_freq[keep]
    elif window is not None:
        keep = indep_pairwise(genotypes, window, variant_idx)
        removed["indep-pairwise"] = int((~keep).sum())
        variant_idx, alt_freq = variant_idx[keep], alt_freq[keep]
    if not len(variant_idx):
        raise InputError("no variants selected; relax --maf", genotypes.parts[0].prefix)
    return SnpSelection(variant_idx, alt_freq, removed)


def snp_matrix(genotypes: Genotypes, selection: SnpSelection, chunk_size: int = 4096) -> np.ndarray:
    """Standardized, mean-imputed float32 ``(n_samples, n_snps)`` for the selected variants."""
    p = selection.alt_freq
    mean = 2 * p
    scale = 1.0 / np.sqrt(2 * p * (1 - p))
    X = np.empty((genotypes.n_samples, len(selection.variant_idx)), dtype=np.float32)
    position = 0
    for idx, chunk in genotypes.iter_chunks(chunk_size, variant_idx=selection.variant_idx):
        sel = slice(position, position + len(idx))
        X[:, sel] = standardize_chunk(chunk, mean[sel], scale[sel]).T
        position += len(idx)
    return X


def build_snp_modality(genotypes: Genotypes, selection: SnpSelection) -> Modality:
    """The modality: rows = .fam samples, features = variant IDs, extras chrom/chrom_offsets/mean/std."""
    bim = genotypes.bim[selection.variant_idx]
    names, offsets = chromosome_runs(bim["CHROM"].to_numpy().astype(str))
    p = selection.alt_freq
    return Modality(
        iid=genotypes.fam["IID"].to_numpy().astype(str),
        feature=bim["ID"].to_numpy().astype(str),
        X=snp_matrix(genotypes, selection),
        extra={
            "chrom": names,
            "chrom_offsets": offsets,
            "mean": (2 * p).astype(np.float32),
            "std": np.sqrt(2 * p * (1 - p)).astype(np.float32),
        },
    )


def write_snp_outputs(out: str | Path, genotypes: Genotypes, selection: SnpSelection,
                      modality: Modality) -> None:
    """``out.npz`` (the modality) and ``out.variants.tsv`` (ID CHROM POS ALT REF ALT_FREQ)."""
    out = Path(out)
    bim = genotypes.bim[selection.variant_idx]
    variants = bim.select("ID", "CHROM", "POS", "ALT", "REF").with_columns(
        pl.Series("ALT_FREQ", selection.alt_freq))
    write_tsv(variants, out.with_name(out.name + ".variants.tsv"))
    save_modality(out.with_name(out.name + ".npz"), modality)
