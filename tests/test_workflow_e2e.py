"""One small end-to-end run of the workflow on a tiny simulated cohort, plus its report."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess

import polars as pl
import pytest

from workflow_helpers import TINY, run_snakemake, write_config



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
        "results/genotypes/pca_plot.png",
        "results/scores/snps.npz",
        "results/scores/prs.npz",
        "results/scores/prs.summary.tsv",
        "results/scores/burden.npz",
        "results/scores/burden.genes.tsv",
        "results/images/cache_32.npy",
        "results/pretrain/contig/fold0/model.pt",
        "results/pretrain/contig/fold1/curves.png",
        "results/embed/contig.parquet",
        "results/embed/random.parquet",
        "results/gwas/contig/assoc.combined.parquet",
        "results/gwas/contig/loci.loci.tsv",
        "results/gwas/random/combined.manhattan.png",
        "results/gwas/contig/parts/chr1-3.parquet",
        "results/gwas/contig/parts/chr4-6.parquet",
        "results/gwas/contig/sumstats/PC1.parquet",
        "results/gwas/contig/sumstats/PC3.tsv.gz",
        "results/gwas/contig/phenotypes.spectrum.png",
        "results/embed/contig_left.parquet",
        "results/gwas/random_right/loci.loci.tsv",
        "results/explain/contig/attributions.features.tsv",
        "results/explain/contig/attributions.precision.tsv",
        "results/explain/contig/attributions.saliency.png",
        "results/evaluate/probes.summary.tsv",
        "results/evaluate/truth.tsv",
        "results/evaluate/replication/contig.summary.tsv",
        "results/evaluate/comparison.tsv",
        "results/evaluate/comparison.md",
    ):
        assert (workdir / path).stat().st_size > 0, path
    comparison = pl.read_csv(workdir / "results/evaluate/comparison.tsv", separator="\t")
    assert comparison["method"].to_list() == ["contig", "random"]
    for stage in ("simulate", "genotypes", "scores", "images", "pretrain", "embed", "gwas",
                  "explain", "evaluate"):
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


def planned_rules(workdir, overrides: dict, name: str = "changed.yaml") -> set[str]:
    """Rules a dry run plans after merging ``overrides`` into the TINY config."""
    merged = {key: dict(value) for key, value in TINY.items()}
    for key, value in overrides.items():
        merged[key] = merged.get(key, {}) | value
    result = run_snakemake(workdir, write_config(workdir, merged, name=name), "-n")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return set(re.findall(r"^(?:local)?rule (\w+):", result.stdout, flags=re.MULTILINE))


GENETIC_STAGES = {"simulate", "qc", "pca", "snps", "prs", "burden", "images", "covariates"}


def test_burden_setting_reruns_burden_and_what_reads_it(finished_run):
    workdir, _ = finished_run
    planned = planned_rules(workdir, {"burden": {"mode": "count"}})
    assert "burden" in planned and "train" in planned
    assert not planned & (GENETIC_STAGES - {"burden"})


def test_gwas_setting_reruns_only_gwas_and_after(finished_run):
    workdir, _ = finished_run
    planned = planned_rules(workdir, {"gwas": {"maf": 0.05}})
    assert planned == {"gwas", "gwas_gather", "clump", "gwas_plots", "truth", "replicate",
                       "compare", "all"}


def test_pretraining_setting_does_not_rerun_qc_or_scores(finished_run):
    workdir, _ = finished_run
    planned = planned_rules(workdir, {"pretrain": {"lr": 0.002}})
    assert {"train", "embed", "phenotypes", "gwas"} <= planned
    assert not planned & GENETIC_STAGES


def test_new_pgs_file_reruns_only_scores_and_what_follows(finished_run):
    """On real-data inputs (here: the simulated files), a new scoring file in the PGS folder."""
    workdir, _ = finished_run
    demo = workdir / "resources" / "demo"
    # relative paths, as the simulated run used (they are part of the recorded parameters)
    real = {"inputs": {"simulate": False, "genotypes": "resources/demo/genotypes",
                       "images": "resources/demo/images.tsv",
                       "covariates": "resources/demo/covariates.tsv", "pgs": "resources/demo/pgs",
                       "genes": "resources/demo/genes.tsv", "labels": "resources/demo/labels.tsv"}}
    # Without the simulator's truth, only the truth-based parts change (precision@k in explain,
    # the truth columns of the comparison).
    assert planned_rules(workdir, real, name="real.yaml") <= {"explain", "probes", "compare", "all"}
    new = demo / "pgs" / "PGS999999.txt.gz"
    new.write_bytes((demo / "pgs" / "PGS900001.txt.gz").read_bytes())
    try:
        planned = planned_rules(workdir, real, name="real.yaml")
    finally:
        new.unlink()
    assert "prs" in planned and "train" in planned
    assert not planned & (GENETIC_STAGES - {"prs"})


def embedded_text(html: str) -> str:
    """The report's HTML plus every text file it embeds (base64 data URIs), decoded."""
    parts = [html]
    for kind, payload in re.findall(r"data:([\w/+.-]+);[^,]*?base64,([A-Za-z0-9+/=]+)", html):
        if not kind.startswith("image/png"):
            parts.append(base64.b64decode(payload).decode("utf-8", errors="replace"))
    return "\n".join(parts)


def build_report(workdir, config):
    report = workdir / "results" / "report.html"
    result = run_snakemake(workdir, config, "--report", str(report))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return report


def test_report_is_built(finished_run):
    workdir, config = finished_run
    text = embedded_text(build_report(workdir, config).read_text(errors="replace"))
    for label in ("QC filters", "PGS matching", "Image QC", "training curves", "lead loci",
                  "Manhattan", "QQ", "variance spectrum", "attribution per feature",
                  "probe metric vs label fraction", "methods compared", "loci replicated"):
        assert label in text, label
    # captions quote the thresholds in force
    assert "--mind 0.05" in text and "5e-08" in text


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_report_renders_its_sections_in_a_browser(finished_run, tmp_path):
    workdir, config = finished_run
    report = build_report(workdir, config)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", report.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    for category in ("1. Genotype QC", "2. Genetic scores", "3. Images", "4. Pretraining",
                     "5. Embeddings", "6. GWAS", "7. Explainability", "8. Evaluation"):
        assert category in dom, category
    screenshot = workdir / "results" / "report.png"
    subprocess.run([CHROMIUM, *flags, "--window-size=1400,1000", f"--screenshot={screenshot}",
                    report.as_uri()], capture_output=True, timeout=120)
    assert screenshot.stat().st_size > 10_000


def test_default_report_holds_no_individual_data(finished_run):
    """report.individual_level false (the default on real data): no IID anywhere in the report,
    and the PC figure becomes an aggregate density; only that figure is redrawn."""
    workdir, _ = finished_run
    private = {key: dict(value) for key, value in TINY.items()} | {
        "report": {"individual_level": False}}
    config = write_config(workdir, private, name="private.yaml")
    planned = run_snakemake(workdir, config, "-n")
    # the PC figure becomes a density and explain drops its per-person saliency maps
    assert set(re.findall(r"^(?:local)?rule (\w+):", planned.stdout, flags=re.MULTILINE)) == {
        "pca_plot", "explain", "all"}
    result = run_snakemake(workdir, config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(density)" in (workdir / "logs/genotypes/pca_plot.log").read_text()
    assert not (workdir / "results/explain/contig/attributions.saliency.png").exists()
    text = embedded_text(build_report(workdir, config).read_text(errors="replace"))
    iids = pl.read_csv(workdir / "resources/demo/genotypes.fam", separator="\t",
                       has_header=False)[:, 1].cast(pl.Utf8).to_list()
    leaked = [iid for iid in iids if iid in text]
    assert not leaked, leaked[:5]
