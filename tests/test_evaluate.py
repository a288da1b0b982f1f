"""Downstream probes: metrics and fits vs scikit-learn / statsmodels, splits, the CLI, bad input;
trait decodability: cross-validated ridge vs scikit-learn and brute-force leave-one-out refits."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.optimize import check_grad
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV
from sklearn.metrics import cohen_kappa_score, r2_score, roc_auc_score
from sklearn.model_selection import PredefinedSplit, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from statsmodels.miscmodels.ordinal_model import OrderedModel

from contig.cli import main
from contig.errors import InputError
from contig.evaluate import (
    SkipProbe,
    Traits,
    assign_folds,
    auroc,
    average_ranks,
    decode_traits,
    fit_logistic,
    fit_ordinal,
    label_rng,
    logistic_objective,
    ordinal_objective,
    out_of_fold_r2,
    probe_scores,
    quadratic_weighted_kappa,
    read_traits,
    ridge_cv_predict,
    ridge_loo_mse,
    select_alpha,
    spectral_basis,
    stratified_split,
    stratified_subsample,
    subsample_counts,
    trait_folds,
)

# ---------------------------------------------------------------------------------------------
# metrics


@pytest.mark.parametrize("seed", range(5))
def test_auroc_equals_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    y = rng.random(n) < rng.uniform(0.1, 0.6)
    y[:2] = [True, False]
    score = np.round(rng.normal(size=n) + y * rng.uniform(0, 2), int(rng.integers(0, 2)))  # many ties
    assert len(np.unique(score)) < n
    assert auroc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    np.testing.assert_allclose(average_ranks(score), rankdata(score, method="average"))


def test_auroc_edge_cases():
    assert auroc(np.array([True, False, True]), np.array([1.0, 1.0, 1.0])) == 0.5
    assert auroc(np.array([True, True, False]), np.array([3.0, 2.0, 1.0])) == 1.0
    assert auroc(np.array([False, False, True]), np.array([3.0, 2.0, 1.0])) == 0.0
    assert np.isnan(auroc(np.array([True, True]), np.array([1.0, 2.0])))


@pytest.mark.parametrize("seed", range(5))
def test_quadratic_kappa_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(30, 400)), int(rng.integers(3, 7))
    truth = rng.integers(0, k, n)
    predicted = np.clip(truth + rng.integers(-2, 3, n), 0, k - 2)  # never predicts the top class
    expected = cohen_kappa_score(truth, predicted, weights="quadratic", labels=list(range(k)))
    assert quadratic_weighted_kappa(truth, predicted, k) == pytest.approx(expected, abs=1e-12)


def test_kappa_of_constant_prediction_is_zero_and_perfect_is_one():
    truth = np.array([0, 1, 2, 3, 4, 4, 0])
    assert quadratic_weighted_kappa(truth, np.zeros_like(truth), 5) == pytest.approx(0.0)
    assert quadratic_weighted_kappa(truth, truth, 5) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# fits


def _correlated(rng, n, p):
    return rng.normal(size=(n, p)) @ rng.normal(size=(p, p)) + rng.normal(size=p)


@pytest.mark.parametrize("n,p,l2", [(200, 5, 1.0), (300, 8, 0.2), (40, 60, 2.0)])
def test_logistic_fit_equals_sklearn(n, p, l2):
    rng = np.random.default_rng(n + p)
    x = _correlated(rng, n, p)
    y = (x @ rng.normal(size=p) * 0.3 + rng.logistic(size=n) > 0.5).astype(int)
    ours = fit_logistic(x, y, l2)
    theirs = LogisticRegression(C=1 / l2, tol=1e-12, max_iter=100_000).fit(x, y)
    assert ours.converged
    np.testing.assert_allclose(ours.coef, theirs.coef_[0], atol=1e-5)
    assert ours.intercept == pytest.approx(theirs.intercept_[0], abs=1e-5)


def test_objective_gradients_equal_finite_differences():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 4))
    y_binary = rng.integers(0, 2, 50).astype(float)
    y_grade = rng.integers(0, 4, 50)
    penalty = np.array([0.5, 1.0, 2.0, 0.1])
    params = rng.normal(size=5) * 0.5
    assert check_grad(lambda q: logistic_objective(q, x, y_binary, penalty)[0],
                      lambda q: logistic_objective(q, x, y_binary, penalty)[1], params) < 1e-5
    params = np.concatenate([[-0.5, -0.3, 0.2], rng.normal(size=4) * 0.5])
    assert check_grad(lambda q: ordinal_objective(q, x, y_grade, 4, penalty)[0],
                      lambda q: ordinal_objective(q, x, y_grade, 4, penalty)[1], params) < 1e-5


def test_ordinal_fit_equals_statsmodels_without_penalty():
    rng = np.random.default_rng(11)
    n = 500
    x = rng.normal(size=(n, 3))
    latent = x @ np.array([1.0, -0.5, 0.25]) + rng.logistic(size=n)
    y = np.searchsorted([-1.0, 0.5, 1.5], latent)
    ours = fit_ordinal(x, y, 4, l2=0.0)
    model = OrderedModel(y, x, distr="logit")
    result = model.fit(method="bfgs", disp=False, maxiter=5000, gtol=1e-8)
    thresholds = model.transform_threshold_params(result.params)[1:-1]
    np.testing.assert_allclose(ours.coef, result.params[:3], atol=1e-6)
    np.testing.assert_allclose(ours.thresholds, thresholds, atol=1e-6)


def test_two_class_ordinal_fit_is_penalized_logistic_regression():
    """With two classes P(y = 1) = σ(x·w − θ): sklearn's logistic fit is the oracle of the penalty."""
    rng = np.random.default_rng(5)
    x = _correlated(rng, 150, 6)
    y = (x @ rng.normal(size=6) * 0.3 + rng.logistic(size=150) > 0).astype(int)
    ours = fit_ordinal(x, y, 2, l2=3.0)
    theirs = LogisticRegression(C=1 / 3.0, tol=1e-12, max_iter=100_000).fit(x, y)
    np.testing.assert_allclose(ours.coef, theirs.coef_[0], atol=1e-5)
    assert ours.thresholds[0] == pytest.approx(-theirs.intercept_[0], abs=1e-5)
    np.testing.assert_allclose(ours.probabilities(x).sum(axis=1), 1.0)


def _planted_grades(rng, n, p, signal):
    x = rng.normal(size=(n, p))
    latent = signal * (x @ np.linspace(1, -1, p)) + rng.logistic(size=n)
    return x, np.searchsorted(np.quantile(latent, [0.45, 0.7, 0.85, 0.95]), latent)


def test_ordinal_probe_recovers_planted_signal_and_not_noise():
    rng = np.random.default_rng(2)
    x, y = _planted_grades(rng, 1000, 10, signal=2.0)
    train, test = stratified_split(y, 0.3, rng)
    scores, converged, _ = probe_scores("ordinal", x[train], y[train], x[test], y[test], 5, 1.0)
    assert converged and scores["kappa_quadratic"] > 0.75 and scores["auroc_vs_lowest"] > 0.85
    noise = rng.permutation(y)
    scores, _, _ = probe_scores("ordinal", x[train], noise[train], x[test], noise[test], 5, 1.0)
    assert abs(scores["kappa_quadratic"]) < 0.12 and abs(scores["auroc_vs_lowest"] - 0.5) < 0.08


def test_ordinal_probe_scores_the_most_probable_grade_on_train_scaled_features():
    rng = np.random.default_rng(8)
    x, y = _planted_grades(rng, 400, 6, signal=0.7)
    x = x * rng.uniform(0.1, 10, 6) + rng.normal(0, 5, 6)
    train, test = stratified_split(y, 0.3, rng)
    scaler = StandardScaler().fit(x[train])
    fit = fit_ordinal(scaler.transform(x[train]), y[train], 5, l2=2.0)
    probabilities = fit.probabilities(scaler.transform(x[test]))
    scores, _, _ = probe_scores("ordinal", x[train], y[train], x[test], y[test], 5, 2.0)
    most_probable = probabilities.argmax(axis=1)
    assert not np.array_equal(most_probable, np.rint(probabilities @ np.arange(5)))
    assert scores["kappa_quadratic"] == pytest.approx(
        cohen_kappa_score(y[test], most_probable, weights="quadratic", labels=list(range(5))), abs=1e-12)
    assert scores["auroc_vs_lowest"] == pytest.approx(
        roc_auc_score(y[test] > 0, probabilities @ np.arange(5)), abs=1e-12)


# ---------------------------------------------------------------------------------------------
# splits and subsamples


def test_stratified_split_is_seeded_and_stratified():
    y = np.repeat([0, 1, 2], [100, 50, 10])
    train, test = stratified_split(y, 0.3, np.random.default_rng(1))
    again = stratified_split(y, 0.3, np.random.default_rng(1))
    other = stratified_split(y, 0.3, np.random.default_rng(2))
    np.testing.assert_array_equal(test, again[1])
    assert not np.array_equal(test, other[1])
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(y)))
    assert np.bincount(y[test]).tolist() == [30, 15, 3]


def test_subsample_counts_fraction_minimum_and_skips():
    assert subsample_counts(np.array([700, 200, 100]), 1.0, 2).tolist() == [700, 200, 100]
    counts = subsample_counts(np.array([700, 200, 100]), 0.1, 2)
    assert counts.sum() == 100 and counts.tolist() == [70, 20, 10]
    counts = subsample_counts(np.array([1100, 280]), 0.01, 3)
    assert counts.sum() == 14 and counts.min() >= 3  # round(13.8) people, the minority topped up
    with pytest.raises(SkipProbe, match="fewer than 3 classes x 2 per class"):
        subsample_counts(np.array([200, 30, 5]), 0.01, 2)
    with pytest.raises(SkipProbe, match="class 2 has 1 training people"):
        subsample_counts(np.array([200, 30, 1]), 1.0, 2)


def test_stratified_subsample_is_deterministic_per_label_and_stream():
    y = np.repeat([0, 1], [300, 60])
    first = stratified_subsample(y, 0.1, 2, 2, label_rng(0, "disease", 1, 0, 0))
    assert np.array_equal(first, stratified_subsample(y, 0.1, 2, 2, label_rng(0, "disease", 1, 0, 0)))
    assert not np.array_equal(first, stratified_subsample(y, 0.1, 2, 2, label_rng(0, "disease", 1, 0, 1)))
    assert np.bincount(y[first]).tolist() == [30, 6]


# ---------------------------------------------------------------------------------------------
# the command


def _write_inputs(tmp_path, n=300, p=8, seed=0):
    """Two methods (signal, noise) and labels disease (binary) and severity (grades 0-3)."""
    rng = np.random.default_rng(seed)
    iid = np.array([f"P{i:04d}" for i in range(n)])
    signal = rng.normal(size=(n, p))
    noise = rng.normal(size=(n, p))
    disease = (signal[:, 0] + 0.5 * rng.normal(size=n) > 0.6).astype(int)
    severity = np.searchsorted([0.0, 0.8, 1.6], signal[:, 1] + signal[:, 2] + 0.5 * rng.normal(size=n))
    order = rng.permutation(n)  # row order of one parquet must not matter
    paths = {}
    for name, values, rows in [("signal", signal, np.arange(n - 1)), ("noise", noise, order)]:
        table = pl.DataFrame({"IID": iid[rows], **{f"dim_{k:04d}": values[rows, k] for k in range(p)}})
        paths[name] = tmp_path / f"{name}.parquet"
        table.write_parquet(paths[name])
    labels = pl.DataFrame({"IID": list(iid) + ["EXTRA"], "disease": list(map(str, disease)) + ["1"],
                           "severity": [str(s) for s in severity] + ["2"]})
    labels = labels.with_columns(pl.when(pl.col("IID") == "P0005").then(None)
                                 .otherwise(pl.col("severity")).alias("severity"))
    labels.write_csv(tmp_path / "labels.tsv", separator="\t", null_value="NA")
    return paths, tmp_path / "labels.tsv", iid, signal, disease


def _args(paths, labels, out, *extra):
    return ["evaluate", "--embeddings", f"signal={paths['signal']}", "--embeddings",
            f"noise={paths['noise']}", "--labels", str(labels), "--out", str(out), *extra]


def test_cli_end_to_end(tmp_path, caplog):
    paths, labels, iid, signal, disease = _write_inputs(tmp_path)
    out = tmp_path / "out" / "eval"
    with caplog.at_level("INFO"):
        assert main(_args(paths, labels, out, "--fractions", "0.01", "0.2", "1", "--seeds", "3")) == 0
    log = caplog.text
    assert "signal: 299 people with embeddings; 0 of them have no row" in log
    assert "2 label rows have no embedding" in log  # P0299 and EXTRA
    assert "1 dropped for lacking another method's embedding" in log  # noise has P0299
    assert "299 people have a label row and embeddings from all 2 methods" in log
    assert "label severity (ordinal; classes" in log and "1 people without a value dropped" in log

    probes = pl.read_csv(f"{out}.probes.tsv", separator="\t", null_values="NA")
    assert probes.columns == ["method", "label", "kind", "metric", "fraction", "seed", "n_train",
                              "n_test", "value", "status"]
    # 2 methods x (1 binary + 2 ordinal metrics) x 3 fractions x 3 seeds
    assert probes.height == 2 * 3 * 3 * 3
    ok = probes.filter(pl.col("status") == "ok")
    skipped = probes.filter(pl.col("status") != "ok")
    # fraction 0.01 of ~208 training people is 2: too few for 4 grades x 2 (and exactly 2 x 1
    # per class for disease would be below the minimum of 2 each as well)
    assert set(skipped["fraction"].to_list()) == {0.01}
    assert skipped["status"].str.starts_with("skipped: fraction 0.01 gives 2 training people").all()
    assert skipped["value"].is_null().all()
    # the same people for both methods
    for keys, group in ok.group_by(["label", "fraction", "seed"]):
        assert group["n_train"].n_unique() == 1 and group["n_test"].n_unique() == 1
    full = ok.filter(pl.col("fraction") == 1.0)
    assert full.filter(pl.col("method") == "signal", pl.col("metric") == "auroc")["value"].min() > 0.85
    assert full.filter(pl.col("method") == "signal", pl.col("metric") == "kappa_quadratic")["value"].min() > 0.5
    noise_auroc = full.filter(pl.col("method") == "noise", pl.col("metric") == "auroc")["value"]
    assert abs(noise_auroc.mean() - 0.5) < 0.12

    summary = pl.read_csv(f"{out}.summary.tsv", separator="\t", null_values="NA")
    assert summary.columns == ["method", "label", "metric", "fraction", "n_seeds", "mean", "sd"]
    row = summary.filter(pl.col("method") == "signal", pl.col("label") == "disease",
                         pl.col("fraction") == 0.2).row(0, named=True)
    values = ok.filter(pl.col("method") == "signal", pl.col("label") == "disease",
                       pl.col("fraction") == 0.2)["value"].to_numpy()
    assert row["n_seeds"] == 3 and row["mean"] == pytest.approx(values.mean())
    assert row["sd"] == pytest.approx(values.std(ddof=1))
    assert summary.filter(pl.col("fraction") == 0.01)["n_seeds"].to_list() == [0] * 6
    assert (tmp_path / "out" / "eval.probes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "eval.probes.png", "eval.probes.tsv", "eval.summary.tsv"]


def test_cli_value_equals_sklearn_pipeline(tmp_path):
    """At fraction 1 the probe is scikit-learn's: scaler fitted on train people, full-test AUROC."""
    paths, labels, iid, signal, disease = _write_inputs(tmp_path)
    out = tmp_path / "eval"
    assert main(_args(paths, labels, out, "--fractions", "1", "--seeds", "1", "--l2", "2",
                      "--labels-columns", "disease", "--seed", "4")) == 0
    probes = pl.read_csv(f"{out}.probes.tsv", separator="\t", null_values="NA")
    assert set(probes["label"]) == {"disease"}
    # people with embeddings from both methods, sorted by IID (as the command orders them)
    keep = np.arange(299)
    train, test = stratified_split(disease[keep], 0.3, label_rng(4, "disease", 0))
    x = signal[keep]
    mean, sd = x[train].mean(axis=0), x[train].std(axis=0)
    model = LogisticRegression(C=0.5, tol=1e-12, max_iter=100_000).fit((x[train] - mean) / sd,
                                                                       disease[train])
    expected = roc_auc_score(disease[test], model.decision_function((x[test] - mean) / sd))
    value = probes.filter(pl.col("method") == "signal")["value"][0]
    assert value == pytest.approx(expected, abs=1e-9)
    assert probes.filter(pl.col("method") == "signal")["n_test"][0] == len(test)


def test_results_do_not_depend_on_method_order_or_row_order(tmp_path):
    paths, labels, *_ = _write_inputs(tmp_path)
    shuffled = pl.read_parquet(paths["signal"]).sample(fraction=1.0, shuffle=True, seed=3)
    shuffled.write_parquet(tmp_path / "shuffled.parquet")
    common = ["--labels", str(labels), "--fractions", "0.2", "1", "--seeds", "2"]
    assert main(["evaluate", "--embeddings", f"a={paths['signal']}", "--embeddings",
                 f"b={tmp_path / 'shuffled.parquet'}", "--out", str(tmp_path / "one"), *common]) == 0
    probes = pl.read_csv(tmp_path / "one.probes.tsv", separator="\t")
    a = probes.filter(pl.col("method") == "a").drop("method")
    b = probes.filter(pl.col("method") == "b").drop("method")
    assert a.equals(b)


@pytest.mark.parametrize("case,message", [
    ("missing_column", "missing required column(s) grade"),
    ("non_integer_grade", "row 4, column 'severity': value '1.5' is not an integer grade"),
    ("single_class", "column 'disease': label has only the value '1'"),
    ("no_overlap", "no person has both a label row and embeddings"),
    ("duplicate_method", "method 'signal' is given twice"),
    ("duplicate_iid", "row 3, column 'IID': duplicate IID 'P0000'"),
    ("rare_class", "class '3' has 1 people with embeddings"),
])
def test_bad_input_one_line_exit_2_no_outputs(tmp_path, capsys, case, message):
    paths, labels, *_ = _write_inputs(tmp_path, n=60)
    table = pl.read_csv(labels, separator="\t", infer_schema=False)
    extra: list[str] = []
    if case == "missing_column":
        extra = ["--labels-columns", "disease", "grade"]
    elif case == "non_integer_grade":
        table = table.with_columns(pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("1.5"))
                                   .otherwise(pl.col("severity")).alias("severity"))
    elif case == "single_class":
        table = table.with_columns(pl.lit("1").alias("disease"))
    elif case == "no_overlap":
        table = table.with_columns(("X" + pl.col("IID")).alias("IID"))
    elif case == "duplicate_iid":
        table = table.with_columns(pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("P0000"))
                                   .otherwise(pl.col("IID")).alias("IID"))
    elif case == "rare_class":
        grades = np.where(np.arange(table.height) == 0, "3", "1")
        grades[1::2] = "2"
        grades[2::4] = "0"
        table = table.with_columns(pl.Series("severity", grades))
    table.write_csv(labels, separator="\t")
    out = tmp_path / "out" / "eval"
    args = _args(paths, labels, out, "--seeds", "1", *extra)
    if case == "duplicate_method":
        args += ["--embeddings", f"signal={paths['signal']}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("contig evaluate: error: ")
    assert message in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ---------------------------------------------------------------------------------------------
# trait decodability: cross-validated ridge


def _sklearn_out_of_fold(x, y, folds, alpha):
    """The oracle: scaler fitted on the training folds, then Ridge(alpha) with an intercept."""
    model = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
    return cross_val_predict(model, x, y, cv=PredefinedSplit(folds))


@pytest.mark.parametrize("n,p,alpha", [(200, 10, 1.0), (200, 10, 300.0), (40, 60, 0.5)])
def test_ridge_out_of_fold_predictions_equal_sklearn_cross_val_predict(n, p, alpha):
    rng = np.random.default_rng(n + p)
    x = _correlated(rng, n, p) * rng.uniform(0.1, 20, p)
    x[:, 3] = 7.0  # a constant feature: centred only, in both
    y = np.column_stack([x[:, :3] @ [0.2, -0.1, 0.05] + rng.normal(size=n), rng.normal(size=n)])
    folds = assign_folds(n, 5, rng)
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
    x = _correlated(rng, n, p)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    y = x @ (rng.normal(size=p) * 0.15) + rng.normal(size=n)
    alphas = 10.0 ** np.linspace(-2, 4, 25)
    z, eig, _ = spectral_basis(x)
    ours = ridge_loo_mse(z, eig, (y - y.mean())[:, None], alphas)[:, 0]
    expected = _brute_force_loo_mse(x, y, alphas)
    np.testing.assert_allclose(ours, expected, rtol=1e-9)
    best = int(np.argmin(expected))
    assert 0 < best < len(alphas) - 1  # the crafted optimum is interior
    assert select_alpha(ours[:, None])[0] == best


def test_alpha_chosen_in_each_fold_equals_sklearn_ridgecv():
    rng = np.random.default_rng(4)
    n, p = 150, 12
    x = _correlated(rng, n, p)
    y = x @ (rng.normal(size=p) * 0.1) + rng.normal(size=n)
    folds = assign_folds(n, 5, rng)
    alphas = 10.0 ** np.linspace(-1, 4, 21)
    _, chosen = ridge_cv_predict(x, y, folds, alphas)
    for k in range(5):
        train = folds != k
        scaled = StandardScaler().fit_transform(x[train])
        assert chosen[k, 0] == RidgeCV(alphas=alphas).fit(scaled, y[train]).alpha_
    assert ((chosen > alphas[0]) & (chosen < alphas[-1])).all()  # not a grid-edge artefact


def test_ties_in_leave_one_out_error_go_to_the_larger_alpha():
    mse = np.array([[1.0, 2.0], [0.5, 2.0], [0.5, 3.0]])
    assert select_alpha(mse).tolist() == [2, 1]


def test_planted_trait_gets_its_r2_and_a_noise_trait_about_zero():
    rng = np.random.default_rng(7)
    n, p = 2000, 20
    x = _correlated(rng, n, p)
    signal = x @ rng.normal(size=p)
    planted = signal / signal.std() + rng.normal(size=n)  # true R² = 1/2
    noise = rng.normal(size=n)
    folds = assign_folds(n, 5, rng)
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
        decode_traits(embeddings, traits, seed=0)
    assert error.value.column == "clustered"
    values[:, 1] = 1.0  # a constant trait: R² undefined, reported as missing
    table = decode_traits(embeddings, traits, seed=0).table
    assert table["r2"][0] is not None and table["r2"][1] is None


# ---------------------------------------------------------------------------------------------
# trait decodability: the command


def _write_traits(tmp_path, iid, signal, seed=1):
    """Traits of the first 299 people + EXTRA: size (planted on the signal method), noise, width
    (one missing value), population (text)."""
    rng = np.random.default_rng(seed)
    n = len(iid)
    size = signal[:, 0] + signal[:, 1] + rng.normal(size=n)
    width = signal[:, 2] + 0.5 * rng.normal(size=n)
    noise = rng.normal(size=n)
    table = pl.DataFrame({
        "IID": list(iid) + ["EXTRA"],
        "population": ["POP2" if i % 3 == 2 else "POP1" for i in range(n)] + ["POP1"],
        "size": list(size) + [0.0], "noise": list(noise) + [1.0],
        "width": [None if person == "P0007" else float(v) for person, v in zip(iid, width)] + [1.0],
    })
    table.write_csv(tmp_path / "traits.tsv", separator="\t", null_value="NA")
    return tmp_path / "traits.tsv", size, width


def test_cli_traits_equal_sklearn_with_the_documented_folds(tmp_path, caplog):
    paths, labels, iid, signal, _ = _write_inputs(tmp_path)
    traits, size, width = _write_traits(tmp_path, iid, signal)
    out = tmp_path / "out" / "eval"
    with caplog.at_level("INFO"):
        assert main(_args(paths, labels, out, "--fractions", "1", "--seeds", "1", "--traits",
                          str(traits), "--ridge-alphas", "10", "--seed", "2")) == 0
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
        "eval.probes.png", "eval.probes.tsv", "eval.summary.tsv", "eval.traits.png",
        "eval.traits.tsv"]
    assert (tmp_path / "out" / "eval.traits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_traits_alone_with_chosen_columns_and_default_grid(tmp_path, caplog):
    paths, _, iid, signal, _ = _write_inputs(tmp_path)
    traits, *_ = _write_traits(tmp_path, iid, signal)
    out = tmp_path / "out" / "eval"
    args = ["evaluate", "--embeddings", f"signal={paths['signal']}", "--embeddings",
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
    ("nothing", "nothing to evaluate: give --labels"),
])
def test_bad_trait_input_one_line_exit_2_no_outputs(tmp_path, capsys, case, message):
    paths, labels, iid, signal, _ = _write_inputs(tmp_path, n=60)
    traits, *_ = _write_traits(tmp_path, iid, signal)
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
    args = ["evaluate", "--embeddings", f"signal={paths['signal']}", "--embeddings",
            f"noise={paths['noise']}", "--out", str(out), *extra]
    if case != "nothing":
        args += ["--labels", str(labels), "--fractions", "1", "--seeds", "1"]  # probes are fine
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("contig evaluate: error: ")
    assert message in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
