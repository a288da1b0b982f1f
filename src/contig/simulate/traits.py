"""Covariates, the causal architecture of the latent image traits, the traits, and the labels.

Every trait is a sum of independent parts whose variances are set (in-sample) by the config:
major SNPs (each ``major_variance``), a polygenic background, rare-variant gene burdens, age, sex,
a population shift (pigmentation only) and noise; its total variance is ~1. Effects are per ALT
allele (.bim column 5) of the true, complete genotypes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from contig.simulate.config import TRAITS, SimulationConfig
from contig.simulate.genotypes import Genome

# Direction of the age and sex (female) effect on each trait, in TRAITS order.
AGE_SIGN = np.array([-1.0, -1.0, 1.0, 1.0, 0.5, 1.0])
SEX_SIGN = np.array([1.0, -1.0, 1.0, -1.0, 1.0, 0.5])
BURDEN_MAF = 0.01
"""Variants with sample MAF below this count towards a gene's burden."""
MIN_MAJOR_DISTANCE_BP = 3_000_000
MAX_CAUSAL_HWE_CHI2 = 10.0  # p ~ 0.0016, far from --hwe 1e-6


@dataclass
class Covariates:
    """Per-person covariates, each ``(n_samples,)``."""

    age: np.ndarray  # years, one decimal
    sex: np.ndarray  # PLINK coding: 1 = male, 2 = female
    batch: np.ndarray  # genotyping batch 0..n_batches-1


def simulate_covariates(n_samples: int, n_batches: int, rng: np.random.Generator) -> Covariates:
    """Age ~ N(57, 8) clipped to 40-75, sex 1/2 with equal odds, batch uniform."""
    age = np.round(np.clip(rng.normal(57, 8, n_samples), 40, 75), 1)
    sex = rng.integers(1, 3, n_samples)
    return Covariates(age=age, sex=sex, batch=rng.integers(0, n_batches, n_samples))


@dataclass
class Architecture:
    """Which variants and genes are causal; filled with effects by :func:`simulate_traits`."""

    major: np.ndarray  # (n_traits, n_major) SNP indices
    polygenic: np.ndarray  # (n_traits, n_polygenic) SNP indices
    burden_genes: np.ndarray  # (n_burden_genes,) rows of genome.genes
    burden_trait: np.ndarray  # (n_burden_genes,) index into TRAITS

    def causal_snps(self) -> np.ndarray:
        """Every causal SNP index (sorted, unique)."""
        return np.unique(np.concatenate([self.major.ravel(), self.polygenic.ravel()]))


def burden_variants(genome: Genome, maf: np.ndarray, gene: int) -> np.ndarray:
    """SNP indices inside ``gene`` with sample MAF < BURDEN_MAF."""
    return np.flatnonzero((genome.gene_index == gene) & (maf < BURDEN_MAF))


def choose_architecture(genome: Genome, maf: np.ndarray, hwe_chi2: np.ndarray,
                        config: SimulationConfig, rng: np.random.Generator) -> Architecture:
    """Pick major SNPs (common, far apart), polygenic SNPs and burden genes on causal chromosomes.

    Causal SNPs are never ones a standard QC removes: their pooled-sample HWE chi-square
    ``hwe_chi2`` ``(n_snps,)`` must stay below MAX_CAUSAL_HWE_CHI2.
    """
    n_traits = len(TRAITS)
    on_causal = np.isin(genome.chrom, config.resolved_causal_chromosomes())
    on_causal &= hwe_chi2 < MAX_CAUSAL_HWE_CHI2
    candidates = rng.permutation(np.flatnonzero(on_causal & (maf >= 0.15)))
    major: list[int] = []
    needed = n_traits * config.n_major_snps
    for min_distance in (MIN_MAJOR_DISTANCE_BP, MIN_MAJOR_DISTANCE_BP // 4, 0):
        for j in candidates:
            if len(major) == needed:
                break
            close = [k for k in major if genome.chrom[k] == genome.chrom[j]
                     and abs(genome.pos[k] - genome.pos[j]) < min_distance]
            if not close and j not in major:
                major.append(int(j))
    if len(major) < needed:
        raise ValueError(f"only {len(major)} common SNPs on the causal chromosomes for {needed} "
                         "major effects; raise n_snps or lower n_major_snps")
    pool = np.setdiff1d(np.flatnonzero(on_causal & (maf >= 0.05)), major)
    n_poly = min(config.n_polygenic_snps, len(pool) // n_traits)
    polygenic = rng.choice(pool, size=n_traits * n_poly, replace=False).reshape(n_traits, n_poly)

    genes_on_causal = np.flatnonzero(genome.genes["chrom"].is_in(
        list(config.resolved_causal_chromosomes())).to_numpy())
    n_rare = np.array([len(burden_variants(genome, maf, g)) for g in genes_on_causal])
    eligible = genes_on_causal[n_rare >= 4]
    n_genes = min(config.n_burden_genes, len(eligible))
    burden_genes = np.sort(rng.choice(eligible, n_genes, replace=False))
    trait_order = rng.permutation(n_traits)
    return Architecture(
        major=np.array(major, dtype=np.int64).reshape(n_traits, config.n_major_snps),
        polygenic=polygenic,
        burden_genes=burden_genes,
        burden_trait=trait_order[np.arange(n_genes) % n_traits],
    )


def _scaled_to_variance(x: np.ndarray, variance: float) -> tuple[np.ndarray, float]:
    """Centred ``x`` scaled to in-sample ``variance``; also the scale factor applied."""
    sd = x.std()
    factor = 0.0 if sd == 0 else np.sqrt(variance) / sd
    return (x - x.mean()) * factor, factor


def simulate_traits(
    alt: np.ndarray,
    genome: Genome,
    maf: np.ndarray,
    arch: Architecture,
    covariates: Covariates,
    population: np.ndarray,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, pl.DataFrame]:
    """Latent traits ``(n_samples, n_traits)`` and the truth table (one row per causal element).

    ``alt``: true ALT counts int8 ``(n_snps, n_samples)``.
    """
    n_samples = alt.shape[1]
    traits = np.zeros((n_samples, len(TRAITS)))
    rows: list[dict] = []
    minor_is_alt = alt.mean(axis=1) / 2 <= 0.5
    for t, trait in enumerate(TRAITS):
        genes = arch.burden_genes[arch.burden_trait == t]
        major_total = config.n_major_snps * config.major_variance
        burden_total = len(genes) * config.burden_variance
        shrink = min(1.0, config.h2 / max(major_total + burden_total, 1e-12))
        polygenic_total = max(0.0, config.h2 - shrink * (major_total + burden_total))

        for j in arch.major[t]:
            g = alt[j].astype(np.float64)
            part, beta = _scaled_to_variance(g, shrink * config.major_variance)
            beta *= rng.choice([-1.0, 1.0])
            traits[:, t] += np.sign(beta) * part
            rows.append(_snp_row(genome, maf, j, trait, beta, beta**2 * g.var(), "major"))

        snps = arch.polygenic[t]
        if len(snps) and polygenic_total > 0:
            g = alt[snps].astype(np.float64)
            raw_beta = rng.standard_normal(len(snps))
            part, factor = _scaled_to_variance(raw_beta @ g, polygenic_total)
            traits[:, t] += part
            for j, b, row in zip(snps, raw_beta * factor, g):
                rows.append(_snp_row(genome, maf, j, trait, b, b**2 * row.var(), "polygenic"))

        for gene in genes:
            variants = burden_variants(genome, maf, gene)
            minor = np.where(minor_is_alt[variants, None], alt[variants], 2 - alt[variants])
            burden = minor.sum(axis=0, dtype=np.float64)
            part, beta = _scaled_to_variance(burden, shrink * config.burden_variance)
            traits[:, t] += part
            info = genome.genes.row(int(gene), named=True)
            rows.append({"kind": "gene", "id": info["gene"], "chrom": info["chrom"],
                         "start": info["start"], "end": info["end"], "trait": trait,
                         "effect": beta, "variance_explained": beta**2 * burden.var(),
                         "role": "burden", "maf": float(np.mean(maf[variants]))})

        traits[:, t] += AGE_SIGN[t] * _scaled_to_variance(covariates.age, config.age_variance)[0]
        traits[:, t] += SEX_SIGN[t] * _scaled_to_variance(
            (covariates.sex == 2).astype(float), config.sex_variance)[0]
        shift = config.population_shift * population.astype(float) if trait == "pigmentation" else 0
        traits[:, t] += shift - np.mean(shift)
        noise_variance = max(0.05, 1 - traits[:, t].var())
        traits[:, t] += rng.normal(0, np.sqrt(noise_variance), n_samples)
    truth = pl.DataFrame(rows, schema={
        "kind": pl.String, "id": pl.String, "chrom": pl.Int64, "start": pl.Int64, "end": pl.Int64,
        "trait": pl.String, "effect": pl.Float64, "variance_explained": pl.Float64,
        "role": pl.String, "maf": pl.Float64,
    })
    return traits, truth


def _snp_row(genome: Genome, maf: np.ndarray, j: int, trait: str, beta: float,
             variance: float, role: str) -> dict:
    return {"kind": "snp", "id": str(genome.rsid[j]), "chrom": int(genome.chrom[j]),
            "start": int(genome.pos[j]), "end": int(genome.pos[j]), "trait": trait,
            "effect": float(beta), "variance_explained": float(variance), "role": role,
            "maf": float(maf[j])}


def simulate_labels(traits: np.ndarray, config: SimulationConfig,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Binary disease ``(n_samples,)`` and severity grade 0-4 ``(n_samples,)`` from the image traits.

    Both are driven by lesions, tortuosity, vessel width and density (all visible in the images)
    plus noise; severity quantile cut points 45/70/85/95%.
    """
    z = (traits - traits.mean(axis=0)) / traits.std(axis=0)
    col = {name: z[:, k] for k, name in enumerate(TRAITS)}
    n = len(traits)
    risk = (0.9 * col["lesion_count"] + 0.5 * col["vessel_tortuosity"]
            - 0.4 * col["vessel_density"] + 0.3 * col["vessel_width"] + rng.normal(0, 0.5, n))
    disease = (risk > np.quantile(risk, 1 - config.disease_prevalence)).astype(np.int64)
    grade_score = (0.8 * col["lesion_count"] + 0.4 * col["vessel_tortuosity"]
                   + 0.3 * col["vessel_width"] + 0.5 * disease + rng.normal(0, 0.5, n))
    cuts = np.quantile(grade_score, [0.45, 0.70, 0.85, 0.95])
    return disease, np.searchsorted(cuts, grade_score).astype(np.int64)
