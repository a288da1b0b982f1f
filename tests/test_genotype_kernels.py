"""The compiled genotype kernels (LD bit planes, QC counts, score dosages) against dense NumPy
computations on the decoded genotypes."""

from __future__ import annotations

import numpy as np
import pytest

from contig.genotypes.bitops import sample_slot_mask
from contig.genotypes.ld import PruneWindow, _windows, prune_subcontig
from contig.genotypes.plinkio import Genotypes, write_bfile
from contig.genotypes.qc_counts import packed_qc_counts
from contig.scores.score_kernels import packed_dosages
from helpers.plink import make_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """203 samples (not a multiple of 4, 32 or 64), 700 variants with LD and 4% missing calls."""
    prefix = tmp_path_factory.mktemp("kernels") / "c"
    g = make_cohort(prefix, n=203, m=700, seed=21, missing=0.04, n_chrom=1, rho=0.8)
    g[5] = np.where(g[5] < 0, -9, 1)  # all heterozygous
    g[6] = -9  # no call at all
    geno = Genotypes.open(prefix)
    write_bfile(prefix, geno.fam, geno.bim, [g])
    return prefix, g


def dense_counts(g: np.ndarray) -> np.ndarray:
    """(n_variants, 4) counts of 0, 1, 2 ALT copies and missing calls of int8 ``g``."""
    return np.stack([(g == 0).sum(1), (g == 1).sum(1), (g == 2).sum(1), (g < 0).sum(1)], axis=1)


def test_qc_counts_equal_dense_counts(cohort):
    prefix, g = cohort
    geno = Genotypes.open(prefix)
    rng = np.random.default_rng(0)
    samples = np.sort(rng.choice(203, 150, replace=False))
    variants = np.sort(rng.choice(700, 600, replace=False))  # > 255: the lane counters flush
    counts, missing = packed_qc_counts(geno, samples, variants, track_missing=True, chunk_size=97)
    sub = g[np.ix_(variants, samples)]
    assert np.array_equal(counts, dense_counts(sub))
    assert np.array_equal(missing, (sub < 0).sum(0))
    all_counts, _ = packed_qc_counts(geno, None)
    assert np.array_equal(all_counts, dense_counts(g))


def r2_above(x: np.ndarray, y: np.ndarray, r2: float) -> bool:
    """r^2 of two int8 genotype rows over samples called at both exceeds r2 (float64 sums of small
    integers: exact)."""
    both = (x >= 0) & (y >= 0)
    x, y = x[both].astype(float), y[both].astype(float)
    n = both.sum()
    cov = n * (x @ y) - x.sum() * y.sum()
    var_x, var_y = n * (x @ x) - x.sum() ** 2, n * (y @ y) - y.sum() ** 2
    return bool(var_x > 0 and var_y > 0 and cov * cov > r2 * var_x * var_y)


def brute_force_pruned(g: np.ndarray, windows: list[tuple[int, int]], r2: float) -> np.ndarray:
    """plink's greedy pass as written in its documentation, on dense genotypes ``(m, n)``: variants
    without variance go first; in each window, repeatedly, every variant still in is compared with
    the later ones still in that it has not been compared with, and at the first pair over ``r2``
    the lower-MAF variant goes (the later one on ties)."""
    called = g >= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        alt = np.where(called, g, 0).sum(1) / (2.0 * called.sum(1))
    major = np.maximum(alt, 1 - alt)
    removed = np.array([len(np.unique(row[row >= 0])) <= 1 for row in g])  # no variance
    compared: set[tuple[int, int]] = set()
    for start, stop in windows:
        changed = True
        while changed:
            changed = False
            for i in range(start, stop):
                for j in range(i + 1, stop):
                    if removed[i] or removed[j] or (i, j) in compared:
                        continue
                    compared.add((i, j))
                    if r2_above(g[i], g[j], r2):
                        removed[i if major[i] > major[j] * (1 + 2.0**-44) else j] = True
                        changed = True
                        break
    return removed


@pytest.mark.parametrize("subset", [False, True], ids=["packed", "decoded-subset"])
@pytest.mark.parametrize("params", [("20", "3", "0.1"), ("100kb", "1", "0.2")])
def test_prune_subcontig_equals_brute_force(cohort, subset, params):
    """Blocks of 37 variants (windows crossing block edges) and one block, from the .bed bytes or,
    for a sample subset, from decoded genotypes."""
    prefix, g = cohort
    geno = Genotypes.open(prefix)
    variants = np.arange(300)
    samples = np.sort(np.random.default_rng(1).choice(203, 170, replace=False)) if subset else None
    window = PruneWindow.parse(*params)
    pos = geno.bim["POS"].to_numpy()[variants]
    sub = g[variants] if samples is None else g[np.ix_(variants, samples)]
    want = brute_force_pruned(sub, _windows(pos, window), window.r2)
    for block in (37, None):
        got = prune_subcontig(geno, variants, samples, pos, window, block=block)
        assert np.array_equal(got.removed, want)
    assert got.monomorphic[5] and got.monomorphic[6] and got.monomorphic.sum() == 2
    assert 20 < want.sum() < len(variants) - 20
    widest = max(stop - start for start, stop in _windows(pos, window))
    assert got.r2_computed < len(variants) * widest  # removed variants cost no pairs


@pytest.mark.parametrize("mean_imputation", [True, False])
def test_packed_dosages_equal_dense(cohort, mean_imputation):
    prefix, g = cohort
    geno = Genotypes.open(prefix)
    founders = np.arange(0, 203, 2)
    rows = np.ascontiguousarray(next(geno.iter_packed_chunks(700))[1])
    dosage = np.empty(g.shape)
    missing = np.empty(g.shape, dtype=bool)
    any_missing = packed_dosages(rows, 203, sample_slot_mask(203, founders), mean_imputation, dosage,
                                 missing)
    assert any_missing
    f = g[:, founders]
    called = (f >= 0).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        freq = np.where(called > 0, np.where(f >= 0, f, 0).sum(1) / (2.0 * called), 0.0)
    fill = 2.0 * freq if mean_imputation else np.zeros(len(g))
    want = np.where(g >= 0, g, fill[:, None]).astype(float)
    assert np.array_equal(dosage, want)
    if not mean_imputation:
        assert np.array_equal(missing, g < 0)
