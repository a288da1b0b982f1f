"""Genotypes with LD, population structure, a realistic frequency spectrum and QC failures.

Model (per chromosome). Every haplotype carries a latent Gaussian process along the genetic map,
an Ornstein-Uhlenbeck process whose correlation between two SNPs is exp(-distance_cM / ld_decay_cm);
the genetic map has recombination rates varying 50 kb window by window (Gamma, mean 1 cM/Mb), which
makes LD blocks. A SNP's allele on a haplotype is 1 when its latent value (mixed with a little
SNP-specific noise, random sign) exceeds the quantile of the haplotype's population frequency.
So LD is high between neighbours and decays with genetic distance, as recombination does to
haplotype mosaics, while every SNP keeps exactly its intended frequency. Population frequencies
are Balding-Nichols draws around an ancestral frequency (Hudson Fst ~ fst between two populations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.special import ndtri

from contig.genotypes.plinkio import MISSING
from contig.simulate.config import SimulationConfig

CHROMOSOME_LENGTHS_GRCH37 = (
    249250621, 243199373, 198022430, 191154276, 180915260, 171115067, 159138663, 146364022,
    141213431, 135534747, 135006516, 133851895, 115169878, 107349540, 102531392, 90354753,
    81195210, 78077248, 59128983, 63025520, 48129895, 51304566,
)
MAP_WINDOW_BP = 50_000
COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}
TRANSITION = {"A": "G", "G": "A", "C": "T", "T": "C"}
TRANSVERSIONS = {"A": ("C", "T"), "C": ("A", "G"), "G": ("C", "T"), "T": ("A", "G")}


@dataclass
class Genome:
    """Variant and gene annotation of the simulated array (all arrays are ``(n_snps,)``)."""

    chrom: np.ndarray  # int, 1-based chromosome
    pos: np.ndarray  # int64 bp, 1-based, strictly increasing within a chromosome
    cm: np.ndarray  # float64 genetic position
    rsid: np.ndarray  # str
    allele1: np.ndarray  # str base of the simulated allele "1" (the ancestral minor allele)
    allele0: np.ndarray  # str base of allele "0"
    alt_is_allele1: np.ndarray  # bool: .bim ALT (counted) is allele 1; else ALT is allele 0
    ancestral_freq: np.ndarray  # float frequency of allele 1 in the ancestral population
    is_rare: np.ndarray  # bool: drawn from the rare part of the spectrum
    gene_index: np.ndarray  # int index into ``genes`` of the gene containing the SNP, -1 outside
    genes: pl.DataFrame  # chrom start end gene (1-based inclusive)
    spare_rsids: np.ndarray  # str rsIDs not on the array (for PGS variants absent from it)

    @property
    def n_snps(self) -> int:
        return len(self.pos)

    @property
    def alt(self) -> np.ndarray:
        return np.where(self.alt_is_allele1, self.allele1, self.allele0)

    @property
    def ref(self) -> np.ndarray:
        return np.where(self.alt_is_allele1, self.allele0, self.allele1)

    def bim(self) -> pl.DataFrame:
        """The .bim table (CHROM ID CM POS ALT REF)."""
        return pl.DataFrame({
            "CHROM": self.chrom.astype(str),
            "ID": self.rsid,
            "CM": np.round(self.cm, 6),
            "POS": self.pos,
            "ALT": self.alt,
            "REF": self.ref,
        })


def snps_per_chromosome(n_snps: int, n_chromosomes: int) -> np.ndarray:
    """Split ``n_snps`` over chromosomes in proportion to their length (largest remainder)."""
    lengths = np.asarray(CHROMOSOME_LENGTHS_GRCH37[:n_chromosomes], dtype=float)
    share = n_snps * lengths / lengths.sum()
    counts = np.floor(share).astype(int)
    counts[np.argsort(counts - share)[: n_snps - counts.sum()]] += 1
    return counts


def simulate_genes(chrom: int, start: int, end: int, spacing_bp: float,
                   rng: np.random.Generator) -> pl.DataFrame:
    """Non-overlapping genes, one per ``spacing_bp`` slot of ``[start, end]``: chrom start end gene."""
    n_genes = max(1, int((end - start) // spacing_bp))
    slot = (end - start) / n_genes
    lengths = rng.uniform(8_000, 0.6 * slot, n_genes).astype(np.int64)
    offsets = rng.uniform(0, slot - lengths, n_genes).astype(np.int64)
    starts = (start + np.arange(n_genes) * slot).astype(np.int64) + offsets
    return pl.DataFrame({
        "chrom": np.full(n_genes, chrom, dtype=np.int64),
        "start": starts,
        "end": starts + lengths - 1,
        "gene": [f"SIM{chrom}G{i + 1:04d}" for i in range(n_genes)],
    })


def simulate_positions(n: int, is_rare: np.ndarray, genes: pl.DataFrame, start: int, end: int,
                       in_gene_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted unique bp positions ``(n,)``: rare variants mostly inside genes, the rest uniform."""
    pos = rng.integers(start, end, n)
    in_gene = is_rare & (rng.random(n) < in_gene_fraction)
    which = rng.integers(0, genes.height, in_gene.sum())
    g_start, g_end = genes["start"].to_numpy()[which], genes["end"].to_numpy()[which]
    pos[in_gene] = g_start + (rng.random(in_gene.sum()) * (g_end - g_start)).astype(np.int64)
    while True:
        _, first = np.unique(pos, return_index=True)
        duplicate = np.ones(n, dtype=bool)
        duplicate[first] = False
        if not duplicate.any():
            break
        pos[duplicate] = rng.integers(start, end, duplicate.sum())
    return pos


def genetic_map_cm(pos: np.ndarray, start: int, end: int, rng: np.random.Generator) -> np.ndarray:
    """cM positions ``(n,)`` of sorted ``pos`` under window-wise Gamma recombination rates (mean 1 cM/Mb)."""
    edges = np.arange(start, end + MAP_WINDOW_BP, MAP_WINDOW_BP, dtype=float)
    rates = rng.gamma(0.5, 2.0, len(edges) - 1)  # cM/Mb; shape 0.5 gives hot and cold windows
    cumulative = np.concatenate([[0.0], np.cumsum(rates * MAP_WINDOW_BP / 1e6)])
    return np.interp(pos, edges, cumulative)


def ancestral_frequencies(is_rare: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ancestral frequency ``(n,)`` of allele 1: log-uniform 0.05-1% for rare, uniform 1-50% otherwise."""
    rare = np.exp(rng.uniform(np.log(0.0005), np.log(0.01), is_rare.size))
    common = rng.uniform(0.01, 0.5, is_rare.size)
    return np.where(is_rare, rare, common)


def draw_alleles(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Bases of allele 1 and allele 0: 70% transitions, the rest transversions (~15% A/T or C/G)."""
    first = rng.choice(np.array(list("ACGT")), n)
    transition = rng.random(n) < 0.7
    pick = rng.integers(0, 2, n)
    second = np.array([TRANSITION[b] if t else TRANSVERSIONS[b][k]
                       for b, t, k in zip(first, transition, pick)])
    return first, second


def simulate_genome(config: SimulationConfig, rng: np.random.Generator) -> Genome:
    """Positions, genetic map, genes, alleles and rsIDs of every array SNP."""
    counts = snps_per_chromosome(config.n_snps, config.n_chromosomes)
    parts: dict[str, list] = {k: [] for k in ("chrom", "pos", "cm", "rare", "genes")}
    for chrom, n in enumerate(counts, start=1):
        length = CHROMOSOME_LENGTHS_GRCH37[chrom - 1]
        span = int(min(length - 2_000_000, n * config.snp_spacing_kb * 1000))
        start = int(rng.integers(1_000_000, length - span - 1_000_000 + 1))
        end = start + span
        genes = simulate_genes(chrom, start, end, config.gene_spacing_kb * 1000, rng)
        is_rare = rng.random(n) < config.rare_fraction
        pos = simulate_positions(n, is_rare, genes, start, end, config.rare_in_genes_fraction, rng)
        order = np.argsort(pos)
        pos, is_rare = pos[order], is_rare[order]
        parts["chrom"].append(np.full(n, chrom))
        parts["pos"].append(pos)
        parts["cm"].append(genetic_map_cm(pos, start, end, rng))
        parts["rare"].append(is_rare)
        parts["genes"].append(genes)
    chrom = np.concatenate(parts["chrom"])
    pos = np.concatenate(parts["pos"]).astype(np.int64)
    is_rare = np.concatenate(parts["rare"])
    genes = pl.concat(parts["genes"])
    n = len(pos)
    allele1, allele0 = draw_alleles(n, rng)
    numbers = rng.choice(200_000_000, size=n + 10_000, replace=False) + 1_000
    rsids = np.array([f"rs{k}" for k in numbers])
    return Genome(
        chrom=chrom,
        pos=pos,
        cm=np.concatenate(parts["cm"]),
        rsid=rsids[:n],
        allele1=allele1,
        allele0=allele0,
        alt_is_allele1=rng.random(n) >= config.alt_is_major_fraction,
        ancestral_freq=ancestral_frequencies(is_rare, rng),
        is_rare=is_rare,
        gene_index=gene_index_of_positions(chrom, pos, genes),
        genes=genes,
        spare_rsids=rsids[n:],
    )


def gene_index_of_positions(chrom: np.ndarray, pos: np.ndarray, genes: pl.DataFrame) -> np.ndarray:
    """Row of ``genes`` containing each (chrom, pos), -1 if none; genes must not overlap."""
    key_gene = genes["chrom"].to_numpy() * 10**10 + genes["start"].to_numpy()
    key_snp = chrom.astype(np.int64) * 10**10 + pos
    candidate = np.searchsorted(key_gene, key_snp, side="right") - 1
    valid = candidate >= 0
    c = np.clip(candidate, 0, None)
    inside = (valid & (genes["chrom"].to_numpy()[c] == chrom) & (pos <= genes["end"].to_numpy()[c]))
    return np.where(inside, c, -1)


def assign_populations(n_samples: int, n_populations: int, rng: np.random.Generator) -> np.ndarray:
    """Population of each sample ``(n_samples,)``, with shares proportional to 1/(k+1)."""
    weights = 1.0 / np.arange(1, n_populations + 1)
    return rng.choice(n_populations, size=n_samples, p=weights / weights.sum())


def population_frequencies(ancestral: np.ndarray, fst: float, n_populations: int,
                           rng: np.random.Generator) -> np.ndarray:
    """Balding-Nichols frequencies ``(n_populations, n_snps)`` of allele 1 around ``ancestral``."""
    scale = (1 - fst) / fst
    return rng.beta(ancestral * scale, (1 - ancestral) * scale,
                    size=(n_populations, len(ancestral)))


def latent_haplotypes(cm: np.ndarray, n_haplotypes: int, decay_cm: float,
                      rng: np.random.Generator) -> np.ndarray:
    """Latent values ``(n_snps, n_haplotypes)`` float32: an OU process along ``cm`` plus SNP noise."""
    n = len(cm)
    steps = np.exp(-np.diff(cm, prepend=cm[0] - 100 * decay_cm) / decay_cm).astype(np.float32)
    innovations = np.sqrt(1 - steps**2).astype(np.float32)
    u = rng.standard_normal((n, n_haplotypes), dtype=np.float32)
    for j in range(1, n):
        u[j] = steps[j] * u[j - 1] + innovations[j] * u[j]
    kappa = rng.uniform(0.85, 1.0, n).astype(np.float32)[:, None]
    sign = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), n)[:, None]
    noise = rng.standard_normal((n, n_haplotypes), dtype=np.float32)
    return sign * (np.sqrt(kappa) * u + np.sqrt(1 - kappa) * noise)


def simulate_allele1_counts(genome: Genome, population: np.ndarray, pop_freq: np.ndarray,
                            config: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    """Count of allele 1 per person, int8 ``(n_snps, n_samples)``, chromosome by chromosome."""
    n_samples = len(population)
    hap_pop = np.repeat(population, 2)
    counts = np.empty((genome.n_snps, n_samples), dtype=np.int8)
    for chrom in np.unique(genome.chrom):
        rows = np.flatnonzero(genome.chrom == chrom)
        latent = latent_haplotypes(genome.cm[rows], 2 * n_samples, config.ld_decay_cm, rng)
        # allele 1 where the latent value is above the (1 - p) quantile of the haplotype's population
        threshold = ndtri(1 - np.clip(pop_freq[:, rows], 1e-12, 1 - 1e-12)).astype(np.float32)
        haplotypes = latent > threshold[hap_pop].T
        counts[rows] = haplotypes[:, 0::2].astype(np.int8) + haplotypes[:, 1::2]
    make_polymorphic(counts, rng)
    return counts


def make_polymorphic(counts: np.ndarray, rng: np.random.Generator) -> None:
    """Give every monomorphic SNP one heterozygote (in place), so no array SNP is constant."""
    total = counts.sum(axis=1, dtype=np.int64)
    monomorphic = np.flatnonzero((total == 0) | (total == 2 * counts.shape[1]))
    counts[monomorphic, rng.integers(0, counts.shape[1], len(monomorphic))] = 1


def alt_counts(allele1_counts: np.ndarray, genome: Genome) -> np.ndarray:
    """ALT allele counts int8 ``(n_snps, n_samples)`` (ALT is allele 1 or allele 0 per SNP)."""
    flip = ~genome.alt_is_allele1
    out = allele1_counts.copy()
    out[flip] = 2 - out[flip]
    return out


def minor_allele_frequency(genotypes: np.ndarray) -> np.ndarray:
    """MAF ``(n_snps,)`` from complete int8 genotypes ``(n_snps, n_samples)``."""
    freq = genotypes.mean(axis=1, dtype=np.float64) / 2
    return np.minimum(freq, 1 - freq)


def hwe_chi2(genotypes: np.ndarray) -> np.ndarray:
    """1-df HWE chi-square ``(n_snps,)`` from the heterozygote deficit: n x F^2, F = 1 - Hobs/Hexp.

    Population structure (Wahlund effect) makes differentiated SNPs fail HWE in a pooled sample;
    causal SNPs are chosen among those that do not.
    """
    n = genotypes.shape[1]
    freq = genotypes.mean(axis=1, dtype=np.float64) / 2
    expected = 2 * freq * (1 - freq)
    observed = (genotypes == 1).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(expected > 0, 1 - observed / expected, 0.0)
    return n * f**2


@dataclass
class QcFailures:
    """Indices of the planted QC failures."""

    bad_samples: np.ndarray  # samples with high missingness (fail --mind 0.05)
    bad_missing_variants: np.ndarray  # variants with high missingness (fail --geno 0.05)
    bad_hwe_variants: np.ndarray  # common variants with no heterozygotes (fail --hwe 1e-6)


def choose_qc_failures(maf: np.ndarray, protected: np.ndarray, n_samples: int,
                       config: SimulationConfig, rng: np.random.Generator) -> QcFailures:
    """Pick the failing samples and variants; variants in ``protected`` (causal) are never picked."""
    n_snps = len(maf)
    n_bad_samples = config.n_bad_samples or max(2, round(0.004 * n_samples))
    n_bad_missing = config.n_bad_missing_variants or max(3, round(0.002 * n_snps))
    n_bad_hwe = config.n_bad_hwe_variants or max(3, round(0.002 * n_snps))
    allowed = np.ones(n_snps, dtype=bool)
    allowed[protected] = False
    hwe = rng.choice(np.flatnonzero(allowed & (maf > 0.2)), n_bad_hwe, replace=False)
    allowed[hwe] = False
    missing = rng.choice(np.flatnonzero(allowed & (maf > 0.05)), n_bad_missing, replace=False)
    return QcFailures(
        bad_samples=np.sort(rng.choice(n_samples, n_bad_samples, replace=False)),
        bad_missing_variants=np.sort(missing),
        bad_hwe_variants=np.sort(hwe),
    )


def observed_genotypes(true_alt: np.ndarray, failures: QcFailures, batch: np.ndarray,
                       protected: np.ndarray, config: SimulationConfig,
                       rng: np.random.Generator) -> np.ndarray:
    """What the array reports ``(n_snps, n_samples)`` int8: HWE failures, then missing calls (-9).

    Ordinary missingness: rate x sample factor x variant factor x batch factor, each factor with
    mean ~1 and capped so ordinary samples and variants stay below 5% missing; ``protected``
    (causal) variants get at most the mean variant factor, so they never fail ``--geno 0.05``.
    """
    observed = true_alt.copy()
    n_snps, n_samples = observed.shape
    rows = observed[failures.bad_hwe_variants]
    het = rows == 1
    rows[het] = np.where(rng.random(het.sum()) < 0.5, 0, 2)
    observed[failures.bad_hwe_variants] = rows

    sample_factor = np.minimum(rng.gamma(3.0, 1 / 3.0, n_samples), 2.5)
    batch_factor = rng.uniform(0.7, 1.3, batch.max() + 1)[batch]
    variant_factor = np.minimum(rng.gamma(2.0, 0.5, n_snps), 2.5)
    variant_factor[protected] = np.minimum(variant_factor[protected], 1.0)
    sample_rate = config.missing_rate * sample_factor * batch_factor
    sample_rate[failures.bad_samples] = rng.uniform(0.08, 0.2, len(failures.bad_samples))
    variant_factor[failures.bad_missing_variants] = 0.0
    for start in range(0, n_snps, 2048):
        stop = min(start + 2048, n_snps)
        p = variant_factor[start:stop, None] * sample_rate[None, :]
        p[:, failures.bad_samples] = sample_rate[failures.bad_samples]
        missing = rng.random((stop - start, n_samples), dtype=np.float32) < p
        observed[start:stop][missing] = MISSING
    for j in failures.bad_missing_variants:
        observed[j, rng.random(n_samples) < rng.uniform(0.08, 0.25)] = MISSING
    return observed
