"""The raw-SNP modality against a brute-force numpy computation."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from contig.cli import main
from contig.genotypes.ld import PruneWindow, indep_pairwise
from contig.scores.modality import load_modality
from contig.genotypes.plinkio import Genotypes
from helpers.plink import make_cohort


def brute_force(g: np.ndarray, maf: float, k: int, chrom: np.ndarray):
    """Selected rows and the standardized, mean-imputed matrix ``(n_samples, n_selected)``."""
    called = g >= 0
    p = np.where(called, g, 0).sum(axis=1) / (2.0 * called.sum(axis=1))
    selected = np.flatnonzero(np.minimum(p, 1 - p) >= maf)
    rows = []
    for c in np.unique(chrom[selected]):
        rows.extend(selected[chrom[selected] == c][::k].tolist())
    rows = np.array(sorted(rows))
    x = (g[rows] - 2 * p[rows, None]) / np.sqrt(2 * p[rows, None] * (1 - p[rows, None]))
    return rows, np.where(called[rows], x, 0.0).T, p[rows]


def test_every_kth_matrix_equals_brute_force(tmp_path):
    g = make_cohort(tmp_path / "in", n=80, m=700, seed=2, missing=0.03)
    geno = Genotypes.open(tmp_path / "in")
    chrom = geno.bim["CHROM"].to_numpy()
    assert main(["snps", "--bfile", str(tmp_path / "in"), "--out", str(tmp_path / "s"), "--maf", "0.1",
                 "--every-kth", "7"]) == 0
    modality = load_modality(tmp_path / "s.npz")
    rows, want, p = brute_force(g, 0.1, 7, chrom)
    assert modality.feature.tolist() == geno.bim["ID"].gather(rows).to_list()
    assert modality.iid.tolist() == geno.fam["IID"].to_list()
    assert modality.X.dtype == np.float32
    np.testing.assert_allclose(modality.X, want, rtol=1e-5, atol=1e-5)
    assert np.all(modality.X[(g[rows] < 0).T] == 0)
    offsets = modality.extra["chrom_offsets"]
    assert offsets[0] == 0 and offsets[-1] == len(rows)
    for name, a, b in zip(modality.extra["chrom"], offsets[:-1], offsets[1:]):
        assert set(chrom[rows][a:b]) == {name}
    np.testing.assert_allclose(modality.extra["mean"], 2 * p, rtol=1e-6)
    np.testing.assert_allclose(modality.extra["std"], np.sqrt(2 * p * (1 - p)), rtol=1e-6)
    variants = pl.read_csv(tmp_path / "s.variants.tsv", separator="\t")
    assert variants.columns == ["ID", "CHROM", "POS", "ALT", "REF", "ALT_FREQ"]
    np.testing.assert_allclose(variants["ALT_FREQ"].to_numpy(), p)


def test_ld_pruned_selection(tmp_path):
    make_cohort(tmp_path / "in", n=100, m=600, seed=6)
    assert main(["snps", "--bfile", str(tmp_path / "in"), "--out", str(tmp_path / "s"), "--maf", "0.05",
                 "--indep-pairwise", "50", "5", "0.2"]) == 0
    geno = Genotypes.open(tmp_path / "in")
    counts = geno.genotype_counts()
    p = (counts[:, 1] + 2.0 * counts[:, 2]) / (2.0 * counts[:, :3].sum(axis=1))
    passing = np.flatnonzero(np.minimum(p, 1 - p) >= 0.05)
    keep = indep_pairwise(geno, PruneWindow.parse("50", "5", "0.2"), passing)
    assert load_modality(tmp_path / "s.npz").feature.tolist() == geno.bim["ID"].gather(passing[keep]).to_list()


def test_every_kth_and_pruning_are_exclusive(tmp_path):
    make_cohort(tmp_path / "in", n=20, m=50)
    with pytest.raises(SystemExit):
        main(["snps", "--bfile", str(tmp_path / "in"), "--out", str(tmp_path / "s"), "--every-kth", "2",
              "--indep-pairwise", "50", "5", "0.2"])
