"""The simulator's settings: one dataclass, every field documented, validated before any work."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from contig.core.errors import InputError

TRAITS: tuple[str, ...] = (
    "disc_size",
    "vessel_density",
    "vessel_width",
    "vessel_tortuosity",
    "pigmentation",
    "lesion_count",
)
"""The latent image traits, in the column order of traits.tsv."""


@dataclass(frozen=True)
class Range:
    """The allowed values of one numeric setting: ``low`` to ``high``, each end open or closed."""

    low: float
    high: float = math.inf
    include_low: bool = True
    include_high: bool = True

    def __contains__(self, value: float) -> bool:
        above = value >= self.low if self.include_low else value > self.low
        below = value <= self.high if self.include_high else value < self.high
        return bool(above and below)

    def __str__(self) -> str:
        closed_high = self.include_high and self.high != math.inf
        return (f"{'[' if self.include_low else '('}{self.low:g}, {self.high:g}"
                f"{']' if closed_high else ')'}")


RANGES: dict[str, Range] = {
    "n_samples": Range(20),
    "n_snps": Range(100),  # and at least 50 per chromosome
    "n_chromosomes": Range(2, 22),
    "image_size": Range(32),
    "seed": Range(0),
    "n_workers": Range(1),
    "n_populations": Range(1),
    "fst": Range(0, 0.5, include_low=False, include_high=False),
    "rare_fraction": Range(0, 0.8, include_low=False, include_high=False),
    "snp_spacing_kb": Range(0, include_low=False),
    "ld_decay_cm": Range(0, include_low=False),
    "missing_rate": Range(0, 0.03),  # ordinary samples must pass --mind 0.05
    "h2": Range(0, 0.9),
    "n_major_snps": Range(0),
    "major_variance": Range(0, 0.9),
    "two_eye_fraction": Range(0, 1),
    "disease_prevalence": Range(0, 1, include_low=False, include_high=False),
    "n_duplicates": Range(0),
    "n_parent_offspring": Range(0),
    "n_sibling_pairs": Range(0),
}
"""Bounds of the numeric settings, checked by :meth:`SimulationConfig.validate` and by the CLI."""


@dataclass
class SimulationConfig:
    """Everything that defines a simulated cohort; the same config and seed give identical bytes."""

    # --- sizes
    n_samples: int = 2000
    """People (each has genotypes and covariates; every person has at least one image)."""
    n_snps: int = 20000
    """Variants on the genotyping array, spread over the chromosomes in proportion to their length."""
    n_chromosomes: int = 22
    """Autosomes 1..n_chromosomes (GRCh37 lengths)."""
    image_size: int = 128
    """Side of each square PNG in pixels."""
    seed: int = 1
    """Seed of every random draw (numpy Generator streams spawned from one SeedSequence)."""
    images: bool = True
    """Render fundus images (False: images.tsv and images/ are still written, empty)."""
    n_workers: int = 2
    """Processes rendering images; the output does not depend on it (per-image seeds)."""

    # --- genome and population structure
    n_populations: int = 2
    """Populations (Balding-Nichols allele frequencies around shared ancestral ones)."""
    fst: float = 0.05
    """Balding-Nichols F of each population from the ancestor (= expected Hudson Fst between two)."""
    snp_spacing_kb: float = 10.0
    """Mean distance between neighbouring array SNPs; with ld_decay_cm it sets how far LD reaches."""
    ld_decay_cm: float = 0.3
    """Genetic distance (cM) over which the latent haplotype correlation falls by 1/e (~300 kb at 1 cM/Mb)."""
    rare_fraction: float = 0.3
    """Share of variants drawn with ancestral MAF < 1%."""
    rare_in_genes_fraction: float = 0.7
    """Share of the rare variants placed inside genes (for burden tests)."""
    gene_spacing_kb: float = 150.0
    """One gene per this many kb of simulated sequence."""
    alt_is_major_fraction: float = 0.25
    """Share of variants whose .bim ALT (column 5, the counted allele) is the major allele."""

    # --- genotype quality
    missing_rate: float = 0.01
    """Mean rate of missing calls among ordinary samples and variants."""
    n_bad_samples: int = 0
    """Samples with 8-20% missing calls (fail --mind 0.05); 0 = max(2, 0.4% of n_samples)."""
    n_bad_missing_variants: int = 0
    """Variants with 8-25% missing calls (fail --geno 0.05); 0 = max(3, 0.2% of n_snps)."""
    n_bad_hwe_variants: int = 0
    """Common variants without heterozygotes (fail --hwe 1e-6); 0 = max(3, 0.2% of n_snps)."""
    n_batches: int = 4
    """Genotyping batches (covariate ``batch``); missingness differs a little between them."""

    # --- relatives (each pair replaces two simulated people; see contig.simulate.relatives)
    n_duplicates: int = 0
    """Pairs of duplicate samples (or monozygotic twins): kinship 0.5."""
    n_parent_offspring: int = 0
    """Parent-offspring pairs (the other parent is not in the cohort): kinship 0.25."""
    n_sibling_pairs: int = 0
    """Full-sibling pairs (parents not in the cohort): kinship 0.25."""

    # --- trait architecture (all variances are shares of the latent trait's variance ~ 1)
    h2: float = 0.5
    """Genetic variance share of every image trait (major SNPs + polygenic SNPs + gene burden)."""
    causal_chromosomes: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    """Chromosomes that carry causal variants and genes; the others stay null (GWAS calibration)."""
    n_major_snps: int = 3
    """Common major causal SNPs per trait."""
    major_variance: float = 0.05
    """Variance explained by each major SNP."""
    n_polygenic_snps: int = 100
    """Small-effect causal SNPs per trait sharing the rest of h2."""
    n_burden_genes: int = 4
    """Genes whose burden (count of minor alleles at its variants with MAF < 1%) affects a trait."""
    burden_variance: float = 0.04
    """Variance explained by each burden gene."""
    age_variance: float = 0.04
    """Variance explained by age (per trait; sign fixed per trait)."""
    sex_variance: float = 0.03
    """Variance explained by sex (per trait; sign fixed per trait)."""
    population_shift: float = 0.3
    """Mean pigmentation difference between populations in trait SD (confounding by ancestry)."""

    # --- images and labels
    two_eye_fraction: float = 0.6
    """Share of people with both a left and a right image; the rest have one eye."""
    disease_prevalence: float = 0.2
    """Share of people with the binary disease label."""

    # --- polygenic score files
    pgs_traits: tuple[str, ...] = ("disc_size", "vessel_width", "pigmentation", "lesion_count")
    """Traits that get a PGS Catalog file with noisy estimates of their true effects."""
    n_unrelated_pgs: int = 3
    """Extra PGS files on random variants, unrelated to any image trait."""
    pgs_noise: float = 0.3
    """SD of the noise added to each true weight, relative to the mean |true weight|."""

    extra: dict[str, str] = field(default_factory=dict)
    """Free-form notes stored in simulation.json (not used by the simulator)."""

    def pgs_ids(self) -> list[str]:
        """IDs (and file stems) of the simulated PGS Catalog files: trait scores, then unrelated ones."""
        return [f"PGS9{number:05d}" for number in range(1, len(self.pgs_traits) + self.n_unrelated_pgs + 1)]

    def resolved_causal_chromosomes(self) -> tuple[int, ...]:
        """The causal chromosomes that exist; with fewer than 9 chromosomes, the first half."""
        present = tuple(c for c in self.causal_chromosomes if 1 <= c <= self.n_chromosomes)
        if len(present) >= self.n_chromosomes:
            present = tuple(range(1, max(1, self.n_chromosomes // 2) + 1))
        return present

    def validate(self) -> None:
        """Raise InputError (naming the setting) for any value outside its meaningful range."""
        where = "simulation config"

        def need(ok: bool, name: str, message: str) -> None:
            if not ok:
                raise InputError(f"{name}: {message}", where)

        for name, allowed in RANGES.items():
            value = getattr(self, name)
            need(value in allowed, name, f"must be in {allowed}, got {value}")
        need(self.n_snps >= 50 * self.n_chromosomes, "n_snps",
             f"must be at least 50 per chromosome ({50 * self.n_chromosomes}), got {self.n_snps}")
        unknown = [t for t in self.pgs_traits if t not in TRAITS]
        need(not unknown, "pgs_traits", f"unknown trait(s) {unknown}; traits are {', '.join(TRAITS)}")
        need(len(self.resolved_causal_chromosomes()) >= 1, "causal_chromosomes",
             "no causal chromosome among 1..n_chromosomes")
        n_related = 2 * (self.n_duplicates + self.n_parent_offspring + self.n_sibling_pairs)
        need(n_related <= self.n_samples // 2, "n_duplicates + n_parent_offspring + n_sibling_pairs",
             f"the planted pairs need {n_related} people, more than half of n_samples")
        causal_var = self.h2 + self.age_variance + self.sex_variance
        need(causal_var < 1, "h2 + age_variance + sex_variance", f"must stay below 1, got {causal_var}")

    def to_json(self) -> dict:
        """A JSON-ready dict of every field (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> SimulationConfig:
        """Inverse of :meth:`to_json`; unknown keys raise InputError."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(f"unknown simulation setting(s) {', '.join(unknown)}", "simulation config")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)


def read_simulation_json(path: str | Path) -> SimulationConfig:
    """The config stored in a cohort's ``simulation.json`` (key ``config``)."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    return SimulationConfig.from_json(json.loads(path.read_text())["config"])
