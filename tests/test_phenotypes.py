"""Phenotypes from embeddings and the GWAS covariate file: oracles sklearn, statsmodels, formulas."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from scipy.stats import norm
from sklearn.decomposition import PCA

from contig.cli import main
from contig.phenotypes import build_covariates, make_phenotypes, rank_inverse_normal


def _embeddings(tmp_path, n=150, d=12, seed=0):
    rng = np.random.default_rng(seed)
    iid = [f"p{i}" for i in range(n)]
    values = rng.standard_normal((n, d)) @ rng.standard_normal((d, d))
    table = pl.DataFrame({"IID": iid, **{f"dim_{k:04d}": values[:, k] for k in range(d)}})
    table.write_parquet(tmp_path / "emb.parquet")
    cov = rng.standard_normal((n, 2))
    covar = pl.DataFrame({"IID": iid, "age": cov[:, 0], "PC1": cov[:, 1]})
    covar = covar.with_columns(pl.when(pl.col("IID") == "p3").then(None).otherwise(pl.col("age")).alias("age"))
    covar.write_csv(tmp_path / "covar.tsv", separator="\t", null_value="NA")
    return iid, values, cov, tmp_path / "emb.parquet", tmp_path / "covar.tsv"


def test_rank_inverse_normal_is_blom_with_average_ties():
    x = np.array([[3.0], [1.0], [2.0], [2.0], [10.0]])
    expected = norm.ppf((np.array([4, 1, 2.5, 2.5, 5]) - 0.375) / (5 + 0.25))
    np.testing.assert_allclose(rank_inverse_normal(x)[:, 0], expected, rtol=1e-12)


def test_pcs_adjusted_and_transformed(tmp_path):
    iid, values, cov, emb, covar = _embeddings(tmp_path)
    result = make_phenotypes(emb, covar, n_pcs=3, rint=False)
    keep = np.array([i != "p3" for i in iid])
    assert result.counts["missing_covariate"] == 1 and list(result.iid) == [i for i in iid if i != "p3"]
    scores = PCA(3).fit_transform(values[keep])
    design = sm.add_constant(cov[keep])
    for k in range(3):
        expected = sm.OLS(scores[:, k], design).fit().resid
        sign = np.sign(expected @ result.values[:, k])
        np.testing.assert_allclose(sign * result.values[:, k], expected, atol=1e-9)
    ranked = make_phenotypes(emb, covar, n_pcs=3)
    np.testing.assert_allclose(ranked.values, rank_inverse_normal(result.values), atol=1e-12)


def test_cli_all_dims_and_pcs(tmp_path):
    _, values, _, emb, covar = _embeddings(tmp_path)
    assert main(["phenotypes", "--embeddings", str(emb), "--covar", str(covar), "--out",
                 str(tmp_path / "all"), "--all-dims"]) == 0
    table = pl.read_csv(tmp_path / "all.pheno.tsv", separator="\t")
    assert table.columns == ["IID"] + [f"dim_{k:04d}" for k in range(values.shape[1])]
    assert table.height == 149
    assert main(["phenotypes", "--embeddings", str(emb), "--covar", str(covar), "--out",
                 str(tmp_path / "pcs"), "--n-pcs", "4"]) == 0
    assert pl.read_csv(tmp_path / "pcs.pheno.tsv", separator="\t").columns == ["IID", "PC1", "PC2", "PC3", "PC4"]
    variance = pl.read_csv(tmp_path / "pcs.pca_variance.tsv", separator="\t")
    assert variance["EXPLAINED_RATIO"].is_sorted(descending=True)


def _sheet(tmp_path, rows):
    path = tmp_path / "cov.tsv"
    path.write_text("IID\tage\tsex\tbatch\n" + "\n".join("\t".join(r) for r in rows) + "\n")
    return path


def _eigenvec(tmp_path, iids):
    path = tmp_path / "pca.eigenvec"
    rng = np.random.default_rng(1)
    path.write_text("#FID\tIID\tPC1\tPC2\n" + "".join(
        f"{i}\t{i}\t{rng.standard_normal():.6f}\t{rng.standard_normal():.6f}\n" for i in iids))
    return path


def test_build_covariates_one_hot_and_pcs(tmp_path):
    rows = [("a", "40", "F", "b2"), ("b", "51.5", "M", "b1"), ("c", "60", "F", "b3"), ("d", "33", "M", "b1")]
    table = build_covariates(_sheet(tmp_path, rows), ["age"], ["sex", "batch"],
                             _eigenvec(tmp_path, ["d", "c", "b", "a", "zz"]))
    assert table.columns == ["IID", "age", "sex_M", "batch_b2", "batch_b3", "PC1", "PC2"]
    assert table["sex_M"].to_list() == [0.0, 1.0, 0.0, 1.0]
    assert table["batch_b2"].to_list() == [1.0, 0.0, 0.0, 0.0]
    assert table["IID"].to_list() == ["a", "b", "c", "d"]


@pytest.mark.parametrize("rows,needle", [
    ([("a", "40", "F", "x"), ("b", "NA", "M", "x"), ("c", "3", "F", "y")], "row 3, column 'age': missing"),
    ([("a", "40", "F", "x"), ("b", "old", "M", "x"), ("c", "3", "F", "y")], "row 3, column 'age': value 'old'"),
    ([("a", "40", "F", "x"), ("b", "41", "F", "y"), ("c", "3", "F", "y")], "column 'sex'"),
    ([("a", "40", "F", "x"), ("b", "40", "M", "y"), ("c", "40", "F", "y")], "column 'age': covariate is constant"),
])
def test_covariates_cli_errors(tmp_path, capsys, rows, needle):
    sheet = _sheet(tmp_path, rows)
    status = main(["covariates", "--covariates", str(sheet), "--quantitative", "age", "--categorical", "sex",
                   "batch", "--eigenvec", str(_eigenvec(tmp_path, ["a", "b", "c"])), "--out",
                   str(tmp_path / "out.tsv")])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2 and "cov.tsv" in line and needle in line, line
    assert not (tmp_path / "out.tsv").exists()


def test_spectrum_is_the_covariance_eigenvalue_share_and_is_drawn(tmp_path):
    _, values, _, emb, covar = _embeddings(tmp_path)
    result = make_phenotypes(emb, covar, n_pcs=3)
    kept = values[np.array([True] * 3 + [False] + [True] * (len(values) - 4))]
    eigen = np.sort(np.linalg.eigvalsh(np.cov(kept, rowvar=False)))[::-1]
    np.testing.assert_allclose(result.spectrum, eigen / eigen.sum(), atol=1e-12)
    np.testing.assert_allclose(result.spectrum[:3], result.pca.explained_ratio, rtol=1e-10)
    assert main(["phenotypes", "--embeddings", str(emb), "--covar", str(covar), "--out",
                 str(tmp_path / "s"), "--all-dims"]) == 0
    assert (tmp_path / "s.spectrum.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
