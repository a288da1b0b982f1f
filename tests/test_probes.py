"""Downstream probes: metrics and their bootstrap replicates vs scikit-learn, fits vs scikit-learn /
statsmodels, the penalty chosen by inner cross-validation vs brute-force refits, interval coverage,
splits, the `contig probes` command and its bad inputs."""

from __future__ import annotations

import argparse

import numpy as np
import polars as pl
import pytest
from helpers.probes import correlated, write_probe_inputs
from scipy.optimize import check_grad
from scipy.stats import norm, rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import cohen_kappa_score, log_loss, roc_auc_score
from sklearn.preprocessing import StandardScaler
from statsmodels.miscmodels.ordinal_model import OrderedModel

from contig.cli import COMMANDS, main
from contig.cli.probes import add_arguments
from contig.evaluate.linear import (
    choose_l2,
    fit_logistic,
    fit_ordinal,
    logistic_objective,
    ordinal_objective,
    standardize,
    stratified_folds,
)
from contig.evaluate.metrics import (
    auroc,
    average_ranks,
    percentile_interval,
    quadratic_weighted_kappa,
    resampled_auroc,
    resampled_quadratic_kappa,
    stratified_bootstrap_counts,
)
from contig.evaluate.probes import (
    ProbeSettings,
    SkipProbe,
    fit_and_score,
    label_rng,
    probe_with_chosen_l2,
    stratified_split,
    stratified_subsample,
    subsample_counts,
)
from contig.evaluate.traits import TraitSettings

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


@pytest.mark.parametrize("n,p,l2", [(200, 5, 1.0), (300, 8, 0.2), (40, 60, 2.0)])
def test_logistic_fit_equals_sklearn(n, p, l2):
    rng = np.random.default_rng(n + p)
    x = correlated(rng, n, p)
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
    x = correlated(rng, 150, 6)
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
    outcome = fit_and_score("ordinal", x[train], y[train], x[test], y[test], 5, 1.0)
    scores = outcome.values
    assert outcome.converged and scores["kappa_quadratic"] > 0.75 and scores["auroc_vs_lowest"] > 0.85
    noise = rng.permutation(y)
    scores = fit_and_score("ordinal", x[train], noise[train], x[test], noise[test], 5, 1.0).values
    assert abs(scores["kappa_quadratic"]) < 0.12 and abs(scores["auroc_vs_lowest"] - 0.5) < 0.08


def test_ordinal_probe_scores_the_most_probable_grade_on_train_scaled_features():
    rng = np.random.default_rng(8)
    x, y = _planted_grades(rng, 400, 6, signal=0.7)
    x = x * rng.uniform(0.1, 10, 6) + rng.normal(0, 5, 6)
    train, test = stratified_split(y, 0.3, rng)
    scaler = StandardScaler().fit(x[train])
    fit = fit_ordinal(scaler.transform(x[train]), y[train], 5, l2=2.0)
    probabilities = fit.probabilities(scaler.transform(x[test]))
    scores = fit_and_score("ordinal", x[train], y[train], x[test], y[test], 5, 2.0).values
    most_probable = probabilities.argmax(axis=1)
    assert not np.array_equal(most_probable, np.rint(probabilities @ np.arange(5)))
    assert scores["kappa_quadratic"] == pytest.approx(
        cohen_kappa_score(y[test], most_probable, weights="quadratic", labels=list(range(5))), abs=1e-12)
    assert scores["auroc_vs_lowest"] == pytest.approx(
        roc_auc_score(y[test] > 0, probabilities @ np.arange(5)), abs=1e-12)


# ---------------------------------------------------------------------------------------------
# bootstrap replicates and intervals


@pytest.mark.parametrize("seed", range(3))
def test_resampled_auroc_and_kappa_equal_sklearn_on_each_resample(seed):
    """A resample's metric is the metric of the people it draws, i.e. sklearn's with the draw
    counts as sample weights; ties and zero counts included."""
    rng = np.random.default_rng(seed)
    n, k = 60, 4
    truth = rng.integers(0, k, n)
    truth[:k] = np.arange(k)
    score = np.round(truth + rng.normal(size=n), 1)  # ties
    predicted = np.clip(np.rint(score), 0, k - 1).astype(int)
    counts = stratified_bootstrap_counts(truth, 25, rng)
    aurocs = resampled_auroc(truth > 1, score, counts)
    kappas = resampled_quadratic_kappa(truth, predicted, k, counts)
    for b in range(25):
        drawn = np.repeat(np.arange(n), counts[b])
        assert aurocs[b] == pytest.approx(roc_auc_score(truth[drawn] > 1, score[drawn]), abs=1e-12)
        assert aurocs[b] == pytest.approx(
            roc_auc_score(truth > 1, score, sample_weight=counts[b]), abs=1e-12)
        assert kappas[b] == pytest.approx(cohen_kappa_score(
            truth[drawn], predicted[drawn], weights="quadratic", labels=list(range(k))), abs=1e-12)
    ones = np.ones((1, n))
    assert resampled_auroc(truth > 1, score, ones)[0] == pytest.approx(auroc(truth > 1, score))


def test_stratified_bootstrap_keeps_class_counts_and_is_seeded():
    y = np.repeat([0, 1, 2], [50, 30, 5])
    counts = stratified_bootstrap_counts(y, 200, np.random.default_rng(1))
    assert counts.shape == (200, 85) and (counts >= 0).all()
    for c, size in enumerate([50, 30, 5]):
        assert (counts[:, y == c].sum(axis=1) == size).all()
    assert np.array_equal(counts, stratified_bootstrap_counts(y, 200, np.random.default_rng(1)))
    assert 0.55 < (counts[:, y == 0] > 0).mean() < 0.7  # about 1 - 1/e of people drawn


def test_percentile_interval_ignores_undefined_replicates():
    values = np.r_[np.arange(101.0), np.nan]
    assert percentile_interval(values, 0.9) == pytest.approx((5.0, 95.0))
    assert percentile_interval(np.full(3, np.nan), 0.95) == (None, None)


def _gaussian_classes(rng, n_pos, n_neg, shift):
    """x | y ~ N(y · shift, I): the population AUROC of a linear score v·x is
    Φ(v·shift / sqrt(2 v·v))."""
    x = rng.normal(size=(n_pos + n_neg, len(shift)))
    x[:n_pos] += shift
    return x, np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]


def _probe_interval(rng, n_test_pos, n_test_neg, shift, n_boot=1000):
    """Fit a probe (penalty by inner CV) on 200 people; its bootstrap interval on fresh test people
    and its true (population) AUROC."""
    x_train, y_train = _gaussian_classes(rng, 60, 140, shift)
    x_test, y_test = _gaussian_classes(rng, n_test_pos, n_test_neg, shift)
    settings = ProbeSettings()
    choice = choose_l2("binary", x_train, y_train, 2, settings.l2, settings.inner_folds, rng)
    scaled_train, scaled_test = standardize(x_train, x_test)
    fit = fit_logistic(scaled_train, y_train, choice.l2)
    counts = stratified_bootstrap_counts(y_test, n_boot, rng)
    replicates = resampled_auroc(y_test == 1, fit.logits(scaled_test), counts)
    slope = fit.coef / x_train.std(axis=0)  # the score on raw features is slope·x + constant
    truth = norm.cdf(slope @ shift / np.sqrt(2 * slope @ slope))
    return percentile_interval(replicates, 0.95), truth


def test_interval_covers_the_true_auroc_at_about_the_nominal_rate():
    shift = np.array([0.9, 0.5, 0.0, 0.0, 0.0, 0.0])
    covered = 0
    for rep in range(100):
        (lower, upper), truth = _probe_interval(np.random.default_rng(rep), 45, 105, shift)
        covered += lower <= truth <= upper
    assert 85 <= covered <= 99


def test_intervals_shrink_with_more_test_people():
    shift = np.array([0.9, 0.5, 0.0, 0.0])
    widths = {}
    for n_test in (100, 400):
        (lower, upper), _ = _probe_interval(np.random.default_rng(7), n_test * 3 // 10,
                                            n_test * 7 // 10, shift)
        widths[n_test] = upper - lower
    assert widths[400] < 0.7 * widths[100]  # about half: width ~ 1/sqrt(n)


def test_fit_and_score_replicates_rescore_the_same_predictions():
    rng = np.random.default_rng(4)
    x, y = _gaussian_classes(rng, 80, 120, np.array([1.0, 0.0, 0.3]))
    train, test = stratified_split(y, 0.4, rng)
    counts = stratified_bootstrap_counts(y[test], 30, rng)
    outcome = fit_and_score("binary", x[train], y[train], x[test], y[test], 2, 0.5, counts)
    scaler = StandardScaler().fit(x[train])
    model = LogisticRegression(C=2.0, tol=1e-12, max_iter=100_000).fit(scaler.transform(x[train]),
                                                                       y[train])
    score = model.decision_function(scaler.transform(x[test]))
    expected = [roc_auc_score(y[test], score, sample_weight=c) for c in counts]
    np.testing.assert_allclose(outcome.replicates["auroc"], expected, atol=1e-9)
    assert outcome.values["auroc"] == pytest.approx(roc_auc_score(y[test], score), abs=1e-9)


# ---------------------------------------------------------------------------------------------
# the penalty, by inner cross-validation


def test_stratified_folds_are_balanced_and_hold_every_class():
    y = np.repeat([0, 1, 2], [40, 13, 5])
    folds = stratified_folds(y, 5, np.random.default_rng(0))
    assert sorted(np.bincount(folds).tolist()) == [11, 11, 12, 12, 12]
    for c in range(3):
        assert set(folds[y == c]) == set(range(5))


@pytest.mark.parametrize("kind", ["binary", "ordinal"])
def test_held_out_loss_equals_brute_force_refits(kind):
    """The cross-validated loss of each penalty equals refitting every fold from scratch (sklearn
    for binary labels; our precise fit, scaled on the training fold, for ordinal ones)."""
    rng = np.random.default_rng(1)
    x = correlated(rng, 150, 6)
    latent = x @ rng.normal(size=6) * 0.3 + rng.logistic(size=150)
    y = (latent > 0.5).astype(int) if kind == "binary" else np.searchsorted(
        np.quantile(latent, [0.4, 0.75]), latent)
    n_classes = 2 if kind == "binary" else 3
    grid = [0.1, 1.0, 10.0, 100.0]
    choice = choose_l2(kind, x, y, n_classes, grid, 4, np.random.default_rng(5))
    folds = stratified_folds(y, 4, np.random.default_rng(5))
    expected = np.zeros(len(grid))
    for g, l2 in enumerate(grid):
        for k in range(4):
            train, held = folds != k, folds == k
            scaler = StandardScaler().fit(x[train])
            if kind == "binary":
                model = LogisticRegression(C=1 / l2, tol=1e-12, max_iter=100_000)
                probabilities = model.fit(scaler.transform(x[train]), y[train]).predict_proba(
                    scaler.transform(x[held]))
            else:
                fit = fit_ordinal(scaler.transform(x[train]), y[train], n_classes, l2)
                probabilities = fit.probabilities(scaler.transform(x[held]))
            expected[g] += log_loss(y[held], probabilities, labels=list(range(n_classes)),
                                    normalize=False)
    np.testing.assert_allclose(choice.held_out_loss, expected / len(y), rtol=1e-5)
    assert choice.l2 == grid[int(np.argmin(expected))] and choice.n_folds == 4


@pytest.mark.parametrize("kind", ["binary", "ordinal"])
def test_inner_cv_penalizes_noise_labels_more_than_a_strong_signal(kind):
    for seed in range(5):
        rng = np.random.default_rng(seed)
        n, p = 300, 20
        x = rng.normal(size=(n, p))
        latent = 2.0 * (x[:, 0] - x[:, 1]) + rng.logistic(size=n)
        cut = [0.0] if kind == "binary" else [-1.0, 0.5, 1.5]
        signal = np.searchsorted(cut, latent)
        noise = rng.permutation(signal)
        k = len(cut) + 1
        grid = ProbeSettings().l2
        chosen_signal = choose_l2(kind, x, signal, k, grid, 5, np.random.default_rng(0)).l2
        chosen_noise = choose_l2(kind, x, noise, k, grid, 5, np.random.default_rng(0)).l2
        assert chosen_noise >= 10 * chosen_signal


def test_inner_folds_are_capped_by_the_smallest_class_and_one_penalty_skips_them():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 3))
    y = np.r_[np.ones(3, int), np.zeros(27, int)]
    assert choose_l2("binary", x, y, 2, [1.0, 10.0], 5, rng).n_folds == 3
    fixed = choose_l2("binary", x, y, 2, [2.0], 5, rng)
    assert fixed.l2 == 2.0 and fixed.n_folds == 0
    with pytest.raises(ValueError, match="needs at least 2 per class"):
        choose_l2("binary", x, np.r_[1, np.zeros(29, int)], 2, [1.0, 10.0], 5, rng)


def test_probe_with_chosen_l2_fits_the_chosen_penalty_on_all_training_people():
    rng = np.random.default_rng(6)
    x, y = _gaussian_classes(rng, 90, 110, np.array([0.8, 0.0, 0.0, 0.2]))
    train, test = stratified_split(y, 0.3, rng)
    counts = stratified_bootstrap_counts(y[test], 10, rng)
    settings = ProbeSettings(inner_folds=3)
    outcome = probe_with_chosen_l2("binary", x[train], y[train], x[test], y[test], 2, settings,
                                   np.random.default_rng(9), counts)
    choice = choose_l2("binary", x[train], y[train], 2, settings.l2, 3, np.random.default_rng(9))
    assert outcome.l2 == choice.l2 and outcome.inner_folds == 3
    direct = fit_and_score("binary", x[train], y[train], x[test], y[test], 2, choice.l2, counts)
    assert outcome.values == direct.values


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


def _args(paths, labels, out, *extra):
    return ["probes", "--embeddings", f"signal={paths['signal']}", "--embeddings",
            f"noise={paths['noise']}", "--labels", str(labels), "--out", str(out), *extra]


def test_cli_end_to_end(tmp_path, caplog):
    paths, labels, iid, signal, disease = write_probe_inputs(tmp_path)
    out = tmp_path / "out" / "eval"
    with caplog.at_level("INFO"):
        assert main(_args(paths, labels, out, "--fractions", "0.01", "0.2", "1", "--seeds", "3")) == 0
    log = caplog.text
    assert "signal: 299 people with embeddings; 0 of them have no row" in log
    assert "2 label rows have no embedding" in log  # P0299 and EXTRA
    assert "1 dropped for lacking another method's embedding" in log  # noise has P0299
    assert "299 people have a label row and embeddings from all 2 methods" in log
    assert "label severity (ordinal; classes" in log and "1 people without a value dropped" in log

    probes = pl.read_csv(f"{out}.tsv", separator="\t", null_values="NA")
    assert probes.columns == ["method", "label", "kind", "metric", "fraction", "seed", "n_train",
                              "n_test", "l2", "inner_folds", "value", "status"]
    # 2 methods x (1 binary + 2 ordinal metrics) x 3 fractions x 3 seeds
    assert probes.height == 2 * 3 * 3 * 3
    ok = probes.filter(pl.col("status") == "ok")
    skipped = probes.filter(pl.col("status") != "ok")
    # fraction 0.01 of ~208 training people is 2: too few for 4 grades x 2 (and exactly 2 x 1
    # per class for disease would be below the minimum of 2 each as well)
    assert set(skipped["fraction"].to_list()) == {0.01}
    assert skipped["status"].str.starts_with("skipped: fraction 0.01 gives 2 training people").all()
    assert skipped["value"].is_null().all() and skipped["l2"].is_null().all()
    assert set(ok["l2"].to_list()) <= set(ProbeSettings().l2)
    assert ok["inner_folds"].min() >= 2 and ok["inner_folds"].max() == 5
    # the same people for both methods
    for keys, group in ok.group_by(["label", "fraction", "seed"]):
        assert group["n_train"].n_unique() == 1 and group["n_test"].n_unique() == 1
    full = ok.filter(pl.col("fraction") == 1.0)
    assert full.filter(pl.col("method") == "signal", pl.col("metric") == "auroc")["value"].min() > 0.85
    assert full.filter(pl.col("method") == "signal", pl.col("metric") == "kappa_quadratic")["value"].min() > 0.5
    noise_auroc = full.filter(pl.col("method") == "noise", pl.col("metric") == "auroc")["value"]
    assert abs(noise_auroc.mean() - 0.5) < 0.12

    summary = pl.read_csv(f"{out}.summary.tsv", separator="\t", null_values="NA")
    assert summary.columns == ["method", "label", "kind", "metric", "fraction", "n_seeds", "mean",
                               "sd", "lower", "upper"]
    defined = summary.filter(pl.col("n_seeds") > 0)
    assert ((defined["lower"] <= defined["mean"]) & (defined["mean"] <= defined["upper"])).all()
    # at fraction 1 every seed trains on the same people: sd 0, but the interval is not empty
    full_rows = summary.filter(pl.col("fraction") == 1.0)
    assert (full_rows["sd"] == 0).all()
    aurocs = full_rows.filter(pl.col("metric") != "kappa_quadratic")
    assert (aurocs["upper"] - aurocs["lower"] > 0.02).all()
    assert "[" in log and "95% bootstrap interval; sd 0.000 over 3 seeds" in log
    row = summary.filter(pl.col("method") == "signal", pl.col("label") == "disease",
                         pl.col("fraction") == 0.2).row(0, named=True)
    values = ok.filter(pl.col("method") == "signal", pl.col("label") == "disease",
                       pl.col("fraction") == 0.2)["value"].to_numpy()
    assert row["n_seeds"] == 3 and row["mean"] == pytest.approx(values.mean())
    assert row["sd"] == pytest.approx(values.std(ddof=1))
    skipped_rows = summary.filter(pl.col("fraction") == 0.01)
    assert skipped_rows["n_seeds"].to_list() == [0] * 6 and skipped_rows["lower"].is_null().all()
    assert (tmp_path / "out" / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "eval.png", "eval.summary.tsv", "eval.tsv"]


def test_cli_value_equals_sklearn_pipeline(tmp_path):
    """At fraction 1 the probe is scikit-learn's: scaler fitted on train people, full-test AUROC."""
    paths, labels, iid, signal, disease = write_probe_inputs(tmp_path)
    out = tmp_path / "eval"
    assert main(_args(paths, labels, out, "--fractions", "1", "--seeds", "2", "--l2", "2",
                      "--labels-columns", "disease", "--seed", "4", "--bootstrap", "200",
                      "--interval-level", "0.9")) == 0
    probes = pl.read_csv(f"{out}.tsv", separator="\t", null_values="NA")
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
    assert probes["inner_folds"].to_list() == [0] * 4 and (probes["l2"] == 2.0).all()
    # the interval: percentiles of sklearn's AUROC on the documented resamples of the test people
    counts = stratified_bootstrap_counts(disease[keep][test], 200, label_rng(4, "disease", 3))
    score = model.decision_function((x[test] - mean) / sd)
    replicates = [roc_auc_score(disease[test], score, sample_weight=c) for c in counts]
    summary = pl.read_csv(f"{out}.summary.tsv", separator="\t", null_values="NA")
    row = summary.filter(pl.col("method") == "signal").row(0, named=True)
    assert row["n_seeds"] == 2 and row["sd"] == 0.0 and row["mean"] == pytest.approx(expected)
    assert row["lower"] == pytest.approx(np.quantile(replicates, 0.05), abs=1e-9)
    assert row["upper"] == pytest.approx(np.quantile(replicates, 0.95), abs=1e-9)


def test_results_do_not_depend_on_method_order_or_row_order(tmp_path):
    paths, labels, *_ = write_probe_inputs(tmp_path)
    shuffled = pl.read_parquet(paths["signal"]).sample(fraction=1.0, shuffle=True, seed=3)
    shuffled.write_parquet(tmp_path / "shuffled.parquet")
    common = ["--labels", str(labels), "--fractions", "0.2", "1", "--seeds", "2"]
    assert main(["probes", "--embeddings", f"a={paths['signal']}", "--embeddings",
                 f"b={tmp_path / 'shuffled.parquet'}", "--out", str(tmp_path / "one"), *common]) == 0
    probes = pl.read_csv(tmp_path / "one.tsv", separator="\t")
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
    ("min_per_class", "choosing the L2 penalty by cross-validation needs at least 2 inner folds"),
    ("zero_in_grid", "a grid of L2 penalties must be positive"),
])
def test_bad_input_one_line_exit_2_no_outputs(tmp_path, capsys, case, message):
    paths, labels, *_ = write_probe_inputs(tmp_path, n=60)
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
    elif case == "min_per_class":
        args += ["--min-per-class", "1"]
    elif case == "zero_in_grid":
        args += ["--l2", "0", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("contig probes: error: ")
    assert message in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())




@pytest.mark.parametrize("option,message", [
    (["--interval-level", "1"], "argument --interval-level: 1 is not in (0, 1)"),
    (["--test-fraction", "1"], "argument --test-fraction: 1 is not in (0, 1)"),
    (["--l2", "-1"], "argument --l2: -1 is not in [0, inf]"),
    (["--seed", "-1"], "argument --seed: -1 is negative"),
    (["--bootstrap", "0"], "argument --bootstrap: 0 is not a positive integer"),
    (["--inner-folds", "1"], "argument --inner-folds: "),
    (["--trait-folds", "1"], "argument --trait-folds: "),
    (["--fractions", "0"], "argument --fractions: 0 is not in (0, 1]"),
])
def test_out_of_range_settings_are_refused(tmp_path, capsys, option, message):
    paths, labels, *_ = write_probe_inputs(tmp_path, n=60)
    try:
        status = main(_args(paths, labels, tmp_path / "out", *option))
    except SystemExit as exit_:  # argparse refuses it
        status = exit_.code
    assert status == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.glob("out*"))


def test_defaults_come_from_the_settings():
    assert COMMANDS["probes"][0] == "probes" and "evaluate" not in COMMANDS
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--embeddings", "a=x.parquet", "--out", "o"])
    defaults = ProbeSettings()
    assert tuple(args.fractions) == defaults.fractions and tuple(args.l2) == defaults.l2
    assert (args.seeds, args.test_fraction, args.inner_folds, args.min_per_class, args.bootstrap,
            args.interval_level, args.seed) == (
        defaults.seeds, defaults.test_fraction, defaults.inner_folds, defaults.min_per_class,
        defaults.bootstrap, defaults.level, defaults.seed)
    traits = TraitSettings()
    assert (args.trait_folds, tuple(args.ridge_alphas)) == (traits.folds, traits.alphas)
