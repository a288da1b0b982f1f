"""config/examples/ukb_like.yaml run end to end on a small cohort in the UK Biobank layout.

Only the example's paths and sizes are swapped (listed below); every other setting is run as the
example has it, so the file users start from cannot break silently.
"""

from __future__ import annotations

import copy

import polars as pl
import pytest
import yaml

from helpers.ukb_layout import write_ukb_cohort
from helpers.workflow import ROOT, embedded_text, run_snakemake

pytestmark = pytest.mark.slow  # the whole workflow with LOCO on a small cohort: minutes on 2 cores

EXAMPLE = ROOT / "config" / "examples" / "ukb_like.yaml"
IMAGE_SIZE = 32
# Keys of the example replaced by the small cohort's files...
SWAPPED_PATHS = {"inputs.genotypes", "inputs.images", "inputs.covariates", "inputs.pgs",
                 "inputs.genes", "inputs.labels", "inputs.imputed", "inputs.imputed_sample",
                 "pca.color_by"}
# ...and by sizes a 2-core test can run (value here = the test's value).
SWAPPED_SIZES = {
    "pca.n_pcs": 4,
    "images.size": IMAGE_SIZE,
    "pretrain.n_folds": 2,
    "pretrain.arch": "resnet18",
    "pretrain.epochs": 1,
    "pretrain.batch_size": 32,
    "pretrain.genetic_hidden": 64,
    "pretrain.proj_hidden": 64,
    "pretrain.proj_dim": 32,
    "pretrain.workers": 0,
    "pretrain.gpus": 0,
    "gwas.n_pcs": 3,
    "gwas.genetic_pcs": 4,
}


def leaves(config: dict, prefix: str = "") -> dict[str, object]:
    """Every leaf setting of a nested config as ``{"section.key": value}``."""
    found: dict[str, object] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found |= leaves(value, name + ".")
        else:
            found[name] = value
    return found


def set_leaf(config: dict, dotted: str, value: object) -> None:
    section, key = dotted.split(".")
    config[section][key] = value


def small_ukb_config(example: dict, inputs: dict) -> dict:
    """The example with only its paths pointed at ``inputs`` (a cohort's ``inputs`` section)
    and its sizes made small."""
    config = copy.deepcopy(example)
    for dotted in SWAPPED_PATHS - {"pca.color_by"}:
        set_leaf(config, dotted, inputs[dotted.split(".")[1]])
    column = example["pca"]["color_by"].rsplit(":", 1)[1]
    config["pca"]["color_by"] = f"{inputs['covariates']}:{column}"
    for dotted, value in SWAPPED_SIZES.items():
        set_leaf(config, dotted, value)
    return config


@pytest.fixture(scope="module")
def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


@pytest.fixture(scope="module")
def ukb_run(tmp_path_factory, example):
    """The workflow run to the end, then its report, on the example's settings."""
    cohort = write_ukb_cohort(tmp_path_factory.mktemp("ukb_data"))
    workdir = tmp_path_factory.mktemp("ukb_run")
    config = small_ukb_config(example, cohort.inputs())
    path = workdir / "ukb_like.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_snakemake(workdir, path, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = workdir / "results" / "report.html"
    built = run_snakemake(workdir, path, "--report", str(report))
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return workdir, config, cohort, result.stdout + result.stderr, report


def test_run_keeps_every_setting_of_the_example(example):
    """Nothing of the example is dropped, and only the listed keys differ from it."""
    inputs = {key: f"/small/{key}" for key in example["inputs"]}
    ran = leaves(small_ukb_config(example, inputs))
    documented = leaves(example)
    assert set(ran) == set(documented)
    assert (SWAPPED_PATHS | set(SWAPPED_SIZES)) <= set(documented)
    changed = {key for key in documented if ran[key] != documented[key]}
    assert changed <= SWAPPED_PATHS | set(SWAPPED_SIZES)
    assert documented["inputs.simulate"] is False and documented["gwas.loco"] is True
    assert documented["images.on_error"] == "exclude"
    assert documented["report.individual_level"] is False


def test_the_unreadable_photograph_is_excluded_with_a_reason(ukb_run):
    workdir, _, cohort, _, _ = ukb_run
    excluded = pl.read_csv(workdir / f"results/images/cache_{IMAGE_SIZE}.excluded.tsv",
                           separator="\t", infer_schema_length=0)
    row = excluded.filter(pl.col("path") == cohort.unreadable)
    assert row.height == 1 and row["reason"][0], excluded
    index = pl.read_csv(workdir / f"results/images/cache_{IMAGE_SIZE}.index.tsv", separator="\t")
    assert cohort.unreadable not in index["path"].to_list()
    assert index["crop"].to_list().count("field") > 0.9 * index.height


def test_per_chromosome_genotypes_with_family_ids_are_read_by_iid(ukb_run):
    workdir, _, cohort, _, _ = ukb_run
    fam = pl.read_csv(workdir / "results/genotypes/cohort.fam", separator="\t", has_header=False,
                      infer_schema_length=0)
    covariate_iids = set(pl.read_csv(cohort.covariates, separator="\t")["IID"].to_list())
    assert set(fam[:, 1]) <= covariate_iids
    assert not set(fam[:, 0]) & covariate_iids  # FIDs are not IIDs
    bim = pl.read_csv(workdir / "results/genotypes/cohort.bim", separator="\t", has_header=False,
                      infer_schema_length=0)
    assert sorted(set(bim[:, 0]), key=int) == cohort.chromosomes


def test_loco_step1_ran_for_every_method(ukb_run):
    workdir, config, _, output, _ = ukb_run
    for method in config["pretrain"]["methods"]:
        assert (workdir / f"results/gwas/{method}/step1.loco.tsv.gz").stat().st_size > 0
        assert f"--loco results/gwas/{method}/step1.loco.tsv.gz" in output
        assert (workdir / f"results/gwas/{method}/loci.tsv").exists()


def test_comparison_has_the_label_sheets_labels(ukb_run):
    workdir, config, _, _, _ = ukb_run
    comparison = pl.read_csv(workdir / "results/evaluate/comparison.tsv", separator="\t")
    assert comparison["method"].to_list() == config["pretrain"]["methods"]
    assert "dr_grade_kappa_quadratic_mean" in comparison.columns
    assert "smoker_auroc_mean" in comparison.columns
    assert not any(column.startswith(("disease", "severity")) for column in comparison.columns)


def test_report_holds_no_identifier(ukb_run):
    """report.individual_level false: neither an IID nor an FID anywhere in the report."""
    _, _, cohort, _, report = ukb_run
    text = embedded_text(report.read_text(errors="replace"))
    fam = pl.read_csv(cohort.genotypes.replace("{chrom}", cohort.chromosomes[0]) + ".fam",
                      separator="\t", has_header=False, infer_schema_length=0)
    leaked = [name for name in fam[:, 1].to_list() + fam[:, 0].to_list() if name in text]
    assert not leaked, leaked[:5]


def test_gwas_and_scores_ran_on_the_imputed_bgen(ukb_run):
    """Step 2 and the scores read the per-chromosome BGEN files (a superset of the array's
    variants, with INFO), and the people in only one source are counted."""
    workdir, config, cohort, output, _ = ukb_run
    assert "contig gwas --bgen" in output and "ukb_imp_chr{chrom}_v3.bgen" in output
    assert f"--sample {cohort.imputed_sample}" in output
    matched = pl.read_csv(workdir / "results/genotypes/imputed_samples.tsv", separator="\t")
    counts = dict(zip(matched["SOURCE"], matched["N"]))
    qc_fam = pl.read_csv(workdir / "results/genotypes/cohort.fam", separator="\t", has_header=False,
                         infer_schema_length=0)
    qc_iids = set(qc_fam[:, 1].to_list())
    imputed_iids = {line.split()[1] for line in cohort.imputed_sample.read_text().splitlines()[2:]}
    assert set(cohort.imputed_only) <= imputed_iids - qc_iids
    assert counts == {"both": len(qc_iids & imputed_iids), "array_only": len(qc_iids - imputed_iids),
                      "imputed_only": len(imputed_iids - qc_iids)}
    assert counts["array_only"] == len(qc_iids & set(cohort.array_only)) > 0
    method = config["pretrain"]["methods"][0]
    combined = pl.read_parquet(workdir / f"results/gwas/{method}/assoc.combined.parquet")
    assert "INFO" in combined.columns
    array_bim = pl.read_csv(workdir / "results/genotypes/cohort.bim", separator="\t", has_header=False,
                            infer_schema_length=0)
    assert not set(combined["ID"].to_list()) <= set(array_bim[:, 1].to_list())
    scores = pl.read_csv(workdir / "results/scores/prs.scores.tsv", separator="\t")
    assert set(cohort.imputed_only) <= set(scores["IID"].to_list())
