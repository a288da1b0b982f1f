"""One small end-to-end run of the workflow on a tiny simulated cohort, plus its report."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter

import polars as pl
import pytest
import yaml

from contig.core.resources import MAX_RUNTIME_MIN, RequestSettings, request
from helpers.resources import (MEASURED, RELIABLE_RSS_MB, SAFETY, UKB_SETTINGS, measured, run_sizes,
                               ukb_sizes, units)
from helpers.workflow import (ROOT, TINY, embedded_text, planned_jobs, run_snakemake,
                              split_by_chromosome, write_config)

pytestmark = pytest.mark.slow  # the whole workflow on a tiny cohort, then reruns: minutes on 2 cores


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
        "results/gwas/contig/loci.tsv",
        "results/gwas/contig/loci.clumps.tsv",
        "results/gwas/contig/loci.summary.tsv",
        "results/gwas/contig/assoc.summary.tsv",
        "results/gwas/random/combined.manhattan.png",
        "results/gwas/contig/parts/chr1-3.parquet",
        "results/gwas/contig/parts/chr4-6.parquet",
        "results/gwas/contig/sumstats/PC1.parquet",
        "results/gwas/contig/sumstats/PC3.tsv.gz",
        "results/gwas/contig/phenotypes.spectrum.png",
        "results/embed/contig_left.parquet",
        "results/gwas/random_right/loci.tsv",
        "results/explain/contig/attributions.features.tsv",
        "results/explain/contig/attributions.precision.tsv",
        "results/explain/contig/attributions.saliency.png",
        "results/evaluate/probes.tsv",
        "results/evaluate/probes.png",
        "results/evaluate/probes.summary.tsv",
        "results/evaluate/truth.tsv",
        "results/evaluate/replication/contig.summary.tsv",
        "results/evaluate/comparison.tsv",
        "results/evaluate/comparison.md",
        "results/loci/contig/loci.annotated.tsv",
        "results/loci/random/regional/regional.tsv",
        "results/loci/contig/miami.png",
    ):
        assert (workdir / path).stat().st_size > 0, path
    comparison = pl.read_csv(workdir / "results/evaluate/comparison.tsv", separator="\t")
    assert comparison["method"].to_list() == ["contig", "random"]
    for stage in ("simulate", "genotypes", "scores", "images", "pretrain", "embed", "gwas",
                  "explain", "evaluate", "loci"):
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


@pytest.mark.parametrize("rule", sorted(MEASURED))
def test_requests_cover_what_the_run_used_and_scale_to_ukb(finished_run, rule):
    """On the run's own inputs a job's request (contig.core.resources) covers what it used
    (max_rss, wall time in its benchmark file); for the UK Biobank plan the request stays within
    that need × the growth the rule should have (its working set's units, its work's units) ×
    SAFETY, and under a week."""
    workdir, _ = finished_run
    pattern, mem_unit, time_unit = MEASURED[rule]
    rss_mb, seconds = measured(workdir, pattern)
    small, ukb = run_sizes(workdir, TINY["simulate"])[rule], ukb_sizes()[rule]
    epochs = TINY["pretrain"]["epochs"]
    mem_mb, runtime = request(rule, small, 1, RequestSettings(epochs=epochs, gpus=0))
    if rss_mb >= RELIABLE_RSS_MB:
        assert mem_mb >= rss_mb, f"{rule}: requests {mem_mb} MB, used {rss_mb} MB"
    assert runtime * 60 >= seconds
    big_mem, big_runtime = request(rule, ukb, 1, UKB_SETTINGS)
    mem_growth = max(units(ukb, mem_unit, UKB_SETTINGS.epochs) / units(small, mem_unit, epochs), 1)
    assert big_mem <= SAFETY * max(rss_mb, 1000) * mem_growth, (big_mem, rss_mb, mem_growth)
    time_growth = units(ukb, time_unit, UKB_SETTINGS.epochs) / units(small, time_unit, epochs)
    if rule in ("train", "embed", "explain"):
        time_growth /= 10  # the UK Biobank plan trains on a GPU, the run on the CPU
    assert big_runtime * 60 <= SAFETY * max(seconds, 60) * time_growth
    assert big_runtime <= MAX_RUNTIME_MIN


def tiny_with(overrides: dict) -> dict:
    """The TINY config with ``overrides`` merged in (one level deep)."""
    merged = {key: dict(value) for key, value in TINY.items()}
    for key, value in overrides.items():
        merged[key] = merged.get(key, {}) | value
    return merged


def planned(workdir, overrides: dict, name: str = "changed.yaml") -> Counter:
    """Jobs per rule a dry run plans after merging ``overrides`` into the TINY config."""
    result = run_snakemake(workdir, write_config(workdir, tiny_with(overrides), name=name), "-n")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return planned_jobs(result.stdout + result.stderr)


def planned_rules(workdir, overrides: dict, name: str = "changed.yaml") -> set[str]:
    """Rules a dry run plans after merging ``overrides`` into the TINY config."""
    return set(planned(workdir, overrides, name))


GENETIC_STAGES = {"simulate", "qc", "pca", "snps", "prs", "burden", "images", "covariates"}


def test_burden_setting_reruns_burden_and_what_reads_it(finished_run):
    workdir, _ = finished_run
    planned = planned_rules(workdir, {"burden": {"mode": "count"}})
    assert "burden" in planned and "train" in planned
    assert not planned & (GENETIC_STAGES - {"burden"})


def test_gwas_setting_reruns_only_gwas_and_after(finished_run):
    workdir, _ = finished_run
    planned = planned_rules(workdir, {"gwas": {"maf": 0.05}})
    assert planned == {"gwas", "gwas_gather", "gwas_summary", "clump", "gwas_plots", "clump_joint",
                       "gwas_plots_joint", "truth", "replicate", "compare", "annotate_loci",
                       "regional_plots", "miami_plot", "h2_ldsc", "h2_summary", "all"}


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
    # the truth columns of the comparison, the true traits' h² in the heritability summary).
    assert planned_rules(workdir, real, name="real.yaml") <= {"explain", "probes", "compare",
                                                              "h2_summary", "all"}
    new = demo / "pgs" / "PGS999999.txt.gz"
    new.write_bytes((demo / "pgs" / "PGS900001.txt.gz").read_bytes())
    try:
        planned = planned_rules(workdir, real, name="real.yaml")
    finally:
        new.unlink()
    assert "prs" in planned and "train" in planned
    assert not planned & (GENETIC_STAGES - {"prs"})


# Reruns follow exactly what changed. TINY has 2 methods, each analysed on everyone and per eye
# (6 GWAS: gather and clump per analysis; summary, plots, joint-test loci and plots per method;
# replicate and the loci stage per method).
AFTER_CLUMP = {"clump": 6, "gwas_plots": 2, "clump_joint": 2, "gwas_plots_joint": 2, "truth": 1,
               "replicate": 2, "compare": 1, "annotate_loci": 2, "regional_plots": 2,
               "miami_plot": 2, "all": 1}
# New summary statistics also give new LD-score-regression h² (per method) and the h² summary.
AFTER_GATHER = AFTER_CLUMP | {"h2_ldsc": 2, "h2_summary": 1}


@pytest.mark.parametrize("overrides, expected", [
    pytest.param({"pretrain": {"workers": 2}}, {}, id="pretrain.workers"),
    pytest.param({"pretrain": {"gpus": 1}}, {}, id="pretrain.gpus"),
    pytest.param({"pretrain": {"methods": ["contig"]}},
                 {"probes": 1, "truth": 1, "compare": 1, "h2_summary": 1, "all": 1},
                 id="drop-a-method"),
    pytest.param({"gwas": {"formats": ["parquet"]}},
                 {"gwas_gather": 6, "gwas_summary": 2} | AFTER_GATHER, id="gwas.formats"),
    pytest.param({"gwas": {"threshold": 1e-6}}, {"gwas_summary": 2} | AFTER_CLUMP,
                 id="gwas.threshold"),
    pytest.param({"clump": {"p2": 1e-6}}, AFTER_CLUMP, id="clump.p2"),
    pytest.param({"explain": {"top_k": [5, 10]}}, {"explain": 1, "all": 1}, id="explain.top_k"),
    pytest.param({"evaluate": {"compare_probes": ["disease:auroc"]}}, {"compare": 1, "all": 1},
                 id="evaluate.compare_probes"),
    pytest.param({"evaluate": {"window_kb": 100}},
                 {"explain": 1, "truth": 1, "replicate": 2, "compare": 1, "all": 1},
                 id="evaluate.window_kb"),
])
def test_a_setting_reruns_exactly_what_it_feeds(finished_run, overrides, expected):
    workdir, _ = finished_run
    assert planned(workdir, overrides) == Counter(expected)


def reordered(value):
    """``value`` with the keys of every mapping in reverse order."""
    if isinstance(value, dict):
        return {key: reordered(value[key]) for key in reversed(value)}
    return value


def test_same_config_with_keys_in_another_order_reruns_nothing(finished_run):
    workdir, _ = finished_run
    config = yaml.safe_load(write_config(workdir, TINY, name="ordered.yaml").read_text())
    path = workdir / "reordered.yaml"
    path.write_text(yaml.safe_dump(reordered(config), sort_keys=False))
    assert next(iter(yaml.safe_load(path.read_text()))) != next(iter(config))
    result = run_snakemake(workdir, path, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_jobs(result.stdout + result.stderr) == Counter()


def copy_run(source, target):
    """A copy of a finished run Snakemake sees as finished; model files are hard links (the
    copy's jobs replace outputs through renames, and no training reruns here)."""
    def link_or_copy(src, dst):
        if f"{os.sep}results{os.sep}pretrain{os.sep}" in src:
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, symlinks=True, copy_function=link_or_copy)
    return target


def test_loco_gwas_runs_step1_and_tests_with_its_predictions(finished_run, tmp_path):
    """gwas.loco: true (config/examples/ukb_like.yaml's setting): each analysis gets a ridge
    step 1, and its association jobs read the LOCO predictions."""
    workdir, _ = finished_run
    assert planned(workdir, {"gwas": {"loco": True}}) == Counter(
        {"gwas_step1": 6, "gwas": 12, "gwas_gather": 6, "gwas_summary": 2} | AFTER_GATHER)
    copy = copy_run(workdir, tmp_path / "run")
    config = write_config(copy, tiny_with({"gwas": {"loco": True}}), name="loco.yaml")
    result = run_snakemake(copy, config, "results/gwas/contig/loci.tsv")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert planned_jobs(output) == Counter({"gwas_step1": 1, "gwas": 2, "gwas_gather": 1, "clump": 1})
    assert output.count("--loco results/gwas/contig/step1.loco.tsv.gz") == 2
    assert (copy / "results/gwas/contig/step1.loco.tsv.gz").stat().st_size > 0
    loco = pl.read_parquet(copy / "results/gwas/contig/assoc.combined.parquet")
    plain = pl.read_parquet(workdir / "results/gwas/contig/assoc.combined.parquet")
    assert loco.height == plain.height and not loco.equals(plain)


def real_inputs(run, genotypes: str) -> dict:
    """inputs: the finished run's simulated files, read as real data, with these genotypes."""
    demo = run / "resources" / "demo"
    return {"simulate": False, "genotypes": genotypes, "images": str(demo / "images.tsv"),
            "covariates": str(demo / "covariates.tsv"), "pgs": str(demo / "pgs"),
            "genes": str(demo / "genes.tsv"), "labels": str(demo / "labels.tsv")}


def test_per_chromosome_genotypes_give_the_same_qc(finished_run, tmp_path):
    """inputs.genotypes as a {chrom} pattern: the whole DAG plans, and QC of the per-chromosome
    files writes the same fileset as QC of the single fileset they were split from."""
    workdir, _ = finished_run
    (tmp_path / "split").mkdir()
    pattern = str(tmp_path / "split" / "cohort_chr{chrom}")
    chroms = split_by_chromosome(workdir / "resources/demo/genotypes", pattern)
    assert chroms == [str(c) for c in range(1, 7)]
    overrides = {"inputs": real_inputs(workdir, pattern), "pca": {"color_by": ""}}
    config = write_config(tmp_path, tiny_with(overrides))
    dry = run_snakemake(tmp_path, config, "-n")
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    jobs = planned_jobs(dry.stdout + dry.stderr)
    assert jobs["qc"] == 1 and jobs["gwas"] == 12 and "simulate" not in jobs
    assert f"--bfile {pattern}" in (dry.stdout + dry.stderr).replace("'", "")
    result = run_snakemake(tmp_path, config, "results/genotypes/cohort.qc.tsv")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for ext in (".bed", ".bim", ".fam"):
        assert (tmp_path / f"results/genotypes/cohort{ext}").read_bytes() == \
            (workdir / f"results/genotypes/cohort{ext}").read_bytes(), ext


def test_documented_real_data_start_plans(finished_run, tmp_path):
    """config/examples/ukb_like.yaml (per-chromosome genotypes, gwas.loco) with its paths
    pointed at the finished run's cohort: the dry run plans every stage, LOCO included."""
    workdir, _ = finished_run
    (tmp_path / "split").mkdir()
    pattern = str(tmp_path / "split" / "ukb_cal_chr{chrom}")
    split_by_chromosome(workdir / "resources/demo/genotypes", pattern)
    config = yaml.safe_load((ROOT / "config/examples/ukb_like.yaml").read_text())
    assert "{chrom}" in config["inputs"]["genotypes"] and config["gwas"]["loco"]
    config["inputs"] = real_inputs(workdir, pattern)
    path = tmp_path / "ukb_like.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_snakemake(tmp_path, path, "-n")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = planned_jobs(result.stdout + result.stderr)
    n_analyses = 3 * len(config["pretrain"]["methods"])
    assert jobs["gwas_step1"] == n_analyses and jobs["gwas"] == 6 * n_analyses
    assert jobs["train"] == 5 * len(config["pretrain"]["methods"])


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
                  "probe metric vs label fraction", "methods compared", "loci replicated",
                  "annotated loci", "Miami plot"):
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
                     "5. Embeddings", "6. GWAS", "7. Explainability", "8. Evaluation", "9. Loci"):
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
    # the PC and sample-filter figures become densities; explain drops its per-person saliency maps
    assert set(re.findall(r"^(?:local)?rule (\w+):", planned.stdout, flags=re.MULTILINE)) == {
        "pca_plot", "sample_filters_plot", "explain", "all"}
    result = run_snakemake(workdir, config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(density)" in (workdir / "logs/genotypes/pca_plot.log").read_text()
    assert not (workdir / "results/explain/contig/attributions.saliency.png").exists()
    text = embedded_text(build_report(workdir, config).read_text(errors="replace"))
    iids = pl.read_csv(workdir / "resources/demo/genotypes.fam", separator="\t",
                       has_header=False)[:, 1].cast(pl.Utf8).to_list()
    leaked = [iid for iid in iids if iid in text]
    assert not leaked, leaked[:5]
