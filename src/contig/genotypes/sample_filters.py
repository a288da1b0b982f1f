"""Sample filters after genotype QC: relatives (plink2 ``--king-cutoff``) and ancestry outliers.

Both run on the people and variants QC kept, on the common autosomal variants (founder MAF >=
``maf``), relatives first:

- ``king_cutoff``: KING-robust kinship of every pair (:mod:`contig.genotypes.king`) on all common
  autosomal variants; one person of each pair above the cutoff is removed with plink2's greedy
  choice. Not on the PCA's LD-pruned set: on the demo cohort (1,992 people, no relatives) the
  pruned set (957 variants, --indep-pairwise 1000kb 1 0.1) puts 1,188 unrelated pairs above the
  2nd-degree boundary 0.0884, the 12,120 common variants 4.
- ``ancestry_sd``: the top ``ancestry_pcs`` principal components of the unrelated people that
  remain, on the LD-pruned common variants (``window``, the PCA's pruning; plink2 ``--pca
  approx``'s standardization, :mod:`contig.genotypes.pca`); a person more than ``ancestry_sd``
  standard deviations from the mean on any of them is removed (one pass, mean and SD over
  everyone remaining; EIGENSOFT's smartpca uses 6 SD on 10 PCs, iterating).

The kinship of every pair is computed whenever ``king_table`` is set, so a report can show the
cohort's relatedness before anyone chooses a cutoff.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from contig.core.errors import InputError
from contig.genotypes.king import (THIRD_DEGREE, KingPairs, cutoff_pairs, degree_of, king_cutoff_removed,
                                   king_pairs)
from contig.genotypes.ld import PruneWindow, indep_pairwise
from contig.genotypes.pca import GramOperator, block_krylov_eigh, standardization
from contig.genotypes.plinkio import Genotypes, is_autosome
from contig.genotypes.qc import STEP_SCHEMA, QCResult

log = logging.getLogger(__name__)

KIN0_FLOOR = THIRD_DEGREE  # pairs written to the kinship table: 3rd degree or closer
HISTOGRAM_FLOOR = 0.02  # the kinship histogram starts here (unrelated pairs are ~0 and dominate)


@dataclass(frozen=True)
class SampleFilterSettings:
    """What to remove (None = filter off) and the variants both filters use."""

    king_cutoff: float | None = None
    ancestry_sd: float | None = None
    ancestry_pcs: int = 10
    king_table: bool = False  # compute every pair's kinship even without a cutoff
    maf: float = 0.05
    window: PruneWindow | None = None
    seed: int = 0

    @property
    def active(self) -> bool:
        return self.king_table or self.king_cutoff is not None or self.ancestry_sd is not None


DEFAULTS = SampleFilterSettings()


@dataclass
class SampleFilterResult:
    """Who each filter removed (positions into the input ``sample_idx``) and what it saw."""

    kept: np.ndarray  # (n_input,) bool
    removed: dict[str, np.ndarray] = field(default_factory=dict)  # step -> positions
    reasons: dict[int, str] = field(default_factory=dict)  # position -> why (e.g. the partner)
    pairs: KingPairs | None = None  # kinship pairs >= KIN0_FLOOR, positions into the input
    n_variants: int = 0  # common autosomal variants the kinship used
    pcs: np.ndarray | None = None  # (n_after_king, ancestry_pcs) PCs of those after king-cutoff
    pc_positions: np.ndarray | None = None  # (n_after_king,) positions of the rows of ``pcs``


def common_variants(genotypes: Genotypes, sample_idx: np.ndarray, variant_idx: np.ndarray,
                    maf: float) -> np.ndarray:
    """The autosomal variants of ``variant_idx`` with founder MAF >= ``maf`` (and > 0) among
    ``sample_idx``: sorted global indices."""
    autosomal = variant_idx[is_autosome(genotypes.bim["CHROM"].to_numpy()[variant_idx])]
    alt_freq, _, _ = standardization(genotypes, autosomal, sample_idx)
    minor = np.nan_to_num(np.minimum(alt_freq, 1.0 - alt_freq), nan=0.0)
    return autosomal[(minor >= maf) & (minor > 0)]


def pruned_variants(genotypes: Genotypes, sample_idx: np.ndarray, common: np.ndarray,
                    window: PruneWindow | None) -> np.ndarray:
    """``common`` LD-pruned with ``window`` among ``sample_idx`` (all of them when None)."""
    if window is None:
        return common
    return common[indep_pairwise(genotypes, window, common, sample_idx)]


def ancestry_pcs(genotypes: Genotypes, sample_idx: np.ndarray, variant_idx: np.ndarray, n_pcs: int,
                 seed: int) -> np.ndarray:
    """Top ``n_pcs`` PCs (unit eigenvectors) of ``sample_idx`` on ``variant_idx``: ``(n, n_pcs)``."""
    _, mean, scale = standardization(genotypes, variant_idx, sample_idx)
    informative = scale > 0
    operator = GramOperator(genotypes, variant_idx[informative], mean[informative], scale[informative],
                            sample_idx=sample_idx)
    _, vectors = block_krylov_eigh(operator, min(n_pcs, len(sample_idx) - 1), seed=seed)
    return vectors


def ancestry_outliers(pcs: np.ndarray, sd: float) -> tuple[np.ndarray, np.ndarray]:
    """bool ``(n,)``: more than ``sd`` standard deviations from the mean on any PC; and each
    person's largest |z| over the PCs, ``(n,)``."""
    spread = pcs.std(axis=0)
    z = np.abs(pcs - pcs.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    largest = z.max(axis=1)
    return largest > sd, largest


def remove_relatives(pairs: KingPairs, n: int, cutoff: float, iids: list[str],
                     result: SampleFilterResult) -> None:
    """plink2 --king-cutoff on ``pairs`` (positions < ``n``), recorded in ``result``."""
    above = cutoff_pairs(pairs, cutoff)
    first, second, kinship = pairs.first[above], pairs.second[above], pairs.kinship[above]
    removed = np.flatnonzero(king_cutoff_removed(n, first, second))
    result.removed["king-cutoff"] = removed
    result.kept[removed] = False
    degrees = degree_of(kinship)
    gone = set(removed.tolist())
    for a, b, phi, degree in zip(first.tolist(), second.tolist(), kinship.tolist(), degrees):
        for person, partner in ((a, b), (b, a)):
            if person in gone and person not in result.reasons:
                result.reasons[person] = f"{degree} of {iids[partner]} (kinship {phi:.3f})"
    log.info("--king-cutoff %g: %d pairs above it, %d people removed", cutoff, int(above.sum()),
             len(removed))


def run_sample_filters(genotypes: Genotypes, sample_idx: np.ndarray, variant_idx: np.ndarray,
                       settings: SampleFilterSettings) -> SampleFilterResult:
    """Relatives, then ancestry outliers, among ``sample_idx`` on the selected ``variant_idx``."""
    result = SampleFilterResult(kept=np.ones(len(sample_idx), dtype=bool))
    variants = common_variants(genotypes, sample_idx, variant_idx, settings.maf)
    if len(variants) < 2:
        raise InputError(f"{len(variants)} autosomal variants with MAF >= {settings.maf:g} left for "
                         "the kinship and ancestry filters; lower the MAF (--filter-maf, pca.maf)",
                         genotypes.parts[0].prefix)
    result.n_variants = len(variants)
    log.info("kinship on %d autosomal variants with MAF >= %g", len(variants), settings.maf)
    iids = genotypes.fam["IID"].gather(sample_idx).to_list()
    if settings.king_table or settings.king_cutoff is not None:
        floor = KIN0_FLOOR if settings.king_cutoff is None else min(KIN0_FLOOR, settings.king_cutoff)
        result.pairs = king_pairs(genotypes, variants, sample_idx, min_kinship=floor,
                                  histogram_floor=HISTOGRAM_FLOOR)
    if settings.king_cutoff is not None:
        remove_relatives(result.pairs, len(sample_idx), settings.king_cutoff, iids, result)
    if settings.ancestry_sd is not None:
        positions = np.flatnonzero(result.kept)
        pruned = pruned_variants(genotypes, sample_idx[positions], variants, settings.window)
        log.info("ancestry PCs on %d LD-pruned common variants", len(pruned))
        result.pcs = ancestry_pcs(genotypes, sample_idx[positions], pruned, settings.ancestry_pcs,
                                  settings.seed)
        result.pc_positions = positions
        outliers, largest = ancestry_outliers(result.pcs, settings.ancestry_sd)
        removed = positions[outliers]
        result.removed["ancestry-sd"] = removed
        result.kept[removed] = False
        for person, z in zip(removed.tolist(), largest[outliers].tolist()):
            result.reasons[person] = f"{z:.1f} SD from the centre on the top {result.pcs.shape[1]} PCs"
        log.info("--ancestry-sd %g: %d people removed", settings.ancestry_sd, len(removed))
    return result


def removed_table(result: SampleFilterResult, fam: pl.DataFrame) -> pl.DataFrame:
    """One row per removed person: FID, IID, step, reason (``fam``: the filters' input people)."""
    rows = []
    for step, positions in result.removed.items():
        for position in positions.tolist():
            rows.append((fam["FID"][position], fam["IID"][position], step, result.reasons.get(position, "")))
    return pl.DataFrame(rows, schema={"FID": pl.String, "IID": pl.String, "step": pl.String,
                                      "reason": pl.String}, orient="row")


def ancestry_table(result: SampleFilterResult, fam: pl.DataFrame) -> pl.DataFrame:
    """IID, PC1..PCk and ``removed`` (bool) for the people the ancestry filter saw; empty (IID
    and removed only) when it was off."""
    if result.pcs is None:
        return pl.DataFrame(schema={"IID": pl.String, "removed": pl.Boolean})
    positions = result.pc_positions
    columns = {"IID": fam["IID"].gather(positions)}
    columns |= {f"PC{k + 1}": result.pcs[:, k] for k in range(result.pcs.shape[1])}
    removed = np.isin(positions, result.removed.get("ancestry-sd", np.zeros(0, dtype=np.int64)))
    return pl.DataFrame(columns).with_columns(removed=pl.Series(removed))


def apply_to_qc(qc: QCResult, result: SampleFilterResult, settings: SampleFilterSettings,
                fam: pl.DataFrame) -> QCResult:
    """``qc`` with the filters' removals: fewer samples, a step row per filter (threshold None
    when off), the removed IIDs per step (``fam``: the full input .fam)."""
    rows = qc.steps.to_dicts()
    samples = qc.sample_idx
    kept = np.ones(len(samples), dtype=bool)
    removed_samples = dict(qc.removed_samples)
    for step, threshold in (("king-cutoff", settings.king_cutoff), ("ancestry-sd", settings.ancestry_sd)):
        positions = result.removed.get(step, np.zeros(0, dtype=np.int64))
        kept[positions] = False
        if threshold is not None:
            removed_samples[step] = fam["IID"].gather(samples[positions]).to_list()
        rows.append({"step": step, "samples_removed": len(positions), "variants_removed": 0,
                     "samples_remaining": int(kept.sum()), "variants_remaining": len(qc.variant_idx),
                     "threshold": threshold})
    return replace(qc, sample_idx=samples[kept], steps=pl.DataFrame(rows, schema=STEP_SCHEMA),
                   removed_samples=removed_samples)
