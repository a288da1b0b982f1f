"""GWAS step 1 (regenie-style ridge, LOCO): ridge algebra vs scikit-learn, power gain, structure."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from contig.cli import main
from contig.gwas.association import run_gwas
from contig.gwas.stats import lambda_gc
from contig.gwas.step1 import H2_GRID, STEP1_DEFAULTS, ridge_fold_predictions, run_step1
from helpers.gwas import mean_imputed, simulate_cohort, write_table
from helpers.ridge_reference import dense_step1_loco


def test_fold_predictions_equal_sklearn_ridge():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((120, 15)), rng.standard_normal((120, 2))
    folds = np.arange(120) % 4
    ours = ridge_fold_predictions(x, y, folds, [0.5, 30.0])
    for r, lam in enumerate([0.5, 30.0]):
        for f in range(4):
            fit = Ridge(alpha=lam, fit_intercept=False).fit(x[folds != f], y[folds != f])
            np.testing.assert_allclose(ours[r, folds == f], fit.predict(x[folds == f]), rtol=1e-9, atol=1e-12)


def _polygenic(tmp_path, fst, seed):
    """Two polygenic phenotypes (90 causal variants on chromosomes 1-3, h² 0.6); chromosome 4 null."""
    c = simulate_cohort(tmp_path / "g", n_samples=1200, n_chrom=4, snps_per_chrom=250, ld_rho=0.5,
                        fst=fst, seed=seed)
    rng = np.random.default_rng(seed)
    n = len(c.iid)
    g = mean_imputed(c.genotypes)
    z = (g - g.mean(axis=1, keepdims=True)) / g.std(axis=1, keepdims=True)
    causal = np.sort(rng.choice(750, 90, replace=False))
    columns = {}
    for name in ("a", "b"):
        genetic = rng.standard_normal(90) @ z[causal]
        columns[name] = genetic / genetic.std() * np.sqrt(0.6) + rng.standard_normal(n) * np.sqrt(0.4)
    pheno = write_table(tmp_path / "p.tsv", c.iid, columns)
    covar = write_table(tmp_path / "c.tsv", c.iid, {"c1": rng.standard_normal(n)})
    return c, pheno, covar, causal


def _with_and_without_loco(tmp_path, c, pheno, covar):
    assert main(["gwas-step1", "--bfile", str(c.prefix), "--pheno", str(pheno), "--covar", str(covar),
                 "--out", str(tmp_path / "s1"), "--block-size", "100"]) == 0
    plain = run_gwas(c.prefix, pheno, covar)
    loco = run_gwas(c.prefix, pheno, covar, loco=tmp_path / "s1.loco.tsv.gz")
    return plain, loco


def test_loco_gains_power_at_causal_variants_and_keeps_null_chromosome_calibrated(tmp_path):
    """Without structure, LOCO removes the polygenic background of other chromosomes from the
    residual: χ² at causal variants rises (here by > 10%), the null chromosome stays near 1."""
    c, pheno, covar, causal = _polygenic(tmp_path, fst=0.001, seed=7)
    plain, loco = _with_and_without_loco(tmp_path, c, pheno, covar)
    chi_plain = ((plain.beta / plain.se) ** 2)[causal].mean()
    chi_loco = ((loco.beta / loco.se) ** 2)[causal].mean()
    assert chi_loco > 1.1 * chi_plain
    null = slice(750, 1000)
    assert lambda_gc(loco.log10p[null].ravel()) < 1.25


def test_loco_brings_lambda_closer_to_one_under_structure(tmp_path):
    """With population structure and no PCs, the null chromosome is inflated; LOCO's genome-wide
    prediction absorbs part of the ancestry signal, so λGC there moves towards 1."""
    c, pheno, covar, _ = _polygenic(tmp_path, fst=0.05, seed=7)
    plain, loco = _with_and_without_loco(tmp_path, c, pheno, covar)
    null = slice(750, 1000)
    before, after = lambda_gc(plain.log10p[null].ravel()), lambda_gc(loco.log10p[null].ravel())
    assert before > 1.3
    assert abs(after - 1) < abs(before - 1)


@pytest.mark.parametrize("option,value", [("--block-size", "0"), ("--folds", "1"), ("--seed", "-2"),
                                          ("--min-maf", "0.6"), ("--mem-mb", "0")])
def test_cli_refuses_out_of_range_settings(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["gwas-step1", "--bfile", "x", "--pheno", "p", "--covar", "c", "--out", str(tmp_path / "s"),
              option, value])
    assert exit_info.value.code == 2 and option in capsys.readouterr().err


def test_command_defaults_are_the_library_defaults():
    import argparse

    from contig.cli.gwas_step1 import add_arguments
    from contig.gwas.step1 import STEP1_DEFAULTS

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--bfile", "b", "--pheno", "p", "--covar", "c", "--out", "o"])
    assert (args.block_size, args.folds, args.seed, args.min_maf, args.mem_mb) == (
        STEP1_DEFAULTS.block_size, STEP1_DEFAULTS.n_folds, STEP1_DEFAULTS.seed,
        STEP1_DEFAULTS.min_maf, STEP1_DEFAULTS.mem_mb)


def _step1_cohort(tmp_path, snps_per_chrom, n_samples=400, n_pheno=2, seed=3):
    """A cohort with ``n_pheno`` polygenic phenotypes ``(n, n_pheno)`` and 2 covariates."""
    c = simulate_cohort(tmp_path / f"g{snps_per_chrom}", n_samples=n_samples, n_chrom=3,
                        snps_per_chrom=snps_per_chrom, missing_rate=0.01, ld_rho=0.5, seed=seed)
    rng = np.random.default_rng(seed)
    g = mean_imputed(c.genotypes)
    y = np.column_stack([rng.standard_normal(c.genotypes.shape[0]) @ (g - g.mean(axis=1, keepdims=True)) / 30
                         + rng.standard_normal(n_samples) for _ in range(n_pheno)])
    cov = rng.standard_normal((n_samples, 2))
    pheno = write_table(tmp_path / f"p{snps_per_chrom}.tsv", c.iid,
                        {f"y{j}": y[:, j] for j in range(n_pheno)})
    covar = write_table(tmp_path / f"c{snps_per_chrom}.tsv", c.iid, {"c1": cov[:, 0], "c2": cov[:, 1]})
    return c, y, cov, pheno, covar


@pytest.mark.parametrize("mem_mb", [4000, 1], ids=["in-memory", "on-disk"])
def test_streamed_float32_loco_equals_dense_float64_reference(tmp_path, mem_mb):
    """float32 level-0 predictions, kept in memory or spilled to disk, give the LOCO predictions
    of a dense float64 computation to float32 precision; the MAF filter drops the variants a
    brute-force count says are rare."""
    c, y, cov, pheno, covar = _step1_cohort(tmp_path, 240)
    min_maf = 0.1
    result = run_step1(c.prefix, pheno, covar, block_size=50, min_maf=min_maf, mem_mb=mem_mb,
                       scratch_dir=tmp_path)
    folds = np.random.default_rng(STEP1_DEFAULTS.seed).permutation(len(c.iid)) % STEP1_DEFAULTS.n_folds
    chrom = c.bim["CHROM"].to_numpy().astype(str)
    reference = dense_step1_loco(c.genotypes, chrom, y, cov, folds, 50, H2_GRID, min_maf)
    for name, expected in reference.items():
        np.testing.assert_allclose(result.loco[name], expected, rtol=0,
                                   atol=2e-5 * np.abs(expected).max())
    freq = np.nanmean(np.where(c.genotypes < 0, np.nan, c.genotypes), axis=1) / 2
    assert result.counts["rare"] == int((np.minimum(freq, 1 - freq) < min_maf).sum()) > 0
    assert not list(tmp_path.glob("contig-step1-*"))  # the spilled predictions are removed


def _peak_bytes(tmp_path, snps_per_chrom):
    c, _, _, pheno, covar = _step1_cohort(tmp_path, snps_per_chrom, n_samples=1000, n_pheno=8)
    tracemalloc.start()
    try:
        run_step1(c.prefix, pheno, covar, block_size=200, mem_mb=1, scratch_dir=tmp_path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_grows_far_less_than_the_variants(tmp_path):
    """4x the variants (6 -> 24 blocks, 8 phenotypes) with the level-0 predictions on disk: the
    peak traced memory grows by less than 1.5x (one block's work and one phenotype's features,
    not every prediction; the earlier code, holding all of them as float64, grew 2.2x)."""
    small = _peak_bytes(tmp_path, 400)
    large = _peak_bytes(tmp_path, 1600)
    assert large < 1.5 * small, (small, large)
