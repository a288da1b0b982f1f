"""Genotype QC with plink2's meaning and order for --keep, --mind, --geno, --hwe and --maf.

Order (plink2 2.00a3.5, checked against its log and kept sets): ``--keep`` -> duplicate variant IDs
-> ``--mind`` (sample missingness over all variants) -> ``--geno`` (variant missingness over the
remaining samples) -> ``--hwe`` (founders only, exact test, autosomes only) -> ``--maf`` (founder
allele frequencies). The variant filters all see the same sample set, so their order only decides
which step a variant failing several of them is counted under; we count it under the first, as
plink2 does.

Thresholds are compared exactly as plink2 compares them, including its guard against floating point
error (a relative epsilon of 2^-44): a sample or variant is removed when its missing count exceeds
``floor(threshold * (1 + eps) * total)``, when its HWE p < ``threshold * (1 - eps)``, or when its minor
allele frequency < ``threshold * (1 - eps)``.

Duplicate variant IDs: plink2 carries them along silently, but every later stage here (SNP modality,
GWAS, clumping) keys on the ID, so QC keeps the first variant with a given ID, removes the later ones
and reports them (step ``rm-dup``), like ``plink2 --rm-dup force-first``.

Known differences from plink2: chrX/chrY/MT are treated like autosomes for --mind/--geno/--maf
(plink2 counts male chrX calls as haploid and chrY calls only in males); --hwe tests autosomes only
(plink2 also skips chrY/MT, but tests chrX in females). Multi-allelic variants do not exist in .bed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.errors import InputError
from contig.genotypes.bedcopy import write_bfile_variants
from contig.genotypes.plinkio import Genotypes, founder_mask, is_autosome, write_bfile
from contig.genotypes.qc_counts import genotype_counts, packed_missing_counts, packed_qc_counts, use_qc_kernel
from contig.core.tables import write_tsv

log = logging.getLogger(__name__)

# plink2's kSmallEpsilon (2^-44): thresholds are nudged by this relative amount before comparing.
SMALL_EPSILON = 2.0**-44
# Genotype-count columns returned by Genotypes.genotype_counts.
HOM_REF, HET, HOM_ALT, MISS = 0, 1, 2, 3

# --------------------------------------------------------------------------------------------------
# Hardy-Weinberg exact test


_LOG_FACTORIAL = np.zeros(1)


def log_factorial(k: np.ndarray) -> np.ndarray:
    """log(k!) for integer arrays ``k`` >= 0, from a table grown on demand.

    The table is a cumulative sum of log(i) in extended precision, so it is exact to float64 rounding
    for the sizes met here, and a lookup is much cheaper than lgamma.
    """
    global _LOG_FACTORIAL
    k = np.asarray(k, dtype=np.int64)
    needed = int(k.max(initial=0)) + 1
    if needed > len(_LOG_FACTORIAL):
        size = max(needed, 2 * len(_LOG_FACTORIAL), 1024)
        logs = np.log(np.arange(1, size, dtype=np.longdouble))
        _LOG_FACTORIAL = np.concatenate([[0.0], np.cumsum(logs).astype(np.float64)])
    return _LOG_FACTORIAL[k]


def _log_het_probability(het: np.ndarray, n: np.ndarray, n_rare: np.ndarray) -> np.ndarray:
    """log P(het count | n genotypes, n_rare copies of the rare allele) under HWE (Levene's formula).

    All arguments broadcast; ``het`` must have the parity of ``n_rare`` and lie in [0, n_rare].
    """
    het = np.asarray(het, dtype=np.int64)
    hom_rare = (n_rare - het) // 2
    hom_common = n - het - hom_rare
    return (
        log_factorial(n) + log_factorial(n_rare) + log_factorial(2 * n - n_rare) - log_factorial(2 * n)
        + het * np.log(2.0) - log_factorial(hom_rare) - log_factorial(hom_common) - log_factorial(het)
    )


def _het_mode(n: np.ndarray, n_rare: np.ndarray) -> np.ndarray:
    """The most likely het count (right parity) given n genotypes and n_rare rare allele copies."""
    expected = n_rare * (2.0 * n - n_rare) / np.maximum(2.0 * n - 1.0, 1.0)
    parity = n_rare % 2
    mode = np.clip(2 * np.round((expected - parity) / 2).astype(np.int64) + parity, parity, n_rare)
    # Log-concavity: climb to the true mode (a step or two at most).
    for _ in range(4):
        up = np.minimum(mode + 2, n_rare)
        down = np.maximum(mode - 2, parity)
        here = _log_het_probability(mode, n, n_rare)
        mode = np.where(_log_het_probability(up, n, n_rare) > here, up,
                        np.where(_log_het_probability(down, n, n_rare) > here, down, mode))
    return mode


def _tail_sum(start: np.ndarray, direction: int, limit: np.ndarray, n: np.ndarray, n_rare: np.ndarray,
              block: int = 64) -> np.ndarray:
    """Sum P(k) for k = start, start + 2*direction, ... up to ``limit`` (inclusive), per variant.

    Terms decrease away from the mode (log-concavity), so summing stops once a block's last term is
    below 1e-18 of the partial sum. ``start`` beyond ``limit`` gives 0.
    """
    total = np.zeros(len(start))
    active = np.flatnonzero((start - limit) * direction <= 0)
    offset = 0
    steps = np.arange(block) * 2 * direction
    while active.size:
        k = start[active, None] + offset + steps[None, :]
        inside = (k - limit[active, None]) * direction <= 0
        logp = _log_het_probability(np.where(inside, k, start[active, None]), n[active, None],
                                    n_rare[active, None])
        terms = np.where(inside, np.exp(logp), 0.0)
        total[active] += terms.sum(axis=1)
        last = terms[:, -1]
        keep = inside[:, -1] & (last > 1e-18 * total[active])
        active = active[keep]
        offset += 2 * direction * block
    return total


def _first_no_more_likely(start: np.ndarray, stop: np.ndarray, direction: int, cutoff: np.ndarray,
                       n: np.ndarray, n_rare: np.ndarray) -> np.ndarray:
    """First het count k = start, start + 2*direction, ... (not past ``stop``) with log P(k) <= cutoff.

    The walk must run away from the mode (log P non-increasing along it), which makes the predicate
    monotone, so bisection finds it. Returns ``stop + 2*direction`` where there is none.
    """
    n_steps = (stop - start) * direction // 2  # last valid j; negative = empty range
    lo, hi = np.full_like(start, -1), n_steps + 1
    while True:
        open_ = hi - lo > 1
        if not open_.any():
            break
        mid = (lo + hi) // 2
        k = np.where(open_, start + 2 * mid * direction, start)
        less = _log_het_probability(np.clip(k, n_rare % 2, n_rare), n, n_rare) <= cutoff
        hi = np.where(open_ & less, mid, hi)
        lo = np.where(open_ & ~less, mid, lo)
    return start + 2 * hi * direction


def hwe_exact_p(het: np.ndarray, hom1: np.ndarray, hom2: np.ndarray) -> np.ndarray:
    """Hardy-Weinberg exact test p-values (Wigginton et al. 2005), vectorized over variants.

    ``het``, ``hom1``, ``hom2``: genotype counts, shape ``(n_variants,)``. p = the sum of the
    probabilities of all het counts no more likely than the observed one (ties included, as plink2's
    HweP includes them up to a relative 2^-44; we allow 1e-9 against rounding); no calls gives
    p = 1. Matches plink2 ``--hardy`` (P column) to its printed precision.

    The het-count distribution is log-concave, so the other counts no more likely form two tails, one on
    each side; their inner ends are found by bisection and the tails summed outwards until the terms
    vanish.
    """
    het = np.asarray(het, dtype=np.int64)
    hom1 = np.asarray(hom1, dtype=np.int64)
    hom2 = np.asarray(hom2, dtype=np.int64)
    n = het + hom1 + hom2
    n_rare = 2 * np.minimum(hom1, hom2) + het
    p = np.ones(len(het))
    todo = np.flatnonzero((n > 0) & (n_rare > 0))
    if not todo.size:
        return p
    het, n, n_rare = het[todo], n[todo], n_rare[todo]
    parity = n_rare % 2
    mode = _het_mode(n, n_rare)
    logp_obs = _log_het_probability(het, n, n_rare)
    # "No more likely" with a margin of 1e-9 (relative) against rounding in the log-factorials.
    cutoff = logp_obs + 1e-9
    # Lower tail: below min(het - 2, mode) P rises with k, so walk down from there.
    lower_start = np.minimum(het - 2, mode)
    lower_end = _first_no_more_likely(lower_start, parity, -1, cutoff, n, n_rare)
    # Upper tail: above max(het + 2, mode) P falls with k, so walk up from there.
    upper_start = np.maximum(het + 2, mode)
    upper_end = _first_no_more_likely(upper_start, n_rare, +1, cutoff, n, n_rare)
    total = (np.exp(logp_obs) + _tail_sum(lower_end, -1, parity, n, n_rare)
             + _tail_sum(upper_end, +1, n_rare, n, n_rare))
    p[todo] = np.minimum(total, 1.0)
    return p


def hwe_observed_probability(het: np.ndarray, hom1: np.ndarray, hom2: np.ndarray) -> np.ndarray:
    """P(observed het count) under HWE, a lower bound of the exact p-value: ``(n_variants,)``."""
    het = np.asarray(het, dtype=np.int64)
    n = het + np.asarray(hom1, dtype=np.int64) + np.asarray(hom2, dtype=np.int64)
    n_rare = 2 * np.minimum(hom1, hom2).astype(np.int64) + het
    with np.errstate(invalid="ignore"):
        prob = np.exp(_log_het_probability(het, n, n_rare))
    return np.where(n > 0, prob, 1.0)


def hwe_failing(het: np.ndarray, hom1: np.ndarray, hom2: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Which variants have HWE exact p < threshold, with the p-values where computed.

    Returns ``(fails, p)``, both ``(n_variants,)``; ``p`` is NaN where the cheap bound
    P(observed) >= threshold already proved p >= threshold (most variants), so only candidates pay
    for the full test.
    """
    het, hom1, hom2 = (np.asarray(x, dtype=np.int64) for x in (het, hom1, hom2))
    p = np.full(len(het), np.nan)
    candidates = np.flatnonzero(hwe_observed_probability(het, hom1, hom2) < threshold)
    if candidates.size:
        p[candidates] = hwe_exact_p(het[candidates], hom1[candidates], hom2[candidates])
    fails = np.zeros(len(het), dtype=bool)
    fails[candidates] = p[candidates] < threshold
    return fails, p


# --------------------------------------------------------------------------------------------------
# Sample and variant statistics


def missing_and_genotype_counts(genotypes: Genotypes, sample_idx: np.ndarray,
                                variant_idx: np.ndarray | None = None,
                                chunk_size: int = 4096) -> tuple[np.ndarray, np.ndarray | None]:
    """Missing calls per sample over the selected variants, int64 ``(len(sample_idx),)``; and,
    where the same pass counted them (the compiled kernel), the genotype counts of the selected
    variants over ``sample_idx``, uint32 ``(n_selected_variants, 4)``, else None."""
    if use_qc_kernel(genotypes):
        counts, missing = packed_qc_counts(genotypes, sample_idx, variant_idx, track_missing=True)
        return missing, counts
    return packed_missing_counts(genotypes, sample_idx, variant_idx, chunk_size), None


def minor_allele_frequency(counts: np.ndarray) -> np.ndarray:
    """MAF from genotype counts ``(n_variants, 4)``; NaN where no calls. ``(n_variants,)``."""
    alt = counts[:, HET].astype(np.float64) + 2.0 * counts[:, HOM_ALT]
    obs = 2.0 * (counts[:, HOM_REF].astype(np.float64) + counts[:, HET] + counts[:, HOM_ALT])
    with np.errstate(invalid="ignore", divide="ignore"):
        freq = alt / obs
    return np.minimum(freq, 1.0 - freq)


def max_missing_count(threshold: float, total: int) -> int:
    """plink2's cut-off: more missing calls than this fails a --mind/--geno threshold."""
    return int(threshold * (1.0 + SMALL_EPSILON) * total)


# --------------------------------------------------------------------------------------------------
# --keep files


def read_keep_file(path: str | Path) -> pl.DataFrame:
    """Read sample IDs to keep: columns ``IID`` and, when the file gives one, ``FID``.

    Accepted forms: plink's headerless ``FID IID`` (or one ``IID`` column) whitespace file, with an
    optional ``#FID``/``#IID`` header; or any tab-separated table with a header that has an ``IID``
    column (e.g. the image manifest, where one person may appear on several rows).
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    with open(path) as handle:
        lines = [(row, line.split()) for row, line in enumerate(handle, start=1)]
    lines = [(row, fields) for row, fields in lines if fields]
    if not lines:
        return pl.DataFrame({"IID": []}, schema={"IID": pl.String})
    header = [f.removeprefix("#") for f in lines[0][1]]
    if "IID" in header:
        first = lines[0][1]
        if first[0].startswith("#"):  # plink-style header: whitespace-delimited
            names = header
            rows = lines[1:]
        else:  # a TSV table with a header
            with open(path) as handle:
                names = handle.readline().rstrip("\n").split("\t")
            if "IID" not in names:
                raise InputError("has an IID column but is not tab-separated", path, 1)
            from contig.core.tables import read_tsv

            table = read_tsv(path, required=["IID"])
            if table["IID"].is_null().any():
                row = int(table["IID"].is_null().arg_true()[0]) + 2
                raise InputError("empty IID", path, row, "IID")
            cols = ["FID", "IID"] if "FID" in table.columns else ["IID"]
            return table.select(cols).unique(maintain_order=True)
        iid_col = names.index("IID")
        fid_col = names.index("FID") if "FID" in names else None
        data: dict[str, list[str]] = {"IID": []} if fid_col is None else {"FID": [], "IID": []}
        for row, fields in rows:
            if len(fields) < len(names):
                raise InputError(f"expected {len(names)} fields, found {len(fields)}", path, row)
            data["IID"].append(fields[iid_col])
            if fid_col is not None:
                data["FID"].append(fields[fid_col])
        return pl.DataFrame(data).unique(maintain_order=True)
    n_fields = {len(f) for _, f in lines}
    if n_fields == {1}:
        return pl.DataFrame({"IID": [f[0] for _, f in lines]}).unique(maintain_order=True)
    for row, fields in lines:
        if len(fields) < 2:
            raise InputError("expected FID and IID (2 fields), found 1", path, row)
    return pl.DataFrame({"FID": [f[0] for _, f in lines], "IID": [f[1] for _, f in lines]}).unique(
        maintain_order=True)


def keep_sample_indices(fam: pl.DataFrame, keep: pl.DataFrame) -> tuple[np.ndarray, pl.DataFrame]:
    """Indices (sorted) of .fam samples listed in ``keep`` (matched on FID+IID if keep has FID, else IID),
    and the rows of ``keep`` that match no sample."""
    on = ["FID", "IID"] if "FID" in keep.columns else ["IID"]
    indexed = fam.select(on).with_row_index("_row")
    matched = indexed.join(keep.select(on), on=on, how="semi")
    unmatched = keep.join(fam.select(on), on=on, how="anti")
    return np.sort(matched["_row"].to_numpy().astype(np.int64)), unmatched


# --------------------------------------------------------------------------------------------------
# The QC run


DEFAULT_CHUNK_SIZE = 4096  # variants per streamed chunk


@dataclass
class QCThresholds:
    """plink2-style thresholds; None switches a filter off."""

    mind: float | None = None
    geno: float | None = None
    maf: float | None = None
    hwe: float | None = None

    def validate(self) -> None:
        for name in ("mind", "geno", "maf"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name} must be in [0, 1], got {value}")
        if self.maf is not None and self.maf > 0.5:
            raise ValueError(f"--maf must be at most 0.5, got {self.maf}")
        if self.hwe is not None and not 0.0 <= self.hwe < 1.0:
            raise ValueError(f"--hwe must be in [0, 1), got {self.hwe}")


# plink2's values for --mind, --geno and --maf given without a number.
BARE_FLAG_THRESHOLDS = QCThresholds(mind=0.1, geno=0.1, maf=0.01)

STEP_SCHEMA = {
    "step": pl.String, "samples_removed": pl.Int64, "variants_removed": pl.Int64,
    "samples_remaining": pl.Int64, "variants_remaining": pl.Int64, "threshold": pl.Float64,
}


@dataclass
class QCResult:
    """What QC kept: indices into the input .fam / .bim, the per-step table and removed IDs per step."""

    sample_idx: np.ndarray  # (n_kept_samples,) sorted indices into genotypes.fam
    variant_idx: np.ndarray  # (n_kept_variants,) sorted indices into genotypes.bim
    steps: pl.DataFrame  # one row per step: step, samples_removed, variants_removed, ..., threshold
    removed_samples: dict[str, list[str]] = field(default_factory=dict)  # step -> IIDs
    removed_variants: dict[str, list[str]] = field(default_factory=dict)  # step -> variant IDs
    keep_unmatched: int = 0  # --keep rows that matched no sample in the .fam
    hwe_p: np.ndarray | None = None  # (n_variants,) exact p where computed, NaN elsewhere


@dataclass
class _QCState:
    """Who and what is still in while the steps run, and what each step removed."""

    genotypes: Genotypes
    sample_idx: np.ndarray  # (n_remaining_samples,) sorted indices into the .fam
    variant_keep: np.ndarray  # (n_variants,) bool
    rows: list[dict] = field(default_factory=list)
    removed_samples: dict[str, list[str]] = field(default_factory=dict)
    removed_variants: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def start(cls, genotypes: Genotypes) -> _QCState:
        state = cls(genotypes, np.arange(genotypes.n_samples), np.ones(genotypes.n_variants, dtype=bool))
        state.record("input", None, genotypes.n_samples, genotypes.n_variants)
        return state

    @property
    def n_variants(self) -> int:
        return int(self.variant_keep.sum())

    def record(self, step: str, threshold: float | None, samples_before: int, variants_before: int) -> None:
        self.rows.append({
            "step": step,
            "samples_removed": samples_before - len(self.sample_idx),
            "variants_removed": variants_before - self.n_variants,
            "samples_remaining": len(self.sample_idx),
            "variants_remaining": self.n_variants,
            "threshold": threshold,
        })

    def remove_samples(self, step: str, threshold: float | None, fails: np.ndarray | None) -> None:
        """Drop the remaining samples where ``fails`` ``(n_remaining_samples,)``; None: step off."""
        samples_before, variants_before = len(self.sample_idx), self.n_variants
        if fails is not None:
            self.removed_samples[step] = self.genotypes.fam["IID"].gather(self.sample_idx[fails]).to_list()
            self.sample_idx = self.sample_idx[~fails]
        self.record(step, threshold, samples_before, variants_before)

    def remove_variants(self, step: str, threshold: float | None, fails: np.ndarray | None) -> None:
        """Drop the remaining variants where ``fails`` ``(n_variants,)``; None: step off."""
        variants_before = self.n_variants
        if fails is not None:
            fails = fails & self.variant_keep
            self.removed_variants[step] = self.genotypes.bim["ID"].filter(pl.Series(fails)).to_list()
            self.variant_keep &= ~fails
        self.record(step, threshold, len(self.sample_idx), variants_before)


def duplicate_id_mask(ids: pl.Series) -> np.ndarray:
    """``(n_variants,)`` bool: True for every occurrence of an ID after its first."""
    return (~ids.is_first_distinct()).to_numpy()


def keep_failures(fam: pl.DataFrame, keep: pl.DataFrame) -> tuple[np.ndarray, int]:
    """``(n_samples,)`` bool: samples not listed in ``keep``; and how many ``keep`` rows match none."""
    kept, unmatched = keep_sample_indices(fam, keep)
    fails = np.ones(fam.height, dtype=bool)
    fails[kept] = False
    return fails, unmatched.height


def mind_failures(genotypes: Genotypes, sample_idx: np.ndarray, variant_keep: np.ndarray, mind: float,
                  chunk_size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """``(len(sample_idx),)`` bool: samples missing more than ``mind`` of the remaining variants;
    and the genotype counts over ``sample_idx``, uint32 ``(n_variants, 4)`` (zero rows for the
    variants ``variant_keep`` excludes), where the same pass counted them, else None."""
    everything = bool(variant_keep.all())
    variants_now = None if everything else np.flatnonzero(variant_keep)
    missing, counts = missing_and_genotype_counts(genotypes, sample_idx, variants_now, chunk_size)
    fails = missing > max_missing_count(mind, int(variant_keep.sum()))
    if counts is not None and not everything:
        counts = _scatter_rows(counts, variants_now, len(variant_keep))
    return fails, counts


def _scatter_rows(rows: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    """``(n, ...)`` zeros with ``rows`` ``(len(idx), ...)`` placed at the indices ``idx``."""
    full = np.zeros((n, *rows.shape[1:]), dtype=rows.dtype)
    full[idx] = rows
    return full


def geno_failures(counts: np.ndarray, geno: float, n_samples: int) -> np.ndarray:
    """``(n_variants,)`` bool: variants missing in more than ``geno`` of ``n_samples``.

    ``counts``: genotype counts over the remaining samples, ``(n_variants, 4)``.
    """
    return counts[:, MISS] > max_missing_count(geno, n_samples)


def hwe_failures(founder_counts: np.ndarray, tested: np.ndarray, hwe: float) -> tuple[np.ndarray, np.ndarray]:
    """Variants among ``tested`` (indices) whose founder HWE exact p < ``hwe``.

    Returns ``(fails, p)``, both ``(n_variants,)``: p is NaN where not computed (untested, or
    proved above the threshold by the cheap bound).
    """
    c = founder_counts[tested].astype(np.int64)
    fails_tested, p_tested = hwe_failing(c[:, HET], c[:, HOM_REF], c[:, HOM_ALT],
                                         hwe * (1.0 - SMALL_EPSILON))
    p = np.full(len(founder_counts), np.nan)
    p[tested] = p_tested
    fails = np.zeros(len(founder_counts), dtype=bool)
    fails[tested[fails_tested]] = True
    return fails, p


def maf_failures(founder_counts: np.ndarray, maf: float) -> np.ndarray:
    """``(n_variants,)`` bool: founder minor allele frequency < ``maf``.

    plink2 gives a variant without calls frequency 0, so any ``maf`` > 0 removes it.
    """
    frequency = np.nan_to_num(minor_allele_frequency(founder_counts), nan=0.0)
    return frequency < maf * (1.0 - SMALL_EPSILON)


def qc_genotype_counts(genotypes: Genotypes, sample_idx: np.ndarray,
                       counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Genotype counts ``(n_variants, 4)`` over ``sample_idx`` and over its founders.

    ``counts``: the first of them when already known (counted with the --mind pass).
    """
    if counts is None:
        subset = None if len(sample_idx) == genotypes.n_samples else sample_idx
        counts = genotype_counts(genotypes, subset)
    founders = founder_mask(genotypes.fam)[sample_idx]
    if founders.all():
        return counts, counts
    return counts, genotype_counts(genotypes, sample_idx[founders])


def apply_variant_filters(state: _QCState, thresholds: QCThresholds,
                          counts: np.ndarray | None = None) -> np.ndarray | None:
    """--geno, --hwe, --maf on the remaining samples, in that order; returns the HWE p-values.

    ``counts``: genotype counts ``(n_variants, 4)`` over the remaining samples when known already.
    """
    need_counts = any(t is not None for t in (thresholds.geno, thresholds.hwe, thresholds.maf))
    if not (need_counts and len(state.sample_idx)):
        for step in ("geno", "hwe", "maf"):
            state.remove_variants(step, getattr(thresholds, step), None)
        return None
    counts, founder_counts = qc_genotype_counts(state.genotypes, state.sample_idx, counts)
    geno, hwe, maf = thresholds.geno, thresholds.hwe, thresholds.maf
    state.remove_variants("geno", geno,
                          None if geno is None else geno_failures(counts, geno, len(state.sample_idx)))
    hwe_fails = hwe_p = None
    if hwe is not None:
        autosomal = is_autosome(state.genotypes.bim["CHROM"])
        hwe_fails, hwe_p = hwe_failures(founder_counts, np.flatnonzero(state.variant_keep & autosomal), hwe)
    state.remove_variants("hwe", hwe, hwe_fails)
    state.remove_variants("maf", maf, None if maf is None else maf_failures(founder_counts, maf))
    return hwe_p


def run_qc(genotypes: Genotypes, thresholds: QCThresholds, keep: pl.DataFrame | None = None,
           chunk_size: int = DEFAULT_CHUNK_SIZE) -> QCResult:
    """Apply --keep, duplicate-ID removal, --mind, --geno, --hwe, --maf in plink2's order.

    Streams over variant chunks: memory is O(n_samples * chunk_size + n_variants).
    """
    thresholds.validate()
    state = _QCState.start(genotypes)
    unmatched = 0
    keep_fails = None
    if keep is not None:
        keep_fails, unmatched = keep_failures(genotypes.fam, keep)
    state.remove_samples("keep", None, keep_fails)
    state.remove_variants("rm-dup", None, duplicate_id_mask(genotypes.bim["ID"]))
    if not len(state.sample_idx):
        raise InputError("no samples left after --keep", None)
    mind = thresholds.mind
    mind_fails = counts = None
    if mind is not None:
        mind_fails, counts = mind_failures(genotypes, state.sample_idx, state.variant_keep, mind,
                                           chunk_size)
        if mind_fails.any():  # counted over people --mind removes
            counts = None
    state.remove_samples("mind", mind, mind_fails)
    hwe_p = apply_variant_filters(state, thresholds, counts)
    return QCResult(sample_idx=state.sample_idx, variant_idx=np.flatnonzero(state.variant_keep),
                    steps=pl.DataFrame(state.rows, schema=STEP_SCHEMA),
                    removed_samples=state.removed_samples, removed_variants=state.removed_variants,
                    keep_unmatched=unmatched, hwe_p=hwe_p)


def write_qc_outputs(genotypes: Genotypes, result: QCResult, out: str | Path,
                     chunk_size: int = 8192) -> None:
    """Write ``out.bed/.bim/.fam`` (kept samples and variants) and ``out.qc.tsv`` (the step table)."""
    out = Path(out)
    write_kept_fileset(genotypes, result.sample_idx, result.variant_idx, out, chunk_size)
    write_tsv(result.steps, out.with_name(out.name + ".qc.tsv"))


def write_kept_fileset(genotypes: Genotypes, sample_idx: np.ndarray, variant_idx: np.ndarray,
                       out: Path, chunk_size: int) -> None:
    """Write ``out.bed/.bim/.fam`` with the samples ``sample_idx`` and variants ``variant_idx``
    (sorted indices): .bed rows copied as they are when every sample stays, else re-packed."""
    if len(sample_idx) == genotypes.n_samples:
        write_bfile_variants(out, genotypes, variant_idx, chunk_size)
        return
    fam = genotypes.fam[sample_idx]
    bim = genotypes.bim[variant_idx]
    if use_qc_kernel(genotypes):
        from contig.genotypes.qc_kernels import subset_packed_rows

        samples = sample_idx.astype(np.int64)
        chunks = (subset_packed_rows(np.ascontiguousarray(rows), samples)
                  for _, rows in genotypes.iter_packed_chunks(chunk_size, variant_idx))
        write_bfile(out, fam, bim, chunks, packed=True)
    else:
        chunks = (c for _, c in genotypes.iter_chunks(chunk_size, sample_idx=sample_idx,
                                                      variant_idx=variant_idx))
        write_bfile(out, fam, bim, chunks)
