"""LD pruning and PCA against plink2 (--indep-pairwise kept sets, --pca eigenvectors)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from contig.cli import main
from contig.genotypes.ld import PruneWindow, indep_pairwise
from contig.genotypes.pca import GramOperator, block_krylov_eigh, genotype_pca, standardization
from contig.genotypes.plinkio import Genotypes, write_bfile
from helpers.plink import make_cohort, run_plink2

POP_SIZES = np.array([40, 60, 80, 100, 120, 150, 170])


@pytest.fixture(scope="module")
def structured(tmp_path_factory):
    """Seven populations of different sizes and drift: the top 6 PCs are population axes."""
    prefix = tmp_path_factory.mktemp("structured") / "cohort"
    make_cohort(prefix, m=4000, n_pops=7, fst=0.15, pop_sizes=POP_SIZES, seed=11, n_chrom=4,
                rho=0.6, missing=0.005)
    return prefix


def plink2_prune_in(tmp_path, prefix, params: list[str]) -> list[str]:
    run_plink2("--bfile", str(prefix), "--indep-pairwise", *params, "--out", str(tmp_path / "p"))
    return (tmp_path / "p.prune.in").read_text().split()


@pytest.mark.plink2
@pytest.mark.parametrize("params", [["50", "5", "0.2"], ["20", "3", "0.5"], ["10", "1", "0.05"],
                                    ["100kb", "1", "0.2"], ["500kb", "1", "0.1"]])
def test_indep_pairwise_keeps_exactly_what_plink2_keeps(tmp_path, params):
    make_cohort(tmp_path / "ld", n=200, m=1500, seed=4, missing=0.02)
    geno = Genotypes.open(tmp_path / "ld")
    keep = indep_pairwise(geno, PruneWindow.parse(*params))
    ours = geno.bim["ID"].filter(pl.Series(keep)).to_list()
    theirs = plink2_prune_in(tmp_path, tmp_path / "ld", params)
    assert 0 < len(theirs) < geno.n_variants
    assert ours == theirs


@pytest.mark.plink2
def test_indep_pairwise_handles_monomorphic_and_nonfounders(tmp_path):
    g = make_cohort(tmp_path / "a", n=120, m=400, seed=9)
    g[7] = np.where(g[7] < 0, -9, 2)
    g[8] = np.where(g[8] < 0, -9, 1)  # all heterozygous: no variance in plink's coding either
    geno = Genotypes.open(tmp_path / "a")
    fam = geno.fam.with_columns(pl.when(pl.int_range(pl.len()) < 30).then(pl.lit("F1"))
                                .otherwise(pl.col("MAT")).alias("MAT"))
    write_bfile(tmp_path / "b", fam, geno.bim, [g])
    geno = Genotypes.open(tmp_path / "b")
    keep = indep_pairwise(geno, PruneWindow.parse("30", "4", "0.3"))
    assert not keep[7] and not keep[8]
    assert geno.bim["ID"].filter(pl.Series(keep)).to_list() == plink2_prune_in(
        tmp_path, tmp_path / "b", ["30", "4", "0.3"])


def _abs_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([abs(np.corrcoef(a[:, i], b[:, i])[0, 1]) for i in range(a.shape[1])])


@pytest.mark.plink2
@pytest.mark.parametrize("mode", ["exact", "approx"])
def test_top_pcs_correlate_with_plink2(tmp_path, structured, mode):
    flags = ["--pca", "5"] + (["approx"] if mode == "approx" else [])
    run_plink2("--bfile", str(structured), *flags, "--out", str(tmp_path / "p"))
    theirs = pl.read_csv(tmp_path / "p.eigenvec", separator="\t")
    assert main(["pca", "--bfile", str(structured), "--out", str(tmp_path / "ours"), "--n-pcs", "5"]) == 0
    ours = pl.read_csv(tmp_path / "ours.eigenvec", separator="\t")
    assert ours.columns == theirs.columns == ["#FID", "IID", "PC1", "PC2", "PC3", "PC4", "PC5"]
    assert ours["IID"].to_list() == theirs["IID"].to_list()
    pcs = [f"PC{i}" for i in range(1, 6)]
    corr = _abs_corr(ours.select(pcs).to_numpy(), theirs.select(pcs).to_numpy())
    assert np.all(corr >= 0.99), corr
    ours_val = np.loadtxt(tmp_path / "ours.eigenval")
    theirs_val = np.loadtxt(tmp_path / "p.eigenval")
    # plink2 exact divides by per-pair non-missing counts, approx mean-imputes like us
    assert ours_val == pytest.approx(theirs_val, rel=0.02 if mode == "exact" else 0.005)
    assert (tmp_path / "ours.png").stat().st_size > 1000
    assert len((tmp_path / "ours.prune.in").read_text().split()) == 4000


def test_pca_equals_dense_eigendecomposition_streamed_or_cached(structured):
    geno = Genotypes.open(structured)
    variants = np.arange(geno.n_variants)
    _, mean, scale = standardization(geno, variants)
    G = geno.read(variants).astype(np.float64)
    X = np.where(G < 0, 0.0, (G - mean[:, None]) * scale[:, None])
    values, vectors = np.linalg.eigh(X.T @ X / len(variants))
    want_values, want_vectors = values[::-1][:5], vectors[:, ::-1][:, :5]
    for cache_gb in (2.0, 0.0):  # everything cached / streamed on every pass
        op = GramOperator(geno, variants, mean, scale, chunk_size=1000, cache_gb=cache_gb)
        got_values, got_vectors = block_krylov_eigh(op, 5, n_passes=6, seed=3)
        assert got_values == pytest.approx(want_values, rel=1e-4)
        assert np.all(_abs_corr(got_vectors, want_vectors) > 0.9999)
        assert op.passes == 6


def test_pca_is_deterministic_given_seed(structured):
    geno = Genotypes.open(structured)
    a = genotype_pca(geno, 3, seed=1)
    b = genotype_pca(geno, 3, seed=1)
    assert np.array_equal(a.eigenvectors, b.eigenvectors)


def test_pca_cli_with_pruning_and_colour(tmp_path, structured):
    fam = Genotypes.open(structured).fam
    pop = np.repeat(np.arange(len(POP_SIZES)), POP_SIZES)
    pl.DataFrame({"IID": fam["IID"], "population": [f"pop{p}" for p in pop]}).write_csv(
        tmp_path / "cov.tsv", separator="\t")
    assert main(["pca", "--bfile", str(structured), "--out", str(tmp_path / "o"), "--n-pcs", "3",
                 "--indep-pairwise", "50", "5", "0.2", "--color-by", f"{tmp_path / 'cov.tsv'}:population"]) == 0
    kept = (tmp_path / "o.prune.in").read_text().split()
    geno = Genotypes.open(structured)
    want = geno.bim["ID"].filter(pl.Series(indep_pairwise(geno, PruneWindow.parse("50", "5", "0.2"))))
    assert kept == want.to_list()
    vec = pl.read_csv(tmp_path / "o.eigenvec", separator="\t")
    # PC1 separates populations: between-population variance dominates
    pc1 = vec["PC1"].to_numpy()
    means = np.array([pc1[pop == p].mean() for p in range(len(POP_SIZES))])
    assert np.var(means[pop]) > 0.8 * np.var(pc1)
    assert (tmp_path / "o.png").exists()


@pytest.mark.plink2
def test_simulated_cohort_pc1_and_pruning_match_plink2(tmp_path, sim_cohort):
    prefix = sim_cohort / "genotypes"
    run_plink2("--bfile", str(prefix), "--pca", "2", "--out", str(tmp_path / "p"))
    assert main(["pca", "--bfile", str(prefix), "--out", str(tmp_path / "o"), "--n-pcs", "2"]) == 0
    ours = pl.read_csv(tmp_path / "o.eigenvec", separator="\t")["PC1"].to_numpy()
    theirs = pl.read_csv(tmp_path / "p.eigenvec", separator="\t")["PC1"].to_numpy()
    assert abs(np.corrcoef(ours, theirs)[0, 1]) >= 0.99  # two populations: one structured axis
    geno = Genotypes.open(prefix)
    keep = indep_pairwise(geno, PruneWindow.parse("200kb", "1", "0.3"))
    assert geno.bim["ID"].filter(pl.Series(keep)).to_list() == plink2_prune_in(
        tmp_path, prefix, ["200kb", "1", "0.3"])


@pytest.mark.plink2
@pytest.mark.parametrize("params", [["50", "5", "0.2"], ["10", "1", "0.05"], ["100kb", "1", "0.2"]])
@pytest.mark.parametrize("threads", ["1", "2"])
def test_prune_command_writes_plink2s_prune_in_and_out(tmp_path, params, threads):
    """``contig prune`` on a cohort (three chromosomes) with monomorphic variants and non-founders:
    both lists are byte-identical to plink2's, whether one thread prunes the chromosomes in turn
    or two prune them side by side."""
    g = make_cohort(tmp_path / "a", n=150, m=1200, seed=6, missing=0.02)
    g[7] = np.where(g[7] < 0, -9, 2)
    g[8] = np.where(g[8] < 0, -9, 1)
    geno = Genotypes.open(tmp_path / "a")
    fam = geno.fam.with_columns(pl.when(pl.int_range(pl.len()) < 20).then(pl.lit("F1"))
                                .otherwise(pl.col("PAT")).alias("PAT"))
    write_bfile(tmp_path / "b", fam, geno.bim, [g])
    run_plink2("--bfile", str(tmp_path / "b"), "--indep-pairwise", *params, "--out", str(tmp_path / "p"))
    assert main(["prune", "--bfile", str(tmp_path / "b"), "--out", str(tmp_path / "ours"),
                 "--indep-pairwise", *params, "--threads", threads]) == 0
    for suffix in ("prune.in", "prune.out"):
        assert (tmp_path / f"ours.{suffix}").read_text() == (tmp_path / f"p.{suffix}").read_text(), suffix
    pruned = (tmp_path / "ours.prune.out").read_text().split()
    assert {"rs7", "rs8"} <= set(pruned) and len(pruned) < 1200


@pytest.mark.parametrize("params", [["50", "5", "1.0"], ["1", "1", "0.2"], ["50", "0", "0.2"],
                                    ["fifty", "5", "0.2"], ["10", "20", "0.2"]])
def test_prune_command_refuses_bad_parameters(tmp_path, capsys, params):
    make_cohort(tmp_path / "a", n=20, m=30)
    assert main(["prune", "--bfile", str(tmp_path / "a"), "--out", str(tmp_path / "o"),
                 "--indep-pairwise", *params]) == 2
    assert "--indep-pairwise" in capsys.readouterr().err
    assert not list(tmp_path.glob("o*"))
