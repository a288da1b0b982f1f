"""Simulate a whole cohort into a directory, atomically (built in a temp dir, renamed into place)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl

from contig import __version__
from contig.core.atomic import write_text_atomic
from contig.core.errors import InputError
from contig.genotypes.plinkio import write_bfile
from contig.simulate import genotypes as gt
from contig.simulate.relatives import plant_relatives
from contig.simulate.config import TRAITS, SimulationConfig
from contig.simulate.images import EyeParams, eye_params, write_eye_pngs
from contig.simulate.pgs import write_pgs_files
from contig.simulate.traits import (Architecture, Covariates, choose_architecture,
                                    simulate_covariates, simulate_labels, simulate_traits)
from contig.core.tables import write_tsv

log = logging.getLogger(__name__)
STREAMS = ("genome", "genotypes", "traits", "missing", "images", "pgs")


def sample_ids(n_samples: int) -> list[str]:
    """IIDs S000001, S000002, ... (also the FIDs)."""
    return [f"S{i + 1:06d}" for i in range(n_samples)]


def simulate_cohort(out_dir: str | Path, config: SimulationConfig) -> None:
    """Simulate the cohort ``config`` describes into ``out_dir`` (replaced as a whole on success).

    Nothing appears under ``out_dir`` unless every file was written.
    """
    config.validate()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is not a directory", out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        simulate_into(work, config)
        replace_directory(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def replace_directory(new: Path, final: Path) -> None:
    """Rename ``new`` to ``final``; an existing ``final`` is moved aside first, then deleted."""
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
        final.rename(old / "previous")
    new.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def simulate_into(out: Path, config: SimulationConfig) -> dict:
    """Simulate every file into the (empty) directory ``out``; returns the summary stored in JSON."""
    started = time.perf_counter()
    rngs = dict(zip(STREAMS, (np.random.default_rng(s)
                              for s in np.random.SeedSequence(config.seed).spawn(len(STREAMS)))))
    n = config.n_samples
    iids = sample_ids(n)

    genome, population, alt = simulate_true_genotypes(config, rngs["genome"], rngs["genotypes"])
    relatives = plant_configured_relatives(alt, population, iids, config, rngs["genotypes"])
    alt_freq = alt.mean(axis=1, dtype=np.float64) / 2
    maf = np.minimum(alt_freq, 1 - alt_freq)
    log.info("simulated %d SNPs x %d people on %d chromosomes (%.1f s)", genome.n_snps, n,
             config.n_chromosomes, time.perf_counter() - started)

    covariates = simulate_covariates(n, config.n_batches, rngs["traits"])
    arch = choose_architecture(genome, maf, gt.hwe_chi2(alt), config, rngs["traits"])
    traits, truth = simulate_traits(alt, genome, maf, arch, covariates, population, config,
                                    rngs["traits"])
    disease, severity = simulate_labels(traits, config, rngs["traits"])

    failures = gt.choose_qc_failures(maf, arch.causal_snps(), n, config, rngs["missing"])
    missing_fraction = write_observed_genotypes(out / "genotypes", alt, genome, failures,
                                                covariates, arch, iids, config, rngs["missing"])
    del alt
    write_person_tables(out, iids, covariates, population, traits, disease, severity)
    write_tsv(genome.genes, out / "genes.tsv")
    write_tsv(truth, out / "truth.tsv")
    write_tsv(relatives, out / "relatives.tsv")

    manifest = write_images(out, iids, traits, config, rngs["images"])
    log.info("%s %d images of %d people (%.1f s so far)", "rendered" if config.images else "planned",
             manifest.height, n, time.perf_counter() - started)

    pgs = write_pgs_files(out / "pgs", genome, truth, alt_freq, maf, config, rngs["pgs"])
    summary = cohort_summary(genome, maf, population, failures, iids, manifest.height,
                             missing_fraction, pgs, config)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    write_text_atomic(out / "simulation.json", json.dumps(
        {"contig_version": __version__, "config": config.to_json(), "summary": summary}, indent=2))
    log.info("cohort written: %d SNPs (%.2f%% missing calls, %.1f%% with MAF < 1%%), %d images, "
             "%d PGS files, %d causal SNPs, %d burden genes; planted QC failures: %d samples, "
             "%d missingness variants, %d HWE variants", genome.n_snps, 100 * missing_fraction,
             100 * summary["maf_below_1pct_fraction"], manifest.height, len(pgs),
             int((truth["kind"] == "snp").sum()), int((truth["kind"] == "gene").sum()),
             len(failures.bad_samples), len(failures.bad_missing_variants),
             len(failures.bad_hwe_variants))
    return summary


def simulate_true_genotypes(config: SimulationConfig, genome_rng: np.random.Generator,
                            genotype_rng: np.random.Generator
                            ) -> tuple[gt.Genome, np.ndarray, np.ndarray]:
    """The genome, each person's population ``(n_samples,)`` and the complete ALT counts
    int8 ``(n_snps, n_samples)`` (before missingness)."""
    genome = gt.simulate_genome(config, genome_rng)
    population = gt.assign_populations(config.n_samples, config.n_populations, genotype_rng)
    pop_freq = gt.population_frequencies(genome.ancestral_freq, config.fst, config.n_populations,
                                         genotype_rng)
    alt = gt.alt_counts(gt.simulate_allele1_counts(genome, population, pop_freq, config,
                                                   genotype_rng), genome)
    return genome, population, alt


def plant_configured_relatives(alt: np.ndarray, population: np.ndarray, iids: list[str],
                               config: SimulationConfig, rng: np.random.Generator) -> pl.DataFrame:
    """The relatives the config asks for, planted into ``alt`` ``(n_snps, n_samples)`` in place;
    none asked for: no random draw (the cohort stays byte-identical to one without the settings)."""
    counts = (config.n_duplicates, config.n_parent_offspring, config.n_sibling_pairs)
    if not any(counts):
        return plant_relatives(alt, population, iids, 0, 0, 0, rng=None)
    pairs = plant_relatives(alt, population, iids, *counts, rng=rng)
    log.info("planted %d relative pairs (%d duplicates, %d parent-offspring, %d siblings)",
             pairs.height, *counts)
    return pairs


def write_observed_genotypes(prefix: Path, alt: np.ndarray, genome: gt.Genome,
                             failures: gt.QcFailures, covariates: Covariates, arch: Architecture,
                             iids: list[str], config: SimulationConfig,
                             rng: np.random.Generator) -> float:
    """Write ``prefix``.bed/.bim/.fam: ``alt`` ``(n_snps, n_samples)`` with missing calls and the
    planted QC failures; returns the fraction of calls that are missing."""
    observed = gt.observed_genotypes(alt, failures, covariates.batch, arch.causal_snps(), config,
                                     rng)
    fam = pl.DataFrame({"FID": iids, "IID": iids, "PAT": "0", "MAT": "0",
                        "SEX": covariates.sex.astype(np.int8), "PHENO": "-9"})
    write_bfile(prefix, fam, genome.bim(),
                (observed[i:i + 4096] for i in range(0, genome.n_snps, 4096)))
    return float((observed == gt.MISSING).mean())


def write_person_tables(out: Path, iids: list[str], covariates: Covariates, population: np.ndarray,
                        traits: np.ndarray, disease: np.ndarray, severity: np.ndarray) -> None:
    """covariates.tsv, traits.tsv (population and latent traits) and labels.tsv, one row a person."""
    write_tsv(pl.DataFrame({"IID": iids, "age": covariates.age, "sex": covariates.sex,
                            "batch": [f"batch{b + 1}" for b in covariates.batch]}),
              out / "covariates.tsv")
    write_tsv(pl.DataFrame({"IID": iids, "population": [f"POP{p + 1}" for p in population],
                            **{name: traits[:, k] for k, name in enumerate(TRAITS)}}),
              out / "traits.tsv")
    write_tsv(pl.DataFrame({"IID": iids, "disease": disease, "severity": severity}),
              out / "labels.tsv")


def write_images(out: Path, iids: list[str], traits: np.ndarray, config: SimulationConfig,
                 rng: np.random.Generator) -> pl.DataFrame:
    """images.tsv and (unless ``config.images`` is False) the PNGs in images/; returns the manifest."""
    manifest, jobs = plan_images(iids, traits, config, rng)
    (out / "images").mkdir()
    write_tsv(manifest, out / "images.tsv")
    if config.images:
        render_images([(str(out / path), params) for path, params in jobs], config.n_workers)
    return manifest


def cohort_summary(genome: gt.Genome, maf: np.ndarray, population: np.ndarray,
                   failures: gt.QcFailures, iids: list[str], n_images: int,
                   missing_fraction: float, pgs: list[dict], config: SimulationConfig) -> dict:
    """The ``summary`` block of simulation.json (sizes, allele spectrum, planted failures, PGS)."""
    rare_in_genes = (maf < 0.01) & (genome.gene_index >= 0)
    return {
        "n_samples": len(iids), "n_snps": genome.n_snps, "n_images": n_images,
        "n_genes": genome.genes.height,
        "population_sizes": np.bincount(population, minlength=config.n_populations).tolist(),
        "missing_call_fraction": round(missing_fraction, 5),
        "maf_below_1pct_fraction": round(float((maf < 0.01).mean()), 4),
        "rare_variants_in_genes": int(rare_in_genes.sum()),
        "qc_failures": {
            "high_missingness_samples": [iids[i] for i in failures.bad_samples],
            "high_missingness_variants": genome.rsid[failures.bad_missing_variants].tolist(),
            "hwe_violating_variants": genome.rsid[failures.bad_hwe_variants].tolist(),
        },
        "pgs": pgs,
    }


def plan_images(iids: list[str], traits: np.ndarray, config: SimulationConfig,
                rng: np.random.Generator) -> tuple[pl.DataFrame, list[tuple[str, EyeParams]]]:
    """Which eyes each person has, and every eye's render parameters (drawn in person order).

    Returns the manifest (IID path eye; paths relative to the cohort folder) and the jobs.
    """
    rows: dict[str, list[str]] = {"IID": [], "path": [], "eye": []}
    jobs = []
    for i, iid in enumerate(iids):
        if rng.random() < config.two_eye_fraction:
            eyes = ["left", "right"]
        else:
            eyes = ["left" if rng.random() < 0.5 else "right"]
        for eye in eyes:
            path = f"images/{iid}_{eye}.png"
            rows["IID"].append(iid)
            rows["path"].append(path)
            rows["eye"].append(eye)
            jobs.append((path, eye_params(traits[i], eye == "right", config.image_size, rng)))
    return pl.DataFrame(rows), jobs


def render_images(jobs: list[tuple[str, EyeParams]], n_workers: int) -> None:
    """Render every job; with several workers, in batches on spawned processes."""
    if n_workers <= 1 or len(jobs) < 200:
        write_eye_pngs(jobs)
        return
    batch = max(50, len(jobs) // (8 * n_workers))
    batches = [jobs[k:k + batch] for k in range(0, len(jobs), batch)]
    context = multiprocessing.get_context("spawn")  # not fork: polars' thread pool may be live
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=context) as pool:
        done = sum(pool.map(write_eye_pngs, batches))
    if done != len(jobs):
        raise RuntimeError(f"rendered {done} of {len(jobs)} images")
