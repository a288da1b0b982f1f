"""Determinism: the same inputs, config and seed give bit-identical results, run twice on the CPU.

The chain from images to summary statistics (image cache, SNP and PRS modalities, genetic PCs,
two cross-fitting folds of ContIG training, out-of-fold embeddings aligned across the folds,
covariates, phenotypes, GWAS and its summary)
runs twice, each time in its own process with its own hash seed (so nothing may depend on the
iteration order of sets or dicts of strings) and its own output folder. The summary statistics
must be byte-identical, parquet and tsv.gz alike, and so must every table on the way; the model
weights must be equal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

pytestmark = pytest.mark.slow  # ~40 s on 2 cores: two full chains, one after the other
TIMING_COLUMNS = ["images_per_s", "data_wait_fraction", "epoch_seconds"]

CHAIN = textwrap.dedent("""
    import sys
    from pathlib import Path
    from contig.cli import main

    cohort, out = Path(sys.argv[1]), Path(sys.argv[2])
    geno, cache = str(cohort / "genotypes"), str(out / "cache")

    def run(*args):
        assert main([str(a) for a in args]) == 0, args

    run("images", "--manifest", cohort / "images.tsv", "--out", cache, "--size", 32,
        "--workers", 1)
    run("snps", "--bfile", geno, "--out", out / "snps", "--maf", 0.01, "--every-kth", 4)
    run("prs", "--bfile", geno, "--scores", *sorted((cohort / "pgs").iterdir()),
        "--out", out / "prs", "--min-overlap", 0.5)
    run("pca", "--bfile", geno, "--out", out / "pca", "--n-pcs", 3, "--no-plot")
    models = []
    for fold in (0, 1):
        run("train", "--images", cache, "--modality", f"snps={out / 'snps.npz'}",
            "--modality", f"prs={out / 'prs.npz'}", "--out", out / f"fold{fold}",
            "--n-folds", 2, "--fold", fold, "--arch", "resnet18", "--epochs", 1,
            "--batch-size", 16, "--proj-hidden", 32, "--proj-dim", 16, "--genetic-hidden", 32,
            "--workers", 0, "--threads", 2, "--seed", 42, "--device", "cpu", "--progress", "off")
        models += ["--checkpoint", out / f"fold{fold}" / "model.pt"]
    run("embed", "--images", cache, *models, "--out", out / "embed.parquet", "--threads", 2,
        "--device", "cpu")
    run("covariates", "--covariates", cohort / "covariates.tsv", "--quantitative", "age",
        "--categorical", "sex", "batch", "--eigenvec", out / "pca.eigenvec", "--n-pcs", 3,
        "--out", out / "covariates.tsv")
    run("phenotypes", "--embeddings", out / "embed.parquet", "--covar", out / "covariates.tsv",
        "--out", out / "phenotypes", "--n-pcs", 3)
    run("gwas", "--bfile", geno, "--pheno", out / "phenotypes.pheno.tsv",
        "--covar", out / "phenotypes.covar.tsv", "--out", out / "assoc")
    run("gwas-summary", "--sumstats-prefix", out / "assoc", "--combined",
        out / "assoc.combined.parquet", "--out", out / "assoc.summary.tsv")
""")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    from contig.simulate import SimulationConfig, simulate_cohort

    root = tmp_path_factory.mktemp("determinism")
    simulate_cohort(root / "cohort", SimulationConfig(n_samples=120, n_snps=2000, n_chromosomes=3,
                                                      image_size=32, seed=11, n_workers=1,
                                                      causal_chromosomes=(1, 2)))
    for k, hash_seed in enumerate(("1", "2")):
        (root / f"run{k}").mkdir()
        result = subprocess.run(
            [sys.executable, "-c", CHAIN, str(root / "cohort"), str(root / f"run{k}")],
            env=dict(os.environ, PYTHONHASHSEED=hash_seed, OPENBLAS_NUM_THREADS="1"),
            capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-4000:]
    return root / "run0", root / "run1"


def test_summary_statistics_are_bit_identical(two_runs):
    first, second = two_runs
    sumstats = sorted(p.name for p in first.glob("assoc.*") if p.name.endswith((".parquet", ".tsv.gz")))
    assert "assoc.PC1.parquet" in sumstats and "assoc.PC3.tsv.gz" in sumstats
    assert "assoc.combined.parquet" in sumstats
    assert sumstats == sorted(p.name for p in second.glob("assoc.*")
                              if p.name.endswith((".parquet", ".tsv.gz")))
    for name in sumstats:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_every_table_on_the_way_is_identical(two_runs):
    first, second = two_runs
    for name in ("cache.npy", "cache.index.tsv", "snps.npz", "prs.npz", "prs.scores.tsv",
                 "pca.eigenvec", "fold0/split.tsv", "fold1/split.tsv", "embed.parquet",
                 "covariates.tsv", "phenotypes.pheno.tsv", "phenotypes.covar.tsv",
                 "assoc.summary.tsv"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    # the alignment table names each run's own checkpoint files; every number must agree
    a, b = (pl.read_csv(run / "embed.alignment.tsv", separator="\t").drop("checkpoint")
            for run in two_runs)
    assert a.height == 2 and a.equals(b)
    for fold in ("fold0", "fold1"):  # losses and accuracies; not the timing columns
        a, b = (pl.read_csv(run / fold / "metrics.tsv", separator="\t").drop(TIMING_COLUMNS)
                for run in two_runs)
        assert a.height == 1 and a.equals(b), fold


def test_model_weights_are_equal(two_runs):
    import torch

    from contig.pretrain.checkpoint import load_checkpoint

    for fold in ("fold0", "fold1"):
        a, b = (load_checkpoint(run / fold / "model.pt")["model"] for run in two_runs)
        assert a.keys() == b.keys() and len(a) > 10
        for key in a:
            assert torch.equal(a[key], b[key]), (fold, key)
