"""One small end-to-end run of the workflow on a tiny simulated cohort, plus its report."""

from __future__ import annotations

import re

import polars as pl
import pytest

from workflow_helpers import run_snakemake, write_config

TINY = {
    "simulate": {"n_samples": 240, "n_snps": 3000, "n_chromosomes": 6, "image_size": 32},
    "pca": {"n_pcs": 4},
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e")
    config = write_config(workdir, TINY)
    result = run_snakemake(workdir, config)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return workdir, config


def test_every_stage_output_exists(finished_run):
    workdir, _ = finished_run
    for path in (
        "resources/demo/genotypes.bed",
        "resources/demo/images.tsv",
        "results/genotypes/cohort.bed",
        "results/genotypes/cohort.qc.tsv",
        "results/genotypes/pca.eigenvec",
        "results/genotypes/pca.png",
        "results/scores/snps.npz",
        "results/scores/prs.npz",
        "results/scores/prs.summary.tsv",
        "results/scores/burden.npz",
        "results/scores/burden.genes.tsv",
    ):
        assert (workdir / path).stat().st_size > 0, path
    for stage in ("simulate", "genotypes", "scores"):
        assert any((workdir / "logs" / stage).iterdir())
        assert any((workdir / "benchmarks" / stage).iterdir())


def test_qc_keeps_only_people_with_images(finished_run):
    workdir, _ = finished_run
    fam = pl.read_csv(workdir / "results/genotypes/cohort.fam", separator="\t", has_header=False)
    manifest = pl.read_csv(workdir / "resources/demo/images.tsv", separator="\t")
    assert set(fam[:, 1].cast(pl.Utf8)) <= set(manifest["IID"].cast(pl.Utf8))


def test_second_run_has_nothing_to_do(finished_run):
    workdir, config = finished_run
    result = run_snakemake(workdir, config, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_a_burden_setting_reruns_only_burden(finished_run):
    workdir, _ = finished_run
    changed = write_config(workdir, TINY | {"burden": {"mode": "count"}}, name="changed.yaml")
    result = run_snakemake(workdir, changed, "-n")
    planned = set(re.findall(r"^rule (\w+):", result.stdout, flags=re.MULTILINE))
    assert planned == {"burden", "all"}, result.stdout


def test_report_is_built(finished_run):
    workdir, config = finished_run
    report = workdir / "results" / "report.html"
    result = run_snakemake(workdir, config, "--report", str(report))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    html = report.read_text(errors="replace")
    assert "QC filters" in html and "PGS matching" in html
