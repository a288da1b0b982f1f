"""The UK Biobank plan's declared job sizes, and how a finished workflow run's jobs measurably used
memory and time (its benchmarks/ files), for the tests of contig.core.resources' requests."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from contig.core import resources
from contig.core.resources import JobSize, RequestSettings

# Declared UK Biobank sizes (issue #17): 70k people, 800k array variants, 10M imputed, 2,048
# phenotypes (every ResNet-50 dimension), 140k images at 448 px; 22 association jobs.
UKB = dict(people=70_000, array=800_000, imputed=10_000_000, phenotypes=2048, images=140_000,
           image_size=448)
UKB_SETTINGS = RequestSettings(store_mb=4000, epochs=100, gpus=1)


def ukb_sizes() -> dict[str, JobSize]:
    """The size of one job of each rule in the UK Biobank plan. The SNP modality keeps ~25% of
    the array variants (float32), the other two are small."""
    n, m = UKB["people"], UKB["array"]
    genotypes = JobSize(people=n, variants=m)
    images = JobSize(images=UKB["images"], image_size=UKB["image_size"])
    modalities = JobSize(images=UKB["images"], image_size=UKB["image_size"],
                         modality_bytes=int(4 * n * m * 0.25 + 4 * n * 3000))
    return {
        "simulate": JobSize(people=n, variants=m, images=UKB["images"], image_size=448),
        "qc": genotypes, "pca": genotypes, "snps": genotypes, "prs": genotypes,
        "burden": genotypes,
        "images": images, "train": modalities, "embed": modalities, "explain": modalities,
        "gwas_step1": JobSize(people=n, variants=m, phenotypes=UKB["phenotypes"]),
        # the largest of 22 chromosome groups holds at most ~10% of the imputed variants
        "gwas": JobSize(people=n, variants=UKB["imputed"] // 10, phenotypes=UKB["phenotypes"]),
        "gwas_gather": JobSize(people=n, variants=UKB["imputed"], phenotypes=UKB["phenotypes"]),
    }


# rule -> benchmark files of a run, and how the rule's memory and time should grow: the units
# each scales with (what its command holds at once / what it computes).
MEASURED = {
    "simulate": ("simulate/simulate.tsv", "calls", "calls"),
    "qc": ("genotypes/qc.tsv", "people", "calls"),
    "pca": ("genotypes/pca.tsv", "people", "calls"),
    "snps": ("scores/snps.tsv", "calls", "calls"),
    "images": ("images/images.tsv", "one", "images"),
    "train": ("pretrain/*/*.tsv", "modalities", "pixel_epochs"),
    "embed": ("embed/*.tsv", "modalities", "pixels"),
    "explain": ("explain/contig.tsv", "modalities", "pixels"),
}
SAFETY = 10  # requests may exceed need × growth by this much (bases, copies, retries' margin)
RELIABLE_RSS_MB = 50  # sub-second jobs end before the benchmark's first sample (max_rss ~3 MB)


def run_sizes(workdir: Path, simulate: dict) -> dict[str, JobSize]:
    """Each measured rule's job size in the finished run in ``workdir`` (its results/), with the
    simulator's settings ``simulate`` (n_snps, image_size) for the simulation job."""
    results = workdir / "results"
    genotypes = resources.size_of_inputs([results / "genotypes/cohort.bed",
                                          results / "genotypes/cohort.fam"])
    cache = resources.image_cache_size(next((results / "images").glob("cache_*.npy")))
    modalities = resources.npz_bytes(sorted((results / "scores").glob("*.npz")))
    trained = JobSize(images=cache.images, image_size=cache.image_size, modality_bytes=modalities)
    return {"simulate": JobSize(people=genotypes.people, variants=simulate["n_snps"],
                                images=cache.images, image_size=simulate["image_size"]),
            "qc": genotypes, "pca": genotypes, "snps": genotypes, "images": cache,
            "train": trained, "embed": trained, "explain": trained}


def units(size: JobSize, unit: str, epochs: int) -> float:
    """How much of ``unit`` a job of ``size`` has (training: pixels × ``epochs``)."""
    return {"one": 1.0, "people": size.people, "calls": float(size.people) * size.variants,
            "images": size.images, "modalities": size.modality_bytes,
            "pixels": float(size.images) * size.image_size**2,
            "pixel_epochs": float(size.images) * size.image_size**2 * epochs}[unit]


def measured(workdir: Path, pattern: str) -> tuple[float, float]:
    """The largest max_rss (MB) and wall time (s) among the run's benchmark files ``pattern``."""
    tables = [pl.read_csv(p, separator="\t") for p in sorted((workdir / "benchmarks").glob(pattern))]
    assert tables, f"no benchmark files {pattern} under {workdir}"
    return max(t["max_rss"].max() for t in tables), max(t["s"].max() for t in tables)
