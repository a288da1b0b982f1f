"""Lead loci with their genes, the phenotypes they are significant for, and replication in the
other eye.

Genes (``chrom start end gene``, 1-based inclusive, as ``contig burden`` reads them): the distance
of a lead variant at ``pos`` to a gene body ``[start, end]`` is 0 inside it, ``start - pos``
before it and ``pos - end`` after it. Each locus gets

- OVERLAPPING_GENES: the genes whose body overlaps the locus span START..END;
- NEAREST_GENE / NEAREST_DISTANCE: the gene(s) closest to the lead variant (0 = the lead lies
  in it), every gene tied at that distance listed;
- GENE_BEFORE / DISTANCE_BEFORE and GENE_AFTER / DISTANCE_AFTER: the closest gene entirely
  below and entirely above the lead position (ties listed).

Lists are in genome order (start, end, then name), comma-separated; ``NONE`` when empty, NA
distances where no gene qualifies.

Phenotypes: a locus is significant for a phenotype when its lead variant's p in that
phenotype's summary statistics is at or below ``threshold`` (``gwas.threshold``).

Replication: for each other eye given (the per-eye GWAS of the people with both eyes), the lead
variant's p in that eye's combined summary statistics, and whether it is below
``alpha / n_loci`` (the criterion of :mod:`contig.evaluate.replicate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.errors import InputError
from contig.core.tables import read_tsv, write_tsv
from contig.evaluate.replicate import ReplicationSettings, replicate_direction
from contig.evaluate.truth import phenotype_sumstats_paths, read_loci
from contig.gwas.stats import GENOME_WIDE
from contig.gwas.sumstats import DEFAULT_P_COLUMN, read_sumstats
from contig.gwas.wide import read_phenotype_sumstats
from contig.scores.burden import read_gene_table

NONE = "NONE"


@dataclass(frozen=True)
class AnnotateSettings:
    """Settings of ``contig annotate-loci`` (its flag defaults)."""

    threshold: float = GENOME_WIDE  # a phenotype counts when the lead's p is at or below this
    alpha: float = ReplicationSettings.alpha  # replicated: p in the other eye < alpha / n_loci
    p_column: str = DEFAULT_P_COLUMN  # the -log10 p column of the other eye's combined table

    def validate(self) -> None:
        """Raise InputError for a setting out of range."""
        if not 0 < self.threshold <= 1:
            raise InputError(f"must be in (0, 1], got {self.threshold:g}", None, None, "--threshold")
        if not 0 < self.alpha < 1:
            raise InputError(f"must be in (0, 1), got {self.alpha:g}", None, None, "--alpha")


def gene_distances(pos: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Signed distance of position ``pos`` to each gene body ``(n_genes,)``: 0 inside, negative
    when the gene lies entirely below ``pos`` (``end - pos``), positive above (``start - pos``)."""
    return np.where(ends < pos, ends - pos, np.where(starts > pos, starts - pos, 0))


def _genome_order(genes: pl.DataFrame) -> pl.DataFrame:
    return genes.sort(["start", "end", "gene"])


def _joined(names: list[str]) -> str:
    return ",".join(names) if names else NONE


def closest(genes: pl.DataFrame, distance: np.ndarray, mask: np.ndarray) -> tuple[str, int | None]:
    """The genes among ``mask`` at the smallest ``distance`` (all of them when tied, in the table's
    order) and that distance; ``NONE`` and None when ``mask`` selects nothing."""
    if not mask.any():
        return NONE, None
    best = distance[mask].min()
    names = genes["gene"].to_numpy()[mask & (distance == best)]
    return _joined([str(n) for n in names]), int(best)


def locus_genes(genes: pl.DataFrame, pos: int, start: int, end: int) -> dict[str, object]:
    """The gene columns of one locus (see the module doc); ``genes`` are those of its chromosome
    in genome order."""
    starts, ends = genes["start"].to_numpy(), genes["end"].to_numpy()
    signed = gene_distances(pos, starts, ends)
    distance = np.abs(signed)
    overlapping = (starts <= end) & (ends >= start)
    nearest, nearest_d = closest(genes, distance, np.ones(len(distance), dtype=bool))
    before, before_d = closest(genes, distance, signed < 0)
    after, after_d = closest(genes, distance, signed > 0)
    return {"OVERLAPPING_GENES": _joined([str(g) for g in genes["gene"].to_numpy()[overlapping]]),
            "NEAREST_GENE": nearest, "NEAREST_DISTANCE": nearest_d,
            "GENE_BEFORE": before, "DISTANCE_BEFORE": before_d,
            "GENE_AFTER": after, "DISTANCE_AFTER": after_d}


GENE_SCHEMA = {"OVERLAPPING_GENES": pl.Utf8, "NEAREST_GENE": pl.Utf8, "NEAREST_DISTANCE": pl.Int64,
               "GENE_BEFORE": pl.Utf8, "DISTANCE_BEFORE": pl.Int64, "GENE_AFTER": pl.Utf8,
               "DISTANCE_AFTER": pl.Int64}


def annotate_genes(loci: pl.DataFrame, genes: pl.DataFrame) -> pl.DataFrame:
    """The gene columns :data:`GENE_SCHEMA` of every locus of ``loci`` (CHROM LEAD_POS START END,
    chromosomes normalized as :func:`read_gene_table` does), one row per locus in order."""
    by_chrom = {str(c[0]): _genome_order(t) for c, t in genes.group_by(["chrom"])}
    empty = genes.clear()
    rows = [locus_genes(by_chrom.get(str(chrom), empty), int(pos), int(start), int(end))
            for chrom, pos, start, end in loci.select("CHROM", "LEAD_POS", "START", "END").iter_rows()]
    return pl.DataFrame(rows, schema=GENE_SCHEMA, orient="row")


def significant_phenotypes(lead_ids: list[str], pheno_paths: Mapping[str, str | Path],
                           threshold: float) -> pl.DataFrame:
    """N_SIGNIFICANT_PHENOTYPES and SIGNIFICANT_PHENOTYPES (names in the order of
    ``pheno_paths``) of each lead variant: the phenotypes whose p is at or below ``threshold``."""
    cut = -np.log10(threshold)
    hits: dict[str, list[str]] = {lead: [] for lead in lead_ids}
    for name, path in pheno_paths.items():
        table = read_phenotype_sumstats(path, name).filter(pl.col("ID").is_in(lead_ids))
        # polars orders NaN above every number: keep it out explicitly
        significant = table.filter(pl.col("LOG10P").is_not_nan() & (pl.col("LOG10P") >= cut))
        for lead in significant["ID"].unique(maintain_order=True):
            hits[lead].append(name)
    return pl.DataFrame({"N_SIGNIFICANT_PHENOTYPES": [len(hits[v]) for v in lead_ids],
                         "SIGNIFICANT_PHENOTYPES": [_joined(hits[v]) for v in lead_ids]},
                        schema={"N_SIGNIFICANT_PHENOTYPES": pl.Int64, "SIGNIFICANT_PHENOTYPES": pl.Utf8})


def clump_sizes(loci: pl.DataFrame, clumps_path: str | Path) -> pl.Series:
    """CLUMP_VARIANTS of each locus: its index variant plus every variant it clumped (plink's
    TOTAL + 1, from ``contig clump``'s OUT.clumps.tsv), matched by lead variant ID."""
    clumps = read_tsv(clumps_path, required=["ID", "TOTAL"], dtypes={"TOTAL": pl.Int64})
    joined = loci.select("LEAD_ID").join(clumps.select("ID", "TOTAL").unique("ID", keep="first"),
                                         left_on="LEAD_ID", right_on="ID", how="left")
    if joined["TOTAL"].is_null().any():
        lead = joined.filter(pl.col("TOTAL").is_null())["LEAD_ID"][0]
        raise InputError(f"lead variant {lead} of the loci has no row here", clumps_path, None, "ID")
    return (joined["TOTAL"] + 1).alias("CLUMP_VARIANTS")


def replication_columns(loci: pl.DataFrame, eye: str, sumstats_path: str | Path,
                        settings: AnnotateSettings) -> pl.DataFrame:
    """LOG10P_<EYE> (the lead's −log10 p in that eye's GWAS, NA when absent) and REPLICATED_<EYE>
    (p below alpha / number of loci)."""
    other = read_sumstats(sumstats_path, settings.p_column)
    other = other.select("ID", pl.col(settings.p_column).alias("LOG10P"))
    tested = replicate_direction(loci, other, settings.alpha, "loci", eye)
    suffix = eye.upper()
    return tested.select(pl.col("LOG10P_OTHER").alias(f"LOG10P_{suffix}"),
                         pl.col("REPLICATED").alias(f"REPLICATED_{suffix}"))


def annotate_loci(loci_path: str | Path, clumps_path: str | Path, genes_path: str | Path,
                  pheno_sumstats: str | Path, other_eyes: Mapping[str, str | Path] | None = None,
                  settings: AnnotateSettings = AnnotateSettings()) -> pl.DataFrame:
    """One row per locus of ``loci_path`` (``contig clump``'s OUT.tsv): the locus, CLUMP_VARIANTS,
    the gene columns, the significant phenotypes (``pheno_sumstats``: a folder or prefix, see
    :func:`phenotype_sumstats_paths`) and, per other eye (name -> combined summary statistics),
    the replication columns."""
    settings.validate()
    loci = read_loci(loci_path)
    genes = read_gene_table(genes_path)
    lead_ids = loci["LEAD_ID"].to_list()
    parts = [loci.select("LOCUS", "LEAD_ID", "CHROM", "LEAD_POS", "START", "END", "P", "LOG10P"),
             clump_sizes(loci, clumps_path).to_frame(),
             annotate_genes(loci, genes),
             significant_phenotypes(lead_ids, phenotype_sumstats_paths(pheno_sumstats),
                                    settings.threshold)]
    for eye, path in (other_eyes or {}).items():
        parts.append(replication_columns(loci, eye, path, settings))
    return pl.concat(parts, how="horizontal")


def write_annotated_loci(table: pl.DataFrame, out: str | Path) -> None:
    """Write the annotated loci as TSV (atomically; NA for missing values)."""
    write_tsv(table, out)
