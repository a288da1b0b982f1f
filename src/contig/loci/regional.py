"""Regional plots of lead loci: −log10 p against position within ``window_kb`` of the lead
variant, points coloured by their r² with the lead variant, genes drawn underneath.

r² is the squared Pearson correlation of ALT allele counts over the people observed at both
variants: what ``plink1.9 --r2`` reports (and plink2's ``--r2-unphased``; tests/test_loci.py
checks it against plink 1.9). It comes from the genotypes given (the QC'd fileset), restricted to the
GWAS people (``keep``), so it is the LD of the people tested. Clumping uses the EM haplotype r²
of plink's ``--clump`` instead (:func:`contig.gwas.clump.haplotype_r2`); the two agree closely in
common variants and differ most where genotypes are phase-ambiguous.

The ``max_plots`` loci with the smallest p get a plot; loci are taken in that order. The figures
are drawn by :mod:`contig.loci.plots`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from contig.core.errors import InputError
from contig.genotypes.plinkio import Genotypes
from contig.gwas.stats import GENOME_WIDE
from contig.gwas.sumstats import DEFAULT_P_COLUMN
from contig.scores.pgs_catalog import normalize_chrom

REGIONAL_COLUMNS = {"LOCUS": pl.Int64, "LEAD_ID": pl.Utf8, "CHROM": pl.Utf8, "POS": pl.Int64,
                    "ID": pl.Utf8, "LOG10P": pl.Float64, "R2": pl.Float64}


@dataclass(frozen=True)
class RegionalSettings:
    """Settings of ``contig regional-plots`` (its flag defaults)."""

    window_kb: float = 500.0  # either side of the lead variant
    max_plots: int = 10  # loci plotted per GWAS, smallest p first
    threshold: float = GENOME_WIDE  # the dashed significance line
    p_column: str = DEFAULT_P_COLUMN  # the −log10 p column plotted

    def validate(self) -> None:
        """Raise InputError for a setting out of range."""
        if not self.window_kb > 0:
            raise InputError(f"must be positive, got {self.window_kb:g}", None, None, "--window-kb")
        if self.max_plots < 0:
            raise InputError(f"must not be negative, got {self.max_plots}", None, None, "--max-plots")
        if not 0 < self.threshold <= 1:
            raise InputError(f"must be in (0, 1], got {self.threshold:g}", None, None, "--threshold")


def r2_with_lead(lead: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Squared correlation of int8 ALT counts ``lead (n,)`` with each row of ``others (m, n)``
    (-9 = missing) over the people observed at both, ``(m,)``; NaN where either variant is
    constant there."""
    both = (others >= 0) & (lead >= 0)[None, :]
    x = np.where(both, lead[None, :], 0).astype(np.float64)
    y = np.where(both, others, 0).astype(np.float64)
    n = both.sum(axis=1).astype(np.float64)
    sx, sy = x.sum(axis=1), y.sum(axis=1)
    sxy, sxx, syy = (x * y).sum(axis=1), (x * x).sum(axis=1), (y * y).sum(axis=1)
    cov = n * sxy - sx * sy
    vx, vy = n * sxx - sx * sx, n * syy - sy * sy
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((vx > 0) & (vy > 0), cov * cov / (vx * vy), np.nan)


def plotted_loci(loci: pl.DataFrame, max_plots: int) -> pl.DataFrame:
    """The ``max_plots`` loci with the largest LOG10P (ties: the loci table's order)."""
    return loci.with_row_index("ORDER").sort(["LOG10P", "ORDER"], descending=[True, False]) \
        .head(max_plots).drop("ORDER")


def window_variants(sumstats: pl.DataFrame, chrom: str, pos: int, window_bp: float,
                    p_column: str) -> pl.DataFrame:
    """CHROM POS ID LOG10P of the variants of ``sumstats`` on ``chrom`` within ``window_bp`` of
    ``pos`` (inclusive) that have a p-value, by position."""
    column = pl.col(p_column)
    return (sumstats.filter((pl.col("CHROM") == chrom) & ((pl.col("GENPOS") - pos).abs() <= window_bp)
                            & column.is_not_null() & column.is_not_nan())
            .select("CHROM", pl.col("GENPOS").alias("POS"), "ID", column.alias("LOG10P"))
            .sort("POS", "ID"))


def window_r2(variants: pl.DataFrame, lead_id: str, genotypes: Genotypes, bim_index: dict[str, int],
              sample_idx: np.ndarray | None) -> np.ndarray:
    """r² of each of ``variants`` (ID) with ``lead_id`` from ``genotypes`` ``(n_variants,)``; NaN
    for a variant (or a lead) absent from the .bim."""
    ids = variants["ID"].to_list()
    r2 = np.full(len(ids), np.nan)
    if lead_id not in bim_index:
        return r2
    present = [i for i, v in enumerate(ids) if v in bim_index]
    if present:
        wanted = np.array([bim_index[ids[i]] for i in present])
        unique = np.unique(np.append(wanted, bim_index[lead_id]))  # the lead is usually among them
        geno = genotypes.read(unique, sample_idx)
        lead = geno[np.searchsorted(unique, bim_index[lead_id])]
        r2[present] = r2_with_lead(lead, geno[np.searchsorted(unique, wanted)])
    return r2


def regional_tables(loci: pl.DataFrame, sumstats: pl.DataFrame, genotypes: Genotypes,
                    settings: RegionalSettings, sample_idx: np.ndarray | None = None
                    ) -> Iterator[tuple[dict, pl.DataFrame]]:
    """For each plotted locus (see :func:`plotted_loci`), its row of ``loci`` and its window's
    variants with :data:`REGIONAL_COLUMNS`."""
    bim_index = {v: i for i, v in enumerate(genotypes.bim["ID"].cast(pl.Utf8).to_list())}
    sumstats = sumstats.with_columns(normalize_chrom(pl.col("CHROM")))
    for row in plotted_loci(loci, settings.max_plots).iter_rows(named=True):
        variants = window_variants(sumstats, str(row["CHROM"]), int(row["LEAD_POS"]),
                                   settings.window_kb * 1000.0, settings.p_column)
        r2 = window_r2(variants, row["LEAD_ID"], genotypes, bim_index, sample_idx)
        yield row, variants.with_columns(
            pl.lit(row["LOCUS"], dtype=pl.Int64).alias("LOCUS"), pl.lit(row["LEAD_ID"]).alias("LEAD_ID"),
            pl.Series("R2", r2, dtype=pl.Float64)).select(list(REGIONAL_COLUMNS))


def regional_file_name(locus: int, lead_id: str) -> str:
    """The PNG name of a locus' plot: locus<N>_<lead id> with characters unsafe in a file name
    replaced."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in lead_id)
    return f"locus{locus}_{safe}.png"
