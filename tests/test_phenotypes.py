"""Phenotypes from embeddings and the GWAS covariate files (eye as a covariate where mixed): oracles
sklearn, statsmodels, formulas."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from scipy.stats import norm
from sklearn.decomposition import PCA

from contig.cli import main
from contig.gwas.phenotypes import build_covariates, make_phenotypes, rank_inverse_normal, read_embeddings


def _embeddings(tmp_path, n=150, d=12, seed=0, eye=None):
    rng = np.random.default_rng(seed)
    iid = [f"p{i}" for i in range(n)]
    values = rng.standard_normal((n, d)) @ rng.standard_normal((d, d))
    table = pl.DataFrame({"IID": iid, **({} if eye is None else {"EYE": eye}),
                          **{f"dim_{k:04d}": values[:, k] for k in range(d)}})
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


# --------------------------------------------------------------------------- eye as a covariate


def test_unmixed_eye_is_tolerated_and_the_covariate_file_is_copied(tmp_path):
    """A single EYE value: the same phenotypes as without the column, OUT.covar.tsv = --covar."""
    _, values, _, plain, covar = _embeddings(tmp_path)
    (tmp_path / "plain.parquet").write_bytes(plain.read_bytes())
    _, _, _, with_eye, _ = _embeddings(tmp_path, eye=["left"] * 150)
    assert main(["phenotypes", "--embeddings", str(with_eye), "--covar", str(covar), "--out",
                 str(tmp_path / "eye"), "--n-pcs", "3"]) == 0
    assert main(["phenotypes", "--embeddings", str(tmp_path / "plain.parquet"), "--covar", str(covar),
                 "--out", str(tmp_path / "plain"), "--n-pcs", "3"]) == 0
    assert (tmp_path / "eye.pheno.tsv").read_bytes() == (tmp_path / "plain.pheno.tsv").read_bytes()
    assert (tmp_path / "eye.covar.tsv").read_bytes() == covar.read_bytes()
    assert (tmp_path / "plain.covar.tsv").read_bytes() == covar.read_bytes()
    iid, read, dims = read_embeddings(with_eye)
    np.testing.assert_array_equal(read, values)
    assert dims[0] == "dim_0000" and len(dims) == 12


def test_mixed_eyes_adjust_the_phenotypes_and_join_the_covariate_file(tmp_path):
    """Left and right eyes: EYE_RIGHT (0/1) adjusts the phenotypes (statsmodels residuals on
    [1, age, PC1, EYE_RIGHT]) and is added to OUT.covar.tsv for the people kept."""
    eye = ["right" if i % 3 == 0 else "left" for i in range(150)]
    iid, values, cov, emb, covar = _embeddings(tmp_path, eye=eye)
    right = (np.array(eye) == "right").astype(float)
    shifted = pl.read_parquet(emb).with_columns(pl.col("dim_0000") + 3.0 * pl.Series(right))
    shifted.write_parquet(emb)
    result = make_phenotypes(emb, covar, n_pcs=None, rint=False)
    keep = np.array([i != "p3" for i in iid])
    assert result.eye_counts == {"left": int((right[keep] == 0).sum()), "right": int(right[keep].sum())}
    design = sm.add_constant(np.column_stack([cov[keep], right[keep]]))
    raw = shifted.select(pl.selectors.starts_with("dim_")).to_numpy()[keep]
    np.testing.assert_allclose(raw[:, 1:], values[keep, 1:])
    for k in (0, 5):
        np.testing.assert_allclose(result.values[:, k], sm.OLS(raw[:, k], design).fit().resid, atol=1e-9)
    assert main(["phenotypes", "--embeddings", str(emb), "--covar", str(covar), "--out",
                 str(tmp_path / "mixed"), "--n-pcs", "2"]) == 0
    written = pl.read_csv(tmp_path / "mixed.covar.tsv", separator="\t", null_values="NA")
    original = pl.read_csv(covar, separator="\t", null_values="NA")
    assert written.columns == original.columns + ["EYE_RIGHT"]
    assert written.select(original.columns).equals(original)
    expected = [None if i == "p3" else int(e == "right") for i, e in zip(iid, eye)]
    assert written["EYE_RIGHT"].to_list() == expected


def test_pcs_are_fitted_within_eye_so_an_eye_offset_is_no_pc(tmp_path):
    """A large right-eye offset along one direction would be PC1 of the pooled embeddings; fitted
    on embeddings centred within eye, PC1 is the direction of real variation between people."""
    eye = ["right" if i % 3 == 0 else "left" for i in range(150)]
    iid, values, cov, emb, covar = _embeddings(tmp_path, eye=eye)
    right = (np.array(eye) == "right").astype(float)
    table = pl.read_parquet(emb)
    dims = [c for c in table.columns if c.startswith("dim_")]
    trait = np.random.default_rng(3).normal(size=150) * 20.0
    table = table.with_columns(pl.col(dims[1]) + pl.Series(trait),
                               pl.col(dims[2]) + 60.0 * pl.Series(right))
    table.write_parquet(emb)
    result = make_phenotypes(emb, covar, n_pcs=2, rint=False)
    keep = np.array([i != "p3" for i in iid])
    loading = result.pca.loadings[:, 0]
    assert abs(loading[1]) > 0.9 and abs(loading[2]) < 0.2, loading[:3]
    raw = table.select(dims).to_numpy()[keep]
    pooled = np.linalg.svd(raw - raw.mean(0), full_matrices=False)[2][0]
    assert abs(pooled[2]) > 0.9  # without centring within eye, PC1 is the eye offset
    # the same PCs as a PCA of the embeddings regressed on the eye indicator
    within = raw - sm.OLS(raw, sm.add_constant(right[keep])).fit().fittedvalues
    top = np.linalg.svd(within - within.mean(0), full_matrices=False)[2][0]
    assert abs(abs(top @ loading) - 1) < 1e-9


def test_three_eye_levels_and_bad_eye_values(tmp_path, capsys):
    eye = ["left", "right", "mean"] * 50
    _, _, _, emb, covar = _embeddings(tmp_path, eye=eye)
    result = make_phenotypes(emb, covar, n_pcs=2)
    assert list(result.eye_covariates) == ["EYE_RIGHT", "EYE_MEAN"]
    kept = [e for i, e in enumerate(eye) if i != 3]
    np.testing.assert_array_equal(result.eye_covariates["EYE_MEAN"], [e == "mean" for e in kept])
    _, _, _, bad, _ = _embeddings(tmp_path, eye=["left"] * 7 + ["both"] + ["right"] * 142)
    status = main(["phenotypes", "--embeddings", str(bad), "--covar", str(covar), "--out", str(tmp_path / "b")])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2 and "row 9" in line and "'EYE'" in line and "'both'" in line
    clash = tmp_path / "clash.tsv"
    clash.write_text(covar.read_text().replace("IID\tage\tPC1", "IID\tage\tEYE_RIGHT"))
    _, _, _, mixed, _ = _embeddings(tmp_path, eye=["left", "right"] * 75)
    status = main(["phenotypes", "--embeddings", str(mixed), "--covar", str(clash), "--out", str(tmp_path / "c")])
    assert status == 2 and "EYE_RIGHT" in capsys.readouterr().err
    assert not list(tmp_path.glob("b.*")) and not list(tmp_path.glob("c.*"))


def test_cli_refuses_zero_pcs(tmp_path, capsys):
    _, _, _, emb, covar = _embeddings(tmp_path)
    with pytest.raises(SystemExit):
        main(["phenotypes", "--embeddings", str(emb), "--covar", str(covar), "--out", str(tmp_path / "z"),
              "--n-pcs", "0"])
    assert "--n-pcs" in capsys.readouterr().err


def test_command_defaults_are_the_library_defaults():
    import argparse

    from contig.cli.phenotypes import add_arguments
    from contig.gwas.phenotypes import PHENOTYPE_DEFAULTS

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--embeddings", "e", "--covar", "c", "--out", "o"])
    assert (args.n_pcs, not args.no_rint) == (PHENOTYPE_DEFAULTS.n_pcs, PHENOTYPE_DEFAULTS.rint)
