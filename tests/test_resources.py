"""Memory and time requests of the workflow's jobs (contig.core.resources, used by
workflow/rules/common.smk): sizes read from the input files, growth with the retry attempt, and a
UK Biobank-sized plan (tests/helpers/resources.py); the plan against what a finished run's jobs
measurably needed is in tests/test_workflow_e2e.py."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import polars as pl
import pytest

from contig.core import plan, resources
from contig.core.resources import (
    GROWTH_PER_ATTEMPT,
    MAX_RUNTIME_MIN,
    RULE_COSTS,
    JobSize,
    RequestSettings,
    request,
)
from contig.scores.modality import Modality, save_modality
from helpers.gwas import simulate_cohort, write_table
from helpers.resources import UKB, UKB_SETTINGS, ukb_sizes

def test_every_rule_with_a_cost_has_a_ukb_size():
    assert set(ukb_sizes()) == set(RULE_COSTS)


@pytest.mark.parametrize("rule", sorted(RULE_COSTS))
def test_requests_grow_with_the_retry_attempt(rule):
    size = ukb_sizes()[rule]
    first, second, third = (request(rule, size, a, UKB_SETTINGS) for a in (1, 2, 3))
    assert second[0] == pytest.approx(first[0] * GROWTH_PER_ATTEMPT, abs=3)
    assert third[0] == pytest.approx(first[0] * GROWTH_PER_ATTEMPT**2, abs=3)
    assert first[1] <= second[1] <= third[1] <= MAX_RUNTIME_MIN


def test_sizes_are_read_from_the_input_files(tmp_path):
    """People from the .fam, variants from the .bed sizes, phenotypes from the sheet's header,
    images from the cache's header, modality bytes from the .npz members."""
    cohort = simulate_cohort(tmp_path / "g", n_samples=37, n_chrom=2, snps_per_chrom=25)
    prefix = str(cohort.prefix)
    pheno = write_table(tmp_path / "x.pheno.tsv", cohort.iid, {f"PC{i}": np.zeros(37) for i in range(7)})
    np.save(tmp_path / "cache.npy", np.zeros((9, 12, 12, 3), dtype=np.uint8))
    X = np.ones((37, 5), dtype=np.float32)
    save_modality(tmp_path / "snps.npz", Modality(cohort.iid, np.array(list("abcde")), X))
    size = resources.size_of_inputs(
        [prefix + ".bed", prefix + ".bim", prefix + ".fam", str(pheno), str(tmp_path / "cache.npy"),
         str(tmp_path / "snps.npz")])
    assert (size.people, size.variants, size.phenotypes) == (37, 50, 7)
    assert (size.images, size.image_size) == (9, 12)
    assert size.modality_bytes >= X.nbytes
    with pytest.raises(FileNotFoundError):  # Snakemake then defers the request to the job
        resources.size_of_inputs([str(tmp_path / "missing.fam")])


@pytest.mark.plink2
def test_imputed_sizes_are_read_from_bgen_and_pgen_headers(tmp_path):
    """plink2 writes the imputed formats of a fileset: people and variants from their headers."""
    cohort = simulate_cohort(tmp_path / "g", n_samples=23, n_chrom=2, snps_per_chrom=15)
    out = tmp_path / "x"
    for export in (["--export", "bgen-1.2"], ["--make-pgen"]):
        subprocess.run(["plink2", "--bfile", str(cohort.prefix), *export, "--out", str(out),
                        "--threads", "2"], check=True, capture_output=True)
    for ext in (".bgen", ".pgen"):
        size = resources.size_of_inputs([f"{out}{ext}"])
        assert (size.people, size.variants) == (23, 30), ext


def test_gather_size_is_read_from_the_parts(tmp_path):
    paths = []
    for k, rows in enumerate((5, 8)):
        table = {"CHROM": ["1"] * rows, **{f"{stat}:PC{j}": np.zeros(rows) for j in range(3)
                                           for stat in ("BETA", "SE", "LOG10P")}}
        paths.append(str(tmp_path / f"part{k}.parquet"))
        pl.DataFrame(table).write_parquet(paths[-1])
    size = resources.size_of_inputs(paths)
    assert (size.variants, size.phenotypes) == (13, 3)


def test_manifest_rows_count_images(tmp_path):
    manifest = tmp_path / "images.tsv"
    pl.DataFrame({"IID": ["a", "b", "c"], "path": ["x", "y", "z"]}).write_csv(manifest, separator="\t")
    size = resources.size_of_inputs([str(manifest)], image_size=448, manifest=str(manifest))
    assert (size.images, size.image_size) == (3, 448)


def test_train_launches_one_process_per_gpu_through_torchrun():
    assert plan.train_launcher(0) == plan.train_launcher(1) == "python -m contig"
    assert plan.train_launcher(4) == "torchrun --standalone --nproc-per-node 4 -m contig"


def test_gather_request_is_flat_in_phenotypes_and_uses_the_gathers_batch():
    from contig.gwas.gather import GATHER_BATCH_BYTES

    assert resources.GATHER_BATCH_BYTES == GATHER_BATCH_BYTES
    few, many = (request("gwas_gather", JobSize(people=70_000, variants=10**7, phenotypes=p))
                 for p in (10, 2048))
    assert few[0] == many[0]


# The UK Biobank plan against the needs a finished run measured: tests/test_workflow_e2e.py.

def test_ukb_step1_and_association_requests_cover_their_arrays():
    """Step 1 on 800k array variants and 2,048 phenotypes fits one node (the level-0 predictions
    over the budget go to disk) and covers one phenotype's features; an association job covers
    its results ``(variants, phenotypes)`` × BETA, SE, LOG10P, which it holds until it writes
    them (~1M imputed variants × 2,048 phenotypes: ~47 GiB; more scatter parts make it less)."""
    sizes = ukb_sizes()
    step1_mb, step1_min = request("gwas_step1", sizes["gwas_step1"], 1, UKB_SETTINGS)
    features = 5 * math.ceil(UKB["array"] / 500)
    one_phenotype_mb = 12 * features * UKB["people"] / 2**20
    assert one_phenotype_mb < step1_mb < 64_000
    assert step1_min <= MAX_RUNTIME_MIN
    gwas_mb, _ = request("gwas", sizes["gwas"], 1, UKB_SETTINGS)
    results_mb = 3 * 8 * sizes["gwas"].variants * UKB["phenotypes"] / 2**20
    assert results_mb < gwas_mb < 3 * results_mb
