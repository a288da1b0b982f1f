"""The loci stage: genes of hand-built intervals (overlap, nearest on either side, ties), the
phenotypes a lead is significant for, replication in the other eye, regional r² against
plink1.9 --r2, and the commands' outputs and input errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from contig.cli import main
from contig.core import plan
from contig.genotypes.plinkio import Genotypes
from contig.loci.annotate import AnnotateSettings, annotate_genes, significant_phenotypes
from contig.loci.plots import gene_rows
from contig.loci.regional import RegionalSettings, plotted_loci, r2_with_lead, regional_tables
from helpers.gwas import simulate_cohort

PLINK1 = shutil.which("plink1.9")

# chr1: A [100, 200], B [300, 400], D [500, 550] and C [500, 600] (same start), E [700, 800];
# chr2: F [1000, 2000]; written with "chr" names to check that they match the loci's "1", "2".
GENES = "chrom\tstart\tend\tgene\nchr1\t300\t400\tB\nchr1\t100\t200\tA\nchr1\t500\t600\tC\n" \
        "chr1\t500\t550\tD\nchr1\t700\t800\tE\nchr2\t1000\t2000\tF\n"


def loci_table(rows: list[tuple]) -> pl.DataFrame:
    """Loci (CHROM LEAD_POS START END) with LOCUS, LEAD_ID, P, LOG10P filled in."""
    n = len(rows)
    return pl.DataFrame({
        "LOCUS": list(range(1, n + 1)), "LEAD_ID": [f"v{i}" for i in range(n)],
        "CHROM": [r[0] for r in rows], "LEAD_POS": [r[1] for r in rows],
        "START": [r[2] for r in rows], "END": [r[3] for r in rows],
        "N_VARIANTS": [1] * n, "P": [1e-9] * n, "LOG10P": [9.0] * n})


@pytest.fixture
def genes(tmp_path):
    from contig.scores.burden import read_gene_table

    path = tmp_path / "genes.tsv"
    path.write_text(GENES)
    return read_gene_table(path)


def test_genes_overlapping_nearest_either_side_and_ties(genes):
    loci = loci_table([
        ("1", 250, 150, 260),   # between A and B, 50 bp from each: a tie
        ("1", 450, 450, 450),   # 50 bp after B, 50 bp before C and D (same start)
        ("1", 350, 340, 520),   # inside B; span reaches C and D
        ("1", 900, 900, 900),   # after every gene
        ("1", 50, 50, 50),      # before every gene
        ("3", 500, 400, 600),   # a chromosome without genes
        ("2", 1000, 990, 990),  # on F's first base; span ends before it
    ])
    table = annotate_genes(loci, genes)
    assert table.rows() == [
        ("A", "A,B", 50, "A", 50, "B", 50),
        ("NONE", "B,D,C", 50, "B", 50, "D,C", 50),
        ("B,D,C", "B", 0, "A", 150, "D,C", 150),
        ("NONE", "E", 100, "E", 100, "NONE", None),
        ("NONE", "A", 50, "NONE", None, "A", 50),
        ("NONE", "NONE", None, "NONE", None, "NONE", None),
        ("NONE", "F", 0, "NONE", None, "NONE", None),
    ]
    assert table.columns == ["OVERLAPPING_GENES", "NEAREST_GENE", "NEAREST_DISTANCE", "GENE_BEFORE",
                             "DISTANCE_BEFORE", "GENE_AFTER", "DISTANCE_AFTER"]


def test_gene_table_order_does_not_change_the_answer(genes):
    loci = loci_table([("1", 450, 450, 450), ("1", 250, 150, 260)])
    shuffled = genes.sample(fraction=1.0, shuffle=True, seed=3)
    assert annotate_genes(loci, shuffled).equals(annotate_genes(loci, genes))


def write_pheno(path: Path, lp: dict[str, float]) -> Path:
    pl.DataFrame({"CHROM": ["1"] * len(lp), "GENPOS": list(range(1, len(lp) + 1)),
                  "ID": list(lp), "LOG10P": list(lp.values())}).write_parquet(path)
    return path


def test_significant_phenotypes_at_the_threshold_inclusive(tmp_path):
    cut = -np.log10(5e-8)
    paths = {"PC1": write_pheno(tmp_path / "PC1.parquet", {"a": cut, "b": cut - 1e-9, "c": 20.0}),
             "PC2": write_pheno(tmp_path / "PC2.parquet", {"a": 3.0, "b": 9.0, "c": float("nan")})}
    table = significant_phenotypes(["a", "b", "c", "absent"], paths, 5e-8)
    assert table.rows() == [(1, "PC1"), (1, "PC2"), (1, "PC1"), (0, "NONE")]


@pytest.fixture
def annotation_inputs(tmp_path):
    """A loci table of 3 loci, its clumps, genes, per-phenotype and other-eye statistics."""
    loci = loci_table([("1", 250, 150, 260), ("1", 450, 450, 450), ("2", 1500, 1500, 1500)])
    loci.write_csv(tmp_path / "loci.tsv", separator="\t")
    pl.DataFrame({"CHROM": ["1", "1", "2"], "POS": [250, 450, 1500], "ID": ["v0", "v1", "v2"],
                  "TOTAL": [4, 0, 9], "SP2": ["x", "NONE", "y"]}).write_csv(
        tmp_path / "loci.clumps.tsv", separator="\t")
    (tmp_path / "genes.tsv").write_text(GENES)
    (tmp_path / "sumstats").mkdir()
    write_pheno(tmp_path / "sumstats" / "PC10.parquet", {"v0": 8.0, "v1": 1.0, "v2": 9.0})
    write_pheno(tmp_path / "sumstats" / "PC2.parquet", {"v0": 7.0, "v1": 12.0, "v2": 7.5})
    # Bonferroni over 3 loci at alpha 0.05: replicated when -log10 p > -log10(0.05 / 3) = 1.778
    write_pheno(tmp_path / "right.parquet", {"v0": 1.7, "v1": 1.8})
    return tmp_path


def test_annotate_loci_command(annotation_inputs):
    d = annotation_inputs
    out = d / "out" / "annotated.tsv"
    assert main(["annotate-loci", "--loci", str(d / "loci.tsv"), "--clumps", str(d / "loci.clumps.tsv"),
                 "--genes", str(d / "genes.tsv"), "--pheno-sumstats", str(d / "sumstats"),
                 "--other-eye", f"right={d / 'right.parquet'}", "--out", str(out)]) == 0
    table = pl.read_csv(out, separator="\t", null_values="NA")
    assert table["CLUMP_VARIANTS"].to_list() == [5, 1, 10]
    assert table["NEAREST_GENE"].to_list() == ["A,B", "B,D,C", "F"]
    # phenotypes in natural order (PC2 before PC10), at p <= 5e-8 (-log10 7.30)
    assert table["SIGNIFICANT_PHENOTYPES"].to_list() == ["PC10", "PC2", "PC2,PC10"]
    assert table["N_SIGNIFICANT_PHENOTYPES"].to_list() == [1, 1, 2]
    assert table["LOG10P_RIGHT"].to_list() == [1.7, 1.8, None]
    assert table["REPLICATED_RIGHT"].to_list() == [False, True, False]


def test_annotate_loci_lead_missing_from_clumps_fails_cleanly(annotation_inputs, capsys):
    d = annotation_inputs
    (d / "loci.clumps.tsv").write_text("CHROM\tPOS\tID\tTOTAL\n1\t250\tv0\t4\n")
    out = d / "annotated.tsv"
    status = main(["annotate-loci", "--loci", str(d / "loci.tsv"), "--clumps", str(d / "loci.clumps.tsv"),
                   "--genes", str(d / "genes.tsv"), "--pheno-sumstats", str(d / "sumstats"),
                   "--out", str(out)])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and not out.exists()
    assert len(error) == 1 and "loci.clumps.tsv" in error[0] and "'ID'" in error[0] and "v1" in error[0]


def test_annotate_settings_default_alpha_is_the_replication_default():
    from contig.evaluate.replicate import ReplicationSettings

    assert AnnotateSettings().alpha == ReplicationSettings().alpha


def test_other_eyes_of_each_embedded_eye():
    assert plan.other_eyes("left") == ["right"]
    assert plan.other_eyes("right") == ["left"]
    assert plan.other_eyes("mean") == ["left", "right"]


# ------------------------------------------------------------------------------ regional plots


def test_r2_with_lead_is_the_pairwise_complete_squared_correlation():
    rng = np.random.default_rng(0)
    lead = rng.integers(0, 3, 200).astype(np.int8)
    others = np.stack([lead, 2 - lead, rng.integers(0, 3, 200), np.ones(200)]).astype(np.int8)
    others[2, :20] = -9
    lead_missing = lead.copy()
    lead_missing[190:] = -9
    r2 = r2_with_lead(lead_missing, others)
    keep = (others[2] >= 0) & (lead_missing >= 0)
    brute = np.corrcoef(lead_missing[keep], others[2, keep])[0, 1] ** 2
    assert r2[:2] == pytest.approx([1.0, 1.0]) and r2[2] == pytest.approx(brute, rel=1e-12)
    assert np.isnan(r2[3])  # a constant variant has no r²


def test_plotted_loci_are_the_strongest_in_order():
    loci = loci_table([("1", 1, 1, 1)] * 4).with_columns(pl.Series("LOG10P", [9.0, 12.0, 9.0, 30.0]))
    assert plotted_loci(loci, 3)["LOCUS"].to_list() == [4, 2, 1]
    assert plotted_loci(loci, 0).height == 0


def test_gene_rows_never_overlap():
    rng = np.random.default_rng(1)
    starts = np.sort(rng.integers(0, 10_000, 60))
    ends = starts + rng.integers(10, 2_000, 60)
    rows = gene_rows(starts, ends, gap=100)
    for row in np.unique(rows):
        s, e = starts[rows == row], ends[rows == row]
        assert np.all(s[1:] > e[:-1] + 100)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """300 people, 150 variants 5 kb apart on one chromosome with LD and 5% missing calls;
    summary statistics with a p-value for every variant; one locus per lead."""
    root = tmp_path_factory.mktemp("regional")
    c = simulate_cohort(root / "g", n_samples=300, n_chrom=1, snps_per_chrom=150, missing_rate=0.05,
                        ld_rho=0.9, spacing_bp=5000, seed=3)
    rng = np.random.default_rng(2)
    m = c.bim.height
    pl.DataFrame({"CHROM": c.bim["CHROM"], "GENPOS": c.bim["POS"], "ID": c.bim["ID"],
                  "LOG10P": rng.uniform(0, 5, m)}).write_parquet(root / "sumstats.parquet")
    leads = [40, 100]
    pl.DataFrame({"LOCUS": [1, 2], "LEAD_ID": [f"rs1_{i}" for i in leads], "CHROM": ["1", "1"],
                  "LEAD_POS": [(i + 1) * 5000 for i in leads], "START": [(i + 1) * 5000 for i in leads],
                  "END": [(i + 1) * 5000 for i in leads], "N_VARIANTS": [1, 1], "P": [1e-12, 1e-10],
                  "LOG10P": [12.0, 10.0]}).write_csv(root / "loci.tsv", separator="\t")
    keep = c.iid[rng.permutation(len(c.iid))[:250]]
    (root / "keep.tsv").write_text("IID\n" + "\n".join(keep) + "\n")
    (root / "keep.plink").write_text("".join(f"{i} {i}\n" for i in keep))
    (root / "genes.tsv").write_text("chrom\tstart\tend\tgene\n1\t150000\t260000\tG1\n1\t400000\t420000\tG2\n")
    return c, root


def plink19_r2(prefix: Path, lead: str, keep: Path, out: Path) -> dict[str, float]:
    subprocess.run([PLINK1, "--bfile", str(prefix), "--keep", str(keep), "--r2", "--ld-snp", lead,
                    "--ld-window-kb", "500", "--ld-window", "99999", "--ld-window-r2", "0",
                    "--allow-no-sex", "--threads", "2", "--out", str(out)], check=True,
                   capture_output=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    rows = [line.split() for line in Path(f"{out}.ld").read_text().splitlines()[1:] if line.strip()]
    return {r[5]: float(r[6]) for r in rows if r[5] != lead}


@pytest.mark.plink2("plink1.9")
def test_regional_r2_equals_plink19_r2_with_the_lead(cohort):
    c, root = cohort
    out = root / "regional"
    assert main(["regional-plots", "--loci", str(root / "loci.tsv"), "--sumstats",
                 str(root / "sumstats.parquet"), "--bfile", str(c.prefix), "--keep", str(root / "keep.tsv"),
                 "--genes", str(root / "genes.tsv"), "--window-kb", "500", "--out", str(out)]) == 0
    table = pl.read_csv(out / "regional.tsv", separator="\t", null_values="NA")
    assert sorted(p.name for p in out.glob("*.png")) == ["locus1_rs1_40.png", "locus2_rs1_100.png"]
    for lead in ("rs1_40", "rs1_100"):
        expected = plink19_r2(c.prefix, lead, root / "keep.plink", root / f"plink_{lead}")
        ours = table.filter((pl.col("LEAD_ID") == lead) & (pl.col("ID") != lead))
        # the same variants: plink's window is +-500 kb inclusive, as ours
        assert sorted(ours["ID"].to_list()) == sorted(expected)
        got = dict(zip(ours["ID"], ours["R2"]))
        for variant, r2 in expected.items():  # plink prints 6 significant digits
            assert got[variant] == pytest.approx(r2, rel=1e-5, abs=1e-7), variant
        own = table.filter((pl.col("LEAD_ID") == lead) & (pl.col("ID") == lead))
        assert own["R2"].to_list() == pytest.approx([1.0])


def test_regional_tables_window_and_cap(cohort):
    c, root = cohort
    from contig.evaluate.truth import read_loci

    sumstats = pl.read_parquet(root / "sumstats.parquet")
    settings = RegionalSettings(window_kb=50, max_plots=1)
    tables = list(regional_tables(read_loci(root / "loci.tsv"), sumstats, Genotypes.open(c.prefix), settings))
    assert len(tables) == 1
    row, table = tables[0]
    assert row["LEAD_ID"] == "rs1_40"
    # lead at 205,000: variants at 155,000 ... 255,000 (5 kb apart, bounds included)
    assert table["POS"].to_list() == list(range(155_000, 255_001, 5_000))


def test_regional_plots_with_no_locus_write_an_empty_table(cohort, tmp_path):
    c, root = cohort
    (tmp_path / "loci.tsv").write_text((root / "loci.tsv").read_text().splitlines()[0] + "\n")
    out = tmp_path / "regional"
    assert main(["regional-plots", "--loci", str(tmp_path / "loci.tsv"), "--sumstats",
                 str(root / "sumstats.parquet"), "--bfile", str(c.prefix), "--genes",
                 str(root / "genes.tsv"), "--out", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["regional.tsv"]
    assert pl.read_csv(out / "regional.tsv", separator="\t").height == 0


def test_miami_plot_command(cohort, tmp_path):
    c, root = cohort
    out = tmp_path / "miami.png"
    assert main(["miami-plot", "--sumstats", str(root / "sumstats.parquet"), "--sumstats-other",
                 str(root / "sumstats.parquet"), "--loci", str(root / "loci.tsv"), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_defaults_are_the_library_defaults():
    import argparse
    import importlib

    from contig.cli import COMMANDS

    def parse(command: str, argv: list[str]) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        importlib.import_module(f"contig.cli.{COMMANDS[command][0]}").add_arguments(parser)
        return parser.parse_args(argv)

    args = parse("regional-plots", ["--loci", "l", "--sumstats", "s", "--bfile", "b", "--genes", "g",
                                    "--out", "o"])
    regional = RegionalSettings()
    assert (args.window_kb, args.max_plots, args.threshold, args.p_column) == (
        regional.window_kb, regional.max_plots, regional.threshold, regional.p_column)
    args = parse("annotate-loci", ["--loci", "l", "--clumps", "c", "--genes", "g", "--pheno-sumstats",
                                   "d", "--out", "o"])
    annotate = AnnotateSettings()
    assert (args.threshold, args.alpha, args.p_column) == (annotate.threshold, annotate.alpha,
                                                           annotate.p_column)
