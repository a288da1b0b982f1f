"""Cohorts with planted relatives and an ancestry-outlier group, written as PLINK 1 files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from contig.genotypes.plinkio import Genotypes, write_bfile
from contig.simulate.relatives import child_of, plant_relatives
from helpers.plink import make_cohort


def make_related_cohort(prefix: Path, n: int = 300, m: int = 3000, seed: int = 0,
                        missing: float = 0.01) -> pl.DataFrame:
    """A two-population cohort with duplicates, parent-offspring pairs, siblings and one family
    whose relatives chain (a parent with two children by different partners, one child duplicated),
    then missing calls at rate ``missing``. Returns the planted pairs (IID1, IID2, relation)."""
    rng = np.random.default_rng(seed)
    g = make_cohort(prefix, n=n, m=m, seed=seed, missing=0.0, n_chrom=4, rho=0.5)
    geno = Genotypes.open(prefix)
    iids = geno.fam["IID"].to_list()
    population = np.zeros(n, dtype=np.int64)  # relatives within one population suffice here
    pairs = plant_relatives(g, population, iids, n_duplicates=3, n_parent_offspring=4,
                            n_sibling_pairs=4, rng=rng)
    # A chained family among the last people: parent P, children C1 (with Q) and C2 (with R), C2's duplicate.
    p, q, r, c1, c2, dup = range(n - 6, n)
    g[:, c1] = child_of(g[:, p], g[:, q], rng)
    g[:, c2] = child_of(g[:, p], g[:, r], rng)
    g[:, dup] = g[:, c2]
    g[rng.uniform(size=g.shape) < missing] = -9
    write_bfile(prefix, geno.fam, geno.bim, [g])
    return pairs


def add_outlier_group(prefix: Path, n_outliers: int, seed: int = 0) -> list[str]:
    """Overwrite the last ``n_outliers`` people with draws from unrelated allele frequencies (a
    population far from the rest); returns their IIDs."""
    rng = np.random.default_rng(seed)
    geno = Genotypes.open(prefix)
    g = geno.read(np.arange(geno.n_variants))
    freq = rng.uniform(0.05, 0.95, geno.n_variants)
    g[:, -n_outliers:] = rng.binomial(2, freq[:, None], size=(geno.n_variants, n_outliers))
    write_bfile(prefix, geno.fam, geno.bim, [g])
    return geno.fam["IID"].to_list()[-n_outliers:]
