"""KING-robust kinship (plink2 ``--make-king-table``) and plink2's ``--king-cutoff`` relative pruning.

For a pair of people (i, j), over the variants both have called (NSNP of them):
HETHET = both heterozygous, IBS0 = opposite homozygotes, and N_i (N_j) = i (j) heterozygous. The
KING-robust between-family kinship (Manichaikul et al. 2010), as plink2 computes it, is

    phi = 1/2 - (N_i + N_j - 2 HETHET + 4 IBS0) / (4 min(N_i, N_j))

(the numerator is the sum of squared genotype differences). Expected values: 0.5 duplicates or
monozygotic twins, 0.25 first degree, 0.125 second, 0.0625 third, 0 unrelated; plink2's
thresholds between the degrees are 0.354, 0.177, 0.0884 and 0.0442.

Method: every count is a popcount of ANDed bit planes (het, hom-REF, hom-ALT, called; 64
variants per word; :mod:`contig.genotypes.king_kernels`, compiled with Numba, rows in parallel),
for one block of people against everyone before them, streamed over chunks of variants. Cost
O(n^2 m / 64) word operations, memory O(block x n) for the counts (20 bytes per pair).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_path
from contig.genotypes.plinkio import Genotypes

log = logging.getLogger(__name__)

# plink2's kinship boundaries: above DUPLICATE = duplicate / MZ twin, above FIRST = 1st degree, ...
DUPLICATE, FIRST_DEGREE, SECOND_DEGREE, THIRD_DEGREE = 0.354, 0.177, 0.0884, 0.0442
DEGREE_THRESHOLDS = {"duplicate/MZ": DUPLICATE, "1st degree": FIRST_DEGREE,
                     "2nd degree": SECOND_DEGREE, "3rd degree": THIRD_DEGREE}
# plink2 nudges the --king-cutoff threshold up by this relative amount (kSmallEpsilon = 2^-44).
SMALL_EPSILON = 2.0**-44
HISTOGRAM_BIN = 0.01  # width of the kinship histogram's bins
PAIR_COLUMNS = ("NSNP", "HETHET", "IBS0", "KINSHIP")


@dataclass(frozen=True)
class KingSettings:
    """The options of :func:`king_pairs` with their defaults."""

    block_size: int | None = None  # people per block of rows; None: ~1 GiB of counts (20 B a pair)
    chunk_size: int = 8192  # variants per streamed chunk


DEFAULTS = KingSettings()


@dataclass
class KingPairs:
    """Pairs (i, j), i > j (indices into the selected samples), with their counts and kinship.

    ``first``, ``second``: int64 ``(n_pairs,)``; ``nsnp``, ``hethet``, ``ibs0``: int64 counts;
    ``kinship``: float64. ``histogram``: pair counts per HISTOGRAM_BIN-wide bin of kinship over
    *all* pairs, from ``histogram_edges[0]`` up (pairs below it are not binned).
    """

    first: np.ndarray
    second: np.ndarray
    nsnp: np.ndarray
    hethet: np.ndarray
    ibs0: np.ndarray
    kinship: np.ndarray
    histogram: np.ndarray
    histogram_edges: np.ndarray
    n_pairs_total: int


def block_counts(genotypes: Genotypes, variant_idx: np.ndarray, sample_idx: np.ndarray,
                 rows: slice, chunk_size: int) -> np.ndarray:
    """Counts of the people ``rows`` (positions in ``sample_idx``) against the people before
    each of them: int32 ``(5, len(rows), rows.stop)``, nsnp, hethet, ibs0, het_first (row person
    heterozygous, both called) and het_second; entries (r, j) with j >= rows.start + r stay 0."""
    # Imported here, not at module level: importing Numba costs ~0.25 s, which `contig qc` (it
    # imports this module through sample_filters) must not pay unless a kinship runs.
    from contig.genotypes.king_kernels import N_COUNTS, accumulate_pair_counts, sample_planes

    n_rows, n_cols = rows.stop - rows.start, rows.stop
    totals = np.zeros((N_COUNTS, n_rows, n_cols), dtype=np.int32)
    cols = sample_idx[:n_cols]
    for _, chunk in genotypes.iter_chunks(chunk_size, sample_idx=cols, variant_idx=variant_idx):
        accumulate_pair_counts(*sample_planes(chunk), rows.start, rows.stop, totals)
    return totals


def default_block_size(n_samples: int) -> int:
    """People per block: the counts of a block against everyone take about 1 GiB (20 bytes a
    pair), between 64 and 8,192 rows."""
    return int(np.clip(2**30 // (20 * max(n_samples, 1)), 64, 8192))


def histogram_edges(floor: float) -> np.ndarray:
    """Bin edges from ``floor`` to 0.5 (plus one bin above, for kinship estimates beyond 0.5)."""
    return np.arange(floor, 0.5 + 2 * HISTOGRAM_BIN, HISTOGRAM_BIN)


def king_pairs(genotypes: Genotypes, variant_idx: np.ndarray, sample_idx: np.ndarray | None = None,
               min_kinship: float | None = None, histogram_floor: float = 0.0,
               settings: KingSettings = DEFAULTS) -> KingPairs:
    """KING-robust kinship of every pair of ``sample_idx`` (default all) on ``variant_idx``.

    Keeps the pairs with kinship >= ``min_kinship`` (all when None, plink2's
    ``--king-table-filter``) and a histogram of all pairs' kinship from ``histogram_floor`` up.
    """
    from contig.genotypes.king_kernels import kinship_matrix

    samples = np.arange(genotypes.n_samples) if sample_idx is None else np.asarray(sample_idx)
    variant_idx = np.asarray(variant_idx)
    edges = histogram_edges(histogram_floor)
    histogram = np.zeros(len(edges) - 1, dtype=np.int64)
    kept: dict[str, list[np.ndarray]] = {k: [] for k in ("first", "second", "nsnp", "hethet", "ibs0",
                                                         "kinship")}
    n = len(samples)
    block_size = settings.block_size or default_block_size(n)
    for start in range(0, n, block_size):
        rows = slice(start, min(start + block_size, n))
        counts = block_counts(genotypes, variant_idx, samples, rows, settings.chunk_size)
        kinship = kinship_matrix(counts, start)  # NaN outside the pairs (j < start + r)
        finite = np.isfinite(kinship)
        histogram += np.histogram(kinship[finite], bins=edges)[0]
        if min_kinship is None:  # every pair, NaN kinship included
            keep = np.arange(rows.stop)[None, :] < np.arange(rows.start, rows.stop)[:, None]
        else:
            keep = finite
            keep[finite] = kinship[finite] >= min_kinship
        first_local, second = np.nonzero(keep)  # row-major: plink2's pair order
        nsnp, hethet, ibs0 = (counts[k][keep] for k in range(3))
        for name, array in (("first", first_local + start), ("second", second), ("nsnp", nsnp),
                            ("hethet", hethet), ("ibs0", ibs0), ("kinship", kinship[keep])):
            kept[name].append(array)
        log.info("KING: %d of %d people done", rows.stop, n)
    arrays = {name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in kept.items()}
    return KingPairs(**arrays, histogram=histogram, histogram_edges=edges,
                     n_pairs_total=n * (n - 1) // 2)


def king_cutoff_removed(n_samples: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """plink2 ``--king-cutoff``'s greedy choice: bool ``(n_samples,)``, True = removed.

    ``first``, ``second``: the pairs above the cutoff (indices into the samples). While a pair is
    left: when someone has exactly one related partner left, the partner of the lowest-index such
    person goes (that keeps the person and breaks the pair); otherwise the lowest-index person with
    the most related partners left goes. A removed person's pairs go with them.
    """
    partners: list[set[int]] = [set() for _ in range(n_samples)]
    for a, b in zip(first.tolist(), second.tolist()):
        partners[a].add(b)
        partners[b].add(a)
    degree = np.array([len(p) for p in partners], dtype=np.int64)
    removed = np.zeros(n_samples, dtype=bool)
    while degree.any():
        ones = np.flatnonzero(degree == 1)
        victim = next(iter(partners[ones[0]])) if len(ones) else int(np.argmax(degree))
        for partner in partners[victim]:
            partners[partner].discard(victim)
            degree[partner] -= 1
        partners[victim] = set()
        degree[victim] = 0
        removed[victim] = True
    return removed


def cutoff_pairs(pairs: KingPairs, cutoff: float) -> np.ndarray:
    """bool ``(n_pairs,)``: pairs whose kinship exceeds ``cutoff`` as plink2 compares it."""
    return np.nan_to_num(pairs.kinship, nan=-np.inf) > cutoff * (1.0 + SMALL_EPSILON)


def kin0_table(pairs: KingPairs, fam: pl.DataFrame) -> pl.DataFrame:
    """The pairs in plink2's .kin0 layout: FID1 IID1 FID2 IID2 NSNP HETHET IBS0 KINSHIP, with
    HETHET and IBS0 as fractions of NSNP (``fam``: the selected samples, in order)."""
    fid, iid = fam["FID"].to_numpy(), fam["IID"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        hethet = pairs.hethet / pairs.nsnp
        ibs0 = pairs.ibs0 / pairs.nsnp
    return pl.DataFrame({
        "FID1": fid[pairs.first], "IID1": iid[pairs.first], "FID2": fid[pairs.second],
        "IID2": iid[pairs.second], "NSNP": pairs.nsnp.astype(np.int64), "HETHET": hethet,
        "IBS0": ibs0, "KINSHIP": pairs.kinship,
    })


def write_kin0(path: str | Path, table: pl.DataFrame) -> None:
    """Write a :func:`kin0_table` as plink2 does: tab-separated, ``#FID1`` header, 6 significant
    digits."""
    lines = ["#" + "\t".join(table.columns)]
    for row in table.iter_rows():
        *ids, nsnp, hethet, ibs0, kinship = row
        lines.append("\t".join([*ids, str(nsnp), *(f"{v:.6g}" for v in (hethet, ibs0, kinship))]))
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")


def degree_of(kinship: np.ndarray) -> np.ndarray:
    """The relationship class of each kinship value by plink2's boundaries, as strings."""
    labels = np.full(len(kinship), "unrelated", dtype=object)
    for label, threshold in reversed(list(DEGREE_THRESHOLDS.items())):
        labels[np.nan_to_num(kinship, nan=-1.0) > threshold] = label
    return labels


def histogram_table(pairs: KingPairs) -> pl.DataFrame:
    """Aggregate kinship distribution: one row per bin (``from``, ``to``, ``pairs``)."""
    edges = pairs.histogram_edges
    return pl.DataFrame({"from": np.round(edges[:-1], 6), "to": np.round(edges[1:], 6),
                         "pairs": pairs.histogram})
