"""PGS Catalog scoring files (format v2) with the defects real ones have.

Scores for some traits carry noisy estimates of the true per-allele effects of that trait's causal
SNPs (plus a few non-causal SNPs with small weights); unrelated scores use random variants.
Within each file some rows name REF as the effect allele (weight negated), some are written on the
other strand (both alleles complemented; never for A/T or C/G SNPs, where it cannot be seen),
A/T and C/G SNPs occur as drawn, some variants are absent from the array, and a few files repeat a
row. Every other file is the harmonized version (``hm_*`` columns, ``#HmPOS_*`` header).
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_path
from contig.simulate.config import SimulationConfig
from contig.simulate.genotypes import COMPLEMENT, Genome

TRAIT_REPORTED = {
    "disc_size": "Optic disc size",
    "vessel_density": "Retinal vessel density",
    "vessel_width": "Retinal vessel caliber",
    "vessel_tortuosity": "Retinal vessel tortuosity",
    "pigmentation": "Fundus pigmentation",
    "lesion_count": "Retinal lesion count",
}
UNRELATED_TRAITS = ("Body mass index", "Type 2 diabetes", "Height", "LDL cholesterol",
                    "Systolic blood pressure", "Asthma")
HM_DATE = "2026-01-01"  # fixed so that files are byte-identical across runs
FLIP_FRACTION = 0.3
STRAND_FLIP_FRACTION = 0.1
ABSENT_FRACTION = 0.05


@dataclass
class ScoreSpec:
    """One score before formatting: array SNP indices and weights per ALT allele."""

    pgs_id: str
    name: str
    trait: str  # image trait name, or "" for unrelated scores
    trait_reported: str
    weight_type: str
    snps: np.ndarray  # (n,) indices into the genome
    weights: np.ndarray  # (n,) per ALT allele


def score_specs(genome: Genome, truth: pl.DataFrame, maf: np.ndarray, config: SimulationConfig,
                rng: np.random.Generator) -> list[ScoreSpec]:
    """Trait scores (noisy true effects + a few null SNPs) and unrelated scores."""
    index_of = {rsid: k for k, rsid in enumerate(genome.rsid)}
    common = np.flatnonzero(maf >= 0.01)
    specs = []
    for trait in config.pgs_traits:
        rows = truth.filter((pl.col("trait") == trait) & (pl.col("kind") == "snp"))
        snps = np.array([index_of[i] for i in rows["id"]], dtype=np.int64)
        true = rows["effect"].to_numpy()
        sd = config.pgs_noise * float(np.mean(np.abs(true)))
        nulls = rng.choice(np.setdiff1d(common, snps), 20, replace=False)
        specs.append(ScoreSpec(
            pgs_id="", name=f"SIM_{trait}", trait=trait, trait_reported=TRAIT_REPORTED[trait],
            weight_type="beta",
            snps=np.concatenate([snps, nulls]),
            weights=np.concatenate([true + rng.normal(0, sd, len(true)),
                                    rng.normal(0, sd, len(nulls))]),
        ))
    for k in range(config.n_unrelated_pgs):
        n = int(rng.integers(50, 151))
        trait_reported = UNRELATED_TRAITS[k % len(UNRELATED_TRAITS)]
        specs.append(ScoreSpec(
            pgs_id="", name=f"SIM_unrelated_{k + 1}", trait="", trait_reported=trait_reported,
            weight_type="NR" if k % 2 else "log(OR)",
            snps=rng.choice(common, n, replace=False), weights=rng.normal(0, 0.05, n),
        ))
    for spec, pgs_id in zip(specs, config.pgs_ids(), strict=True):
        spec.pgs_id = pgs_id
    return specs


def score_rows(spec: ScoreSpec, genome: Genome, alt_freq: np.ndarray, duplicate: bool,
               rng: np.random.Generator, used_spare: set[int]) -> tuple[pl.DataFrame, dict]:
    """The scoring table of one score, sorted by chromosome and position, and counts of each defect."""
    n = len(spec.snps)
    alt, ref = genome.alt[spec.snps], genome.ref[spec.snps]
    ambiguous = np.array([COMPLEMENT[a] == r for a, r in zip(alt, ref)])
    flip = rng.random(n) < FLIP_FRACTION
    strand = (rng.random(n) < STRAND_FLIP_FRACTION) & ~ambiguous
    effect = np.where(flip, ref, alt)
    other = np.where(flip, alt, ref)
    complement = np.vectorize(COMPLEMENT.get)
    if strand.any():
        effect[strand] = complement(effect[strand])
        other[strand] = complement(other[strand])
    table = pl.DataFrame({
        "rsID": genome.rsid[spec.snps],
        "chr_name": genome.chrom[spec.snps].astype(np.int64),
        "chr_position": genome.pos[spec.snps],
        "effect_allele": effect,
        "other_allele": other,
        "effect_weight": np.where(flip, -spec.weights, spec.weights),
        "allelefrequency_effect": np.round(np.where(flip, 1 - alt_freq[spec.snps],
                                                    alt_freq[spec.snps]), 4),
    })
    n_absent = max(1, round(ABSENT_FRACTION * n))
    table = pl.concat([table, absent_variants(n_absent, genome, rng, used_spare)])
    if duplicate:
        table = pl.concat([table, table[int(rng.integers(0, n))]])
    table = table.sort(["chr_name", "chr_position"], maintain_order=True)
    counts = {"variants": table.height, "effect_is_ref": int(flip.sum()),
              "strand_flipped": int(strand.sum()), "strand_ambiguous": int(ambiguous.sum()),
              "absent_from_genotypes": n_absent, "duplicated_rows": int(duplicate)}
    return table, counts


def absent_variants(n: int, genome: Genome, rng: np.random.Generator,
                    used_spare: set[int]) -> pl.DataFrame:
    """``n`` rows for variants that are not on the array (unused rsIDs and positions)."""
    taken = set(zip(genome.chrom.tolist(), genome.pos.tolist()))
    rows = []
    while len(rows) < n:
        k = int(rng.integers(0, len(genome.spare_rsids)))
        j = int(rng.integers(0, genome.n_snps))
        chrom, pos = int(genome.chrom[j]), int(genome.pos[j]) + int(rng.integers(1, 5000))
        if k in used_spare or (chrom, pos) in taken:
            continue
        used_spare.add(k)
        a, b = rng.choice(list("ACGT"), 2, replace=False)
        rows.append({"rsID": str(genome.spare_rsids[k]), "chr_name": chrom, "chr_position": pos,
                     "effect_allele": str(a), "other_allele": str(b),
                     "effect_weight": float(rng.normal(0, 0.02)),
                     "allelefrequency_effect": round(float(rng.uniform(0.05, 0.5)), 4)})
    return pl.DataFrame(rows, schema={"rsID": pl.String, "chr_name": pl.Int64,
                                      "chr_position": pl.Int64, "effect_allele": pl.String,
                                      "other_allele": pl.String, "effect_weight": pl.Float64,
                                      "allelefrequency_effect": pl.Float64})


def harmonize(table: pl.DataFrame) -> pl.DataFrame:
    """Add the PGS Catalog harmonization columns (positions already in the target build)."""
    return table.with_columns(
        pl.lit("ENSEMBL").alias("hm_source"),
        pl.col("rsID").alias("hm_rsID"),
        pl.col("chr_name").alias("hm_chr"),
        pl.col("chr_position").alias("hm_pos"),
        pl.lit(None, dtype=pl.String).alias("hm_inferOtherAllele"),
        pl.lit("True").alias("hm_match_chr"),
        pl.lit("True").alias("hm_match_pos"),
    )


def header(spec: ScoreSpec, n_rows: int, harmonized: bool, seed: int) -> str:
    """The comment header the PGS Catalog writes above the table."""
    lines = [
        "###PGS CATALOG SCORING FILE - see https://www.pgscatalog.org/downloads/#dl_ftp_scoring "
        "for additional information",
        "#format_version=2.0",
        "##POLYGENIC SCORE (PGS) INFORMATION",
        f"#pgs_id={spec.pgs_id}",
        f"#pgs_name={spec.name}",
        f"#trait_reported={spec.trait_reported}",
        f"#trait_mapped={spec.trait_reported.lower()}",
        f"#trait_efo=EFO_9{spec.pgs_id[-5:]}",
        "#genome_build=GRCh37",
        f"#variants_number={n_rows}",
        f"#weight_type={spec.weight_type}",
        "##SOURCE INFORMATION",
        f"#pgp_id=PGP9{spec.pgs_id[-5:]}",
        f"#citation=contig simulator, seed {seed} (simulated score, not a publication)",
    ]
    if harmonized:
        match = json.dumps({"True": n_rows, "False": 0})
        lines += ["##HARMONIZATION DETAILS", "#HmPOS_build=GRCh37", f"#HmPOS_date={HM_DATE}",
                  f"#HmPOS_match_chr={match}", f"#HmPOS_match_pos={match}"]
    return "\n".join(lines) + "\n"


def write_scoring_file(path: Path, text_header: str, table: pl.DataFrame) -> None:
    """Gzip the header and TSV with mtime 0 and no file name (reproducible bytes), atomically."""
    body = io.BytesIO()
    table.write_csv(body, separator="\t", null_value="")
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as handle:
            handle.write(text_header.encode())
            handle.write(body.getvalue())


def write_pgs_files(out_dir: Path, genome: Genome, truth: pl.DataFrame, alt_freq: np.ndarray,
                    maf: np.ndarray, config: SimulationConfig, rng: np.random.Generator) -> list[dict]:
    """Write ``out_dir/PGS9xxxxx.txt.gz`` for every score; returns one summary dict per file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    used_spare: set[int] = set()
    summaries = []
    for number, spec in enumerate(score_specs(genome, truth, maf, config, rng)):
        harmonized = number % 2 == 1
        table, counts = score_rows(spec, genome, alt_freq, duplicate=number in (0, 1), rng=rng,
                                   used_spare=used_spare)
        if harmonized:
            table = harmonize(table)
        path = out_dir / f"{spec.pgs_id}.txt.gz"
        write_scoring_file(path, header(spec, table.height, harmonized, config.seed), table)
        summaries.append({"pgs_id": spec.pgs_id, "file": f"pgs/{path.name}", "trait": spec.trait,
                          "trait_reported": spec.trait_reported, "harmonized": harmonized, **counts})
    return summaries
