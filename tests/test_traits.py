"""Trait decodability: cross-validated ridge vs scikit-learn and brute-force leave-one-out refits;
the `contig probes --traits` command and its bad inputs."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from helpers.probes import correlated, write_probe_inputs, write_traits
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import PredefinedSplit, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from contig.cli import main
from contig.core.errors import InputError
from contig.evaluate.inputs import Traits, read_traits
from contig.evaluate.linear import select_penalty
from contig.evaluate.traits import (
    TraitSettings,
    balanced_random_folds,
    decode_traits,
    out_of_fold_r2,
    ridge_cv_predict,
    ridge_loo_mse,
    spectral_basis,
    trait_folds,
)


def _args(paths, labels, out, *extra):
    return ["probes", "--embeddings", f"signal={paths['signal']}", "--embeddings",
            f"noise={paths['noise']}", "--labels", str(labels), "--out", str(out), *extra]



def _sklearn_out_of_fold(x, y, folds, alpha):
    """The oracle: scaler fitted on the training folds, then Ridge(alpha) with an intercept."""
    model = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
    return cross_val_predict(model, x, y, cv=PredefinedSplit(folds))


@pytest.mark.parametrize("n,p,alpha", [(200, 10, 1.0), (200, 10, 300.0), (40, 60, 0.5)])
def test_ridge_out_of_fold_predictions_equal_sklearn_cross_val_predict(n, p, alpha):
    rng = np.random.default_rng(n + p)
    x = correlated(rng, n, p) * rng.uniform(0.1, 20, p)
    x[:, 3] = 7.0  # a constant feature: centred only, in both
    y = np.column_stack([x[:, :3] @ [0.2, -0.1, 0.05] + rng.normal(size=n), rng.normal(size=n)])
    folds = balanced_random_folds(n, 5, rng)
    predicted, chosen = ridge_cv_predict(x, y, folds, [alpha])
    assert (chosen == alpha).all() and chosen.shape == (5, 2)
    for t in range(2):
        expected = _sklearn_out_of_fold(x, y[:, t], folds, alpha)
        np.testing.assert_allclose(predicted[:, t], expected, rtol=0, atol=1e-8)
        assert out_of_fold_r2(y[:, t], predicted[:, t]) == pytest.approx(
            r2_score(y[:, t], expected), abs=1e-8)


def _brute_force_loo_mse(x, y, alphas):
    """Leave each row out, refit Ridge (intercept unpenalized) on the others, predict it."""
    errors = np.zeros(len(alphas))
    for a, alpha in enumerate(alphas):
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            fit = Ridge(alpha=alpha).fit(x[keep], y[keep])
            errors[a] += (y[i] - fit.predict(x[i:i + 1])[0]) ** 2
    return errors / len(y)


@pytest.mark.parametrize("n,p", [(50, 20), (15, 30)])
def test_closed_form_leave_one_out_equals_refits_and_picks_the_best_alpha(n, p):
    """A crafted problem whose best penalty is inside the grid: the brute-force minimum is chosen."""
    rng = np.random.default_rng(p)
    x = correlated(rng, n, p)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    y = x @ (rng.normal(size=p) * 0.15) + rng.normal(size=n)
    alphas = 10.0 ** np.linspace(-2, 4, 25)
    z, eig, _ = spectral_basis(x)
    ours = ridge_loo_mse(z, eig, (y - y.mean())[:, None], alphas)[:, 0]
    expected = _brute_force_loo_mse(x, y, alphas)
    np.testing.assert_allclose(ours, expected, rtol=1e-9)
    best = int(np.argmin(expected))
    assert 0 < best < len(alphas) - 1  # the crafted optimum is interior
    assert select_penalty(ours[:, None])[0] == best


def test_alpha_chosen_in_each_fold_equals_sklearn_ridgecv():
    rng = np.random.default_rng(4)
    n, p = 150, 12
    x = correlated(rng, n, p)
    y = x @ (rng.normal(size=p) * 0.1) + rng.normal(size=n)
    folds = balanced_random_folds(n, 5, rng)
    alphas = 10.0 ** np.linspace(-1, 4, 21)
    _, chosen = ridge_cv_predict(x, y, folds, alphas)
    for k in range(5):
        train = folds != k
        scaled = StandardScaler().fit_transform(x[train])
        assert chosen[k, 0] == RidgeCV(alphas=alphas).fit(scaled, y[train]).alpha_
    assert ((chosen > alphas[0]) & (chosen < alphas[-1])).all()  # not a grid-edge artefact


def test_ties_in_leave_one_out_error_go_to_the_larger_alpha():
    mse = np.array([[1.0, 2.0], [0.5, 2.0], [0.5, 3.0]])
    assert select_penalty(mse).tolist() == [2, 1]


def test_planted_trait_gets_its_r2_and_a_noise_trait_about_zero():
    rng = np.random.default_rng(7)
    n, p = 2000, 20
    x = correlated(rng, n, p)
    signal = x @ rng.normal(size=p)
    planted = signal / signal.std() + rng.normal(size=n)  # true R² = 1/2
    noise = rng.normal(size=n)
    folds = balanced_random_folds(n, 5, rng)
    predicted, chosen = ridge_cv_predict(x, np.column_stack([planted, noise]), folds,
                                         10.0 ** np.arange(-1, 8.5, 0.5))
    r2 = out_of_fold_r2(np.column_stack([planted, noise]), predicted)
    assert abs(r2[0] - 0.5) < 0.04
    assert -0.02 < r2[1] < 0.01
    assert np.median(chosen[:, 1]) > np.median(chosen[:, 0])  # noise is shrunk harder


def test_folds_are_balanced_and_seeded():
    folds = trait_folds(103, 5, seed=3)
    assert np.bincount(folds).tolist() == [21, 21, 21, 20, 20]
    assert np.array_equal(folds, trait_folds(103, 5, seed=3))
    assert not np.array_equal(folds, trait_folds(103, 5, seed=4))


def test_r2_is_nan_for_a_constant_trait():
    assert np.isnan(out_of_fold_r2(np.ones(5), np.ones(5)))


def test_read_traits_keeps_numeric_columns(tmp_path):
    path = tmp_path / "traits.tsv"
    path.write_text("IID\tpopulation\tsize\tempty\twidth\n"
                    "A\tPOP1\t1.5\tNA\t2\nB\tPOP2\t-0.5\t\tNA\nC\tPOP1\t3e-1\tNA\t1\n")
    traits = read_traits(path)
    assert traits.names == ["size", "width"]
    assert traits.ignored == {"population": "not numeric (row 2: 'POP1')", "empty": "no values"}
    np.testing.assert_array_equal(traits.values, [[1.5, 2.0], [-0.5, np.nan], [0.3, 1.0]])
    assert read_traits(path, ["width"]).names == ["width"]


def test_trait_whose_people_sit_in_one_fold_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    iid = np.array([f"P{i:03d}" for i in range(100)])
    embeddings = {"m": (iid, rng.normal(size=(100, 4)))}
    values = rng.normal(size=(100, 2))
    values[trait_folds(100, 5, 0) != 0, 1] = np.nan  # only fold 0 people have a value
    traits = Traits(tmp_path / "t.tsv", iid, ["ok", "clustered"], values)
    with pytest.raises(InputError, match="fall almost all into one of the 5 folds") as error:
        decode_traits(embeddings, traits, TraitSettings(seed=0))
    assert error.value.column == "clustered"
    values[:, 1] = 1.0  # a constant trait: R² undefined, reported as missing
    table = decode_traits(embeddings, traits, TraitSettings(seed=0)).table
    assert table["r2"][0] is not None and table["r2"][1] is None


# ---------------------------------------------------------------------------------------------
# trait decodability: the command


def test_cli_traits_equal_sklearn_with_the_documented_folds(tmp_path, caplog):
    paths, labels, iid, signal, _ = write_probe_inputs(tmp_path)
    traits, size, width = write_traits(tmp_path, iid, signal)
    out = tmp_path / "out" / "eval"
    with caplog.at_level("INFO"):
        assert main(_args(paths, labels, out, "--fractions", "1", "--seeds", "1", "--l2", "1",
                          "--traits", str(traits), "--ridge-alphas", "10", "--seed", "2")) == 0
    log = caplog.text
    assert "trait sheet column population ignored: not numeric (row 2: 'POP1')" in log
    assert "signal: 299 people with embeddings; 0 of them have no row in" in log
    assert "2 trait rows have no embedding" in log  # P0299 (no signal embedding) and EXTRA
    assert "299 people have a trait row and embeddings from all 2 methods" in log
    assert "trait width: 1 people without a value dropped, 298 used in 5-fold" in log
    table = pl.read_csv(f"{out}.traits.tsv", separator="\t")
    assert table.columns == ["method", "trait", "n", "r2", "alpha_median"]
    assert table.select("method", "trait").rows() == [
        (m, t) for m in ("signal", "noise") for t in ("size", "noise", "width")]
    assert table["n"].to_list() == [299, 299, 298] * 2
    assert (table["alpha_median"] == 10.0).all()
    # the oracle: people sorted by IID (P0000..P0298), folds from trait_folds(299, 5, seed)
    folds = trait_folds(299, 5, 2)
    x = signal[:299]
    expected = r2_score(size[:299], _sklearn_out_of_fold(x, size[:299], folds, 10.0))
    got = table.filter(pl.col("method") == "signal", pl.col("trait") == "size")["r2"][0]
    assert got == pytest.approx(expected, abs=1e-8) and got > 0.5
    keep = iid[:299] != "P0007"
    expected = r2_score(width[:299][keep],
                        _sklearn_out_of_fold(x[keep], width[:299][keep], folds[keep], 10.0))
    got = table.filter(pl.col("method") == "signal", pl.col("trait") == "width")["r2"][0]
    assert got == pytest.approx(expected, abs=1e-8)
    noise_r2 = table.filter((pl.col("method") == "noise") | (pl.col("trait") == "noise"))["r2"]
    assert noise_r2.max() < 0.05
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "eval.png", "eval.summary.tsv", "eval.traits.png", "eval.traits.tsv",
        "eval.tsv"]
    assert (tmp_path / "out" / "eval.traits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_traits_alone_with_chosen_columns_and_default_grid(tmp_path, caplog):
    paths, _, iid, signal, _ = write_probe_inputs(tmp_path)
    traits, *_ = write_traits(tmp_path, iid, signal)
    out = tmp_path / "out" / "eval"
    args = ["probes", "--embeddings", f"signal={paths['signal']}", "--embeddings",
            f"noise={paths['noise']}", "--traits", str(traits), "--trait-columns", "size", "noise",
            "--out", str(out)]
    with caplog.at_level("INFO"):
        assert main(args) == 0
    table = pl.read_csv(f"{out}.traits.tsv", separator="\t")
    assert set(table["trait"]) == {"size", "noise"}
    # noise cannot be predicted: the largest penalty wins and is reported as at the grid's end
    assert "the largest ridge alpha (1e+08) was chosen in" in caplog.text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["eval.traits.png",
                                                                   "eval.traits.tsv"]
    first = (tmp_path / "out" / "eval.traits.tsv").read_bytes()
    assert main(args) == 0 and (tmp_path / "out" / "eval.traits.tsv").read_bytes() == first


@pytest.mark.parametrize("case,message", [
    ("no_numeric", "no numeric trait columns besides IID (ignored columns: population: not numeric"),
    ("no_shared", "no person has both a trait row and embeddings from every method"),
    ("named_text_column", "row 2, column 'population': value 'POP1' is not a number"),
    ("infinite", "row 4, column 'size': value 'inf' is not a finite number"),
    ("too_few", "column 'size': 6 people have a value and embeddings; 5-fold cross-validation "
                "needs at least 10"),
    ("nothing", "nothing to probe: give --labels"),
])
def test_bad_trait_input_one_line_exit_2_no_outputs(tmp_path, capsys, case, message):
    paths, labels, iid, signal, _ = write_probe_inputs(tmp_path, n=60)
    traits, *_ = write_traits(tmp_path, iid, signal)
    table = pl.read_csv(traits, separator="\t", infer_schema=False)
    extra = ["--traits", str(traits)]
    if case == "no_numeric":
        table = table.select("IID", "population")
    elif case == "no_shared":
        table = table.with_columns(("X" + pl.col("IID")).alias("IID"))
    elif case == "named_text_column":
        extra += ["--trait-columns", "size", "population"]
    elif case == "infinite":
        table = table.with_columns(pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("inf"))
                                   .otherwise(pl.col("size")).alias("size"))
    elif case == "too_few":
        table = table.head(6)
    elif case == "nothing":
        extra = []
    table.write_csv(traits, separator="\t")
    out = tmp_path / "out" / "eval"
    args = ["probes", "--embeddings", f"signal={paths['signal']}", "--embeddings",
            f"noise={paths['noise']}", "--out", str(out), *extra]
    if case != "nothing":
        args += ["--labels", str(labels), "--fractions", "1", "--seeds", "1", "--l2", "1"]  # fine
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("contig probes: error: ")
    assert message in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
