"""``contig compare``: one table of the pretraining methods (loci, truth, replication, probes,
retrieval), as TSV and as Markdown for the README."""

from __future__ import annotations

import argparse
import logging
import shlex

from contig.cli.argtypes import float_in, name_path, paths_by_name
from contig.core.errors import InputError
from contig.evaluate.compare import (
    CompareSettings,
    ComparisonInputs,
    Probe,
    comparison_table,
    markdown_table,
    write_comparison,
)

log = logging.getLogger("contig.evaluate.compare")
DEFAULTS = CompareSettings()


def _probe(text: str) -> Probe:
    try:
        return Probe.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--methods", required=True, nargs="+", metavar="METHOD",
                        help="the rows of the table, in this order")
    parser.add_argument("--out", required=True, metavar="PREFIX", help="writes PREFIX.tsv and PREFIX.md")
    parser.add_argument("--loci", nargs="+", action="extend", type=name_path, default=[],
                        metavar="METHOD=LOCI_TSV", help="`contig clump` OUT.tsv (loci found)")
    parser.add_argument("--loci-joint", nargs="+", action="extend", type=name_path, default=[],
                        metavar="METHOD=LOCI_TSV",
                        help="loci of the joint multivariate test (same columns as --loci); adds "
                             "the joint-test columns: loci, planted major found and false loci "
                             "(the latter two from a --truth-table made with --loci-joint)")
    parser.add_argument("--truth-table", default=None, metavar="TSV",
                        help="summary TSV of `contig truth` (simulated data)")
    parser.add_argument("--replication", nargs="+", action="extend", type=name_path, default=[],
                        metavar="METHOD=SUMMARY_TSV",
                        help="OUT.summary.tsv of `contig replicate` (loci replicated across eyes)")
    parser.add_argument("--probes", default=None, metavar="TSV",
                        help="probe summary of `contig probes`: method label kind metric fraction "
                             "n_seeds mean sd lower upper")
    parser.add_argument("--probe", nargs="+", type=_probe, default=None, metavar="LABEL:METRIC",
                        help="probe columns to show (default: every label of the --probes summary "
                             "with its primary metric: auroc for binary, kappa_quadratic for "
                             "ordinal labels)")
    parser.add_argument("--probe-fraction", type=float_in(0, 1, include_low=False),
                        default=DEFAULTS.probe_fraction,
                        help="label fraction of the probe results shown (default "
                             f"{DEFAULTS.probe_fraction:g})")
    parser.add_argument("--metrics", nargs="+", action="extend", type=name_path, default=[],
                        metavar="METHOD=METRICS_TSV[,METRICS_TSV...]",
                        help="`contig train` metrics.tsv of every fold of a method (comma-separated "
                             "or repeated): last epoch's validation top-1 retrieval, mean over folds")
    parser.add_argument("--header", default=None,
                        help="first line of the Markdown (default: the command that made it)")


def command_line(args: argparse.Namespace) -> str:
    """The ``contig compare`` command that reproduces this table (for the Markdown header)."""
    parts = ["contig", "compare", "--methods", *args.methods]
    for option, pairs in (("--loci", args.loci), ("--loci-joint", args.loci_joint),
                          ("--replication", args.replication), ("--metrics", args.metrics)):
        if pairs:
            parts += [option, *(f"{m}={p}" for m, p in pairs)]
    if args.truth_table:
        parts += ["--truth-table", args.truth_table]
    if args.probes:
        parts += ["--probes", args.probes, "--probe-fraction", f"{args.probe_fraction:g}"]
        if args.probe:
            parts += ["--probe", *(f"{p.label}:{p.metric}" for p in args.probe)]
    parts += ["--out", args.out]
    return shlex.join(parts)


def inputs_from(args: argparse.Namespace) -> ComparisonInputs:
    """The inputs named on the command line."""
    metrics: dict[str, list[str]] = {}
    for method, paths in args.metrics:
        metrics.setdefault(method, []).extend(p for p in paths.split(",") if p)
    return ComparisonInputs(
        loci=paths_by_name(args.loci, "--loci"),
        loci_joint=paths_by_name(args.loci_joint, "--loci-joint"), truth=args.truth_table,
        replication=paths_by_name(args.replication, "--replication"), probes_path=args.probes,
        probes=args.probe, probe_fraction=args.probe_fraction, metrics=metrics)


def run(args: argparse.Namespace) -> int:
    if len(set(args.methods)) != len(args.methods):
        raise InputError("--methods: a method is listed twice", "command line")
    if args.probe and not args.probes:
        raise InputError("--probe needs --probes (the probe summary)", "command line")
    inputs = inputs_from(args)
    table, probes, notes = comparison_table(args.methods, inputs)
    given = {"--loci or --truth-table": bool(args.loci or args.truth_table),
             "--truth-table": bool(args.truth_table), "--replication": bool(args.replication),
             "--metrics": bool(inputs.metrics)}
    for option, present in given.items():
        if not present:
            log.info("no %s: its columns are NA", option)
    log.info("probe columns: %s", ", ".join(f"{p.label}:{p.metric}" for p in probes)
             or "none (no --probes)")
    for note in notes:
        log.info("%s", note)
    header = args.header or f"Made by `{command_line(args)}`"
    paths = write_comparison(table, markdown_table(table, probes, header), args.out)
    log.info("wrote %s and %s (%d methods)", paths["tsv"], paths["md"], table.height)
    return 0
