"""Memory and time requests of the workflow's jobs, from the sizes of their inputs.

Each rule's request is ``base + per_unit × units``, where the units are what its command's
working set or work grows with (people × variants for a genotype pass, people × variants ×
phenotypes for an association scan, images × pixels for the image cache, ...), and grows with the
retry ``attempt`` (``GROWTH_PER_ATTEMPT``), so a job killed for memory or time by SLURM is
resubmitted with more. The bases cover the interpreter and its libraries (the ``max_rss`` of the
demo's benchmark files, rounded up); the per-unit figures come from the commands' documented
working sets (bytes) and from the benchmarks in ``bench/`` with a safety factor of about 10
(seconds). ``common.smk`` reads the sizes from the jobs' input files (:func:`genotype_size`,
:func:`image_cache_size`); tests call :func:`request` with declared sizes.
The runtime figures are for the CPU unless a training job has GPUs (``RequestSettings.gpus``).
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

MB = 2**20
GROWTH_PER_ATTEMPT = 1.5  # request × 1.5^(attempt - 1): 1, 1.5, 2.25, ...
MAX_RUNTIME_MIN = 7 * 24 * 60  # never ask for more than a week
CHUNK = 4096  # variants per streamed chunk (the genotype commands' default)
LD_PRUNED_SHARE = 0.25  # assumed share of variants an LD-pruned SNP modality keeps
GATHER_BATCH_BYTES = 256 * MB  # contig.gwas.gather's default batch (not imported: no polars here)


@dataclass(frozen=True)
class JobSize:
    """What a job's inputs hold: people, variants, phenotypes tested, images of ``image_size`` px
    squared, bytes of genetic modality files read whole (uncompressed .npz)."""

    people: int = 0
    variants: int = 0
    phenotypes: int = 1
    images: int = 0
    image_size: int = 0
    modality_bytes: int = 0


@dataclass(frozen=True)
class RequestSettings:
    """Config values the requests depend on: step 1's in-memory budget, training epochs, GPUs
    per training job (0 = CPU; one process per GPU under torchrun)."""

    store_mb: float = 4000.0
    epochs: int = 30
    gpus: int = 0


@dataclass(frozen=True)
class Cost:
    """``mem_mb = base_mb + mem_bytes(size, settings) / MB``;
    ``runtime = base_min + seconds(size, settings) / 60``."""

    base_mb: float
    mem_bytes: Callable[[JobSize, RequestSettings], float]
    base_min: float
    seconds: Callable[[JobSize, RequestSettings], float]


def calls(s: JobSize) -> float:
    """Genotype calls: people × variants."""
    return float(s.people) * s.variants


def pixels(s: JobSize) -> float:
    """Image pixels: images × side²."""
    return float(s.images) * s.image_size**2


def streamed_genotype_bytes(s: JobSize, _: RequestSettings) -> float:
    """A genotype pass: one chunk of ``CHUNK`` variants as float64, a few copies ``(CHUNK,
    people)``, plus the variant table (~300 bytes a variant)."""
    return 3.0 * CHUNK * s.people * 8 + 300.0 * s.variants


def simulation_bytes(s: JobSize, _: RequestSettings) -> float:
    """The simulator holds the genotypes and their latent draws (16 bytes a call) and the images."""
    return 16 * calls(s) + 3 * pixels(s)


def snp_modality_bytes(s: JobSize, _: RequestSettings) -> float:
    """The raw-SNP modality ``(people, kept SNPs)`` float32, kept SNPs ``LD_PRUNED_SHARE`` of all."""
    return 4 * LD_PRUNED_SHARE * calls(s) + 300.0 * s.variants


def image_cache_bytes(s: JobSize, _: RequestSettings) -> float:
    """The cache is written in place (memory-mapped): per worker a few decoded photographs (assumed
    up to 4,000 px squared, RGB) and the index (~200 bytes an image)."""
    return 2 * 3 * 4000.0**2 * 3 + 200.0 * s.images


def step1_bytes(s: JobSize, settings: RequestSettings, block_size: int = 500,
                n_ridge: int = 5) -> float:
    """GWAS step 1 (contig.gwas.step1): a block's work ``(people, block)`` doubles × 4, the
    level-0 predictions held in memory (float32, at most half of ``store_mb``), one phenotype's
    features ``(people, F)`` float32 plus a fold's float64 copy, and 5 ``F × F`` matrices."""
    features = n_ridge * math.ceil(s.variants / block_size)
    store = min(4.0 * s.phenotypes * features * s.people, settings.store_mb * MB / 2)
    return (4.0 * 8 * block_size * s.people + store + 12.0 * features * s.people
            + 5 * 8.0 * features**2)


def association_bytes(s: JobSize, settings: RequestSettings) -> float:
    """The scan: a chunk per worker (2 workers), phenotypes and residuals ``(people, p)``, and
    the part's results BETA, SE, LOG10P ``(variants, p)`` float64, twice (held and written)."""
    return (2 * streamed_genotype_bytes(s, settings) + 4.0 * 8 * s.people * s.phenotypes
            + 2 * 3 * 8.0 * s.variants * s.phenotypes)


def gather_bytes(s: JobSize, _: RequestSettings) -> float:
    """The gather streams a few phenotypes at a time (contig.gwas.gather: batches of
    ``GATHER_BATCH_BYTES``, read, formatted and written: ~3 copies) and keeps per variant its
    identifiers and the running best −log10 p (~200 bytes): flat in the number of phenotypes."""
    return 3.0 * GATHER_BATCH_BYTES + 200.0 * s.variants


def training_bytes(s: JobSize, settings: RequestSettings) -> float:
    """Training: per process (one per GPU) torch and the model (3 GB; the demo's jobs peaked at
    2.5 GB) and the genetic modalities twice (as loaded and as tensors); images are
    memory-mapped from the cache, only a batch is resident."""
    return max(settings.gpus, 1) * (3000.0 * MB + 2.0 * s.modality_bytes)


def inference_bytes(s: JobSize, _: RequestSettings) -> float:
    """Embedding, attributions: one process holding the genetic modalities twice."""
    return 2.0 * s.modality_bytes


def training_seconds(s: JobSize, settings: RequestSettings) -> float:
    """Pixels × epochs at 4e-6 s a pixel on CPU (demo: 1.2e-6 on 2 cores, SimCLR's two views),
    1e-7 s per GPU (a ResNet-50 step at 448 px takes ~1e-8 s a pixel on a current GPU)."""
    per_pixel = 1e-7 / settings.gpus if settings.gpus else 4e-6
    return pixels(s) * settings.epochs * per_pixel


def _seconds_per_call(rate: float) -> Callable[[JobSize, RequestSettings], float]:
    def seconds(s: JobSize, _: RequestSettings) -> float:
        return rate * calls(s)

    seconds.__name__ = f"seconds_at_{rate:g}_per_call"
    return seconds


def simulation_seconds(s: JobSize, _: RequestSettings) -> float:
    return 2e-6 * (calls(s) + pixels(s))


def image_seconds(s: JobSize, _: RequestSettings) -> float:
    """0.1 s to decode, crop and resize a photograph."""
    return 0.1 * s.images


def inference_seconds(s: JobSize, settings: RequestSettings) -> float:
    """Every fold model embeds everyone: a forward pass is ~1/3 of a training step; K ≤ 5."""
    return 5 * training_seconds(s, replace(settings, epochs=1)) / 3


def step1_seconds(s: JobSize, _: RequestSettings) -> float:
    """Level 0 (5 folds × 5 shrinkages per block) and level 1 per phenotype."""
    return 2.5e-6 * calls(s) + 1e-7 * calls(s) * s.phenotypes


def association_seconds(s: JobSize, _: RequestSettings) -> float:
    """bench/gwas.py: 2.2 s for 5e8 calls × 32 phenotypes (1.4e-10 s each); 2e-9 allows 15×."""
    return 2e-9 * calls(s) * s.phenotypes


def gather_seconds(s: JobSize, _: RequestSettings) -> float:
    return 1e-6 * s.variants * s.phenotypes


RULE_COSTS: dict[str, Cost] = {
    "simulate": Cost(1000, simulation_bytes, 10, simulation_seconds),
    "qc": Cost(1000, streamed_genotype_bytes, 10, _seconds_per_call(2e-8)),
    "pca": Cost(3100, streamed_genotype_bytes, 15, _seconds_per_call(7e-7)),  # base: cache_gb 2
    "snps": Cost(1000, snp_modality_bytes, 10, _seconds_per_call(2e-7)),
    "prs": Cost(1500, streamed_genotype_bytes, 10, _seconds_per_call(2e-7)),
    "burden": Cost(1000, streamed_genotype_bytes, 10, _seconds_per_call(5e-8)),
    "images": Cost(1000, image_cache_bytes, 10, image_seconds),
    "train": Cost(1000, training_bytes, 60, training_seconds),
    "embed": Cost(3000, inference_bytes, 20, inference_seconds),
    "explain": Cost(3000, inference_bytes, 20, inference_seconds),
    "gwas_step1": Cost(1000, step1_bytes, 15, step1_seconds),
    "gwas": Cost(1000, association_bytes, 10, association_seconds),
    "gwas_gather": Cost(2000, gather_bytes, 10, gather_seconds),
}
"""The rules whose requests grow with their inputs (the others keep the profile's default)."""


def scaled_variants(size: JobSize, share: float) -> JobSize:
    """``size`` with ``share`` of its variants (an association job's chromosome group)."""
    return replace(size, variants=int(math.ceil(size.variants * share)))


def request(rule: str, size: JobSize, attempt: int = 1,
            settings: RequestSettings = RequestSettings()) -> tuple[int, int]:
    """``(mem_mb, runtime_min)`` of one job of ``rule``, grown for the retry ``attempt`` (1 =
    first try); the runtime at most ``MAX_RUNTIME_MIN``."""
    cost = RULE_COSTS[rule]
    growth = GROWTH_PER_ATTEMPT ** (max(attempt, 1) - 1)
    mem_mb = (cost.base_mb + cost.mem_bytes(size, settings) / MB) * growth
    runtime = min((cost.base_min + cost.seconds(size, settings) / 60) * growth, MAX_RUNTIME_MIN)
    return int(math.ceil(mem_mb)), int(math.ceil(runtime))


def count_lines(path: str | Path) -> int:
    """Lines of a text file (a .fam: its people), read in 1 MB pieces."""
    n = 0
    with open(path, "rb") as handle:
        while piece := handle.read(MB):
            n += piece.count(b"\n")
    return n


def genotype_size(bed_paths: Sequence[str | Path], fam_path: str | Path,
                  phenotypes: int = 1) -> JobSize:
    """People (lines of the .fam) and variants (from the .bed sizes: 3 magic bytes, then
    ``ceil(people / 4)`` bytes per variant) of PLINK 1 filesets sharing one .fam."""
    people = count_lines(fam_path)
    per_variant = max(math.ceil(people / 4), 1)
    variants = sum((Path(p).stat().st_size - 3) // per_variant for p in bed_paths)
    return JobSize(people=people, variants=int(variants), phenotypes=phenotypes)


def _header_counts(path: str | Path, offset: int) -> tuple[int, int]:
    """Two little-endian uint32 at ``offset`` of a file (a BGEN's or PGEN's variant and sample
    counts)."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        first, second = np.frombuffer(handle.read(8), dtype="<u4")
    return int(first), int(second)


def imputed_size(paths: Sequence[str]) -> JobSize:
    """People and variants of imputed .bgen files (header: variants, samples at byte 8) or
    standard-mode .pgen files (variants, samples at byte 3); per-chromosome files add up."""
    people = variants = 0
    for path in paths:
        if path.endswith(".bgen"):
            m, n = _header_counts(path, 8)
        elif path.endswith(".pgen"):
            m, n = _header_counts(path, 3)
        else:
            continue
        people, variants = max(people, n), variants + m
    return JobSize(people=people, variants=variants)


def gwas_parts_size(paths: Sequence[str]) -> JobSize:
    """Variants (rows, summed) and phenotypes (``BETA:<pheno>`` columns) of association parts,
    from the parquet footers only."""
    import pyarrow.parquet as pq

    variants = phenotypes = 0
    for path in paths:
        with open(path, "rb") as handle:  # FileNotFoundError naming the path, as Snakemake expects
            metadata = pq.read_metadata(handle)
        variants += metadata.num_rows
        phenotypes = max(phenotypes, sum(name.startswith("BETA:") for name in metadata.schema.names))
    return JobSize(variants=variants, phenotypes=max(phenotypes, 1))


def image_cache_size(npy_path: str | Path) -> JobSize:
    """Images and their side from the image cache's header ``(images, size, size, 3)`` uint8."""
    with open(npy_path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, _ = read_header(handle)
    return JobSize(images=int(shape[0]), image_size=int(shape[1]))


def npz_bytes(paths: Sequence[str | Path]) -> int:
    """Uncompressed bytes of the arrays in .npz files (what loading them takes)."""
    total = 0
    for path in paths:
        with zipfile.ZipFile(path) as archive:
            total += sum(info.file_size for info in archive.infolist())
    return total


def with_modalities(size: JobSize, modality_paths: Sequence[str | Path]) -> JobSize:
    """``size`` with the bytes of the genetic modality files a training job loads."""
    return replace(size, modality_bytes=npz_bytes(modality_paths))


def phenotype_count(path: str | Path) -> int:
    """Phenotype columns of a phenotype sheet (its header's fields but IID)."""
    with open(path) as handle:
        return max(len(handle.readline().rstrip("\n").split("\t")) - 1, 1)


def size_of_inputs(paths: Sequence[str | Path], image_size: int = 0,
                   manifest: str | Path | None = None) -> JobSize:
    """A job's sizes from its input files: people (the first .fam), variants (the .bed files;
    or people and variants from the headers of imputed .bgen / .pgen files; or variants and
    phenotypes of association parts, .parquet),
    phenotypes (a ``*.pheno.tsv``), images (an image cache .npy, or the image ``manifest``'s rows
    at ``image_size`` px), modality bytes (the .npz files). A missing file raises
    FileNotFoundError (Snakemake then evaluates the request when the job runs)."""
    paths = [str(p) for p in paths]
    fams = [p for p in paths if p.endswith(".fam")]
    beds = [p for p in paths if p.endswith(".bed")]
    imputed = [p for p in paths if p.endswith((".bgen", ".pgen"))]
    size = genotype_size(beds, fams[0]) if fams and beds else (
        imputed_size(imputed) if imputed else JobSize())
    if fams and not beds:
        size = replace(size, people=count_lines(fams[0]))
    parts = [p for p in paths if p.endswith(".parquet")]
    if parts and not (fams or imputed):
        size = gwas_parts_size(parts)
    phenos = [p for p in paths if p.endswith(".pheno.tsv")]
    if phenos:
        size = replace(size, phenotypes=phenotype_count(phenos[0]))
    caches = [p for p in paths if p.endswith(".npy")]
    if caches:
        cache = image_cache_size(caches[0])
        size = replace(size, images=cache.images, image_size=cache.image_size)
    elif manifest is not None and str(manifest) in paths:
        size = replace(size, images=max(count_lines(manifest) - 1, 0), image_size=image_size)
    return with_modalities(size, [p for p in paths if p.endswith(".npz")])
