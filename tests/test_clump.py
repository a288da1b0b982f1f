"""Clumping: identical to plink1.9 --clump (index variants, members, TOTAL and p-value bins), on
the default LOG10P column or the one --p-column names."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import polars as pl
import pytest

from contig.cli import main
from contig.gwas.clump import clump, haplotype_r2, merge_sumstats
from contig.gwas.association import run_gwas
from contig.gwas.sumstats import write_gwas_outputs
from contig.genotypes.plinkio import Genotypes
from helpers.gwas import mean_imputed, simulate_cohort, write_table

PLINK1 = shutil.which("plink1.9")


@pytest.fixture(scope="module", params=[0.0, 0.03], ids=["complete", "missing"])
def planted(request, tmp_path_factory):
    """800 people, 2 chromosomes with strong LD and four planted causal variants; sumstats of ours."""
    root = tmp_path_factory.mktemp("clump")
    c = simulate_cohort(root / "g", n_samples=800, n_chrom=2, snps_per_chrom=300,
                        missing_rate=request.param, ld_rho=0.95, spacing_bp=3000, seed=5)
    rng = np.random.default_rng(1)
    n = len(c.iid)
    g = mean_imputed(c.genotypes)
    y = rng.standard_normal(n) + 0.5 * g[50] + 0.4 * g[120] + 0.45 * g[400] + 0.3 * g[410]
    pheno = write_table(root / "p.tsv", c.iid, {"y": y})
    covar = write_table(root / "c.tsv", c.iid, {"c": rng.standard_normal(n)})
    write_gwas_outputs(run_gwas(c.prefix, pheno, covar), root / "gwas")
    return c, root / "gwas.y.parquet", root


def _plink_clumps(prefix, sumstats_path, root, p1, p2, r2, kb, column="LOG10P"):
    table = pl.read_parquet(sumstats_path)
    lines = ["SNP P"] + [f"{i} {10.0 ** -lp:.17g}" for i, lp in zip(table["ID"], table[column])]
    (root / "plink.ss").write_text("\n".join(lines) + "\n")
    subprocess.run([PLINK1, "--bfile", str(prefix), "--clump", str(root / "plink.ss"), "--clump-p1", str(p1),
                    "--clump-p2", str(p2), "--clump-r2", str(r2), "--clump-kb", str(kb), "--allow-no-sex",
                    "--out", str(root / "plink")], check=True, capture_output=True,
                   env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    rows = [line.split() for line in (root / "plink.clumped").read_text().splitlines() if line.strip()]
    return [(r[2], r[5:11], sorted(s.split("(")[0] for s in r[11].split(",")) if r[11] != "NONE" else [])
            for r in rows[1:]]


@pytest.mark.plink2("plink1.9")
@pytest.mark.parametrize("p1,p2,r2,kb", [(5e-8, 1e-7, 0.1, 250), (1e-4, 1e-2, 0.2, 100),
                                         (1e-3, 0.5, 0.05, 50), (1e-2, 1.0, 0.01, 30)])
def test_equals_plink19_clump(planted, p1, p2, r2, kb):
    c, sumstats, root = planted
    expected = _plink_clumps(c.prefix, sumstats, root, p1, p2, r2, kb)
    result = clump(merge_sumstats([sumstats]), Genotypes.open(c.prefix), p1, p2, r2, kb)
    ours = [(row["ID"], [str(row[k]) for k in ("TOTAL", "NSIG", "S05", "S01", "S001", "S0001")],
             sorted(row["SP2"].split(",")) if row["SP2"] != "NONE" else [])
            for row in result.clumps.iter_rows(named=True)]
    assert ours == expected
    assert len(expected) >= 2


@pytest.mark.plink2("plink1.9")
def test_haplotype_r2_equals_plink19_ld(planted):
    c, _, root = planted
    g = Genotypes.open(c.prefix)
    ours = haplotype_r2(g.read(np.array([50]))[0], g.read(np.array([40, 45, 59, 70])))
    for other, value in zip([40, 45, 59, 70], ours):
        out = subprocess.run([PLINK1, "--bfile", str(c.prefix), "--ld", "rs1_50", f"rs1_{other}",
                              "--allow-no-sex", "--out", str(root / "ld")], check=True, capture_output=True,
                             text=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"}).stdout
        plink = float(out.split("R-sq = ")[1].split()[0])
        assert value == pytest.approx(plink, rel=1e-4, abs=1e-6)


def test_cli_loci_and_keep(planted, tmp_path):
    c, sumstats, _ = planted
    keep = write_table(tmp_path / "keep.tsv", c.iid[:700], {"x": np.zeros(700)})
    out = tmp_path / "cl"
    assert main(["clump", "--sumstats", str(sumstats), "--bfile", str(c.prefix), "--keep", str(keep),
                 "--out", str(out), "--p1", "1e-6", "--p2", "1e-4", "--kb", "100"]) == 0
    loci = pl.read_csv(f"{out}.tsv", separator="\t")
    clumps = pl.read_csv(f"{out}.clumps.tsv", separator="\t")
    assert loci.height == clumps.height >= 1
    assert (loci["START"] <= loci["LEAD_POS"]).all() and (loci["LEAD_POS"] <= loci["END"]).all()
    assert (loci["END"] - loci["START"] < 2 * 100_000).all()
    assert loci["LOG10P"].is_sorted(descending=True)


def test_several_files_take_the_smallest_p(tmp_path):
    a = pl.DataFrame({"CHROM": ["1", "1"], "GENPOS": [1, 2], "ID": ["x", "y"], "LOG10P": [3.0, 9.0]})
    b = pl.DataFrame({"CHROM": ["1", "1"], "GENPOS": [1, 2], "ID": ["x", "y"], "LOG10P": [5.0, 1.0]})
    a.write_parquet(tmp_path / "a.parquet")
    b.write_parquet(tmp_path / "b.parquet")
    merged = merge_sumstats([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    assert dict(zip(merged["ID"], merged["LOG10P"])) == {"x": 5.0, "y": 9.0}


def _two_columns(sumstats, path):
    """The planted sumstats with LOG10P_JOINT = LOG10P moved 150 variants along (other loci) and
    LOG10P replaced by noise: clumping either column gives different loci."""
    table = pl.read_parquet(sumstats)
    lp = table["LOG10P"].to_numpy()
    table = table.with_columns(pl.Series("LOG10P_JOINT", np.roll(lp, 150)),
                               pl.Series("LOG10P", np.random.default_rng(0).uniform(0, 2, len(lp))))
    table.write_parquet(path)
    return path


@pytest.mark.plink2("plink1.9")
def test_p_column_joint_equals_plink19_on_that_column(planted, tmp_path):
    c, sumstats, _ = planted
    path = _two_columns(sumstats, tmp_path / "two.parquet")
    expected = _plink_clumps(c.prefix, path, tmp_path, 1e-4, 1e-2, 0.2, 100, column="LOG10P_JOINT")
    out = tmp_path / "cl"
    assert main(["clump", "--sumstats", str(path), "--bfile", str(c.prefix), "--out", str(out),
                 "--p-column", "LOG10P_JOINT", "--p1", "1e-4", "--p2", "1e-2", "--r2", "0.2", "--kb", "100"]) == 0
    clumps = pl.read_csv(f"{out}.clumps.tsv", separator="\t")
    assert clumps["ID"].to_list() == [row[0] for row in expected] and len(expected) >= 2


def test_p_column_selects_the_clumped_column(planted, tmp_path, capsys):
    c, sumstats, _ = planted
    path = _two_columns(sumstats, tmp_path / "two.parquet")
    merged = merge_sumstats([path], "LOG10P_JOINT")
    np.testing.assert_array_equal(merged["LOG10P"].to_numpy(), pl.read_parquet(path)["LOG10P_JOINT"].to_numpy())
    genotypes = Genotypes.open(c.prefix)
    joint = clump(merged, genotypes, 1e-6, 1e-4)
    default = clump(merge_sumstats([path]), genotypes, 1e-6, 1e-4)
    assert joint.loci.height >= 2 and default.loci.height == 0
    status = main(["clump", "--sumstats", str(sumstats), "--bfile", str(c.prefix), "--out",
                   str(tmp_path / "x"), "--p-column", "LOG10P_JOINT"])
    assert status == 2 and "LOG10P_JOINT" in capsys.readouterr().err


@pytest.mark.parametrize("option,value", [("--p1", "0"), ("--p2", "1.5"), ("--r2", "-0.1"), ("--kb", "0")])
def test_cli_refuses_out_of_range_settings(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["clump", "--sumstats", "s", "--bfile", "b", "--out", str(tmp_path / "c"), option, value])
    assert exit_info.value.code == 2 and option in capsys.readouterr().err


def test_command_defaults_are_the_library_defaults():
    import argparse

    from contig.cli.clump import add_arguments
    from contig.gwas.clump import CLUMP_DEFAULTS

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--sumstats", "s", "--bfile", "b", "--out", "o"])
    assert (args.p1, args.p2, args.r2, args.kb, args.p_column) == (
        CLUMP_DEFAULTS.p1, CLUMP_DEFAULTS.p2, CLUMP_DEFAULTS.r2, CLUMP_DEFAULTS.kb, CLUMP_DEFAULTS.p_column)
