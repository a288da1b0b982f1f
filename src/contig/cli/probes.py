"""``contig probes``: downstream probes (logistic / ordinal) on frozen embeddings, with the L2
penalty chosen by inner cross-validation and bootstrap intervals; and trait decodability
(cross-validated ridge R² of known image traits)."""

from __future__ import annotations

import argparse
import logging
import time

from contig.cli.argtypes import float_in, int_at_least, non_negative_int, positive_int
from contig.core.errors import InputError
from contig.evaluate.inputs import load_embeddings, parse_embedding_specs, read_traits
from contig.evaluate.probes import ProbeResults, ProbeSettings, probe_embeddings, write_probe_outputs
from contig.evaluate.traits import TraitDecoding, TraitSettings, decode_traits

log = logging.getLogger("contig.evaluate.probes")
PROBES = ProbeSettings()
TRAITS = TraitSettings()


def _numbers(values) -> str:
    return " ".join(f"{v:g}" for v in values)


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--embeddings", required=True, action="append", metavar="METHOD=PARQUET",
                        help="a method's embeddings parquet (IID, dim_0000 ...); repeat per method")
    parser.add_argument("--labels", default=None,
                        help="TSV: IID + label columns, for the probes (--labels and/or --traits)")
    parser.add_argument("--traits", default=None,
                        help="TSV: IID + numeric trait columns (non-numeric columns are ignored), "
                             "for trait decodability: OUT.traits.tsv, OUT.traits.png")
    parser.add_argument("--out", required=True,
                        help="output prefix: OUT.tsv, OUT.summary.tsv, OUT.png "
                             "(with --labels), OUT.traits.tsv, OUT.traits.png (with --traits)")
    parser.add_argument("--labels-columns", nargs="+", default=None, metavar="COL",
                        help="probe these label columns only (default: all but IID)")
    parser.add_argument("--trait-columns", nargs="+", default=None, metavar="COL",
                        help="decode these trait columns only; they must be numeric (default: "
                             "every numeric column but IID)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    parser.add_argument("--fractions", nargs="+", type=float_in(0, 1, include_low=False),
                        default=list(PROBES.fractions), metavar="F",
                        help="shares of the probe-training people to train on (default "
                             f"{_numbers(PROBES.fractions)})")
    parser.add_argument("--seeds", type=positive_int, default=PROBES.seeds,
                        help=f"training subsamples per fraction (default {PROBES.seeds})")
    parser.add_argument("--test-fraction", type=float_in(0, 1, include_low=False, include_high=False),
                        default=PROBES.test_fraction,
                        help="share of each class held out as the probe test set (below 1; "
                             f"default {PROBES.test_fraction:g})")
    parser.add_argument("--l2", nargs="+", type=float_in(0, float("inf")), default=list(PROBES.l2),
                        metavar="L2",
                        help="L2 penalties l2/2·|w|² on standardized features (added to the summed "
                             "negative log-likelihood; scikit-learn C = 1/l2) to choose from by "
                             "cross-validation within each training subsample; one value fixes it "
                             f"(default {_numbers(PROBES.l2)})")
    parser.add_argument("--inner-folds", type=int_at_least(2), default=PROBES.inner_folds,
                        help="folds of the cross-validation that chooses the penalty, at most the "
                             f"smallest class's size (at least 2; default {PROBES.inner_folds})")
    parser.add_argument("--min-per-class", type=positive_int, default=PROBES.min_per_class,
                        help="fewest training people per class in a subsample (at least 2 when "
                             f"--l2 has several values; default {PROBES.min_per_class})")
    parser.add_argument("--bootstrap", type=positive_int, default=PROBES.bootstrap, metavar="B",
                        help="bootstrap resamples of the test people for the percentile intervals "
                             f"(default {PROBES.bootstrap})")
    parser.add_argument("--interval-level", type=float_in(0, 1, include_low=False, include_high=False),
                        default=PROBES.level,
                        help=f"coverage of the intervals, below 1 (default {PROBES.level:g})")
    parser.add_argument("--trait-folds", type=int_at_least(2), default=TRAITS.folds,
                        help="cross-validation folds for trait decodability (at least 2; default "
                             f"{TRAITS.folds})")
    parser.add_argument("--ridge-alphas", nargs="+", type=float_in(0, float("inf"), include_low=False),
                        default=list(TRAITS.alphas), metavar="A",
                        help="ridge penalties to choose from by leave-one-out error inside each "
                             "training fold (default 10^-1 ... 10^8, half-decade steps)")
    parser.add_argument("--seed", type=non_negative_int, default=PROBES.seed,
                        help="seed of splits, subsamples, inner folds, bootstrap resamples and "
                             f"trait folds (default {PROBES.seed})")


def settings_from(args: argparse.Namespace) -> tuple[ProbeSettings, TraitSettings]:
    """The settings of the probes and of trait decodability, checked."""
    probes = ProbeSettings(fractions=tuple(args.fractions), seeds=args.seeds,
                           test_fraction=args.test_fraction, l2=tuple(args.l2),
                           inner_folds=args.inner_folds, min_per_class=args.min_per_class,
                           bootstrap=args.bootstrap, level=args.interval_level, seed=args.seed)
    traits = TraitSettings(folds=args.trait_folds, alphas=tuple(args.ridge_alphas), seed=args.seed)
    probes.validate()
    traits.validate()
    return probes, traits


def log_people(people: dict[str, dict[str, int]], sheet: str, path: str, n_common: int) -> None:
    """Log who each method's embeddings lose against a sheet, and how many are shared."""
    for method, c in people.items():
        log.info("%s: %d people with embeddings; %d of them have no row in %s (dropped), %d %s "
                 "rows have no embedding, %d dropped for lacking another method's embedding",
                 method, c["embeddings"], c["without_row"], path, c["rows_without_embedding"], sheet,
                 c["missing_from_another_method"])
    log.info("%d people have a %s row and embeddings from all %d methods", n_common, sheet,
             len(people))


def log_probes(result: ProbeResults, labels_path: str) -> None:
    log_people(result.people, "label", labels_path, result.n_common)
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
    for row in result.summary.iter_rows(named=True):
        if row["mean"] is None:
            value = "no probe (all seeds skipped or failed)"
        else:
            sd = "NA" if row["sd"] is None else f"{row['sd']:.3f}"
            interval = ("NA" if row["lower"] is None
                        else f"[{row['lower']:.3f}, {row['upper']:.3f}]")
            value = (f"{row['mean']:.3f} {interval} ({result.level:.0%} bootstrap interval; "
                     f"sd {sd} over {row['n_seeds']} seeds)")
        log.info("%s %s %s at fraction %g: %s", row["method"], row["label"], row["metric"],
                 row["fraction"], value)


def log_traits(decoding: TraitDecoding, traits_path: str) -> None:
    for column, reason in decoding.ignored.items():
        log.info("trait sheet column %s ignored: %s", column, reason)
    log_people(decoding.people, "trait", traits_path, decoding.n_common)
    for name, missing in decoding.missing.items():
        log.info("trait %s: %d people without a value dropped, %d used in %d-fold cross-validation",
                 name, missing, decoding.n_common - missing, decoding.n_folds)
    for method, name, side, hits in decoding.edges:
        log.warning("%s %s: the %s ridge alpha (%g) was chosen in %d of %d folds; the grid may be "
                    "too narrow", method, name, side,
                    decoding.alphas[0] if side == "smallest" else decoding.alphas[-1], hits,
                    decoding.n_folds)
    for row in decoding.table.iter_rows(named=True):
        if row["r2"] is None:
            log.warning("%s %s: R² undefined (the trait is constant)", row["method"], row["trait"])
        else:
            log.info("%s %s: out-of-fold R² %.3f (n %d, median alpha %g)", row["method"],
                     row["trait"], row["r2"], row["n"], row["alpha_median"])


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.labels is None and args.traits is None:
        raise InputError("nothing to probe: give --labels (probes) and/or --traits (trait "
                         "decodability)")
    probe_settings, trait_settings = settings_from(args)
    methods = parse_embedding_specs(args.embeddings)
    traits = read_traits(args.traits, args.trait_columns) if args.traits else None  # fail early
    tables = load_embeddings(methods)
    result = decoding = None
    if args.labels is not None:
        result = probe_embeddings(tables, args.labels, args.labels_columns, probe_settings)
    if traits is not None:
        decoding = decode_traits(tables, traits, trait_settings)
    if result is not None:
        log_probes(result, args.labels)
    if decoding is not None:
        log_traits(decoding, args.traits)
    paths = write_probe_outputs(result, args.out, traits=decoding)
    log.info("wrote %s in %.1f s", ", ".join(map(str, paths.values())), time.perf_counter() - started)
    return 0
