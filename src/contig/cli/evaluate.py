"""``contig evaluate``: downstream probes (logistic / ordinal) on frozen embeddings."""

from __future__ import annotations

import argparse
import logging
import time

from contig.cli.argtypes import float_in, positive_int
from contig.evaluate import DEFAULT_FRACTIONS, evaluate_embeddings, parse_embedding_specs, summarize, \
    write_evaluation

log = logging.getLogger("contig.evaluate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--embeddings", required=True, action="append", metavar="METHOD=PARQUET",
                        help="a method's embeddings parquet (IID, dim_0000 ...); repeat per method")
    parser.add_argument("--labels", required=True, help="TSV: IID + label columns")
    parser.add_argument("--out", required=True,
                        help="output prefix: OUT.probes.tsv, OUT.summary.tsv, OUT.probes.png")
    parser.add_argument("--labels-columns", nargs="+", default=None, metavar="COL",
                        help="probe these label columns only (default: all but IID)")
    parser.add_argument("--fractions", nargs="+", type=float_in(0, 1, include_low=False),
                        default=list(DEFAULT_FRACTIONS), metavar="F",
                        help="shares of the probe-training people to train on (default 0.01 0.1 1)")
    parser.add_argument("--seeds", type=positive_int, default=5,
                        help="training subsamples per fraction (default 5)")
    parser.add_argument("--test-fraction", type=float_in(0, 1, include_low=False), default=0.3,
                        help="share of each class held out as the probe test set (default 0.3)")
    parser.add_argument("--l2", type=float_in(0, float("inf")), default=1.0,
                        help="L2 penalty l2/2·|w|² on standardized features, added to the summed "
                             "negative log-likelihood (= scikit-learn C = 1/l2; default 1)")
    parser.add_argument("--min-per-class", type=positive_int, default=2,
                        help="fewest training people per class in a subsample (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of splits and subsamples (default 0)")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    methods = parse_embedding_specs(args.embeddings)
    result = evaluate_embeddings(methods, args.labels, label_columns=args.labels_columns,
                                 fractions=args.fractions, n_seeds=args.seeds,
                                 test_fraction=args.test_fraction, l2=args.l2, seed=args.seed,
                                 min_per_class=args.min_per_class)
    for method, c in result.people.items():
        log.info("%s: %d people with embeddings; %d of them have no row in %s (dropped), %d label "
                 "rows have no embedding, %d dropped for lacking another method's embedding",
                 method, c["embeddings"], c["without_label_row"], args.labels,
                 c["label_rows_without_embedding"], c["missing_from_another_method"])
    log.info("%d people have a label row and embeddings from all %d methods", result.n_common,
             len(result.methods))
    for name, c in result.labels.items():
        sizes = ", ".join(f"{k}: {n}" for k, n in zip(c["classes"], c["class_sizes"]))
        log.info("label %s (%s; classes %s): %d people without a value dropped, %d used -> "
                 "%d probe-train, %d probe-test", name, c["kind"], sizes, c["missing_value"],
                 c["used"], c["train"], c["test"])
    probes = result.probes
    skipped = probes.filter(probes["status"].str.starts_with("skipped"))
    for row in skipped.unique(["label", "fraction", "status"], maintain_order=True).iter_rows(named=True):
        log.warning("label %s, fraction %g: %s", row["label"], row["fraction"], row["status"])
    failed = probes.filter(probes["status"].str.starts_with("not converged"))
    if failed.height:
        log.warning("%d probe fits did not converge (left out of the summary)", failed.height)
    paths = write_evaluation(result, args.out)
    for row in summarize(probes).iter_rows(named=True):
        if row["mean"] is None:
            value = "no probe (all seeds skipped or failed)"
        else:
            sd = "NA" if row["sd"] is None else f"{row['sd']:.3f}"
            value = f"{row['mean']:.3f} ± {sd} over {row['n_seeds']} seeds"
        log.info("%s %s %s at fraction %g: %s", row["method"], row["label"], row["metric"],
                 row["fraction"], value)
    log.info("wrote %s, %s, %s in %.1f s", paths["probes"], paths["summary"], paths["plot"],
             time.perf_counter() - started)
    return 0
