"""Polygenic scores: match PGS Catalog scoring files to the genotypes, then score with plink2 semantics.

Matching (per scoring-file row, first rule that applies gives the status):

- ``absent``: no .bim variant at the row's chromosome + position (or, for rows without a position,
  with its rsID as .bim ID);
- ``multiallelic``: more than one .bim variant there (a split multi-allelic site, or a duplicated ID);
- ``allele_mismatch``: the alleles fit neither directly, swapped, nor on the other strand;
- ``ambiguous``: a strand-ambiguous SNP (A/T or C/G), dropped unless ``keep_ambiguous`` (then it is
  assumed to be on the .bim's strand and gets ``matched``/``flipped``, with ``ambiguous`` = true);
- ``matched``: effect allele = ALT (.bim column 5, the counted allele), other allele = REF;
- ``flipped``: effect allele = REF (allele swap: the dosage is 2 - ALT count);
- ``strand_flipped``: the alleles match after complementing (either orientation; see
  ``effect_is_alt``);
- ``duplicate``: two or more rows of one score matched the same .bim variant: all are dropped.

A missing ``other_allele`` matches any second allele. Only ``matched``, ``flipped`` and
``strand_flipped`` rows are scored.

Scores follow ``plink2 --score FILE cols=+scoresums``, each score run on its own variant set:
``SUM`` = sum over used variants of weight x effect-allele dosage, ``DENOM`` = 2 x number of
used variants, ``AVG`` = SUM / DENOM. A missing genotype is mean-imputed with the dosage
2 x effect-allele frequency among founders (PAT = MAT = 0; all samples when there are none), as
plink2 does; with ``mean_imputation=False`` (plink2 ``no-mean-imputation``) it contributes nothing
and DENOM counts only the person's non-missing alleles. All chromosomes are scored as diploid
(plink2 treats male chrX/chrY genotypes as haploid: not reproduced here).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from contig.core.atomic import atomic_paths
from contig.core.compression import gzip_compress
from contig.core.errors import InputError
from contig.core.parallel import ordered_map
from contig.scores.modality import Modality, save_modality
from contig.scores.pgs_catalog import ScoringFile, by_distinct_values, normalize_chrom, nulls, read_scoring_file
from contig.genotypes.plinkio import Genotypes
from contig.genotypes.sources import DosageSource

log = logging.getLogger(__name__)

USED_STATUSES = ("matched", "flipped", "strand_flipped")
STATUSES = USED_STATUSES + ("ambiguous", "allele_mismatch", "multiallelic", "duplicate", "absent")
LOW_OVERLAP_ACTIONS = ("skip", "fail")
MATCH_LOG_COLUMNS = ["score", "row", "variant", "chrom", "pos", "effect_allele", "other_allele",
                     "effect_weight", "bim_id", "status", "effect_is_alt", "ambiguous"]


@dataclass(frozen=True)
class PrsSettings:
    """The options of :func:`polygenic_scores` (and ``contig prs``) with their defaults."""

    min_overlap: float = 0.75  # a score below this fraction of its variants matched is low, in [0, 1]
    on_low_overlap: str = "skip"  # one of LOW_OVERLAP_ACTIONS: leave such a score out, or fail
    keep_ambiguous: bool = False  # keep A/T and C/G variants, assuming the .bim strand
    mean_imputation: bool = True  # missing calls -> 2 x founder frequency (else they count nothing)
    chunk_size: int = 2048  # variants per streamed chunk
    threads: int = 1  # scoring files parsed and matched at a time


DEFAULTS = PrsSettings()


@dataclass
class ScoreWeights:
    """The matched variants of all scores as sparse matrices over the union of used .bim variants.

    ``variant_idx`` (n_used,) sorted global .bim indices. Each matrix is CSR (n_used, n_scores):
    ``alt_weight`` the weight per ALT allele (+w when the effect allele is ALT, -w when it is REF,
    absent when the score does not use the variant); ``ref_offset`` 2w where the effect allele is REF
    (the dosage is 2 - ALT count); ``member`` 1 where the score uses the variant. Sparse because real
    score sets (hundreds of scores, each on its own million variants) barely overlap; each chunk
    is made dense only while it is multiplied.
    """

    score_ids: list[str]
    variant_idx: np.ndarray
    alt_weight: sp.csr_matrix
    ref_offset: sp.csr_matrix
    member: sp.csr_matrix


@dataclass
class PrsResult:
    """Everything ``contig prs`` writes: scores (n_samples, n_scores), match log and summary tables."""

    iid: np.ndarray
    score_ids: list[str]
    sums: np.ndarray
    denom: np.ndarray
    match_log: pl.DataFrame | None  # None when streamed to a file
    summary: pl.DataFrame  # every score, used or skipped (columns status, reason)

    @property
    def avg(self) -> np.ndarray:
        """SUM / DENOM, (n_samples, n_scores); NaN where a person has no non-missing allele."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sums / self.denom


def complement(expr: pl.Expr) -> pl.Expr:
    """Reverse complement of an ACGT allele; null for anything else (``-``, ``I``/``D``, ``N``)."""
    flipped = expr.str.reverse().str.replace_many(["A", "C", "G", "T"], ["T", "G", "C", "A"])
    return pl.when(expr.str.contains(r"^[ACGT]+$")).then(flipped)


SITE_POSITIONS = 1 << 32  # a site key is chromosome code x this + position (.bim positions are int32)


def upper_case(alleles: pl.Series) -> pl.Series:
    """``alleles`` in upper case; the column itself (no copy) when it already is."""
    if alleles.str.contains("[a-z]").any():
        return alleles.str.to_uppercase()
    return alleles


class BimLookup:
    """Where each chromosome + position and each ID sits in the .bim, for matching scoring files.

    Sites are sorted int64 keys (chromosome code x :data:`SITE_POSITIONS` + position) with the
    first .bim index and the number of .bim variants at each: a few arrays of 8 bytes per variant,
    where two polars group-by tables of the same took ~400 bytes per variant at their peak (a biobank's
    imputed .bim has ~10^7). The ID table is built on first use (rows without a position are rare).
    Safe to share between threads.
    """

    def __init__(self, bim: pl.DataFrame) -> None:
        chrom = by_distinct_values(bim["CHROM"].cast(pl.String), normalize_chrom)
        self.chrom_names = chrom.drop_nulls().unique().sort()
        keys = self.site_keys(chrom, bim["POS"])
        order = np.argsort(keys, kind="stable")  # stable: each site's first .bim index comes first
        sorted_keys = keys[order]
        del keys
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        self.sites = sorted_keys[starts]
        self.site_first = order[starts]
        self.site_count = np.diff(np.r_[starts, len(order)]).astype(np.int32)
        self.variants = bim.select(bim_id=pl.col("ID"), alt=upper_case(bim["ALT"]), ref=upper_case(bim["REF"]))
        self._by_id: pl.DataFrame | None = None
        self._lock = threading.Lock()

    def site_keys(self, chrom: pl.Series, pos: pl.Series) -> np.ndarray:
        """int64 keys of normalized ``chrom`` + ``pos``; -1 where the chromosome is not in the .bim,
        either is null, or the position is out of range (such rows match nothing)."""
        code = chrom.replace_strict(self.chrom_names, pl.int_range(len(self.chrom_names), eager=True),
                                    default=-1, return_dtype=pl.Int64).fill_null(-1).to_numpy()
        position = pos.cast(pl.Int64).fill_null(-1).to_numpy()
        valid = (code >= 0) & (position >= 0) & (position < SITE_POSITIONS)
        return np.where(valid, code * SITE_POSITIONS + position, -1)

    def at_sites(self, chrom: pl.Series, pos: pl.Series) -> tuple[pl.Series, pl.Series]:
        """(first .bim index, number of .bim variants) at each row's site, Int64, null where none."""
        keys = self.site_keys(chrom, pos)
        if not len(self.sites):  # an empty .bim: nothing is anywhere
            return nulls("bim_idx", len(keys), pl.Int64), nulls("n_there", len(keys), pl.Int64)
        at = np.minimum(np.searchsorted(self.sites, keys), len(self.sites) - 1)
        absent = np.flatnonzero((keys < 0) | (self.sites[at] != keys))
        first = pl.Series("bim_idx", self.site_first[at], dtype=pl.Int64)
        count = pl.Series("n_there", self.site_count[at], dtype=pl.Int64)
        return first.scatter(absent, None), count.scatter(absent, None)

    @property
    def by_id(self) -> pl.DataFrame:
        """Per .bim ID (column ``rsid``): how many variants carry it and the first one's index."""
        with self._lock:
            if self._by_id is None:
                self._by_id = self.variants.select("bim_id").with_row_index("bim_idx").group_by(
                    "bim_id").agg(n_there=pl.len(), bim_idx=pl.col("bim_idx").first()) \
                    .rename({"bim_id": "rsid"}).cast({"bim_idx": pl.Int64, "n_there": pl.Int64})
            return self._by_id


def locate_variants(scoring: ScoringFile, lookup: BimLookup) -> pl.DataFrame:
    """Each scoring row with the first .bim variant at its chromosome + position (or with its rsID
    as .bim ID where there is no position): columns n_there, bim_idx, bim_id, alt, ref added, null
    where none is there."""
    variants = scoring.variants
    bim_idx, n_there = lookup.at_sites(variants["chrom"], variants["pos"])
    located = variants.with_columns(n_there=n_there, bim_idx=bim_idx)
    no_position = variants["pos"].is_null()
    if no_position.any():
        by_rsid = variants.filter(no_position).select("row", "rsid").join(
            lookup.by_id, on="rsid", how="left").select("row", "n_there", "bim_idx")
        located = located.update(by_rsid, on="row")
    alleles = lookup.variants.select(pl.all().gather(located["bim_idx"]))
    return located.hstack(alleles)


def classify_matches(located: pl.DataFrame, keep_ambiguous: bool) -> pl.DataFrame:
    """Add ``status``, ``effect_is_alt`` and ``ambiguous`` to located rows (see the module docstring)."""
    located = located.with_columns(effect_c=by_distinct_values(located["effect_allele"], complement),
                                   other_c=by_distinct_values(located["other_allele"], complement),
                                   alt_c=by_distinct_values(located["alt"], complement))
    e, o, e_c, o_c = (pl.col(c) for c in ("effect_allele", "other_allele", "effect_c", "other_c"))
    alt, ref, alt_c = pl.col("alt"), pl.col("ref"), pl.col("alt_c")
    no_other = o.is_null()
    direct = (e == alt) & (no_other | (o == ref))
    swap = (e == ref) & (no_other | (o == alt))
    strand_direct = (e_c == alt) & (no_other | (o_c == ref))
    strand_swap = (e_c == ref) & (no_other | (o_c == alt))
    single = e.str.len_bytes() == 1
    ambiguous = pl.when(no_other).then((alt.str.len_bytes() == 1) & (alt_c == ref)) \
        .otherwise(single & (e_c == o))
    status = (
        pl.when(pl.col("n_there").is_null()).then(pl.lit("absent"))
        .when(pl.col("n_there") > 1).then(pl.lit("multiallelic"))
        .when(~(direct | swap | strand_direct | strand_swap).fill_null(False)).then(pl.lit("allele_mismatch"))
        .when(ambiguous.fill_null(False) & (not keep_ambiguous)).then(pl.lit("ambiguous"))
        .when(direct).then(pl.lit("matched"))
        .when(swap).then(pl.lit("flipped"))
        .otherwise(pl.lit("strand_flipped"))
    )
    effect_is_alt = pl.when(direct).then(True).when(swap).then(False).when(strand_direct).then(True) \
        .when(strand_swap).then(False)
    classified = located.with_columns(
        status=status, effect_is_alt=effect_is_alt, ambiguous=ambiguous.fill_null(False)
    ).drop("effect_c", "other_c", "alt_c")
    return mark_duplicates(classified)


def mark_duplicates(classified: pl.DataFrame) -> pl.DataFrame:
    """Rows of one score that would be scored on the same .bim variant all become ``duplicate``."""
    used = pl.col("status").is_in(USED_STATUSES)
    repeated = (pl.len().over(pl.when(used).then(pl.col("bim_idx"))) > 1) & used
    return classified.with_columns(status=pl.when(repeated).then(pl.lit("duplicate")).otherwise("status"))


def match_scoring_file(scoring: ScoringFile, lookup: BimLookup, keep_ambiguous: bool = False) -> pl.DataFrame:
    """The match log of one score: one row per scoring-file row, columns MATCH_LOG_COLUMNS + ``bim_idx``."""
    located = locate_variants(scoring, lookup)
    classified = classify_matches(located, keep_ambiguous)
    used = pl.col("status").is_in(USED_STATUSES)
    return classified.with_columns(
        score=pl.lit(scoring.score_id),
        bim_idx=pl.when(used).then(pl.col("bim_idx")),
        effect_is_alt=pl.when(used).then(pl.col("effect_is_alt")),
    ).select(MATCH_LOG_COLUMNS + ["bim_idx"])


@dataclass
class MatchedScore:
    """One scoring file, parsed and matched: its match log and, when the log goes to a file, the
    log's rows as one gzip member (``log_gz``; with the header line for the first file)."""

    scoring: ScoringFile
    match_log: pl.DataFrame
    log_gz: bytes | None


def match_score_path(path: str | Path, lookup: BimLookup, genome_build: str | None,
                     keep_ambiguous: bool, log_header: bool | None) -> MatchedScore:
    """Parse and match one scoring file; ``log_header`` None keeps the log only in memory, else it
    is also compressed (with the header line when True)."""
    scoring = read_scoring_file(path, genome_build)
    match_log = match_scoring_file(scoring, lookup, keep_ambiguous)
    log_gz = None
    if log_header is not None:
        text = match_log.drop("bim_idx").write_csv(separator="\t", null_value="NA", include_header=log_header)
        log_gz = gzip_compress(text.encode())
    return MatchedScore(scoring, match_log, log_gz)


def summarize_matches(match_log: pl.DataFrame, scorings: Sequence[ScoringFile]) -> pl.DataFrame:
    """Per score: file, build, variants_in_file, matched (= used), fraction, and ``n_<status>`` counts."""
    counts = match_log.group_by("score", "status").len()
    rows = []
    for scoring in scorings:
        mine = counts.filter(pl.col("score") == scoring.score_id)
        per_status = dict(zip(mine["status"].to_list(), mine["len"].to_list()))
        total = scoring.variants.height
        used = sum(per_status.get(s, 0) for s in USED_STATUSES)
        rows.append({"score": scoring.score_id, "file": str(scoring.path),
                     "genome_build": scoring.genome_build or "NR", "variants_in_file": total,
                     "matched": used, "fraction": used / total}
                    | {f"n_{s}": per_status.get(s, 0) for s in STATUSES})
    return pl.DataFrame(rows)


def low_overlap_reason(row: dict, min_overlap: float) -> str:
    """Why a score's overlap is too low (its summary ``row``), or "" when the score can be used."""
    if row["matched"] > 0 and row["fraction"] >= min_overlap:
        return ""
    dropped = ", ".join(f"{row[f'n_{s}']} {s}" for s in STATUSES[3:] if row[f"n_{s}"])
    return (f"only {row['matched']} of {row['variants_in_file']} variants ({row['fraction']:.1%}) "
            f"match the genotypes, below --min-overlap {min_overlap:g}"
            + (f" ({dropped})" if dropped else ""))


def with_overlap_status(summary: pl.DataFrame, min_overlap: float, on_low_overlap: str) -> pl.DataFrame:
    """Add ``status`` (used/skipped) and ``reason`` to a one-score summary.

    A score below ``min_overlap`` (or with nothing matched) is skipped with a warning, or, with
    ``on_low_overlap="fail"``, stops the run naming its file.
    """
    row = summary.row(0, named=True)
    reason = low_overlap_reason(row, min_overlap)
    if reason and on_low_overlap == "fail":
        raise InputError(f"score {row['score']}: {reason}", row["file"])
    if reason:
        log.warning("score %s skipped: %s", row["score"], reason)
    return summary.with_columns(status=pl.lit("skipped" if reason else "used"), reason=pl.lit(reason))


def check_some_score_used(summary: pl.DataFrame) -> None:
    """Raise when every score was skipped for low overlap (nothing would be scored)."""
    if (summary["status"] == "used").any():
        return
    first = summary.row(0, named=True)
    others = f" (and the other {summary.height - 1})" if summary.height > 1 else ""
    raise InputError(f"score {first['score']}: {first['reason']}; every score{others} is below "
                     "--min-overlap: nothing left to score", first["file"])


def build_weights(used: Sequence[pl.DataFrame], score_ids: Sequence[str]) -> ScoreWeights:
    """Turn each used score's matched rows (columns bim_idx, effect_weight, effect_is_alt; one
    frame per score, in the order of ``score_ids``) into :class:`ScoreWeights`."""
    column = np.repeat(np.arange(len(used)), [frame.height for frame in used])
    used = pl.concat(used)
    bim_idx = used["bim_idx"].to_numpy().astype(np.int64)
    present = np.zeros(int(bim_idx.max()) + 1 if len(bim_idx) else 0, dtype=bool)
    present[bim_idx] = True
    variant_idx = np.flatnonzero(present)
    row = (np.cumsum(present) - 1)[bim_idx]  # position of each row's variant in variant_idx
    weight = used["effect_weight"].to_numpy()
    is_alt = used["effect_is_alt"].to_numpy().astype(bool)
    shape = (len(variant_idx), len(score_ids))
    # One COO -> CSR conversion whose data are the rows' positions (exact in float64) gives the
    # order of every matrix's entries; the other two reuse its index arrays.
    member = sp.csr_matrix((np.arange(1.0, len(row) + 1.0), (row, column)), shape=shape)
    if member.nnz != len(row):  # mark_duplicates leaves one row per score and variant at most
        raise AssertionError("a score uses one .bim variant twice")
    order = member.data.astype(np.int64) - 1
    member.data = np.ones(len(order))

    def matrix(values: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((values[order], member.indices, member.indptr), shape=shape)

    return ScoreWeights(list(score_ids), variant_idx, matrix(np.where(is_alt, weight, -weight)),
                        matrix(np.where(is_alt, 0.0, 2.0 * weight)), member)


def founder_index(genotypes: Genotypes) -> np.ndarray:
    """Indices of founders (PAT = MAT = 0), whose genotypes plink2 uses for imputation frequencies."""
    fam = genotypes.fam
    founders = ((fam["PAT"] == "0") & (fam["MAT"] == "0")).to_numpy()
    if not founders.any():
        log.warning("no founders in the .fam: imputation frequencies use all samples")
        founders[:] = True
    return np.flatnonzero(founders)


def finish_scores(sums: np.ndarray, observed: np.ndarray, weights: ScoreWeights,
                  mean_imputation: bool) -> tuple[np.ndarray, np.ndarray]:
    """(SUM, DENOM) ``(n_samples, n_scores)`` from the accumulated ALT-weighted ``sums`` and, without
    mean imputation, the REF offsets' ``observed`` counts: with mean imputation every variant's
    REF offset joins SUM and DENOM is 2 × the score's variants; without, DENOM = 2 × observed."""
    if not mean_imputation:
        return sums, 2.0 * observed
    sums += np.asarray(weights.ref_offset.sum(axis=0))
    denom = np.broadcast_to(2.0 * np.asarray(weights.member.sum(axis=0)), sums.shape).copy()
    return sums, denom


def compute_scores(genotypes: Genotypes, weights: ScoreWeights,
                   mean_imputation: bool = DEFAULTS.mean_imputation,
                   chunk_size: int = DEFAULTS.chunk_size) -> tuple[np.ndarray, np.ndarray]:
    """(SUM, DENOM), each (n_samples, n_scores) float64, streaming over chunks of the used variants.

    Per chunk: ``dosage (n_samples, n_chunk) @ alt_weight (n_chunk, n_scores)``; missing calls are set
    to 2 x founder ALT frequency, or (no mean imputation) to 0 and removed from offsets and DENOM.
    """
    from contig.genotypes.bitops import sample_slot_mask
    from contig.scores.score_kernels import packed_dosages

    n, k = genotypes.n_samples, len(weights.score_ids)
    founder_slots = sample_slot_mask(n, founder_index(genotypes))
    sums = np.zeros((n, k))
    observed = np.zeros((n, k))  # (no-mean-imputation) non-missing variants per person and score
    buffer = np.empty((chunk_size, n))
    missing_buffer = np.empty((chunk_size, n), dtype=bool)
    start = 0
    for _, rows in genotypes.iter_packed_chunks(chunk_size, weights.variant_idx):
        stop = start + len(rows)
        dosage, missing = buffer[: len(rows)], missing_buffer[: len(rows)]
        # dosages with missing calls at 2 x founder ALT frequency (or 0), by the compiled kernel
        any_missing = packed_dosages(np.ascontiguousarray(rows), n, founder_slots, mean_imputation,
                                     dosage, missing)
        w = weights.alt_weight[start:stop].toarray()  # (n_chunk, n_scores)
        sums += dosage.T @ w
        if not mean_imputation:
            if any_missing:
                present = 1.0 - missing.T  # (n_samples, n_chunk)
                sums += present @ weights.ref_offset[start:stop].toarray()
                observed += present @ weights.member[start:stop].toarray()
            else:
                sums += np.asarray(weights.ref_offset[start:stop].sum(axis=0))
                observed += np.asarray(weights.member[start:stop].sum(axis=0))
        start = stop
    return finish_scores(sums, observed, weights, mean_imputation)


def compute_dosage_scores(source: DosageSource, weights: ScoreWeights,
                          mean_imputation: bool = DEFAULTS.mean_imputation,
                          chunk_size: int = DEFAULTS.chunk_size) -> tuple[np.ndarray, np.ndarray]:
    """(SUM, DENOM) ``(n_samples, n_scores)`` from imputed ALT dosages, as plink2 ``--score``
    scores a .pgen/.bgen: a missing dosage (NaN) is 2 x the ALT frequency of the observed
    dosages (everyone is a founder: .sample and .psam as read here carry no parents), or with no
    mean imputation contributes nothing and leaves DENOM."""
    n, k = source.n_samples, len(weights.score_ids)
    sums = np.zeros((n, k))
    observed = np.zeros((n, k))
    start = 0
    for _, block in source.iter_dosages(chunk_size, variant_idx=weights.variant_idx):
        stop = start + len(block)
        dosage = block.astype(np.float64)
        missing = np.isnan(dosage)
        w = weights.alt_weight[start:stop].toarray()  # (n_chunk, n_scores)
        fill = np.nan_to_num(np.nanmean(dosage, axis=1), nan=0.0) if mean_imputation else np.zeros(len(block))
        np.copyto(dosage, np.broadcast_to(fill[:, None], dosage.shape), where=missing)
        sums += dosage.T @ w
        if not mean_imputation:
            present = 1.0 - missing.T  # (n_samples, n_chunk)
            sums += present @ weights.ref_offset[start:stop].toarray()
            observed += present @ weights.member[start:stop].toarray()
        start = stop
    return finish_scores(sums, observed, weights, mean_imputation)


def zscore_columns(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Z float32, mean, std) per column of ``X`` (n_samples, n_features); std 0 -> 1 (column becomes 0)."""
    mean = np.nanmean(X, axis=0)
    std = np.nanstd(X, axis=0)
    std = np.where(std > 0, std, 1.0)
    return ((X - mean) / std).astype(np.float32), mean, std


def check_unique_score_id(scoring: ScoringFile, seen: dict[str, Path]) -> None:
    """Score IDs must be unique across files (they name output columns)."""
    if scoring.score_id in seen:
        raise InputError(f"score ID {scoring.score_id} is also the ID of {seen[scoring.score_id]}",
                         scoring.path)
    seen[scoring.score_id] = scoring.path


def check_same_build(scoring: ScoringFile, first: ScoringFile | None) -> ScoringFile | None:
    """Scoring files reporting different genome builds cannot all match one .bim: refuse the
    first that disagrees with ``first`` (the earliest file reporting a build).

    Returns the new ``first``.
    """
    if scoring.genome_build is None:
        return first
    if first is None:
        return scoring
    if scoring.genome_build != first.genome_build:
        key = "#HmPOS_build" if scoring.harmonized else "#genome_build"
        raise InputError(f"genome build {scoring.genome_build} ({key}) differs from "
                         f"{first.genome_build} of {first.path}; pass --genome-build with the "
                         "genotypes' build to check every file against it", scoring.path)
    return first


def log_summary(row: dict) -> None:
    log.info("%s: %d of %d variants used (%.1f%%); dropped: %s", row["score"], row["matched"],
             row["variants_in_file"], 100 * row["fraction"],
             ", ".join(f"{row[f'n_{s}']} {s}" for s in STATUSES[3:]))


def polygenic_scores(bfile: str | Path | Sequence[str | Path] | DosageSource, score_paths: Sequence[str | Path],
                     min_overlap: float = DEFAULTS.min_overlap,
                     on_low_overlap: str = DEFAULTS.on_low_overlap,
                     keep_ambiguous: bool = DEFAULTS.keep_ambiguous,
                     mean_imputation: bool = DEFAULTS.mean_imputation, genome_build: str | None = None,
                     chunk_size: int = DEFAULTS.chunk_size,
                     match_log_path: str | Path | None = None, threads: int = DEFAULTS.threads) -> PrsResult:
    """Parse and match one scoring file at a time, then score all at once.

    A score whose overlap is below ``min_overlap`` is skipped (listed in the summary with its
    reason) or, with ``on_low_overlap="fail"``, raises :class:`InputError` before any scoring; so
    does a run where every score is skipped. With ``match_log_path`` the match log is streamed
    there (gzip TSV, one gzip member per score) instead of being kept in memory
    (``PrsResult.match_log`` is then None): real score sets have ~10^8 rows. ``threads`` files are
    parsed and matched at a time.
    """
    if on_low_overlap not in LOW_OVERLAP_ACTIONS:
        raise ValueError(f"on_low_overlap must be one of {LOW_OVERLAP_ACTIONS}")
    genotypes = bfile if isinstance(bfile, DosageSource) else Genotypes.open(bfile)
    lookup = BimLookup(genotypes.bim)
    seen: dict[str, Path] = {}
    first_build: ScoringFile | None = None  # the first file that reports a build
    used, summaries, logs = [], [], []

    def prepare(item: tuple[int, str | Path]) -> MatchedScore:
        number, path = item
        return match_score_path(path, lookup, genome_build, keep_ambiguous,
                                log_header=number == 0 if match_log_path else None)

    handle = open(match_log_path, "wb") if match_log_path else None
    try:
        # Files are parsed and matched ahead by worker threads (polars and ISA-L release the GIL);
        # results are taken in file order, so checks and errors come as in a sequential run.
        for matched in ordered_map(prepare, enumerate(score_paths), threads):
            scoring, match_log = matched.scoring, matched.match_log
            check_unique_score_id(scoring, seen)
            first_build = check_same_build(scoring, first_build)
            summary = summarize_matches(match_log, [scoring])
            log_summary(summary.row(0, named=True))
            summary = with_overlap_status(summary, min_overlap, on_low_overlap)
            summaries.append(summary)
            if summary["status"][0] == "used":
                used.append(match_log.filter(pl.col("bim_idx").is_not_null())
                            .select("bim_idx", "effect_weight", "effect_is_alt"))
            if handle is None:
                logs.append(match_log)
            else:
                handle.write(matched.log_gz)
    finally:
        if handle is not None:
            handle.close()
    summary = pl.concat(summaries)
    check_some_score_used(summary)
    score_ids = summary.filter(pl.col("status") == "used")["score"].to_list()
    weights = build_weights(used, score_ids)
    score = compute_dosage_scores if isinstance(genotypes, DosageSource) else compute_scores
    sums, denom = score(genotypes, weights, mean_imputation, chunk_size)
    return PrsResult(genotypes.fam["IID"].to_numpy(), score_ids, sums, denom,
                     pl.concat(logs) if logs else None, summary)


def scores_table(result: PrsResult) -> pl.DataFrame:
    """IID, then ``<id>_AVG`` and ``<id>_SUM`` per score."""
    columns: dict[str, object] = {"IID": result.iid}
    avg = result.avg
    for j, score in enumerate(result.score_ids):
        columns[f"{score}_AVG"] = avg[:, j]
        columns[f"{score}_SUM"] = result.sums[:, j]
    return pl.DataFrame(columns)


def output_paths(out: str | Path) -> dict[str, Path]:
    """The files ``contig prs --out OUT`` writes."""
    out = str(out)
    return {"match": Path(out + ".match.tsv.gz"), "summary": Path(out + ".summary.tsv"),
            "scores": Path(out + ".scores.tsv"), "modality": Path(out + ".npz")}


def write_score_files(result: PrsResult, summary_path: Path, scores_path: Path, npz_path: Path) -> None:
    """Write the summary, the scores table and the z-scored AVG modality (mean/std kept as extras)."""
    z, mean, std = zscore_columns(result.avg)
    modality = Modality(result.iid, np.asarray(result.score_ids), z, {"mean": mean, "std": std})
    result.summary.write_csv(summary_path, separator="\t", null_value="NA")
    scores_table(result).write_csv(scores_path, separator="\t", null_value="NA")
    save_modality(npz_path, modality)


def run_prs(bfile: str | Path | Sequence[str | Path] | DosageSource, score_paths: Sequence[str | Path], out: str | Path,
            **options) -> PrsResult:
    """Score and write every output of ``contig prs --out OUT``, all or nothing (see :func:`output_paths`)."""
    paths = output_paths(out)
    with atomic_paths(list(paths.values())) as (match_tmp, summary_tmp, scores_tmp, npz_tmp):
        result = polygenic_scores(bfile, score_paths, match_log_path=match_tmp, **options)
        write_score_files(result, summary_tmp, scores_tmp, npz_tmp)
    return result
