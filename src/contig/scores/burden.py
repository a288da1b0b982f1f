"""Rare-variant gene burden scores: one sparse (n_samples, n_genes) matrix.

Gene table: a TSV with header ``chrom start end gene`` (1-based, inclusive, same build as the .bim;
extra columns are ignored), or a BED file (name ending ``.bed`` or ``.bed.gz``: no header, columns
chrom, 0-based start, exclusive end, name; converted to 1-based inclusive). Gene names must be unique.

Per variant, from the sample's non-missing calls: ALT frequency p, minor allele = ALT if p <= 0.5
else REF, MAF = min(p, 1 - p). A variant is *rare* when 0 < MAF <= ``max_maf``; monomorphic
variants carry nothing and are not counted. A variant inside several genes counts for each.
Per person i and gene g, with c_iv the person's minor-allele count at rare variant v in g
(missing calls count as 0, i.e. as not carrying; they are reported per gene):

- ``carrier``: 1 if sum_v c_iv > 0 else 0 (the reference study's choice);
- ``count``: sum_v c_iv;
- ``weighted`` (Madsen & Browning 2009, weights from the whole sample, which has no case/control
  split here): sum_v c_iv * w_v with w_v = 1 / sqrt(n_v * q_v * (1 - q_v)),
  q_v = (m_v + 1) / (2 n_v + 2), n_v = number of non-missing calls, m_v = minor alleles among them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from contig.core.atomic import atomic_paths
from contig.core.errors import InputError
from contig.scores.modality import Modality, save_modality
from contig.scores.pgs_catalog import normalize_chrom
from contig.genotypes.plinkio import Genotypes
from contig.core.tables import read_tsv

log = logging.getLogger(__name__)

MODES = ("carrier", "count", "weighted")
GENE_COLUMNS = ["chrom", "start", "end", "gene"]


@dataclass(frozen=True)
class BurdenSettings:
    """The options of :func:`gene_burden` (and ``contig burden``) with their defaults."""

    max_maf: float = 0.01  # rare = 0 < sample MAF <= this, in (0, 0.5]
    mode: str = "carrier"  # one of MODES
    min_carriers: int = 1  # genes with fewer carriers are not kept
    chunk_size: int = 4096  # variants per streamed chunk


DEFAULTS = BurdenSettings()


@dataclass
class BurdenResult:
    """``X`` (n_samples, n_genes) CSR over all genes in table order; ``genes`` the per-gene summary."""

    iid: np.ndarray
    X: sp.csr_matrix
    genes: pl.DataFrame

    def kept_modality(self, mode: str) -> Modality:
        """The modality of the kept genes only, (n_samples, n_kept) CSR float32."""
        keep = np.flatnonzero(self.genes["kept"].to_numpy())
        return Modality(self.iid, self.genes["gene"].to_numpy()[keep], self.X[:, keep].tocsr(),
                        {"mode": np.asarray(mode)})


def is_bed_path(path: Path) -> bool:
    """BED gene tables are recognised by their name: ``.bed`` or ``.bed.gz``."""
    return path.name.endswith((".bed", ".bed.gz"))


def read_gene_table(path: str | Path) -> pl.DataFrame:
    """Genes as ``gene, chrom (normalized), start, end`` (1-based inclusive) plus ``row`` (file line)."""
    path = Path(path)
    if is_bed_path(path):
        table, first_row = read_bed_genes(path), 1
    else:
        table = read_tsv(path, required=GENE_COLUMNS, dtypes={"start": pl.Int64, "end": pl.Int64})
        first_row = 2
    table = table.with_columns(row=pl.int_range(first_row, first_row + pl.len(), dtype=pl.Int64))
    for column in GENE_COLUMNS:
        empty = table[column].is_null()
        if empty.any():
            raise InputError("empty value", path, int(table["row"][int(empty.arg_true()[0])]), column)
    bad_start = table["start"] < 1
    if bad_start.any():
        i = int(bad_start.arg_true()[0])
        raise InputError(f"start {table['start'][i]} is below 1 (positions are 1-based)", path,
                         int(table["row"][i]), "start")
    bad_end = table["end"] < table["start"]
    if bad_end.any():
        i = int(bad_end.arg_true()[0])
        raise InputError(f"end {table['end'][i]} is before start {table['start'][i]}", path,
                         int(table["row"][i]), "end")
    duplicated = table["gene"].is_duplicated()
    if duplicated.any():
        i = int(duplicated.arg_true()[1])
        raise InputError(f"gene {table['gene'][i]!r} appears more than once", path,
                         int(table["row"][i]), "gene")
    if table.height == 0:
        raise InputError("no genes", path)
    return table.select(
        "gene", chrom=normalize_chrom(pl.col("chrom")), start="start", end="end", row="row")


def read_bed_genes(path: Path) -> pl.DataFrame:
    """A BED file (no header, 0-based half-open) as chrom/start/end/gene with 1-based inclusive bounds."""
    try:
        raw = pl.read_csv(path, separator="\t", has_header=False, infer_schema=False,
                          comment_prefix="#")
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as error:
        raise InputError(f"cannot parse as BED ({str(error).splitlines()[0]})", path) from None
    if raw.width < 4:
        raise InputError(f"BED needs at least 4 columns (chrom, start, end, name); found {raw.width}", path)
    raw = raw.select(raw.columns[:4]).rename(dict(zip(raw.columns[:4], GENE_COLUMNS)))
    for column in ("start", "end"):
        cast = raw[column].cast(pl.Int64, strict=False)
        bad = cast.is_null() & raw[column].is_not_null()
        if bad.any():
            i = int(bad.arg_true()[0])
            raise InputError(f"value {raw[column][i]!r} is not an integer", path, i + 1, column)
        raw = raw.with_columns(cast)
    return raw.with_columns(pl.col("start") + 1)


def gene_variant_pairs(bim: pl.DataFrame, genes: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(variant_idx, gene_idx), each (n_pairs,): every .bim variant inside every gene region."""
    chrom = bim.select(normalize_chrom(pl.col("CHROM"))).to_series().to_numpy()
    pos = bim["POS"].to_numpy()
    variant_parts, gene_parts = [], []
    for name in np.unique(genes["chrom"].to_numpy()):
        on_chrom = np.flatnonzero(chrom == name)
        if not len(on_chrom):
            continue
        order = on_chrom[np.argsort(pos[on_chrom], kind="stable")]
        sorted_pos = pos[order]
        gene_idx = np.flatnonzero(genes["chrom"].to_numpy() == name)
        lo = np.searchsorted(sorted_pos, genes["start"].to_numpy()[gene_idx], side="left")
        hi = np.searchsorted(sorted_pos, genes["end"].to_numpy()[gene_idx], side="right")
        sizes = hi - lo
        gene_parts.append(np.repeat(gene_idx, sizes))
        # positions lo..hi-1 of each gene, concatenated
        offsets = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        variant_parts.append(order[np.repeat(lo, sizes) + offsets])
    if not variant_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(variant_parts).astype(np.int64), np.concatenate(gene_parts).astype(np.int64)


def madsen_browning_weight(minor_count: np.ndarray, n_called: np.ndarray) -> np.ndarray:
    """w_v = 1 / sqrt(n_v q_v (1 - q_v)), q_v = (m_v + 1) / (2 n_v + 2); inputs and output (n_variants,)."""
    q = (minor_count + 1.0) / (2.0 * n_called + 2.0)
    return 1.0 / np.sqrt(n_called * q * (1.0 - q))


@dataclass
class ChunkAlleles:
    """Per chunk of variants: minor-allele counts (n_chunk, n_samples) int8 (missing -> 0) and per-variant stats."""

    minor: np.ndarray
    n_called: np.ndarray
    n_missing: np.ndarray
    minor_total: np.ndarray
    maf: np.ndarray


def minor_allele_counts(chunk: np.ndarray) -> ChunkAlleles:
    """Minor allele (by sample frequency) counts of a genotype chunk ``(n_chunk, n_samples)`` of ALT counts."""
    called = chunk >= 0
    n_called = called.sum(axis=1)
    alt = np.where(called, chunk, 0)
    alt_total = alt.sum(axis=1, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n_called > 0, alt_total / (2.0 * n_called), 0.0)
    ref_is_minor = p > 0.5
    minor = np.where(ref_is_minor[:, None] & called, 2 - alt, alt).astype(np.int8)
    minor_total = np.where(ref_is_minor, 2 * n_called - alt_total, alt_total)
    return ChunkAlleles(minor, n_called, chunk.shape[1] - n_called, minor_total, np.minimum(p, 1 - p))


def burden_scores(genotypes: Genotypes, genes: pl.DataFrame, max_maf: float = DEFAULTS.max_maf,
                  mode: str = DEFAULTS.mode, min_carriers: int = DEFAULTS.min_carriers,
                  chunk_size: int = DEFAULTS.chunk_size) -> BurdenResult:
    """Burden matrix over all genes and the per-gene summary (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    n, n_genes = genotypes.n_samples, genes.height
    pair_variant, pair_gene = gene_variant_pairs(genotypes.bim, genes)
    variant_idx = np.unique(pair_variant)
    order = np.argsort(pair_variant, kind="stable")
    pair_variant, pair_gene = pair_variant[order], pair_gene[order]
    total = sp.csr_matrix((n, n_genes), dtype=np.float64)
    n_rare = np.zeros(n_genes, np.int64)
    n_missing = np.zeros(n_genes, np.int64)
    n_common = n_monomorphic = 0
    for chunk_idx, chunk in genotypes.iter_chunks(chunk_size, variant_idx=variant_idx):
        stats = minor_allele_counts(chunk)
        rare = (stats.maf > 0) & (stats.maf <= max_maf)
        n_monomorphic += int((stats.maf == 0).sum())
        n_common += int((stats.maf > max_maf).sum())
        lo, hi = np.searchsorted(pair_variant, [chunk_idx[0], chunk_idx[-1] + 1])
        local = np.searchsorted(chunk_idx, pair_variant[lo:hi])  # pair -> row of chunk
        genes_here = pair_gene[lo:hi]
        use = rare[local]
        local, genes_here = local[use], genes_here[use]
        np.add.at(n_rare, genes_here, 1)
        np.add.at(n_missing, genes_here, stats.n_missing[local])
        if mode == "weighted":
            value = madsen_browning_weight(stats.minor_total, stats.n_called)[local]
        else:
            value = np.ones(len(local))
        incidence = sp.csr_matrix((value, (local, genes_here)), shape=(len(chunk), n_genes))
        carried = stats.minor > 0 if mode == "carrier" else stats.minor
        samples_by_variant = sp.csr_matrix(carried[rare].T.astype(np.float64))  # (n_samples, n_rare)
        total = total + samples_by_variant @ incidence[np.flatnonzero(rare)]
    total = total.tocsr()
    if mode == "carrier":
        total.data = (total.data > 0).astype(np.float64)
    total.eliminate_zeros()
    n_carriers = np.diff(total.tocsc().indptr)
    if mode != "carrier":  # carriers = people with any minor allele, whatever the mode
        n_carriers = np.diff((total > 0).tocsc().indptr)
    summary = genes.select("gene", "chrom", "start", "end").with_columns(
        n_variants=pl.Series(n_rare), n_carriers=pl.Series(n_carriers.astype(np.int64)),
        n_missing_calls=pl.Series(n_missing),
        kept=pl.Series(n_carriers >= min_carriers),
    )
    log.info("%d variants inside genes: %d rare (0 < MAF <= %g), %d above the MAF limit, %d monomorphic",
             len(variant_idx), len(variant_idx) - n_common - n_monomorphic, max_maf, n_common,
             n_monomorphic)
    log.info("%d of %d genes kept; %d dropped with fewer than %d carriers (%d of them without any "
             "rare variant)", int(summary["kept"].sum()), n_genes, int((~summary["kept"]).sum()),
             min_carriers, int((summary["n_variants"] == 0).sum()))
    return BurdenResult(genotypes.fam["IID"].to_numpy(), total.astype(np.float32), summary)


def gene_burden(bfile: str | Path | Sequence[str | Path], genes_path: str | Path,
                max_maf: float = DEFAULTS.max_maf, mode: str = DEFAULTS.mode,
                min_carriers: int = DEFAULTS.min_carriers,
                chunk_size: int = DEFAULTS.chunk_size) -> BurdenResult:
    """Open the genotypes and gene table, compute burden.

    When no gene is kept (e.g. common-variant array data without variants of MAF <= ``max_maf``)
    the result is still valid: its modality has zero features and every person, and a warning
    says so; training leaves such a modality out.
    """
    genotypes = Genotypes.open(bfile)
    genes = read_gene_table(genes_path)
    result = burden_scores(genotypes, genes, max_maf, mode, min_carriers, chunk_size)
    if not result.genes["kept"].any():
        log.warning("no gene has at least %d carrier(s) of rare variants (MAF <= %g) in these "
                    "genotypes: the burden modality is empty (0 features) and training leaves it "
                    "out; burden needs rare variants (exome or imputed data, or a higher --max-maf)",
                    min_carriers, max_maf)
    return result


def output_paths(out: str | Path) -> dict[str, Path]:
    """The files ``contig burden --out OUT`` writes."""
    return {"modality": Path(f"{out}.npz"), "genes": Path(f"{out}.genes.tsv")}


def write_burden_outputs(result: BurdenResult, out: str | Path, mode: str) -> dict[str, Path]:
    """Write OUT.npz (kept genes, CSR) and OUT.genes.tsv (all genes), all or nothing."""
    paths = output_paths(out)
    modality = result.kept_modality(mode)
    with atomic_paths(list(paths.values())) as (npz_tmp, genes_tmp):
        save_modality(npz_tmp, modality)
        result.genes.write_csv(genes_tmp, separator="\t")
    return paths
