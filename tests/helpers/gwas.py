"""Small simulated cohorts for the GWAS, LOCO, clumping and plot tests (fast, deterministic)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from scipy.special import ndtri

from contig.genotypes.plinkio import MISSING, write_bfile


@dataclass
class Cohort:
    prefix: Path
    genotypes: np.ndarray  # (n_variants, n_samples) int8, -9 missing
    bim: pl.DataFrame
    iid: np.ndarray
    population: np.ndarray  # (n_samples,)


def simulate_cohort(prefix: Path, n_samples: int = 600, n_chrom: int = 3, snps_per_chrom: int = 200,
                    missing_rate: float = 0.0, fst: float = 0.05, ld_rho: float = 0.9,
                    spacing_bp: int = 5000, seed: int = 1, alt_major_share: float = 0.3) -> Cohort:
    """Two populations (Balding–Nichols), LD from an AR(1) latent Gaussian per haplotype."""
    rng = np.random.default_rng(seed)
    population = rng.integers(0, 2, n_samples)
    blocks, bims = [], []
    for chrom in range(1, n_chrom + 1):
        m = snps_per_chrom
        anc = rng.uniform(0.05, 0.5, m)
        a = anc * (1 - fst) / fst
        b = (1 - anc) * (1 - fst) / fst
        pop_freq = np.clip(rng.beta(a, b, (2, m)), 0.01, 0.99)  # (2, m)
        counts = np.zeros((m, n_samples), dtype=np.int8)
        for _ in range(2):  # two haplotypes
            z = np.empty((m, n_samples))
            z[0] = rng.standard_normal(n_samples)
            for v in range(1, m):
                z[v] = ld_rho * z[v - 1] + np.sqrt(1 - ld_rho**2) * rng.standard_normal(n_samples)
            threshold = ndtri(pop_freq.T[:, population])  # (m, n_samples)
            counts += (z < threshold).astype(np.int8)
        flip = rng.random(m) < alt_major_share
        counts[flip] = 2 - counts[flip]
        if missing_rate > 0:
            counts[rng.random(counts.shape) < missing_rate] = MISSING
        blocks.append(counts)
        alleles = rng.choice(list("ACGT"), (m, 2))
        same = alleles[:, 0] == alleles[:, 1]
        alleles[same, 1] = np.where(alleles[same, 0] == "A", "C", "A")
        bims.append(pl.DataFrame({
            "CHROM": [str(chrom)] * m, "ID": [f"rs{chrom}_{v}" for v in range(m)],
            "CM": np.zeros(m), "POS": (np.arange(m) + 1) * spacing_bp,
            "ALT": alleles[:, 0], "REF": alleles[:, 1],
        }))
    genotypes = np.concatenate(blocks)
    bim = pl.concat(bims)
    iid = np.array([f"p{i:05d}" for i in range(n_samples)])
    fam = pl.DataFrame({"FID": iid, "IID": iid, "PAT": ["0"] * n_samples, "MAT": ["0"] * n_samples,
                        "SEX": np.zeros(n_samples, dtype=np.int8), "PHENO": ["-9"] * n_samples})
    write_bfile(prefix, fam, bim, [genotypes])
    return Cohort(Path(prefix), genotypes, bim, iid, population)


def write_table(path: Path, iid, columns: dict[str, np.ndarray]) -> Path:
    """Write IID + numeric columns as TSV (NaN -> NA)."""
    table = pl.DataFrame({"IID": list(iid), **{k: np.asarray(v, dtype=float) for k, v in columns.items()}})
    table = table.with_columns([pl.col(k).fill_nan(None) for k in columns])
    table.write_csv(path, separator="\t", null_value="NA")
    return path


def mean_imputed(genotypes: np.ndarray) -> np.ndarray:
    """Float copy ``(n_variants, n_samples)`` with missing calls replaced by the variant's mean."""
    g = genotypes.astype(float)
    g[genotypes == MISSING] = np.nan
    mean = np.nanmean(g, axis=1, keepdims=True)
    return np.where(np.isnan(g), mean, g)


def principal_components(genotypes: np.ndarray, k: int) -> np.ndarray:
    """Top-k PCs ``(n_samples, k)`` of standardized mean-imputed genotypes (covariates for tests)."""
    g = mean_imputed(genotypes)
    sd = g.std(axis=1, keepdims=True)
    z = (g - g.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1)
    u, s, _ = np.linalg.svd(z.T, full_matrices=False)
    return u[:, :k] * s[:k]
