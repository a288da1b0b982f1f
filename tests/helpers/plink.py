"""The plink2 oracle and a structured test cohort with LD written as PLINK 1 files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from contig.genotypes.plinkio import write_bfile

PLINK2 = shutil.which("plink2")
PLINK1 = shutil.which("plink1.9")
# The oracle marker (tests/conftest.py skips marked tests when plink2 is not on PATH); an alias kept
# for the test files that import it.
needs_plink2 = pytest.mark.plink2


def run_plink2(*args: str) -> None:
    """Run plink2 single-threaded-BLAS (its threads fight plink2's own), raising on failure."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    subprocess.run([PLINK2, *args, "--threads", "2"], check=True, capture_output=True, env=env)


def make_cohort(prefix: Path, n: int = 300, m: int = 2000, n_pops: int = 2, seed: int = 0,
                missing: float = 0.01, n_chrom: int = 3, rho: float = 0.9, fst: float = 0.05,
                pop_sizes: np.ndarray | None = None) -> np.ndarray:
    """Write a structured cohort with LD: Balding-Nichols population frequencies, haplotypes from a
    thresholded AR(1) Gaussian along each chromosome, missing calls at rate ``missing``.

    Population p gets drift ``fst * (p + 1) / n_pops`` so eigenvalues differ. Returns the genotype
    matrix int8 ``(m, n)`` (-9 missing) as written.
    """
    from scipy.stats import norm

    rng = np.random.default_rng(seed)
    if pop_sizes is None:
        pop = rng.integers(0, n_pops, n)
    else:
        pop = np.repeat(np.arange(len(pop_sizes)), pop_sizes)
        n = len(pop)
    ancestral = rng.uniform(0.05, 0.95, m)
    freqs = np.empty((n_pops, m))
    for p in range(n_pops):
        f = fst * (p + 1) / n_pops
        freqs[p] = rng.beta(ancestral * (1 - f) / f, (1 - ancestral) * (1 - f) / f)
    chrom = np.sort(rng.integers(1, n_chrom + 1, m))
    z = np.empty((2 * n, m))
    noise = rng.standard_normal((2 * n, m))
    z[:, 0] = noise[:, 0]
    for j in range(1, m):
        r = rho if chrom[j] == chrom[j - 1] and rng.uniform() > 0.05 else 0.0
        z[:, j] = r * z[:, j - 1] + np.sqrt(1 - r * r) * noise[:, j]
    haplotypes = (norm.cdf(z) < freqs[np.repeat(pop, 2)]).astype(np.int8)
    genotypes = (haplotypes[0::2] + haplotypes[1::2]).T.copy()
    genotypes[rng.uniform(size=genotypes.shape) < missing] = -9
    pos = np.concatenate([np.sort(rng.choice(np.arange(1, 5_000_000), (chrom == c).sum(), replace=False))
                          for c in np.unique(chrom)])
    fam = pl.DataFrame({"FID": [f"F{i}" for i in range(n)], "IID": [f"S{i}" for i in range(n)],
                        "PAT": "0", "MAT": "0", "SEX": pl.Series(rng.integers(1, 3, n), dtype=pl.Int8),
                        "PHENO": "-9"})
    bim = pl.DataFrame({"CHROM": chrom.astype(str), "ID": [f"rs{j}" for j in range(m)], "CM": 0.0,
                        "POS": pos, "ALT": "A", "REF": "G"})
    write_bfile(prefix, fam, bim, [genotypes])
    return genotypes


def plink_tolerance(text: str) -> float:
    """Half a unit in the last printed digit of a plink2 number such as 0.082883 or 1.2e-05."""
    mantissa = text.lower().split("e")[0].lstrip("-")
    exponent = int(text.lower().split("e")[1]) if "e" in text.lower() else 0
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 0.5 * 10.0 ** (exponent - decimals)


def with_fid(path: Path, out: Path) -> Path:
    """A copy of the IID-keyed table ``path`` at ``out`` with a #FID column (= IID) first, as plink2 reads it."""
    table = pl.read_csv(path, separator="\t")
    table.select(pl.col("IID").alias("#FID"), pl.all()).write_csv(out, separator="\t", null_value="NA")
    return out
