"""The workflow's static checks and its validation of config and input sheets before any job runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.workflow import ROOT, real_data_inputs, rejected_dry_run, run_snakemake, write_config

BIN = Path(sys.executable).parent


def test_snakemake_lint_passes():
    result = subprocess.run([str(BIN / "snakemake"), "--lint"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_check_passes():
    result = subprocess.run([str(BIN / "snakefmt"), "--check", "workflow/"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_demo_config_dry_run_plans_every_stage(tmp_path):
    result = run_snakemake(tmp_path, write_config(tmp_path, {}), "-n")
    assert result.returncode == 0, result.stderr
    for rule in ("simulate", "qc", "pca", "snps", "prs", "burden"):
        assert f"rule {rule}:" in result.stdout


def test_wrong_type_names_the_key(tmp_path):
    error = rejected_dry_run(tmp_path, {"qc": {"mind": "high"}})
    assert "'high' is not of type 'number'" in error
    assert "mind" in error


def test_out_of_bounds_value_is_rejected(tmp_path):
    error = rejected_dry_run(tmp_path, {"qc": {"maf": 0.7}})
    assert "0.7 is greater than the maximum of 0.5" in error


@pytest.mark.parametrize("threshold, message", [
    (1.0, "1.0 is greater than or equal to the maximum of 1"),
    (0.0, "0.0 is less than or equal to the minimum of 0"),
])
def test_gwas_threshold_is_a_probability_strictly_between_0_and_1(tmp_path, threshold, message):
    assert message in rejected_dry_run(tmp_path, {"gwas": {"threshold": threshold}})


def test_clump_p1_is_gone_in_favour_of_gwas_threshold(tmp_path):
    assert "'p1' was unexpected" in rejected_dry_run(tmp_path, {"clump": {"p1": 5e-8}})


def test_unknown_key_is_named(tmp_path):
    error = rejected_dry_run(tmp_path, {"qc": {"mafs": 0.01}})
    assert "'mafs' was unexpected" in error


def test_valid_real_data_inputs_pass_validation(tmp_path):
    inputs = real_data_inputs(tmp_path)
    result = run_snakemake(tmp_path, write_config(tmp_path, {"inputs": inputs}), "-n")
    assert result.returncode == 0, result.stderr
    assert "rule simulate:" not in result.stdout


@pytest.mark.parametrize("key", ["images", "covariates", "genes"])
def test_missing_input_file_names_key_and_file(tmp_path, key):
    inputs = real_data_inputs(tmp_path)
    inputs[key] = str(tmp_path / f"absent_{key}.tsv")
    error = rejected_dry_run(tmp_path, {"inputs": inputs})
    assert f"config inputs.{key}: file not found: {inputs[key]}" in error


def test_missing_genotype_file_is_named(tmp_path):
    inputs = real_data_inputs(tmp_path)
    (tmp_path / "g.bim").unlink()
    error = rejected_dry_run(tmp_path, {"inputs": inputs})
    assert f"config inputs.genotypes: file not found: {tmp_path / 'g.bim'}" in error


def test_bad_sheet_value_names_file_row_and_column(tmp_path):
    inputs = real_data_inputs(tmp_path)
    (tmp_path / "images.tsv").write_text("IID\tpath\teye\nA\ta.png\tleft\nB\tb.png\tmiddle\n")
    error = rejected_dry_run(tmp_path, {"inputs": inputs})
    assert f"config inputs.images: {tmp_path / 'images.tsv'}, row 3, column 'eye'" in error


def test_sheet_missing_required_column_is_named(tmp_path):
    inputs = real_data_inputs(tmp_path)
    (tmp_path / "genes.tsv").write_text("chrom\tstart\tgene\n1\t10\tG1\n")
    error = rejected_dry_run(tmp_path, {"inputs": inputs})
    assert "missing required column(s) end" in error


def test_non_integer_in_sheet_names_row_and_column(tmp_path):
    inputs = real_data_inputs(tmp_path)
    (tmp_path / "genes.tsv").write_text("chrom\tstart\tend\tgene\n1\t10\t20\tG1\n2\tten\t30\tG2\n")
    error = rejected_dry_run(tmp_path, {"inputs": inputs})
    assert "row 3, column 'start': value 'ten' is not Int64" in error


def _schema_leaves(schema: dict, prefix: str = ""):
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        if sub.get("type") == "object":
            yield from _schema_leaves(sub, path + ".")
        else:
            yield path, sub


def test_every_config_key_has_description_default_and_bounds():
    import yaml

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["additionalProperties"] is False
    leaves = dict(_schema_leaves(schema))
    assert len(leaves) > 30
    for path, sub in leaves.items():
        assert sub.get("description"), path
        assert "default" in sub, path
        if sub.get("type") in ("integer", "number"):
            assert "minimum" in sub or "exclusiveMinimum" in sub, path


def test_config_readme_documents_every_key():
    import yaml

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    readme = (ROOT / "config" / "README.md").read_text()
    undocumented = [path for path, _ in _schema_leaves(schema) if f"`{path}`" not in readme]
    assert not undocumented


def test_example_configs_match_the_schema():
    import jsonschema
    import yaml

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    for path in sorted((ROOT / "config" / "examples").glob("*.yaml")) + [ROOT / "config" / "config.yaml"]:
        jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(path.read_text()))
