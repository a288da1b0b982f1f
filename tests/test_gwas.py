"""GWAS step 2: exact OLS against statsmodels and plink2, the joint test against statsmodels' MANOVA,
p-value tails, calibration, outputs, the per-phenotype summary, CLI, bad input."""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mpmath
import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.api as sm

from contig.cli import main
from contig.core.errors import InputError
from contig.gwas import association as gwas
from contig.gwas.association import run_gwas
from contig.gwas.backends import NumpyBackend, auto_chunk_size
from contig.gwas.stats import CHI2_1DF_MEDIAN, lambda_gc, median_in_place, t_test_log10p, t_test_table
from contig.gwas.summary import summarize_scan
from contig.gwas.sumstats import SUMSTATS_COLUMNS, largest_finite, write_gwas_outputs
from contig.genotypes.plinkio import Genotypes, read_fam, read_genotypes, write_bfile
from helpers.gwas import mean_imputed, principal_components, simulate_cohort, write_table
from helpers.plink import plink_tolerance, with_fid

PLINK2 = shutil.which("plink2")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """600 people, 3 chromosomes x 200 variants, 2% missing calls, 4 phenotypes, 3 covariates."""
    root = tmp_path_factory.mktemp("gwas")
    c = simulate_cohort(root / "g", n_samples=600, missing_rate=0.02, seed=11)
    rng = np.random.default_rng(5)
    n = len(c.iid)
    cov = np.column_stack([rng.standard_normal(n), rng.integers(0, 2, n), rng.uniform(20, 70, n)])
    g = mean_imputed(c.genotypes)
    y = rng.standard_normal((n, 4)) + 0.3 * cov[:, :1]
    y[:, 0] += 0.4 * g[17]
    y[:, 1] += 0.25 * g[333]
    y[[3, 50], 2] = np.nan  # two people miss one phenotype: dropped from every phenotype
    cov_missing = cov.copy()
    cov_missing[7, 1] = np.nan
    pheno = write_table(root / "pheno.tsv", c.iid, {f"y{j}": y[:, j] for j in range(4)})
    covar = write_table(root / "covar.tsv", c.iid, {"c1": cov_missing[:, 0], "sex": cov_missing[:, 1],
                                                    "age": cov_missing[:, 2]})
    keep = ~np.isnan(y).any(axis=1) & ~np.isnan(cov_missing).any(axis=1)
    return c, pheno, covar, y, cov, keep


def test_minus_nine_in_the_phenotype_file_is_missing_as_in_plink2(cohort, tmp_path, caplog):
    """plink2 reads -9 in a phenotype file as missing (--input-missing-phenotype): two -9 cells
    give exactly the results of NA there, are counted, and `none` makes them values again."""
    c, pheno, covar, y, cov, keep = cohort
    table = pl.read_csv(pheno, separator="\t", null_values="NA")
    coded = table.with_columns(pl.when(pl.int_range(pl.len()).is_in([10, 20])).then(-9.0)
                               .otherwise(pl.col("y1")).alias("y1"))
    as_na = table.with_columns(pl.when(pl.int_range(pl.len()).is_in([10, 20])).then(None)
                               .otherwise(pl.col("y1")).alias("y1"))
    coded.write_csv(tmp_path / "coded.tsv", separator="\t", null_value="NA")
    as_na.write_csv(tmp_path / "na.tsv", separator="\t", null_value="NA")
    with_code = run_gwas(c.prefix, tmp_path / "coded.tsv", covar)
    with_na = run_gwas(c.prefix, tmp_path / "na.tsv", covar)
    assert with_code.n_samples == with_na.n_samples == keep.sum() - 2
    assert with_code.counts["pheno_missing_code"] == 2 and with_na.counts["pheno_missing_code"] == 0
    np.testing.assert_array_equal(with_code.beta, with_na.beta)
    as_values = run_gwas(c.prefix, tmp_path / "coded.tsv", covar, missing_phenotype=None)
    assert as_values.n_samples == keep.sum() and as_values.counts["pheno_missing_code"] == 0
    with caplog.at_level(logging.INFO, logger="contig"):
        assert main(["gwas", "--bfile", str(c.prefix), "--pheno", str(tmp_path / "coded.tsv"),
                     "--covar", str(covar), "--out", str(tmp_path / "cli"), "--formats", "parquet"]) == 0
    assert "read as missing: 2" in caplog.text
    with pytest.raises(SystemExit):
        main(["gwas", "--bfile", str(c.prefix), "--pheno", str(pheno), "--covar", str(covar),
              "--out", str(tmp_path / "x"), "--input-missing-phenotype", "minus"])


def test_missing_codes_in_sheets_are_warned_about(tmp_path):
    from contig.core.tables import special_code_warnings

    sheet = pl.DataFrame({"IID": ["a", "b", "c", "d"], "smoking": [-3, 1, -1, -3],
                          "age": [50.0, -9.0, 61.5, 70.0], "batch": ["x", "y", "-9", "x"],
                          "clean": [1, 2, 3, 4]})
    warnings = special_code_warnings(sheet, ["smoking", "age", "batch", "clean"], "s.tsv", "sheet")
    assert len(warnings) == 3
    assert "column smoking" in warnings[0] and "1 x -1, 2 x -3" in warnings[0]
    assert "column age" in warnings[1] and "1 x -9" in warnings[1]
    assert "column batch" in warnings[2] and warnings[2].startswith("s.tsv: ")


@pytest.mark.parametrize("device", ["cpu", "cpu-torch"])
def test_equals_statsmodels_on_mean_imputed_genotypes(cohort, device):
    c, pheno, covar, y, cov, keep = cohort
    result = run_gwas(c.prefix, pheno, covar, chunk_size=97, device=device)
    assert result.n_samples == keep.sum() == 597
    assert result.counts["missing_pheno"] == 2 and result.counts["missing_covar"] == 1
    g = mean_imputed(c.genotypes[:, keep])
    rng = np.random.default_rng(0)
    pairs = [(17, 0), (333, 1)] + [(int(v), int(j)) for v, j in
                                   zip(rng.integers(0, g.shape[0], 25), rng.integers(0, 4, 25))]
    for v, j in pairs:
        design = np.column_stack([np.ones(keep.sum()), cov[keep], g[v]])
        fit = sm.OLS(y[keep, j], design).fit()
        assert result.df == fit.df_resid
        assert result.beta[v, j] == pytest.approx(fit.params[-1], rel=1e-8, abs=1e-12)
        assert result.se[v, j] == pytest.approx(fit.bse[-1], rel=1e-8)
        assert result.log10p[v, j] == pytest.approx(-np.log10(fit.pvalues[-1]), rel=1e-8, abs=1e-10)
    assert result.log10p[17, 0] > 5  # the planted effect is found


def test_float32_close_to_float64(cohort):
    c, pheno, covar, *_ = cohort
    exact = run_gwas(c.prefix, pheno, covar)
    fast = run_gwas(c.prefix, pheno, covar, dtype="float32")
    np.testing.assert_allclose(fast.beta, exact.beta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast.log10p, exact.log10p, rtol=1e-3, atol=1e-4)
    # Float32 blocks are centred: 1.6e-6 SE here (summed uncentred, 7e-6).
    assert np.nanmax(np.abs(fast.beta - exact.beta) / exact.se) < 4e-6


@pytest.mark.parametrize("df", [3, 50, 4990])
def test_log10p_exact_where_p_underflows(df):
    t = np.array([0.0, 0.3, 1.0, 5.0, 40.0, 100.0, 500.0, 1e4, -300.0, np.nan])
    ours = t_test_log10p(t, df)
    mpmath.mp.dps = 50
    for value, got in zip(t[:-1], ours[:-1]):
        x = mpmath.mpf(df) / (df + mpmath.mpf(abs(value)) ** 2)
        p = mpmath.betainc(df / 2.0, 0.5, 0, x, regularized=True)  # two-sided p
        assert got == pytest.approx(float(-mpmath.log10(p)), rel=1e-10, abs=1e-12), value
    assert np.isnan(ours[-1])
    if df == 4990:
        assert ours[6] > 4000  # p ~ 1e-4264: far below the smallest double


def mpmath_t_log10p(t: float, df: float) -> float:
    """−log10 of the two-sided p of Student's t, at 100 digits (x = df/(df + t²) keeps the digits
    of a tiny t² at large df)."""
    with mpmath.workdps(100):
        x = mpmath.mpf(df) / (df + mpmath.mpf(abs(t)) ** 2)
        return float(-mpmath.log10(mpmath.betainc(mpmath.mpf(df) / 2, 0.5, 0, x, regularized=True)))


@pytest.mark.parametrize("df", [1, 3, 50, 4990, 1e6])
def test_t_test_table_and_exact_p_agree_with_mpmath_to_rounding(df):
    """The scan's p-values (piecewise polynomial of TTestTable) and the exact function both to
    ~1e-15 relative at every |t| above the underflow of p: tiny t (where 1 − p is all there
    is), the bulk, the table's edge, beyond it (exact path), ±inf and NaN."""
    rng = np.random.default_rng(int(df))
    t = np.concatenate([rng.uniform(-32, 32, 60), rng.standard_normal(60) * 2, 10.0 ** rng.uniform(-9, 0, 15),
                        [0.0, 31.99999, -32.0, 33.5, -34.0]])
    expected = np.array([mpmath_t_log10p(v, df) for v in t])
    table = t_test_table(df)
    for got in (table.log10p(t), t_test_log10p(t, df)):
        np.testing.assert_allclose(got, expected, rtol=4e-15, atol=0)
    edge = table.log10p(np.array([np.inf, -np.inf, np.nan]))
    assert edge[0] == edge[1] == np.inf and np.isnan(edge[2])
    assert table.log10p(t.reshape(5, -1)).shape == (5, len(t) // 5)


def test_median_in_place_is_numpys_median():
    """λGC's median: the very number np.median gives (odd and even sizes, ties, float32)."""
    rng = np.random.default_rng(2)
    for size in (1, 2, 3, 10, 11, 1000, 1001):
        for values in (rng.exponential(0.43, size), rng.integers(0, 3, size).astype(float),
                       rng.exponential(0.43, size).astype(np.float32)):
            expected = np.median(values)
            got = median_in_place(values.copy())
            assert got == expected and got.dtype == expected.dtype


def test_largest_finite_matches_argmax():
    """The combined table's running maximum over columns equals the row-wise argmax it replaced
    (first of ties, +inf and NaN skipped, NaN and column 0 where nothing is finite)."""
    rng = np.random.default_rng(3)
    values = np.asfortranarray(rng.integers(0, 4, (400, 6)).astype(float))  # many ties
    values[rng.random(values.shape) < 0.2] = np.nan
    values[rng.random(values.shape) < 0.05] = np.inf
    values[rng.random(values.shape) < 0.05] = -np.inf
    values[:5] = np.nan
    values[5] = np.inf
    finite = np.isfinite(values).any(axis=1)
    best = np.where(finite, np.argmax(np.where(np.isfinite(values), values, -np.inf), axis=1), 0)
    top = np.where(finite, values[np.arange(len(values)), best], np.nan)
    got_top, got_best = largest_finite(values)
    np.testing.assert_array_equal(got_top, top)
    np.testing.assert_array_equal(got_best, best)


def test_float_calls_equal_int8_calls(cohort):
    """pgenlib's float decoding of the .bed gives the int8 calls (-9 missing), for runs and for
    lists of variants, on a subset of people."""
    c, *_ = cohort
    genotypes = Genotypes.open(c.prefix)
    people = np.arange(0, len(c.iid), 3)
    reader = genotypes.parts[0].reader(people)
    for local in (np.arange(10, 60), np.array([0, 5, 6, 7, 150, 199])):
        calls = read_genotypes(reader, local, np.empty((len(local), len(people)), dtype=np.int8))
        assert (calls == -9).any()
        for dtype in (np.float64, np.float32):
            floats = read_genotypes(reader, local, np.empty((70, len(people)), dtype=dtype))
            np.testing.assert_array_equal(floats, calls.astype(dtype))
    reader.close()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_uncentred_products_equal_centred_products(dtype):
    """The NumPy backend multiplies uncentred, mean-imputed calls and subtracts mean·(1ᵀR)
    (float64), or centres float32 blocks in place: either way the product of the explicitly
    centred calls (missing at 0), for any R."""
    rng = np.random.default_rng(5)
    m, n, q = 40, 300, 7
    calls = rng.integers(0, 3, (m, n)).astype(np.int8)
    calls[rng.random((m, n)) < 0.05] = -9
    calls[3] = 1  # monomorphic
    observed = calls >= 0
    mean = np.where(observed, calls, 0).sum(axis=1) / observed.sum(axis=1)
    rhs = rng.standard_normal((n, q)) + 0.5  # column sums far from 0
    centred = np.where(observed, calls - mean[:, None], 0.0)
    expected = rhs.T @ centred.T
    backend = NumpyBackend(n, m, np.dtype(dtype))
    backend.buffer[:m] = calls
    block, offsets = backend.impute_calls(backend.buffer[:m], mean, has_missing=True)
    got = backend.multiply(block, backend.prepare(rhs), offsets)
    tolerance = 1e-12 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance * np.abs(expected).max())


def test_auto_chunk_size_bounds():
    assert auto_chunk_size(5000) == 262  # 10 MiB of float64
    assert auto_chunk_size(70_000) == 64  # at least 64
    assert auto_chunk_size(50) == 2048  # at most 2,048
    assert auto_chunk_size(5000, "float32") == 524


def test_workers_and_chunks_do_not_change_the_results(cohort, tmp_path):
    """Any worker may take any chunk: 1 or 3 workers give bit-identical arrays; other chunk sizes,
    variants read by list (MAF filter) and per-chromosome filesets agree to rounding."""
    c, pheno, covar, *_ = cohort
    one = run_gwas(c.prefix, pheno, covar, threads=1, chunk_size=16)
    three = run_gwas(c.prefix, pheno, covar, threads=3, chunk_size=16)
    for name in ("beta", "se", "log10p"):
        np.testing.assert_array_equal(getattr(one, name), getattr(three, name))
    auto = run_gwas(c.prefix, pheno, covar)
    np.testing.assert_allclose(auto.beta, one.beta, rtol=1e-12, atol=1e-15)
    filtered = run_gwas(c.prefix, pheno, covar, maf=0.2, chunk_size=7)
    kept = np.isin(one.variants["ID"].to_numpy(), filtered.variants["ID"].to_numpy())
    assert 0 < kept.sum() < len(kept)
    np.testing.assert_allclose(filtered.beta, one.beta[kept], rtol=1e-12, atol=1e-15)
    fam = read_fam(f"{c.prefix}.fam")
    prefixes = []
    for chrom in ("1", "2", "3"):
        rows = (c.bim["CHROM"] == chrom).to_numpy()
        prefixes.append(tmp_path / f"chr{chrom}")
        write_bfile(prefixes[-1], fam, c.bim.filter(pl.Series(rows)), [c.genotypes[rows]])
    split = run_gwas(prefixes, pheno, covar, chunk_size=50)
    np.testing.assert_allclose(split.beta, one.beta, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(split.log10p, one.log10p, rtol=1e-12, atol=1e-15)


def test_a_failing_worker_stops_the_scan(cohort, monkeypatch):
    c, pheno, covar, *_ = cohort
    real = gwas.read_genotypes
    calls = []

    def flaky(reader, local, out):
        calls.append(len(local))
        if len(calls) == 3:
            raise OSError("disk went away")
        return real(reader, local, out)

    monkeypatch.setattr(gwas, "read_genotypes", flaky)
    with pytest.raises(OSError, match="disk went away"):
        run_gwas(c.prefix, pheno, covar, chunk_size=8, threads=2)
    assert len(calls) <= 5  # of 75 chunks: the other worker stops after its current chunk


def test_formats_and_text_precision(cohort, tmp_path):
    """--formats parquet writes no per-phenotype text; the text carries the parquet values at
    float32 precision (BETA SE CHISQ LOG10P) and the variant columns unchanged."""
    c, pheno, covar, *_ = cohort
    result = run_gwas(c.prefix, pheno, covar)
    only = write_gwas_outputs(result, tmp_path / "only", formats=["parquet"])
    assert not list(tmp_path.glob("only.y*.tsv.gz"))
    assert all(only[f"y{j}.parquet"].exists() for j in range(4)) and "y0.tsv" not in only
    assert only["combined.parquet"].exists() and only["combined.tsv"].exists()
    both = write_gwas_outputs(result, tmp_path / "both")
    text = pl.read_csv(both["y1.tsv"], separator="\t", null_values="NA", schema_overrides={"CHROM": pl.Utf8})
    exact = pl.read_parquet(both["y1.parquet"])
    assert text.columns == exact.columns == SUMSTATS_COLUMNS
    assert text.select(SUMSTATS_COLUMNS[:7]).equals(exact.select(SUMSTATS_COLUMNS[:7]))
    for column in ("BETA", "SE", "CHISQ", "LOG10P"):
        np.testing.assert_allclose(text[column].to_numpy(), exact[column].to_numpy(), rtol=1.2e-7)
    folder = tmp_path / "sumstats"
    part = tmp_path / "part.parquet"
    assert main(["gwas", "--bfile", str(c.prefix), "--pheno", str(pheno), "--covar", str(covar),
                 "--part-out", str(part)]) == 0
    assert main(["gwas-gather", "--parts", str(part), "--out", str(tmp_path / "g"), "--per-pheno-dir",
                 str(folder), "--formats", "parquet"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == [f"y{j}.parquet" for j in range(4)]


def test_monomorphic_is_na_and_maf_filter(tmp_path):
    c = simulate_cohort(tmp_path / "g", n_samples=200, n_chrom=2, snps_per_chrom=60, seed=2)
    geno = c.genotypes.copy()
    geno[5] = 2  # monomorphic ALT
    geno[6] = 0
    geno[6, 0] = 1  # one carrier: MAF 1/400
    fam = read_fam(str(c.prefix) + ".fam")
    write_bfile(tmp_path / "m", fam, c.bim, [geno])
    rng = np.random.default_rng(1)
    pheno = write_table(tmp_path / "p.tsv", c.iid, {"y": rng.standard_normal(200)})
    covar = write_table(tmp_path / "c.tsv", c.iid, {"c": rng.standard_normal(200)})
    result = run_gwas(tmp_path / "m", pheno, covar)
    assert np.isnan(result.beta[5, 0]) and np.isnan(result.log10p[5, 0])
    assert np.isfinite(result.beta[6, 0]) and result.counts["variants_na"] == 1
    filtered = run_gwas(tmp_path / "m", pheno, covar, maf=0.01)
    assert filtered.counts["variants_below_maf"] == int(
        (np.minimum(mean_imputed(geno).mean(1) / 2, 1 - mean_imputed(geno).mean(1) / 2) < 0.01).sum())
    assert "rs1_5" not in filtered.variants["ID"].to_list()


def test_lambda_gc_null_phenotypes_with_structure(tmp_path):
    """Random phenotypes plus an ancestry shift: inflated without PCs, λGC 0.9–1.1 with PCs."""
    c = simulate_cohort(tmp_path / "g", n_samples=1000, n_chrom=3, snps_per_chrom=300, fst=0.1,
                        ld_rho=0.3, seed=21)
    rng = np.random.default_rng(3)
    n = len(c.iid)
    shift = 0.8 * (c.population - c.population.mean())
    pheno = write_table(tmp_path / "p.tsv", c.iid,
                        {f"y{j}": rng.standard_normal(n) + shift for j in range(6)})
    pcs = principal_components(c.genotypes, 4)
    with_pcs = write_table(tmp_path / "c.tsv", c.iid, {f"PC{k + 1}": pcs[:, k] for k in range(4)})
    without = write_table(tmp_path / "c0.tsv", c.iid, {"noise": rng.standard_normal(n)})
    adjusted = run_gwas(c.prefix, pheno, with_pcs)
    naive = run_gwas(c.prefix, pheno, without)
    assert 0.9 <= lambda_gc(adjusted.log10p.ravel()) <= 1.1
    assert lambda_gc(naive.log10p.ravel()) > 1.3


@pytest.mark.plink2
def test_equals_plink2_glm_without_missing_calls(tmp_path):
    c = simulate_cohort(tmp_path / "g", n_samples=500, n_chrom=2, snps_per_chrom=150, seed=4)
    rng = np.random.default_rng(8)
    n = len(c.iid)
    g = mean_imputed(c.genotypes)
    pheno = write_table(tmp_path / "p.tsv", c.iid, {"a": rng.standard_normal(n) + 0.5 * g[10],
                                                    "b": rng.standard_normal(n)})
    covar = write_table(tmp_path / "c.tsv", c.iid, {"c1": rng.standard_normal(n),
                                                    "c2": rng.uniform(0, 5, n)})
    subprocess.run([PLINK2, "--bfile", str(c.prefix), "--pheno", str(with_fid(pheno, tmp_path / "pp")),
                    "--covar", str(with_fid(covar, tmp_path / "cc")), "--glm", "hide-covar", "omit-ref",
                    "--threads", "1", "--out", str(tmp_path / "plink")],
                   check=True, capture_output=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    ours = run_gwas(c.prefix, pheno, covar)
    for j, name in enumerate(["a", "b"]):
        table = pl.read_csv(tmp_path / f"plink.{name}.glm.linear", separator="\t", infer_schema=False)
        assert table["ID"].to_list() == ours.variants["ID"].to_list()
        assert table["A1"].to_list() == ours.variants["ALLELE1"].to_list()
        for column, values in (("BETA", ours.beta[:, j]), ("SE", ours.se[:, j]),
                               ("P", 10.0 ** -ours.log10p[:, j])):
            for text, value in zip(table[column].to_list(), values):
                tolerance = plink_tolerance(text) * 1.001 + 1e-6 * abs(float(text))
                assert abs(value - float(text)) <= tolerance, (name, column, text, value)


def test_outputs_and_combined_table(cohort, tmp_path):
    c, pheno, covar, *_ = cohort
    result = run_gwas(c.prefix, pheno, covar)
    paths = write_gwas_outputs(result, tmp_path / "out")
    assert "summary" not in paths and not list(tmp_path.glob("out.summary*"))
    table = pl.read_parquet(paths["y0.parquet"])
    assert table.columns == SUMSTATS_COLUMNS
    with gzip.open(paths["y0.tsv"], "rt") as handle:
        assert handle.readline().rstrip("\n").split("\t") == SUMSTATS_COLUMNS
    bim = c.bim
    assert table["ALLELE1"].to_list() == bim["ALT"].to_list()
    assert table["ALLELE0"].to_list() == bim["REF"].to_list()
    np.testing.assert_allclose(table["CHISQ"].to_numpy(), (result.beta[:, 0] / result.se[:, 0]) ** 2)
    combined = pl.read_parquet(paths["combined.parquet"])
    assert combined.columns == SUMSTATS_COLUMNS[:7] + ["PHENO", "LOG10P", "P", "F_JOINT", "LOG10P_JOINT"]
    best = np.nanmax(result.log10p, axis=1)
    expected_p = np.minimum(1.0, 4 * 10.0 ** -best)
    np.testing.assert_allclose(combined["P"].to_numpy(), expected_p, rtol=1e-9)
    np.testing.assert_array_equal(combined["LOG10P_JOINT"].to_numpy(), result.log10p_joint)
    text = pl.read_csv(paths["combined.tsv"], separator="\t", null_values="NA", schema_overrides={"CHROM": pl.Utf8})
    np.testing.assert_allclose(text["F_JOINT"].to_numpy(), result.f_joint, rtol=1.2e-7)


def test_summary_from_written_sumstats_at_any_threshold(cohort, tmp_path):
    """`contig gwas-summary` reads the files one phenotype at a time: people, variants tested,
    count at the threshold and λGC per phenotype, then the combined and joint rows."""
    c, pheno, covar, *_ = cohort
    result = run_gwas(c.prefix, pheno, covar)
    write_gwas_outputs(result, tmp_path / "out", per_pheno_dir=tmp_path / "dir", formats=["tsv.gz"])
    combined = tmp_path / "out.combined.parquet"
    for threshold in (5e-8, 1e-2):
        assert main(["gwas-summary", "--sumstats-dir", str(tmp_path / "dir"), "--combined", str(combined),
                     "--threshold", str(threshold), "--out", str(tmp_path / "s.tsv")]) == 0
        summary = pl.read_csv(tmp_path / "s.tsv", separator="\t", null_values="NA")
        assert summary.columns == ["PHENO", "N_SAMPLES", "N_TESTED", "N_SIG", "LAMBDA_GC"]
        assert summary["PHENO"].to_list() == ["y0", "y1", "y2", "y3", "combined", "joint"]
        assert (summary["N_SAMPLES"] == result.n_samples).all()
        for j in range(4):
            lp = result.log10p[:, j]
            assert summary["N_SIG"][j] == int((lp >= -np.log10(threshold)).sum())
            assert summary["N_TESTED"][j] == int(np.isfinite(lp).sum())
            # The text files hold float32 statistics: λGC agrees to their precision.
            assert summary["LAMBDA_GC"][j] == pytest.approx(lambda_gc(lp), rel=1e-6)
        joint = result.log10p_joint
        assert summary["N_SIG"][5] == int((joint >= -np.log10(threshold)).sum())
        assert summary["LAMBDA_GC"][5] == pytest.approx(lambda_gc(joint), rel=1e-12)
        assert summary["LAMBDA_GC"][4] is None
    assert summary["N_SIG"][0] > 0
    paths = write_gwas_outputs(result, tmp_path / "pq", formats=["parquet"])
    exact = summarize_scan(paths["combined.parquet"], prefix=tmp_path / "pq")
    assert exact["LAMBDA_GC"].to_list()[:4] == [lambda_gc(result.log10p[:, j]) for j in range(4)]
    assert exact["N_SIG"][0] == int((result.log10p[:, 0] >= -np.log10(5e-8)).sum())


def test_cli_writes_everything(cohort, tmp_path, caplog):
    c, pheno, covar, *_ = cohort
    caplog.set_level(logging.INFO)
    out = tmp_path / "cli"
    assert main(["gwas", "--bfile", str(c.prefix), "--pheno", str(pheno), "--covar", str(covar),
                 "--out", str(out), "--chunk-size", "50", "--maf", "0.05"]) == 0
    for name in ["y0", "y1", "y2", "y3"]:
        assert Path(f"{out}.{name}.tsv.gz").exists() and Path(f"{out}.{name}.parquet").exists()
    assert Path(f"{out}.combined.parquet").exists() and not Path(f"{out}.summary.tsv").exists()
    assert "below --maf" in caplog.text and "missing a phenotype" in caplog.text
    assert "joint test of 4 phenotypes (F on 4 and 589 df)" in caplog.text


@pytest.mark.parametrize("option,value", [("--maf", "0.6"), ("--threads", "0"), ("--chunk-size", "-1"),
                                          ("--dtype", "float16")])
def test_cli_refuses_out_of_range_settings(cohort, tmp_path, capsys, option, value):
    c, pheno, covar, *_ = cohort
    with pytest.raises(SystemExit) as exit_info:
        main(["gwas", "--bfile", str(c.prefix), "--pheno", str(pheno), "--covar", str(covar),
              "--out", str(tmp_path / "x"), option, value])
    assert exit_info.value.code == 2 and option in capsys.readouterr().err
    with pytest.raises(InputError, match="--maf"):
        run_gwas(c.prefix, pheno, covar, maf=0.7)


def _run_bad(args, capsys):
    status = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    return status, err[-1]


def test_bad_inputs_one_line_error_no_outputs(cohort, tmp_path, capsys):
    c, pheno, covar, y, cov, keep = cohort
    n = len(c.iid)
    base = ["gwas", "--bfile", str(c.prefix), "--out", str(tmp_path / "bad")]
    all_missing = write_table(tmp_path / "p_missing.tsv", c.iid, {"ok": y[:, 0], "empty": np.full(n, np.nan)})
    status, line = _run_bad(base + ["--pheno", str(all_missing), "--covar", str(covar)], capsys)
    assert status == 2 and "p_missing.tsv" in line and "'empty'" in line and "missing for all" in line
    constant = write_table(tmp_path / "c_const.tsv", c.iid, {"c1": cov[:, 0], "flat": np.ones(n)})
    status, line = _run_bad(base + ["--pheno", str(pheno), "--covar", str(constant)], capsys)
    assert status == 2 and "c_const.tsv" in line and "'flat'" in line and "constant" in line
    strangers = write_table(tmp_path / "p_other.tsv", [f"x{i}" for i in range(n)], {"y": y[:, 0]})
    status, line = _run_bad(base + ["--pheno", str(strangers), "--covar", str(covar)], capsys)
    assert status == 2 and "no person" in line
    text = tmp_path / "p_text.tsv"
    text.write_text("IID\ty\n" + "\n".join(f"{i}\t{'abc' if k == 2 else 1.0}" for k, i in enumerate(c.iid)))
    status, line = _run_bad(base + ["--pheno", str(text), "--covar", str(covar)], capsys)
    assert status == 2 and "row 4" in line and "'y'" in line
    assert not list(tmp_path.glob("bad*")) and not list(tmp_path.glob(".bad*"))


def test_loco_file_must_cover_tested_chromosomes(cohort, tmp_path, capsys):
    c, pheno, covar, *_ = cohort
    loco = write_table(tmp_path / "loco.tsv", c.iid, {f"y{j}:1": np.zeros(len(c.iid)) for j in range(4)})
    status, line = _run_bad(["gwas", "--bfile", str(c.prefix), "--pheno", str(pheno), "--covar", str(covar),
                             "--loco", str(loco), "--out", str(tmp_path / "l")], capsys)
    assert status == 2 and "chromosome(s) 2, 3" in line
    # Zero predictions on the tested chromosome change nothing.
    zero = run_gwas(c.prefix, pheno, covar, loco=loco, chroms=["1"])
    plain = run_gwas(c.prefix, pheno, covar, chroms=["1"])
    np.testing.assert_allclose(zero.beta, plain.beta, rtol=1e-12)


def test_per_chromosome_parts_gather_to_the_single_scan(cohort, tmp_path):
    """Scatter by chromosome (one part each, plus a chromosome with nothing to test), gather, and
    get byte-identical per-phenotype tables and the same combined table (joint test included)."""
    c, pheno, covar, *_ = cohort
    whole = tmp_path / "whole"
    assert main(["gwas", "--bfile", str(c.prefix), "--pheno", str(pheno), "--covar", str(covar),
                 "--out", str(whole), "--chunk-size", "64"]) == 0
    parts = []
    for chrom in ["1", "2", "3", "9"]:
        part = tmp_path / f"part.chr{chrom}.parquet"
        assert main(["gwas", "--bfile", str(c.prefix), "--pheno", str(pheno), "--covar", str(covar),
                     "--part-out", str(part), "--chrom", chrom, "--chunk-size", "64"]) == 0
        parts.append(str(part))
    gathered = tmp_path / "gathered"
    folder = tmp_path / "sumstats"
    assert main(["gwas-gather", "--parts", *parts, "--out", str(gathered),
                 "--per-pheno-dir", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"y{j}.{ext}" for j in range(4) for ext in ("parquet", "tsv.gz"))
    for j in range(4):
        assert pl.read_parquet(folder / f"y{j}.parquet").equals(pl.read_parquet(f"{whole}.y{j}.parquet"))
        assert (folder / f"y{j}.tsv.gz").read_bytes() == Path(f"{whole}.y{j}.tsv.gz").read_bytes()
    assert pl.read_parquet(f"{gathered}.combined.parquet").equals(pl.read_parquet(f"{whole}.combined.parquet"))
    assert not Path(f"{gathered}.summary.tsv").exists()
    assert not list(tmp_path.glob(".*tmp*"))


def test_gather_rejects_parts_of_different_scans(cohort, tmp_path, capsys):
    c, pheno, covar, *_ = cohort
    one = tmp_path / "a.parquet"
    two = tmp_path / "b.parquet"
    assert main(["gwas", "--bfile", str(c.prefix), "--pheno", str(pheno), "--covar", str(covar),
                 "--part-out", str(one), "--chrom", "1"]) == 0
    assert main(["gwas", "--bfile", str(c.prefix), "--pheno", str(pheno), "--covar", str(covar),
                 "--pheno-cols", "y0", "y1", "--part-out", str(two), "--chrom", "2"]) == 0
    status, line = _run_bad(["gwas-gather", "--parts", str(one), str(two), "--out",
                             str(tmp_path / "g"), "--per-pheno-dir", str(tmp_path / "d")], capsys)
    assert status == 2 and "b.parquet" in line and "disagrees" in line
    not_a_part = write_table(tmp_path / "x.tsv", c.iid, {"y": np.zeros(len(c.iid))})
    status, line = _run_bad(["gwas-gather", "--parts", str(not_a_part), "--out", str(tmp_path / "g")], capsys)
    assert status == 2 and "x.tsv" in line
    assert not list(tmp_path.glob("g*")) and not (tmp_path / "d").exists()


def test_same_inputs_give_identical_bytes(cohort, tmp_path):
    """Determinism: two scans of the same inputs write byte-identical files (gzip without mtime)."""
    c, pheno, covar, *_ = cohort
    first = write_gwas_outputs(run_gwas(c.prefix, pheno, covar), tmp_path / "a")
    second = write_gwas_outputs(run_gwas(c.prefix, pheno, covar), tmp_path / "b")
    for key in first:
        assert first[key].read_bytes() == second[key].read_bytes(), key


def test_chi2_median_constant():
    from scipy.special import chdtri

    assert CHI2_1DF_MEDIAN == chdtri(1, 0.5)


# --------------------------------------------------------------------------- the joint test


def _manova_wilks(y: np.ndarray, covariates: np.ndarray, g: np.ndarray) -> tuple[float, float, float, float]:
    """statsmodels' MANOVA of ``y (n, k)`` on [1, covariates, g]: Wilks' lambda F, its p, df."""
    from statsmodels.multivariate.manova import MANOVA

    exog = np.column_stack([np.ones(len(g)), covariates, g])
    names = ["const"] + [f"c{i}" for i in range(covariates.shape[1])] + ["g"]
    hypothesis = np.zeros((1, exog.shape[1]))
    hypothesis[0, -1] = 1.0
    test = MANOVA(y, pd.DataFrame(exog, columns=names)).mv_test([("g", hypothesis)])
    row = test.results["g"]["stat"].loc["Wilks' lambda"]
    return float(row["F Value"]), float(row["Pr > F"]), float(row["Num DF"]), float(row["Den DF"])


@pytest.mark.parametrize("device", ["cpu", "cpu-torch"])
def test_joint_test_equals_statsmodels_manova(cohort, device):
    """Mean-imputed genotypes with 2% missing calls, three covariates, four phenotypes: F, p and
    df of the joint test are Wilks' lambda's of statsmodels' MANOVA."""
    c, pheno, covar, y, cov, keep = cohort
    result = run_gwas(c.prefix, pheno, covar, chunk_size=61, device=device)
    g = mean_imputed(c.genotypes[:, keep])
    assert result.df_joint == keep.sum() - 4 - 4
    rng = np.random.default_rng(1)
    for v in [17, 333, *rng.integers(0, g.shape[0], 12).tolist()]:
        f, p, df_num, df_den = _manova_wilks(y[keep], cov[keep], g[v])
        assert (df_num, df_den) == (4, result.df_joint)
        assert result.f_joint[v] == pytest.approx(f, rel=1e-8)
        assert result.log10p_joint[v] == pytest.approx(-np.log10(p), rel=1e-8, abs=1e-10)
    assert result.log10p_joint[17] > 5


def test_joint_test_uses_the_loco_adjusted_phenotypes(cohort, tmp_path):
    """With LOCO predictions the joint test is the MANOVA of y − L_chrom, with the same df."""
    c, pheno, covar, y, cov, keep = cohort
    rng = np.random.default_rng(4)
    n = len(c.iid)
    loco = {f"y{j}:{chrom}": 0.3 * rng.standard_normal(n) for j in range(4) for chrom in "123"}
    path = write_table(tmp_path / "loco.tsv", c.iid, loco)
    result = run_gwas(c.prefix, pheno, covar, loco=path)
    g = mean_imputed(c.genotypes[:, keep])
    chrom = c.bim["CHROM"].to_numpy()
    for v in (5, 250, 480):
        adjusted = y[keep] - np.column_stack([loco[f"y{j}:{chrom[v]}"][keep] for j in range(4)])
        f, p, _, _ = _manova_wilks(adjusted, cov[keep], g[v])
        assert result.f_joint[v] == pytest.approx(f, rel=1e-8)
        assert result.log10p_joint[v] == pytest.approx(-np.log10(p), rel=1e-8, abs=1e-10)


def test_joint_test_of_one_phenotype_is_the_t_test(cohort):
    c, pheno, covar, *_ = cohort
    result = run_gwas(c.prefix, pheno, covar, pheno_cols=["y1"])
    np.testing.assert_allclose(result.f_joint, (result.beta[:, 0] / result.se[:, 0]) ** 2, rtol=1e-9)
    np.testing.assert_allclose(result.log10p_joint, result.log10p[:, 0], rtol=1e-9, atol=1e-10)


def test_joint_test_is_na_for_dependent_phenotypes_or_too_few_people(cohort, tmp_path, caplog):
    c, pheno, covar, y, cov, keep = cohort
    caplog.set_level(logging.WARNING)
    twice = write_table(tmp_path / "twice.tsv", c.iid, {"a": y[:, 0], "b": y[:, 1], "a2": 2 * y[:, 0] - y[:, 1]})
    result = run_gwas(c.prefix, twice, covar)
    assert np.isnan(result.f_joint).all() and np.isnan(result.log10p_joint).all()
    assert np.isfinite(result.log10p).all() and "linearly dependent" in caplog.text
    few = np.flatnonzero(keep)[:9]
    rng = np.random.default_rng(0)
    wide = write_table(tmp_path / "wide.tsv", c.iid[few], {f"y{j}": rng.standard_normal(9) for j in range(6)})
    result = run_gwas(c.prefix, wide, covar)
    assert result.df_joint == 9 - 4 - 6 and np.isnan(result.log10p_joint).all()
    assert "leave -1 df" in caplog.text


def test_joint_p_values_are_uniform_under_the_null(tmp_path):
    """20,000 independent null variants (1% missing calls, mean-imputed), five correlated normal
    phenotypes and two covariates: the joint p-values are uniform (KS test) and λGC is 1 ± 0.1."""
    from scipy.stats import kstest

    c = simulate_cohort(tmp_path / "g", n_samples=400, n_chrom=2, snps_per_chrom=10_000, ld_rho=0.0,
                        fst=0.01, missing_rate=0.01, seed=31)
    rng = np.random.default_rng(32)
    n = len(c.iid)
    cov = np.column_stack([rng.standard_normal(n), rng.uniform(20, 70, n)])
    y = rng.standard_normal((n, 5)) @ rng.standard_normal((5, 5)) + 0.05 * cov[:, 1:]
    pheno = write_table(tmp_path / "p.tsv", c.iid, {f"y{j}": y[:, j] for j in range(5)})
    covar = write_table(tmp_path / "c.tsv", c.iid, {"c1": cov[:, 0], "age": cov[:, 1]})
    result = run_gwas(c.prefix, pheno, covar)
    joint = result.log10p_joint[np.isfinite(result.log10p_joint)]
    assert joint.size > 19_900
    assert kstest(10.0 ** -joint, "uniform").pvalue > 1e-3
    assert 0.9 <= lambda_gc(joint) <= 1.1


def test_summary_bad_inputs(cohort, tmp_path, capsys):
    c, pheno, covar, *_ = cohort
    paths = write_gwas_outputs(run_gwas(c.prefix, pheno, covar, chroms=["1"]), tmp_path / "a",
                               per_pheno_dir=tmp_path / "dir", formats=["parquet"])
    paths["y2.parquet"].unlink()
    status, line = _run_bad(["gwas-summary", "--sumstats-dir", str(tmp_path / "dir"), "--combined",
                             str(paths["combined.parquet"]), "--out", str(tmp_path / "s.tsv")], capsys)
    assert status == 2 and "'y2'" in line and "y2.parquet" in line
    status, line = _run_bad(["gwas-summary", "--sumstats-dir", str(tmp_path / "dir"), "--combined",
                             str(paths["y0.parquet"]), "--out", str(tmp_path / "s.tsv")], capsys)
    assert status == 2 and "y0.parquet" in line and "not an OUT.combined.parquet" in line
    with pytest.raises(SystemExit):
        main(["gwas-summary", "--sumstats-dir", str(tmp_path / "dir"), "--combined",
              str(paths["combined.parquet"]), "--threshold", "0", "--out", str(tmp_path / "s.tsv")])
    assert not (tmp_path / "s.tsv").exists()


def _parse(command: str, argv: list[str]):
    """The arguments of ``contig COMMAND ARGV`` as its own parser reads them (nothing runs)."""
    import argparse
    import importlib

    from contig.cli import COMMANDS

    parser = argparse.ArgumentParser()
    importlib.import_module(f"contig.cli.{COMMANDS[command][0]}").add_arguments(parser)
    return parser.parse_args(argv)


def test_gwas_command_starts_numpy_with_single_threaded_openblas():
    """`contig gwas` (its workers are its parallelism) sets OPENBLAS_NUM_THREADS=1 before NumPy
    loads, unless the environment sets it; other commands leave it alone."""
    code = ("import os, sys\nfrom contig.cli import main\ntry:\n    main([sys.argv[1], '--help'])\n"
            "except SystemExit:\n    pass\nprint(os.environ.get('OPENBLAS_NUM_THREADS'))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    for command, environment, expected in (("gwas", env, "1"), ("gwas-summary", env, "None"),
                                           ("gwas", {**env, "OPENBLAS_NUM_THREADS": "3"}, "3")):
        out = subprocess.run([sys.executable, "-c", code, command], env=environment, capture_output=True,
                             text=True, check=True)
        assert out.stdout.strip().splitlines()[-1] == expected, command


def test_command_defaults_are_the_library_defaults():
    from contig.gwas.association import SCAN_DEFAULTS
    from contig.gwas.stats import GENOME_WIDE
    from contig.gwas.summary import SUMMARY_DEFAULTS
    from contig.gwas.sumstats import DEFAULT_P_COLUMN, PER_PHENO_FORMATS

    args = _parse("gwas", ["--bfile", "b", "--pheno", "p", "--covar", "c", "--out", "o"])
    assert (args.threads, args.chunk_size, args.device, args.dtype, args.maf, tuple(args.formats)) == (
        SCAN_DEFAULTS.threads, SCAN_DEFAULTS.chunk_size, SCAN_DEFAULTS.device, SCAN_DEFAULTS.dtype,
        SCAN_DEFAULTS.maf, PER_PHENO_FORMATS)
    args = _parse("gwas-gather", ["--parts", "a", "--out", "o"])
    assert (args.threads, tuple(args.formats)) == (SCAN_DEFAULTS.threads, PER_PHENO_FORMATS)
    args = _parse("gwas-summary", ["--sumstats-dir", "d", "--combined", "c", "--out", "o"])
    assert args.threshold == SUMMARY_DEFAULTS.threshold == GENOME_WIDE == 5e-8
    args = _parse("gwas-plots", ["--sumstats", "s", "--out", "o"])
    assert (args.threshold, args.p_column) == (GENOME_WIDE, DEFAULT_P_COLUMN)
