"""Downstream probes on frozen image embeddings: how much of a label an embedding makes linear.

For every label column of a label sheet (``IID`` + label columns) and every method's embeddings
parquet (``IID``, ``dim_0000`` ...), a probe is fitted on standardized embeddings of training
people and scored on a fixed test set (fits: :mod:`contig.evaluate.linear`; metrics:
:mod:`contig.evaluate.metrics`):

- binary labels (two distinct values; the larger one, in numeric order when both are numbers, is
  the positive class): L2-penalized logistic regression, scored by AUROC;
- ordinal labels (more than two integer grades): a cumulative-link (proportional odds) logistic
  model with L2 on the slopes; the predicted grade is the most probable one, scored by quadratic
  weighted Cohen's κ; the expected grade also scores grade > lowest grade against the lowest
  (AUROC, metric ``auroc_vs_lowest``).

People: those with a label value and embeddings from every method (so every method is scored on
the same people; who is dropped and why is counted). Per label, they are split once into probe
train / test sets (seeded, stratified by class, independent of the method); for each label
fraction ``f`` and seed ``s`` a stratified subsample of the training people — ``round(f · n_train)``
people, at least ``min_per_class`` of each class — trains the probe, which then predicts the whole
test set. A fraction that cannot give every class its minimum is recorded as skipped with the
reason.

Penalty: chosen per fit from the ``l2`` grid by stratified K-fold cross-validation of the held-out
negative log-likelihood *within the training subsample* (the test people never inform it); the
folds depend on the seed, the label and the subsample only, so every method sees the same folds.

Uncertainty: a percentile bootstrap of the test people. ``bootstrap`` resamples of the test set
(each class resampled with replacement to its own size; seeded per label, the same resamples for
every method, fraction and seed) rescore the fixed predictions; a summary row's estimate is the
mean of its metric over the seeds whose fit converged, and its interval the ``(1 ∓ level)/2``
quantiles of that mean over the resamples. The interval is about the test people: how far the
metric of these fitted probes could lie from its value on the population the test people stand
for. It is conditional on the training people (a fraction below 1 averages over ``seeds``
subsamples of them; at fraction 1 every seed trains on the same people, hence the same fit and an
SD over seeds of 0). ``sd`` is the SD of the metric over those seeds.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_paths
from contig.core.errors import InputError
from contig.evaluate.inputs import (
    EmbeddingTable,
    Label,
    common_people,
    load_embeddings,
    read_labels,
    shared_embeddings,
)
from contig.evaluate.linear import Fit, choose_l2, fit_probe, standardize
from contig.evaluate.metrics import (
    CHANCE,
    METRIC_TITLES,
    PRIMARY_METRIC,
    auroc,
    percentile_interval,
    quadratic_weighted_kappa,
    resampled_auroc,
    resampled_quadratic_kappa,
    stratified_bootstrap_counts,
)
from contig.evaluate.traits import TraitDecoding, trait_figure

METRICS = {"binary": ("auroc",), "ordinal": ("kappa_quadratic", "auroc_vs_lowest")}


@dataclass(frozen=True)
class ProbeSettings:
    """Settings of the probes: the library defaults of ``contig probes`` (one flag each)."""

    fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
    seeds: int = 5
    test_fraction: float = 0.3
    l2: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0)
    inner_folds: int = 5
    min_per_class: int = 2
    bootstrap: int = 1000
    level: float = 0.95
    seed: int = 0

    def validate(self) -> None:
        """Raise InputError for a setting out of range."""
        if not 0 < self.test_fraction < 1:
            raise InputError(f"test fraction must be in (0, 1), got {self.test_fraction:g}")
        bad = [f for f in self.fractions if not 0 < f <= 1]
        if bad or not self.fractions:
            raise InputError(f"label fractions must be in (0, 1], got {bad[0] if bad else 'none'}")
        if not self.l2 or min(self.l2) < 0 or len(set(self.l2)) != len(self.l2):
            raise InputError("the L2 penalties must be distinct non-negative numbers")
        if self.seeds < 1 or self.min_per_class < 1 or self.bootstrap < 1:
            raise InputError("seeds, the minimum per class and bootstrap resamples must be >= 1")
        if len(self.l2) > 1 and min(self.l2) == 0:
            raise InputError("a grid of L2 penalties must be positive (an unpenalized fit of "
                             "separable people does not converge); 0 may only be given alone")
        if len(self.l2) > 1 and (self.inner_folds < 2 or self.min_per_class < 2):
            raise InputError("choosing the L2 penalty by cross-validation needs at least 2 inner "
                             "folds and at least 2 training people per class")
        if not 0 < self.level < 1:
            raise InputError(f"the interval level must be in (0, 1), got {self.level:g}")


PROBE_SCHEMA = {
    "method": pl.String, "label": pl.String, "kind": pl.String, "metric": pl.String,
    "fraction": pl.Float64, "seed": pl.Int64, "n_train": pl.Int64, "n_test": pl.Int64,
    "l2": pl.Float64, "inner_folds": pl.Int64, "value": pl.Float64, "status": pl.String,
}
SUMMARY_SCHEMA = {
    "method": pl.String, "label": pl.String, "kind": pl.String, "metric": pl.String,
    "fraction": pl.Float64, "n_seeds": pl.Int64, "mean": pl.Float64, "sd": pl.Float64,
    "lower": pl.Float64, "upper": pl.Float64,
}


# ---------------------------------------------------------------------------------------------
# one probe


@dataclass
class ProbeOutcome:
    """A fitted probe's metrics on the test people (``values``) and on each bootstrap resample of
    them (``replicates``, ``(n_boot,)`` per metric), with the penalty it used."""

    values: dict[str, float]
    replicates: dict[str, np.ndarray]
    converged: bool
    message: str
    l2: float
    inner_folds: int


def score_on_test_people(kind: str, fit: Fit, x_test: np.ndarray, y_test: np.ndarray,
                         n_classes: int, counts: np.ndarray) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Metrics of ``fit`` on the standardized test people ``x_test (n, p)``, ``y_test (n,)``, and
    on the resamples ``counts (n_boot, n)`` of them."""
    if kind == "binary":
        score = fit.logits(x_test)
        return ({"auroc": auroc(y_test == 1, score)},
                {"auroc": resampled_auroc(y_test == 1, score, counts)})
    probabilities = fit.probabilities(x_test)
    predicted = np.argmax(probabilities, axis=1)
    expected_grade = probabilities @ np.arange(n_classes)
    values = {"kappa_quadratic": quadratic_weighted_kappa(y_test, predicted, n_classes),
              "auroc_vs_lowest": auroc(y_test > 0, expected_grade)}
    replicates = {"kappa_quadratic": resampled_quadratic_kappa(y_test, predicted, n_classes, counts),
                  "auroc_vs_lowest": resampled_auroc(y_test > 0, expected_grade, counts)}
    return values, replicates


def fit_and_score(kind: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                  y_test: np.ndarray, n_classes: int, l2: float,
                  counts: np.ndarray | None = None) -> ProbeOutcome:
    """Fit the probe of ``kind`` with penalty ``l2`` on features standardized by the training
    people ``x_train (n_train, p)``; score it on the test people (and their resamples ``counts
    (n_boot, n_test)``, by default none). ``inner_folds`` of the outcome is 0."""
    x_train, x_test = standardize(x_train, x_test)
    fit = fit_probe(kind, x_train, y_train, n_classes, l2)
    counts = np.zeros((0, len(y_test))) if counts is None else counts
    values, replicates = score_on_test_people(kind, fit, x_test, y_test, n_classes, counts)
    return ProbeOutcome(values, replicates, fit.converged, fit.message, l2, 0)


def probe_with_chosen_l2(kind: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                         y_test: np.ndarray, n_classes: int, settings: ProbeSettings,
                         rng: np.random.Generator, counts: np.ndarray) -> ProbeOutcome:
    """:func:`fit_and_score` at the penalty that cross-validation within the training people
    chooses from ``settings.l2`` (:func:`contig.evaluate.linear.choose_l2`)."""
    choice = choose_l2(kind, x_train, y_train, n_classes, sorted(settings.l2),
                       settings.inner_folds, rng)
    outcome = fit_and_score(kind, x_train, y_train, x_test, y_test, n_classes, choice.l2, counts)
    outcome.inner_folds = choice.n_folds
    return outcome


# ---------------------------------------------------------------------------------------------
# people: splits and subsamples


class SkipProbe(Exception):
    """A (label, fraction, seed) that cannot be probed; the message is the recorded reason."""


def rounded(x: float) -> int:
    """Round half up (not to even), so sizes do not depend on the parity of a count."""
    return int(math.floor(x + 0.5))


def stratified_split(y: np.ndarray, test_fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) row indices of ``y (n,)`` class indices.

    Each class with ``n_c`` people puts ``round(test_fraction · n_c)`` of them, at least one and at
    most ``n_c − 1``, into the test set. Every class needs at least two people.
    """
    train, test = [], []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n_test = min(max(rounded(test_fraction * len(members)), 1), len(members) - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def subsample_counts(class_sizes: np.ndarray, fraction: float, min_per_class: int) -> np.ndarray:
    """People to draw per class ``(K,)``: ``round(fraction · n)`` in all, at least ``min_per_class`` each.

    Classes get shares proportional to their sizes (largest remainders); a class whose share would
    fall below the minimum gets the minimum and the others share the rest, so the draw is exactly
    stratified wherever the minimum does not bind and ``fraction = 1`` takes everyone. Raises
    :class:`SkipProbe` when a class has fewer than ``min_per_class`` people or the total cannot
    give every class its minimum.
    """
    class_sizes = np.asarray(class_sizes, dtype=np.int64)
    n_classes = len(class_sizes)
    small = np.flatnonzero(class_sizes < min_per_class)
    if small.size:
        raise SkipProbe(f"class {int(small[0])} has {int(class_sizes[small[0]])} training people, "
                        f"fewer than the minimum of {min_per_class} per class")
    total = rounded(fraction * class_sizes.sum())
    if total < n_classes * min_per_class:
        raise SkipProbe(f"fraction {fraction:g} gives {total} training people, fewer than "
                        f"{n_classes} classes x {min_per_class} per class")
    at_minimum = np.zeros(n_classes, dtype=bool)
    while True:
        # Each pass keeps every share <= its class size (shares only shrink as classes get fixed).
        rest = total - min_per_class * int(at_minimum.sum())
        quota = np.where(at_minimum, 0.0,
                         rest * class_sizes / class_sizes[~at_minimum].sum())
        below = ~at_minimum & (quota < min_per_class)
        if not below.any():
            break
        at_minimum |= below
    counts = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[: rest - counts[~at_minimum].sum()]] += 1
    counts[at_minimum] = min_per_class
    return counts


def stratified_subsample(y: np.ndarray, fraction: float, min_per_class: int, n_classes: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices of a stratified subsample of ``y (n,)`` (see :func:`subsample_counts`)."""
    sizes = np.bincount(y, minlength=n_classes)
    counts = subsample_counts(sizes, fraction, min_per_class)
    chosen = [rng.choice(np.flatnonzero(y == c), size=int(k), replace=False)
              for c, k in enumerate(counts)]
    return np.sort(np.concatenate(chosen))


def label_rng(seed: int, label: str, *stream: int) -> np.random.Generator:
    """A generator for one label (and sub-stream), the same whatever other labels or methods exist.

    Streams: 0 the train/test split, (1, fraction index, seed) a training subsample, 2 the inner
    cross-validation folds, 3 the bootstrap resamples of the test people.
    """
    return np.random.default_rng([seed, zlib.crc32(label.encode()), *stream])


@dataclass
class LabelSplit:
    """A label's people among the shared ones: ``rows (n,)`` into the shared embedding matrices,
    class indices ``y (n,)``, the probe ``train`` and ``test`` indices into them, and the
    bootstrap resamples ``counts (n_boot, n_test)`` of the test people."""

    label: Label
    rows: np.ndarray
    y: np.ndarray
    train: np.ndarray
    test: np.ndarray
    counts: np.ndarray

    @property
    def n_classes(self) -> int:
        return len(self.label.classes)


def split_label(label: Label, common: np.ndarray, settings: ProbeSettings, path: Path) -> LabelSplit:
    """The people of ``label`` with embeddings (sorted by IID), split and resampled (seeded by the
    label name). Raises InputError when a class has fewer than 2 of them."""
    keep = np.isin(label.iid, common)
    order = np.argsort(label.iid[keep])
    iid, y = label.iid[keep][order], label.y[keep][order]
    present = np.bincount(y, minlength=len(label.classes))
    if (present < 2).any():
        c = int(np.argmin(present))
        raise InputError(f"class {label.classes[c]!r} has {int(present[c])} people with "
                         f"embeddings; each class needs at least 2 (one to train, one to test)",
                         path, None, label.name)
    train, test = stratified_split(y, settings.test_fraction, label_rng(settings.seed, label.name, 0))
    counts = stratified_bootstrap_counts(y[test], settings.bootstrap,
                                         label_rng(settings.seed, label.name, 3))
    return LabelSplit(label, np.searchsorted(common, iid), y, train, test, counts)


def training_subsample(split: LabelSplit, settings: ProbeSettings, f_index: int,
                       s: int) -> np.ndarray:
    """Indices (into the label's people) of the training subsample of fraction ``f_index``, seed
    ``s``; raises :class:`SkipProbe`."""
    fraction = settings.fractions[f_index]
    rng = label_rng(settings.seed, split.label.name, 1, f_index, s)
    chosen = stratified_subsample(split.y[split.train], fraction, settings.min_per_class,
                                  split.n_classes, rng)
    return split.train[chosen]


# ---------------------------------------------------------------------------------------------
# all probes


@dataclass
class ProbeResults:
    """Per-probe results (``probes``, schema PROBE_SCHEMA), their summary (``summary``, schema
    SUMMARY_SCHEMA) and the people counts behind them."""

    probes: pl.DataFrame
    summary: pl.DataFrame
    kinds: dict[str, str]  # label -> kind
    methods: list[str]
    level: float
    people: dict[str, dict[str, int]] = field(default_factory=dict)  # method -> counts
    labels: dict[str, dict[str, object]] = field(default_factory=dict)  # label -> counts
    n_common: int = 0


def summary_rows(method: str, split: LabelSplit, fraction: float,
                 outcomes: Sequence[ProbeOutcome], level: float) -> list[dict]:
    """One summary row per metric from the converged ``outcomes`` of a method at one fraction."""
    label = split.label
    rows = []
    for metric in METRICS[label.kind]:
        values = np.array([o.values[metric] for o in outcomes])
        lower = upper = None
        if outcomes:
            mean_replicates = np.mean([o.replicates[metric] for o in outcomes], axis=0)
            lower, upper = percentile_interval(mean_replicates, level)
        rows.append({"method": method, "label": label.name, "kind": label.kind, "metric": metric,
                     "fraction": float(fraction), "n_seeds": len(outcomes),
                     "mean": float(np.mean(values)) if len(values) else None,
                     # shifted so that equal values (fraction 1: one fit) give exactly 0
                     "sd": float(np.std(values - values[0], ddof=1)) if len(values) > 1 else None,
                     "lower": lower, "upper": upper})
    return rows


def probe_rows(method: str, split: LabelSplit, fraction: float, seed: int, n_train: int,
               outcome: ProbeOutcome | None, skipped: str | None = None) -> list[dict]:
    """The PROBE_SCHEMA rows (one per metric) of one fit, or of a skipped one."""
    label = split.label
    base = {"method": method, "label": label.name, "kind": label.kind, "fraction": float(fraction),
            "seed": seed, "n_train": n_train, "n_test": len(split.test)}
    if outcome is None:
        return [{**base, "metric": metric, "l2": None, "inner_folds": None, "value": None,
                 "status": f"skipped: {skipped}"} for metric in METRICS[label.kind]]
    status = "ok" if outcome.converged else f"not converged: {outcome.message}"
    return [{**base, "metric": metric, "l2": outcome.l2, "inner_folds": outcome.inner_folds,
             "value": value, "status": status} for metric, value in outcome.values.items()]


def probe_label(split: LabelSplit, matrices: Mapping[str, np.ndarray],
                settings: ProbeSettings) -> tuple[list[dict], list[dict]]:
    """Probe and summary rows of one label for every method, fraction and seed."""
    rows: list[dict] = []
    summaries: list[dict] = []
    y, test = split.y, split.test
    fitted: dict[tuple[str, bytes], ProbeOutcome] = {}  # the same subsample gives the same fit
    for method, matrix in matrices.items():
        x = matrix[split.rows]
        for f_index, fraction in enumerate(settings.fractions):
            converged = []
            for s in range(settings.seeds):
                try:
                    chosen = training_subsample(split, settings, f_index, s)
                except SkipProbe as reason:
                    rows += probe_rows(method, split, fraction, s, 0, None, str(reason))
                    continue
                key = (method, chosen.tobytes())
                if key not in fitted:
                    fitted[key] = probe_with_chosen_l2(
                        split.label.kind, x[chosen], y[chosen], x[test], y[test], split.n_classes,
                        settings, label_rng(settings.seed, split.label.name, 2), split.counts)
                outcome = fitted[key]
                rows += probe_rows(method, split, fraction, s, len(chosen), outcome)
                if outcome.converged:
                    converged.append(outcome)
            summaries += summary_rows(method, split, fraction, converged, settings.level)
    return rows, summaries


def label_counts(split: LabelSplit) -> dict[str, object]:
    """People counts of one label, for the log."""
    label = split.label
    return {"kind": label.kind, "classes": label.classes, "missing_value": label.n_missing,
            "used": len(split.y), "train": len(split.train), "test": len(split.test),
            "class_sizes": np.bincount(split.y, minlength=split.n_classes).tolist()}


def probe_embeddings(
    embeddings: Mapping[str, str | Path | EmbeddingTable],
    labels: str | Path,
    label_columns: Sequence[str] | None = None,
    settings: ProbeSettings = ProbeSettings(),
) -> ProbeResults:
    """Probe every method's embeddings for every label at every fraction and seed.

    ``embeddings`` maps a method name to its parquet (or its loaded table, see
    :func:`contig.evaluate.inputs.load_embeddings`). The split, subsamples, inner folds and
    bootstrap resamples of a label depend only on ``settings.seed``, the label name and the
    people, so all methods are fitted and scored on the same people.
    """
    settings.validate()
    labels = Path(labels)
    sheet_iids, label_list = read_labels(labels, label_columns)
    tables = load_embeddings(embeddings)
    common, people = common_people({m: t[0] for m, t in tables.items()}, sheet_iids, labels)
    matrices = shared_embeddings(tables, common)
    rows: list[dict] = []
    summaries: list[dict] = []
    counts: dict[str, dict[str, object]] = {}
    for label in label_list:
        split = split_label(label, common, settings, labels)
        counts[label.name] = label_counts(split)
        label_rows, label_summaries = probe_label(split, matrices, settings)
        rows += label_rows
        summaries += label_summaries
    order = [pl.col("method").replace_strict({m: i for i, m in enumerate(tables)},
                                             return_dtype=pl.Int64),
             pl.col("label").replace_strict({lb.name: i for i, lb in enumerate(label_list)},
                                            return_dtype=pl.Int64), "metric", "fraction"]
    probes = pl.DataFrame(rows, schema=PROBE_SCHEMA).sort(*order, "seed", maintain_order=True)
    summary = pl.DataFrame(summaries, schema=SUMMARY_SCHEMA).sort(*order, maintain_order=True)
    return ProbeResults(probes, summary, {lb.name: lb.kind for lb in label_list}, list(tables),
                        settings.level, people, counts, len(common))


# ---------------------------------------------------------------------------------------------
# outputs


def probe_figure(summary: pl.DataFrame, kinds: Mapping[str, str], level: float):
    """Primary metric vs label fraction: one panel per label, one line per method with its
    bootstrap interval as error bars.

    Returns the matplotlib figure (the caller saves and closes it).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(kinds)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        metric = PRIMARY_METRIC[kinds[name]]
        part = summary.filter((pl.col("label") == name) & (pl.col("metric") == metric))
        for method in part["method"].unique(maintain_order=True):
            line = part.filter((pl.col("method") == method) & pl.col("mean").is_not_null())
            mean = line["mean"].to_numpy()
            below = mean - line["lower"].fill_null(np.nan).to_numpy()
            above = line["upper"].fill_null(np.nan).to_numpy() - mean
            ax.errorbar(line["fraction"].to_numpy(), mean, yerr=np.nan_to_num([below, above]),
                        marker="o", capsize=3, label=method)
        ax.axhline(CHANCE[metric], color="0.6", lw=0.8, ls="--")
        ax.set_xscale("log")
        ticks = sorted(part["fraction"].unique().to_list())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("label fraction")
        ax.set_ylabel(f"{METRIC_TITLES[metric]} ({level:.0%} interval)")
        ax.set_title(f"{name} ({kinds[name]})")
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def output_paths(out: str | Path, probes: bool, traits: bool) -> dict[str, Path]:
    """{name: path} of the outputs: ``OUT.tsv``, ``OUT.summary.tsv``, ``OUT.png`` for the
    probes; ``OUT.traits.tsv``, ``OUT.traits.png`` for trait decodability."""
    paths = {}
    if probes:
        paths |= {"probes": Path(f"{out}.tsv"), "summary": Path(f"{out}.summary.tsv"),
                  "plot": Path(f"{out}.png")}
    if traits:
        paths |= {"traits": Path(f"{out}.traits.tsv"), "traits_plot": Path(f"{out}.traits.png")}
    return paths


def write_probe_outputs(results: ProbeResults | None, out: str | Path,
                        traits: TraitDecoding | None = None) -> dict[str, Path]:
    """Write the outputs of :func:`output_paths`, all or none. Returns {name: path}."""
    import matplotlib.pyplot as plt

    paths = output_paths(out, results is not None, traits is not None)
    if not paths:
        raise ValueError("nothing to write: no probes and no trait decodability")
    figures = {}
    try:
        if results is not None:
            figures["plot"] = probe_figure(results.summary, results.kinds, results.level)
        if traits is not None:
            figures["traits_plot"] = trait_figure(traits.table)
        tables = {"probes": results.probes if results else None,
                  "summary": results.summary if results else None,
                  "traits": traits.table if traits else None}
        with atomic_paths(list(paths.values())) as temporary:
            for name, tmp in zip(paths, temporary):
                if name in figures:
                    figures[name].savefig(tmp, format="png", dpi=120)
                else:
                    tables[name].write_csv(tmp, separator="\t", null_value="NA")
    finally:
        for fig in figures.values():
            plt.close(fig)
    return paths
