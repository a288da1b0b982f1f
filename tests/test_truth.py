"""Truth check: loci classified against planted effects, recall, λGC on the null chromosomes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from contig.cli import main
from contig.core.errors import InputError
from contig.simulate.config import SimulationConfig
from contig.evaluate.truth import classify_loci, null_chromosomes, read_loci, read_truth, truth_check

TRUTH_HEADER = ["kind", "id", "chrom", "start", "end", "trait", "effect", "variance_explained", "role",
                "maf"]


def write_truth(path: Path, rows: list[tuple]) -> Path:
    """rows: (kind, id, chrom, start, end, trait, role)."""
    table = pl.DataFrame([(k, i, c, s, e, t, 0.1, 0.01, r, 0.2) for k, i, c, s, e, t, r in rows],
                         schema=TRUTH_HEADER, orient="row")
    table.write_csv(path, separator="\t")
    return path


def write_loci(path: Path, rows: list[tuple]) -> Path:
    """rows: (lead_id, chrom, lead_pos, start, end) as `contig clump` writes them."""
    table = pl.DataFrame([(i + 1, lead, chrom, pos, s, e, 1, 1e-9, 9.0)
                          for i, (lead, chrom, pos, s, e) in enumerate(rows)],
                         schema=["LOCUS", "LEAD_ID", "CHROM", "LEAD_POS", "START", "END", "N_VARIANTS",
                                 "P", "LOG10P"], orient="row")
    table.write_csv(path, separator="\t")
    return path


def write_simulation(path: Path, **settings) -> Path:
    config = SimulationConfig(**settings)
    path.write_text(json.dumps({"config": config.to_json()}))
    return path


@pytest.fixture
def crafted(tmp_path):
    truth = write_truth(tmp_path / "truth.tsv", [
        ("snp", "major1", "1", 1_000_000, 1_000_000, "disc_size", "major"),
        ("snp", "major1", "1", 1_000_000, 1_000_000, "vessel_width", "major"),  # same SNP, 2 traits
        ("snp", "major2", "2", 5_000_000, 5_000_000, "pigmentation", "major"),  # never found
        ("snp", "poly1", "1", 1_100_000, 1_100_000, "disc_size", "polygenic"),
        ("gene", "GENE1", "2", 500_000, 600_000, "lesion_count", "burden"),
        ("snp", "poly2", "2", 2_000_000, 2_000_000, "pigmentation", "polygenic"),
    ])
    loci = write_loci(tmp_path / "loci.tsv", [
        ("a", "1", 1_060_000, 1_060_000, 1_060_000),  # major (60 kb) beats polygenic (40 kb)
        ("b", "2", 850_000, 700_000, 900_000),  # gene region 100 kb from the span: burden
        ("c", "2", 1_800_000, 1_760_000, 1_800_000),  # polygenic 200 kb away
        ("d", "chr1", 1_351_000, 1_351_000, 1_351_000),  # poly1 251 kb away: false
        ("e", "1", 1_350_000, 1_350_000, 1_350_000),  # exactly 250 kb: tagged (polygenic)
        ("f", "3", 100_000, 90_000, 100_000),  # null chromosome: false
        ("g", "1", 1_600_000, 1_200_000, 1_600_000),  # lead 600 kb from major1, span 200 kb: major
    ])
    sim = write_simulation(tmp_path / "simulation.json", n_chromosomes=3, causal_chromosomes=(1, 2))
    return truth, loci, sim


def test_classification_by_span_window_and_precedence(crafted):
    truth, loci, _ = crafted
    got = classify_loci(read_loci(loci), read_truth(truth), 250_000.0)
    assert got["CLASS"].to_list() == ["major", "burden", "polygenic", "false", "polygenic", "false",
                                      "major"]
    assert got["MATCH_ID"].to_list() == ["major1", "GENE1", "poly2", None, "poly1", None, "major1"]
    assert got["MATCH_DISTANCE"].to_list() == [60_000, 100_000, 200_000, None, 250_000, None, 200_000]
    # nearest planted element to the lead, any role, any distance; none on the null chromosome
    assert got["NEAREST_ID"].to_list() == ["poly1", "GENE1", "poly2", "poly1", "poly1", None, "poly1"]
    assert got["NEAREST_ROLE"].to_list() == ["polygenic", "burden", "polygenic", "polygenic",
                                             "polygenic", None, "polygenic"]
    assert got["NEAREST_DISTANCE"].to_list() == [40_000, 250_000, 200_000, 251_000, 250_000, None,
                                                 500_000]
    assert got["CHROM"][3] == "1"  # chr prefix dropped


def test_summary_counts_recall_and_null_chromosome_loci(crafted):
    truth, loci, sim = crafted
    check = truth_check({"m": loci}, truth, sim, window_kb=250)
    row = check.summary.row(0, named=True)
    assert row == {"method": "m", "n_loci": 7, "loci_major": 2, "loci_burden": 1, "loci_polygenic": 2,
                   "loci_false": 2, "loci_false_null_chrom": 1, "planted_major": 2, "major_found": 1,
                   "major_recall": 0.5, "planted_burden": 1, "burden_found": 1, "window_kb": 250.0,
                   "n_phenotypes": None, "lambda_gc_null_median": None, "lambda_gc_null_mean": None}
    # a smaller window loses the 200-kb tags
    small = truth_check({"m": loci}, truth, sim, window_kb=150).summary.row(0, named=True)
    assert (small["loci_major"], small["loci_burden"], small["loci_polygenic"], small["loci_false"]) == \
        (1, 1, 1, 4)  # g: major1 200 kb from the span, poly1 100 kb


def test_null_chromosomes_are_those_the_simulator_left_without_effects(tmp_path):
    assert null_chromosomes(write_simulation(tmp_path / "a.json", n_chromosomes=12)) == \
        ["9", "10", "11", "12"]
    # fewer than 9 chromosomes: the simulator uses the first half as causal, whatever the config says
    assert null_chromosomes(write_simulation(tmp_path / "b.json", n_chromosomes=4)) == ["3", "4"]


def write_pheno_sumstats(prefix: Path, chisq_by_pheno: dict[str, dict[str, np.ndarray]]) -> None:
    """PREFIX.<pheno>.parquet with LOG10P from χ²(1) values, and PREFIX.summary.tsv."""
    for pheno, by_chrom in chisq_by_pheno.items():
        chrom = np.concatenate([[c] * len(v) for c, v in by_chrom.items()])
        chisq = np.concatenate(list(by_chrom.values()))
        pl.DataFrame({"CHROM": chrom, "GENPOS": np.arange(len(chisq)),
                      "ID": [f"v{i}" for i in range(len(chisq))], "CHISQ": chisq,
                      "LOG10P": -np.log10(stats.chi2.sf(chisq, 1))}
                     ).write_parquet(f"{prefix}.{pheno}.parquet")
    pl.DataFrame({"PHENO": [*chisq_by_pheno, "combined"]}).write_csv(f"{prefix}.summary.tsv",
                                                                      separator="\t")


def test_lambda_gc_per_phenotype_on_null_chromosomes_only(crafted, tmp_path):
    truth, loci, sim = crafted
    rng = np.random.default_rng(0)
    data = {}
    for name, scale in (("PC1", 0.9), ("PC2", 1.0), ("PC10", 1.3)):
        data[name] = {"1": 50 + rng.chisquare(1, 200),  # causal: huge, must not count
                      "3": scale * rng.chisquare(1, 301)}
    write_pheno_sumstats(tmp_path / "assoc", data)
    # the same files as a --per-pheno-dir folder
    (tmp_path / "sumstats").mkdir()
    for name in data:
        (tmp_path / "sumstats" / f"{name}.parquet").write_bytes(
            (tmp_path / f"assoc.{name}.parquet").read_bytes())
    expected = [np.median(d["3"]) / stats.chi2.ppf(0.5, 1) for d in data.values()]
    for location in (tmp_path / "assoc", tmp_path / "sumstats"):
        check = truth_check({"m": loci}, truth, sim, pheno_sumstats={"m": location})
        assert check.lambdas["PHENO"].to_list() == ["PC1", "PC2", "PC10"]
        assert check.lambdas["N_VARIANTS"].to_list() == [301, 301, 301]
        np.testing.assert_allclose(check.lambdas["LAMBDA_GC"].to_numpy(), expected, rtol=1e-9)
        row = check.summary.row(0, named=True)
        assert row["n_phenotypes"] == 3
        assert row["lambda_gc_null_median"] == pytest.approx(np.median(expected), rel=1e-9)
        assert row["lambda_gc_null_mean"] == pytest.approx(np.mean(expected), rel=1e-9)


def test_bad_truth_rows_name_row_and_column(tmp_path, crafted):
    _, loci, sim = crafted
    bad = write_truth(tmp_path / "bad.tsv", [("snp", "x", "1", 5, 5, "t", "major"),
                                             ("snp", "y", "1", 7, 7, "t", "huge")])
    with pytest.raises(InputError, match=r"row 3, column 'role'"):
        read_truth(bad)
    snp_span = write_truth(tmp_path / "span.tsv", [("snp", "x", "1", 5, 9, "t", "major")])
    with pytest.raises(InputError, match=r"row 2, column 'end'"):
        read_truth(snp_span)
    lead_outside = write_loci(tmp_path / "l.tsv", [("a", "1", 10, 20, 30)])
    with pytest.raises(InputError, match="must contain LEAD_POS"):
        read_loci(lead_outside)


def contig(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "contig", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def test_simulate_gwas_clump_truth_finds_the_planted_major_loci(tmp_path):
    """The issue's test: a small simulated cohort with strong planted SNPs; a GWAS of its true
    traits, clumped, recovers every planted major SNP, and the null chromosomes stay clean."""
    contig("simulate", "--out", "cohort", "--n-samples", "600", "--n-snps", "2000",
           "--n-chromosomes", "4", "--no-images", "--n-major-snps", "1", "--major-variance", "0.15",
           "--h2", "0.2", "--n-populations", "1", "--seed", "3", cwd=tmp_path)
    traits = ["disc_size", "vessel_density", "vessel_width", "vessel_tortuosity", "pigmentation",
              "lesion_count"]
    contig("gwas", "--bfile", "cohort/genotypes", "--pheno", "cohort/traits.tsv", "--pheno-cols",
           *traits, "--covar", "cohort/covariates.tsv", "--covar-cols", "age", "sex", "--maf", "0.01",
           "--out", "gwas/assoc", cwd=tmp_path)
    contig("gwas-summary", "--sumstats-prefix", "gwas/assoc", "--combined", "gwas/assoc.combined.parquet",
           "--out", "gwas/assoc.summary.tsv", cwd=tmp_path)
    contig("clump", "--sumstats", "gwas/assoc.combined.parquet", "--bfile", "cohort/genotypes",
           "--out", "gwas/loci", cwd=tmp_path)
    done = contig("truth", "--loci", "true=gwas/loci.tsv", "--pheno-sumstats", "true=gwas/assoc",
                  "--truth", "cohort/truth.tsv", "--simulation", "cohort/simulation.json",
                  "--out", "check/truth.tsv", cwd=tmp_path)
    summary = pl.read_csv(tmp_path / "check/truth.tsv", separator="\t").row(0, named=True)
    assert summary["planted_major"] == 6  # one per trait
    assert summary["major_found"] == 6 and summary["major_recall"] == 1.0
    assert summary["loci_false_null_chrom"] == 0
    assert summary["n_phenotypes"] == 6
    loci = pl.read_csv(tmp_path / "check/truth.loci.tsv", separator="\t")
    assert loci.height == summary["n_loci"] >= 6
    majors = read_truth(tmp_path / "cohort/truth.tsv").filter(pl.col("ROLE") == "major")
    tagged = loci.filter(pl.col("CLASS") == "major")["MATCH_ID"].to_list()
    assert set(tagged) == set(majors["ID"].to_list())
    # λGC on chromosomes 3-4 (null) per phenotype, against the χ² = t² values of the GWAS files
    # (t vs normal reference: ~0.5% apart at these df)
    lambdas = pl.read_csv(tmp_path / "check/truth.lambda_gc.tsv", separator="\t")
    for row in lambdas.iter_rows(named=True):
        table = pl.read_parquet(tmp_path / f"gwas/assoc.{row['PHENO']}.parquet")
        chisq = table.filter(pl.col("CHROM").is_in(["3", "4"]))["CHISQ"].drop_nulls().to_numpy()
        assert row["N_VARIANTS"] == chisq.size > 300
        assert row["LAMBDA_GC"] == pytest.approx(np.median(chisq) / stats.chi2.ppf(0.5, 1), rel=0.02)
        assert 0.7 < row["LAMBDA_GC"] < 1.3
    assert "null chromosomes (no planted effect): 3, 4" in done.stderr
    # the joint test's λGC on the null chromosomes, from the combined table
    contig("truth", "--loci", "true=gwas/loci.tsv", "--combined", "true=gwas/assoc.combined.parquet",
           "--truth", "cohort/truth.tsv", "--simulation", "cohort/simulation.json",
           "--out", "check/joint.tsv", cwd=tmp_path)
    joint = pl.read_csv(tmp_path / "check/joint.tsv", separator="\t").row(0, named=True)
    combined = pl.read_parquet(tmp_path / "gwas/assoc.combined.parquet")
    p = 10.0 ** -combined.filter(pl.col("CHROM").is_in(["3", "4"]))["LOG10P_JOINT"].drop_nulls().to_numpy()
    assert p.size > 300
    expected = np.median(stats.chi2.isf(p, 1)) / stats.chi2.ppf(0.5, 1)
    assert joint["lambda_gc_null_joint"] == pytest.approx(expected, rel=1e-6)
    assert 0.7 < joint["lambda_gc_null_joint"] < 1.3


def test_cli_bad_input_is_one_line_and_no_output(crafted, tmp_path, capsys):
    truth, loci, sim = crafted
    out = tmp_path / "out" / "t.tsv"
    assert main(["truth", "--loci", f"m={loci}", "--pheno-sumstats", f"m={tmp_path / 'absent'}", "--truth",
                 str(truth), "--simulation", str(sim), "--out", str(out)]) == 2
    assert "absent.summary.tsv not found" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not out.parent.exists() or not any(out.parent.iterdir())
    assert main(["truth", "--loci", f"m={loci}", f"m={loci}", "--truth", str(truth), "--simulation",
                 str(sim), "--out", str(out)]) == 2
    assert "given twice" in capsys.readouterr().err


def test_joint_test_loci_add_their_columns_and_keep_the_rest(crafted, tmp_path):
    truth, loci, sim = crafted
    joint = write_loci(tmp_path / "joint.tsv", [
        ("x", "2", 5_100_000, 5_000_000, 5_100_000),  # major2 at the span's start: found
        ("y", "3", 50_000, 50_000, 50_000),  # null chromosome: false
    ])
    plain = truth_check({"m": loci, "n": loci}, truth, sim)
    check = truth_check({"m": loci, "n": loci}, truth, sim, joint_loci_paths={"m": joint})
    assert check.summary.columns == plain.summary.columns + [
        "n_loci_joint", "loci_false_joint", "loci_false_null_chrom_joint", "major_found_joint",
        "major_recall_joint", "burden_found_joint"]
    assert check.summary.select(plain.summary.columns).equals(plain.summary)
    rows = check.summary.select(pl.col("^.*_joint$")).rows()
    assert rows == [(2, 1, 1, 1, 0.5, 0), (None,) * 6]
    assert check.loci.columns[:2] == ["method", "test"]
    assert check.loci.group_by("method", "test").len().sort("method", "test").rows() == [
        ("m", "combined", 7), ("m", "joint", 2), ("n", "combined", 7)]
    joint_rows = check.loci.filter(pl.col("test") == "joint")
    assert joint_rows["CLASS"].to_list() == ["major", "false"]
    assert "test" not in plain.loci.columns  # unchanged without joint loci
    out = tmp_path / "out.tsv"
    assert main(["truth", "--loci", f"m={loci}", "--loci-joint", f"m={joint}", "--truth", str(truth),
                 "--simulation", str(sim), "--out", str(out)]) == 0
    summary = pl.read_csv(out, separator="\t", null_values="NA")
    assert summary["major_found_joint"].to_list() == [1]
    assert main(["truth", "--loci", f"m={loci}", "--loci-joint", f"z={joint}", "--truth", str(truth),
                 "--simulation", str(sim), "--out", str(out)]) == 2
    # a table without the joint test's column is named in a one-line error
    plain_table = tmp_path / "old.combined.parquet"
    pl.DataFrame({"CHROM": ["3"], "GENPOS": [1], "ID": ["v"], "LOG10P": [0.3]}).write_parquet(plain_table)
    assert main(["truth", "--loci", f"m={loci}", "--combined", f"m={plain_table}", "--truth", str(truth),
                 "--simulation", str(sim), "--out", str(out)]) == 2


def test_window_out_of_range_is_refused(crafted, tmp_path, capsys):
    truth, loci, sim = crafted
    with pytest.raises(SystemExit) as exit_:
        main(["truth", "--loci", f"m={loci}", "--truth", str(truth), "--simulation", str(sim),
              "--window-kb", "-1", "--out", str(tmp_path / "t.tsv")])
    assert exit_.value.code == 2 and "--window-kb: -1 is not in [0, inf]" in capsys.readouterr().err
