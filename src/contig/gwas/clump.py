"""LD clumping of summary statistics into independent loci, with plink 1.9 ``--clump`` semantics.

Greedy, by ascending p: every variant with ``p ≤ p1`` that is not yet in a clump becomes an index
variant; its clump takes every variant not yet in a clump on the same chromosome less than ``kb``
kilobases away with ``r² > r2`` with the index variant, whatever its p: these are counted in
``TOTAL`` and the p-value bins (NSIG p > 0.05, S05, S01, S001, S0001 p ≤ 1e-4) and can join no
later clump, and those with ``p ≤ p2`` are listed in ``SP2`` and define the locus span. Ties in p
keep the file order. This is what plink 1.9 does (matched on simulated data, including the
strict distance bound and the fate of variants with p > p2).

r² is what plink 1.9 uses for clumping (checked against ``plink1.9 --clump`` and ``--ld``): the
haplotype r² from two-locus haplotype frequencies estimated by EM from the unphased genotypes of
the people observed at both variants, not the squared genotype correlation of ``--r2``. LD comes
from the people given (all of the .fam, or ``keep``).

With several summary-statistics files a variant takes its smallest p across them. The p-value
column is ``LOG10P`` by default (the min-p × k combination in a combined table), or any other
−log10 p column such as ``LOG10P_JOINT`` (the joint test). Genotypes are read only in the
windows around index variants, so memory stays small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_paths
from contig.core.errors import InputError
from contig.genotypes.plinkio import Genotypes
from contig.gwas.stats import GENOME_WIDE
from contig.gwas.sumstats import DEFAULT_P_COLUMN, read_sumstats


@dataclass(frozen=True)
class ClumpSettings:
    """plink 1.9's ``--clump-p1/-p2/-r2/-kb`` (and the defaults of ``contig clump``)."""

    p1: float = GENOME_WIDE  # index variants: p at or below this
    p2: float = 1e-7  # clumped variants listed in SP2 and spanning the locus: p at or below this
    r2: float = 0.1  # LD with the index variant above this joins its clump
    kb: float = 250.0  # window either side of the index variant, kilobases
    p_column: str = DEFAULT_P_COLUMN  # the −log10 p column clumped

    def validate(self) -> None:
        """Refuse out-of-range values (InputError naming the option)."""
        for name in ("p1", "p2"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise InputError(f"must be in (0, 1], got {value:g}", f"--{name}")
        if not 0.0 <= self.r2 <= 1.0:
            raise InputError(f"must be in [0, 1], got {self.r2:g}", "--r2")
        if not self.kb > 0:
            raise InputError(f"must be positive, got {self.kb:g}", "--kb")


CLUMP_DEFAULTS = ClumpSettings()


@dataclass
class ClumpResult:
    """``clumps``: one row per index variant (plink .clumped-like); ``loci``: their spans."""

    clumps: pl.DataFrame
    loci: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


def merge_sumstats(paths: Sequence[str | Path], p_column: str = CLUMP_DEFAULTS.p_column) -> pl.DataFrame:
    """CHROM GENPOS ID LOG10P per variant ID: the largest value of the −log10 p column
    ``p_column`` (smallest p) across files, named LOG10P."""
    tables = [read_sumstats(p, p_column).select("CHROM", "GENPOS", "ID", pl.col(p_column).alias("LOG10P"))
              .with_row_index("ORDER").with_columns(pl.lit(i).alias("FILE")) for i, p in enumerate(paths)]
    merged = pl.concat(tables).filter(pl.col("LOG10P").is_not_null() & pl.col("LOG10P").is_not_nan())
    return (merged.sort(["ID", "LOG10P", "FILE", "ORDER"], descending=[False, True, False, False])
            .unique("ID", keep="first", maintain_order=True)
            .sort(["FILE", "ORDER"]).drop("FILE", "ORDER"))


def haplotype_r2(index: np.ndarray, others: np.ndarray, iterations: int = 1000) -> np.ndarray:
    """Haplotype r² of int8 ALT counts ``index (n,)`` with each row of ``others (m, n)`` (-9 =
    missing), from two-locus haplotype frequencies estimated by EM over the people observed at
    both; NaN where a variant is monomorphic there. Only double heterozygotes are phase-ambiguous.
    """
    a = [(index == g).astype(np.float64) for g in range(3)]  # (n,) indicators
    table = np.stack([np.stack([(others == h).astype(np.float64) @ a[g] for h in range(3)], axis=-1)
                      for g in range(3)], axis=1)  # (m, g, h) genotype counts
    n22, n21, n20 = table[:, 2, 2], table[:, 2, 1], table[:, 2, 0]
    n12, n11, n10 = table[:, 1, 2], table[:, 1, 1], table[:, 1, 0]
    n02, n01, n00 = table[:, 0, 2], table[:, 0, 1], table[:, 0, 0]
    # Haplotype counts resolved without ambiguity: "11" = ALT at both, "10" = ALT at index only.
    k11 = 2 * n22 + n21 + n12
    k10 = 2 * n20 + n21 + n10
    k01 = 2 * n02 + n12 + n01
    k00 = 2 * n00 + n10 + n01
    total = 2 * table.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.full(len(total), 0.5)  # P(double heterozygote is 11/00 rather than 10/01)
        for _ in range(iterations):
            f11, f10 = (k11 + n11 * share) / total, (k10 + n11 * (1 - share)) / total
            f01, f00 = (k01 + n11 * (1 - share)) / total, (k00 + n11 * share) / total
            cis, trans = f11 * f00, f10 * f01
            new = np.where(cis + trans > 0, cis / (cis + trans), 0.5)
            if np.nanmax(np.abs(new - share), initial=0.0) < 1e-13:
                share = new
                break
            share = new
        f11 = (k11 + n11 * share) / total
        p_index = f11 + (k10 + n11 * (1 - share)) / total
        p_other = f11 + (k01 + n11 * (1 - share)) / total
        d = f11 - p_index * p_other
        return d * d / (p_index * (1 - p_index) * p_other * (1 - p_other))


def _p_bins(log10p: np.ndarray) -> dict[str, int]:
    """plink's counts of clumped variants: NSIG p > 0.05, S05 (0.01, 0.05], S01 (0.001, 0.01],
    S001 (1e-4, 0.001], S0001 p ≤ 1e-4."""
    edges = [-np.log10(x) for x in (0.05, 0.01, 0.001, 1e-4)]
    return {"NSIG": int((log10p < edges[0]).sum()),
            "S05": int(((log10p >= edges[0]) & (log10p < edges[1])).sum()),
            "S01": int(((log10p >= edges[1]) & (log10p < edges[2])).sum()),
            "S001": int(((log10p >= edges[2]) & (log10p < edges[3])).sum()),
            "S0001": int((log10p >= edges[3]).sum())}


def clump(sumstats: pl.DataFrame, genotypes: Genotypes, p1: float = CLUMP_DEFAULTS.p1,
          p2: float = CLUMP_DEFAULTS.p2, r2: float = CLUMP_DEFAULTS.r2, kb: float = CLUMP_DEFAULTS.kb,
          sample_idx: np.ndarray | None = None) -> ClumpResult:
    """Clump ``sumstats`` (CHROM GENPOS ID LOG10P) using LD from ``genotypes`` (see module doc)."""
    ClumpSettings(p1, p2, r2, kb).validate()
    counts = {"variants": sumstats.height}
    bim = genotypes.bim.with_row_index("VIDX")
    if bim["ID"].is_duplicated().any():
        raise InputError("variant IDs in the .bim are not unique; clumping matches by ID",
                         genotypes.parts[0].prefix)
    joined = sumstats.with_row_index("ORDER").join(
        bim.select("ID", "VIDX", pl.col("CHROM").alias("BIM_CHROM"), pl.col("POS").alias("BIM_POS")),
        on="ID", how="left")
    absent = joined["VIDX"].is_null()
    counts["not_in_bim"] = int(absent.sum())
    joined = joined.filter(~absent).sort("ORDER")
    chrom = joined["BIM_CHROM"].to_numpy().astype(str)
    pos = joined["BIM_POS"].to_numpy()
    ids = joined["ID"].to_numpy().astype(str)
    lp = joined["LOG10P"].to_numpy()
    vidx = joined["VIDX"].to_numpy().astype(np.int64)
    p1_log, p2_log = -np.log10(p1), -np.log10(p2)
    order = np.argsort(-lp, kind="stable")
    order = order[lp[order] >= p1_log]
    counts["index_candidates"] = len(order)
    clumped = np.zeros(len(lp), dtype=bool)
    window = kb * 1000.0
    rows, loci = [], []
    for i in order:
        if clumped[i]:
            continue
        clumped[i] = True
        near = np.flatnonzero((chrom == chrom[i]) & (np.abs(pos - pos[i]) < window) & ~clumped)
        if near.size:
            geno = genotypes.read(np.concatenate([[vidx[i]], vidx[near]]), sample_idx)
            near = near[haplotype_r2(geno[0], geno[1:]) > r2]
        bins = _p_bins(lp[near])
        clumped[near] = True  # plink: every variant counted in TOTAL is taken, whatever its p
        members = near[lp[near] >= p2_log]
        members = members[np.argsort(pos[members], kind="stable")]
        span = np.concatenate([[pos[i]], pos[members]])
        rows.append({"CHROM": chrom[i], "POS": int(pos[i]), "ID": ids[i], "P": float(10 ** -lp[i]),
                     "LOG10P": float(lp[i]), "TOTAL": int(near.size), **bins,
                     "SP2": ",".join(ids[members]) if members.size else "NONE"})
        loci.append({"LOCUS": len(loci) + 1, "LEAD_ID": ids[i], "CHROM": chrom[i], "LEAD_POS": int(pos[i]),
                     "START": int(span.min()), "END": int(span.max()), "N_VARIANTS": int(span.size),
                     "P": float(10 ** -lp[i]), "LOG10P": float(lp[i])})
    counts["loci"] = len(loci)
    clump_schema = {"CHROM": pl.Utf8, "POS": pl.Int64, "ID": pl.Utf8, "P": pl.Float64,
                    "LOG10P": pl.Float64, "TOTAL": pl.Int64, "NSIG": pl.Int64, "S05": pl.Int64,
                    "S01": pl.Int64, "S001": pl.Int64, "S0001": pl.Int64, "SP2": pl.Utf8}
    loci_schema = {"LOCUS": pl.Int64, "LEAD_ID": pl.Utf8, "CHROM": pl.Utf8, "LEAD_POS": pl.Int64,
                   "START": pl.Int64, "END": pl.Int64, "N_VARIANTS": pl.Int64, "P": pl.Float64,
                   "LOG10P": pl.Float64}
    return ClumpResult(pl.DataFrame(rows, schema=clump_schema), pl.DataFrame(loci, schema=loci_schema),
                       counts)


def read_keep(path: str | Path, genotypes: Genotypes) -> np.ndarray:
    """Sorted .fam indices of the IIDs in ``path`` (a TSV with an IID column, or a plink keep
    file with FID and IID, no header)."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise InputError("empty file", path)
    header = [h.lstrip("#") for h in lines[0]]
    if "IID" in header:
        column = header.index("IID")
        iids = {fields[column] for fields in lines[1:]}
    else:
        iids = {fields[1] if len(fields) > 1 else fields[0] for fields in lines}
    fam_iid = genotypes.fam["IID"].to_numpy().astype(str)
    idx = np.flatnonzero(np.isin(fam_iid, list(iids)))
    if idx.size == 0:
        raise InputError("no IID of this file is in the .fam", path)
    return idx


def write_clump_outputs(result: ClumpResult, out: str | Path) -> dict[str, Path]:
    """Write OUT.tsv (the loci), OUT.clumps.tsv and OUT.summary.tsv (counts), atomically."""
    out = str(out)
    paths = {"clumps": Path(out + ".clumps.tsv"), "loci": Path(out + ".tsv"),
             "summary": Path(out + ".summary.tsv")}
    with atomic_paths(list(paths.values())) as (clumps, loci, summary):
        result.clumps.write_csv(clumps, separator="\t")
        result.loci.write_csv(loci, separator="\t")
        pl.DataFrame({"KEY": list(result.counts), "VALUE": list(result.counts.values())}).write_csv(
            summary, separator="\t")
    return paths
