"""KING-robust kinship and --king-cutoff against plink2; ancestry outliers against a dense PCA."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from contig.cli import main
from contig.genotypes.king import DUPLICATE, FIRST_DEGREE, KingSettings, king_cutoff_removed, king_pairs
from contig.genotypes.plinkio import Genotypes
from contig.genotypes.sample_filters import ancestry_outliers
from helpers.plink import run_plink2
from helpers.relatives import add_outlier_group, make_related_cohort


def read_kin0(path) -> pl.DataFrame:
    return pl.read_csv(path, separator="\t", schema_overrides={"#FID1": pl.String, "FID2": pl.String})


def read_ids(path) -> set[str]:
    return set(pl.read_csv(path, separator="\t")["IID"].to_list())


@pytest.fixture(scope="module")
def related(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("king") / "cohort"
    pairs = make_related_cohort(prefix)
    return prefix, pairs


def assert_same_kin0(ours: pl.DataFrame, theirs: pl.DataFrame) -> None:
    assert ours.height == theirs.height > 0
    for column in ("#FID1", "IID1", "FID2", "IID2", "NSNP"):
        assert ours[column].to_list() == theirs[column].to_list(), column
    for column in ("HETHET", "IBS0", "KINSHIP"):  # plink2 prints 6 significant digits
        np.testing.assert_allclose(ours[column].to_numpy(), theirs[column].to_numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.plink2
@pytest.mark.parametrize("table_filter", [None, "0.1"])
def test_kin0_equals_plink2(tmp_path, related, table_filter):
    prefix, _ = related
    extra = [] if table_filter is None else ["--king-table-filter", table_filter]
    run_plink2("--bfile", str(prefix), "--make-king-table", *extra, "--out", str(tmp_path / "plink"))
    assert main(["king", "--bfile", str(prefix), "--out", str(tmp_path / "ours"), "--make-king-table",
                 "--block-size", "64", *extra]) == 0
    assert_same_kin0(read_kin0(tmp_path / "ours.kin0"), read_kin0(tmp_path / "plink.kin0"))


@pytest.mark.plink2
@pytest.mark.parametrize("cutoff", ["0.0442", "0.0884", "0.177", "0.354"])
def test_king_cutoff_equals_plink2(tmp_path, related, cutoff):
    prefix, _ = related
    run_plink2("--bfile", str(prefix), "--king-cutoff", cutoff, "--out", str(tmp_path / "plink"))
    assert main(["king", "--bfile", str(prefix), "--out", str(tmp_path / "ours"), "--king-cutoff", cutoff]) == 0
    for suffix in (".king.cutoff.out.id", ".king.cutoff.in.id"):
        assert read_ids(tmp_path / f"ours{suffix}") == read_ids(tmp_path / f"plink{suffix}"), suffix


@pytest.mark.plink2
def test_qc_king_cutoff_equals_plink2_on_the_common_variants(tmp_path, related):
    """`contig qc --king-cutoff` on MAF >= 0.05 variants keeps the people plink2 --king-cutoff keeps
    on the same variants, and reports them in the step table and OUT.removed.tsv."""
    prefix, _ = related
    run_plink2("--bfile", str(prefix), "--maf", "0.05", "--make-bed", "--out", str(tmp_path / "common"))
    run_plink2("--bfile", str(tmp_path / "common"), "--king-cutoff", "0.0884", "--out", str(tmp_path / "plink"))
    assert main(["qc", "--bfile", str(prefix), "--out", str(tmp_path / "ours"), "--king-cutoff", "0.0884",
                 "--filter-maf", "0.05"]) == 0
    removed = read_ids(tmp_path / "plink.king.cutoff.out.id")
    assert set(Genotypes.open(tmp_path / "ours").fam["IID"]) == read_ids(tmp_path / "plink.king.cutoff.in.id")
    steps = pl.read_csv(tmp_path / "ours.qc.tsv", separator="\t").filter(pl.col("step") == "king-cutoff")
    assert steps["samples_removed"].item() == len(removed)
    table = pl.read_csv(tmp_path / "ours.removed.tsv", separator="\t")
    assert set(table.filter(pl.col("step") == "king-cutoff")["IID"]) == removed
    assert table["reason"].str.contains(" of S").all()


def test_planted_relatives_have_their_expected_kinship(related):
    """Duplicates near 0.5, parent-offspring and siblings near 0.25 (KING's expectations)."""
    prefix, planted = related
    geno = Genotypes.open(prefix)
    pairs = king_pairs(geno, np.arange(geno.n_variants), min_kinship=0.03,
                       settings=KingSettings(block_size=50, chunk_size=700))
    index = {iid: k for k, iid in enumerate(geno.fam["IID"])}
    found = {(int(a), int(b)): phi for a, b, phi in zip(pairs.first, pairs.second, pairs.kinship)}
    for row in planted.iter_rows(named=True):
        a, b = index[row["IID1"]], index[row["IID2"]]
        phi = found[(max(a, b), min(a, b))]
        if row["relation"] == "duplicate":
            assert phi > DUPLICATE
        else:
            assert FIRST_DEGREE < phi < DUPLICATE
    assert planted["relation"].value_counts().height == 3


def test_cutoff_choice_leaves_no_related_pair_and_keeps_the_most_people():
    """On small random graphs the greedy choice leaves no edge; on a star it removes the centre."""
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = 12
        edges = [(a, b) for a, b in itertools.combinations(range(n), 2) if rng.random() < 0.15]
        first = np.array([b for a, b in edges], dtype=np.int64)
        second = np.array([a for a, b in edges], dtype=np.int64)
        removed = king_cutoff_removed(n, first, second)
        assert not any(not removed[a] and not removed[b] for a, b in edges)
    star = king_cutoff_removed(5, np.array([1, 2, 3, 4]), np.array([0, 0, 0, 0]))
    assert star.tolist() == [True, False, False, False, False]


def dense_pcs(g: np.ndarray, k: int) -> np.ndarray:
    """Top-k eigenvectors of the standardized genotype relationship matrix, by dense eigh."""
    g = g.astype(np.float64)
    missing = g < 0
    g[missing] = np.nan
    p = np.nanmean(g, axis=1) / 2
    x = (g - 2 * p[:, None]) / np.sqrt(2 * p * (1 - p))[:, None]
    x[missing] = 0.0
    values, vectors = np.linalg.eigh(x.T @ x)
    return vectors[:, np.argsort(values)[::-1][:k]]


def test_ancestry_outliers_equal_a_dense_pca(tmp_path):
    """A group of 4 people from a distant population is removed at 6 SD on the top 4 PCs, and
    exactly the people a dense PCA with the same rule flags. (A group of k among n sits at most
    sqrt((n - k) / k) SD from the mean: 8.6 here; 6 SD cannot catch a group of 3% or more.)"""
    from helpers.plink import make_cohort

    prefix = tmp_path / "cohort"
    make_cohort(prefix, n=300, m=6000, n_pops=1, seed=4, n_chrom=3, rho=0.3)
    outliers = add_outlier_group(prefix, 4, seed=4)
    assert main(["qc", "--bfile", str(prefix), "--out", str(tmp_path / "ours"), "--ancestry-sd", "6",
                 "--ancestry-pcs", "4", "--filter-maf", "0.05"]) == 0
    table = pl.read_csv(tmp_path / "ours.removed.tsv", separator="\t")
    assert set(table.filter(pl.col("step") == "ancestry-sd")["IID"]) == set(outliers)
    geno = Genotypes.open(prefix)
    g = geno.read(np.arange(geno.n_variants))
    p = np.where(g >= 0, g, 0).sum(axis=1) / (2 * (g >= 0).sum(axis=1))
    common = np.minimum(p, 1 - p) >= 0.05
    flagged, _ = ancestry_outliers(dense_pcs(g[common], 4), 6.0)
    assert set(np.array(geno.fam["IID"])[flagged]) == set(outliers)
    figure_table = pl.read_csv(tmp_path / "ours.ancestry.tsv", separator="\t")
    assert figure_table["removed"].sum() == 4 and "PC4" in figure_table.columns


def test_workflow_passes_the_filters_only_their_keys():
    """The kinship table always (MAF from pca.maf); pruning and seed only for the ancestry filter."""
    from contig.core.plan import cli_options, sample_filter_options

    pca = {"maf": 0.05, "indep_pairwise": ["1000kb", 1, 0.1], "seed": 3}
    off = cli_options(sample_filter_options({"king_cutoff": None, "ancestry_sd": None, "ancestry_pcs": 10}, pca))
    assert off == "--king-table --filter-maf 0.05"
    on = cli_options(sample_filter_options({"king_cutoff": 0.0884, "ancestry_sd": 6, "ancestry_pcs": 4}, pca))
    assert on == ("--king-table --king-cutoff 0.0884 --ancestry-sd 6 --ancestry-pcs 4 --filter-maf 0.05 "
                  "--filter-indep-pairwise 1000kb 1 0.1 --filter-seed 3")


@pytest.mark.plink2
def test_simulated_relatives_are_what_plink2_sees(tmp_path):
    """Planted duplicates, parent-offspring pairs and siblings in `contig simulate`'s cohort have
    the kinship class plink2 --make-king-table gives them; no other pair reaches the 1st degree.
    (The tiny simulated genome, 44 Mb with LD, makes unrelated pairs noisy: dozens pass 0.0884.)"""
    from contig.simulate import SimulationConfig, simulate_cohort

    out = tmp_path / "sim"
    simulate_cohort(out, SimulationConfig(n_samples=200, n_snps=4400, image_size=32, images=False, seed=3,
                                          n_duplicates=2, n_parent_offspring=3, n_sibling_pairs=3))
    planted = pl.read_csv(out / "relatives.tsv", separator="\t")
    assert planted.height == 8
    run_plink2("--bfile", str(out / "genotypes"), "--maf", "0.05", "--make-king-table",
               "--king-table-filter", "0.0884", "--out", str(tmp_path / "plink"))
    table = read_kin0(tmp_path / "plink.kin0")
    found = {frozenset(p): k for p, k in zip(zip(table["IID1"], table["IID2"]), table["KINSHIP"])}
    for row in planted.iter_rows(named=True):
        phi = found[frozenset((row["IID1"], row["IID2"]))]
        assert phi > DUPLICATE if row["relation"] == "duplicate" else FIRST_DEGREE < phi < DUPLICATE
    planted_pairs = {frozenset((a, b)) for a, b in zip(planted["IID1"], planted["IID2"])}
    assert max(k for pair, k in found.items() if pair not in planted_pairs) < FIRST_DEGREE


def test_no_autosomal_variant_left_is_an_input_error_without_outputs(tmp_path, related):
    """Kinship needs autosomal variants: a fileset of chromosome X only stops with exit 2, no output."""
    from contig.genotypes.plinkio import write_bfile

    prefix, _ = related
    geno = Genotypes.open(prefix)
    write_bfile(tmp_path / "chrx", geno.fam, geno.bim.with_columns(CHROM=pl.lit("X")),
                [geno.read(np.arange(geno.n_variants))])
    assert main(["qc", "--bfile", str(tmp_path / "chrx"), "--out", str(tmp_path / "ours"),
                 "--king-cutoff", "0.0884"]) == 2
    assert list(tmp_path.glob("ours*")) == []
