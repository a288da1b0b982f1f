"""``contig compare``: one table of the pretraining methods (loci, truth, replication, probes,
retrieval), as TSV and as Markdown for the README."""

from __future__ import annotations

import argparse
import logging
import shlex

from contig.cli.argtypes import name_path, paths_by_name
from contig.compare import DEFAULT_PROBES, Probe, comparison_table, markdown_table, write_comparison
from contig.errors import InputError

log = logging.getLogger("contig.compare")


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
                        metavar="METHOD=LOCI_TSV", help="`contig clump` OUT.loci.tsv (loci found)")
    parser.add_argument("--truth-table", default=None, metavar="TSV",
                        help="summary TSV of `contig truth` (simulated data)")
    parser.add_argument("--replication", nargs="+", action="extend", type=name_path, default=[],
                        metavar="METHOD=SUMMARY_TSV",
                        help="OUT.summary.tsv of `contig replicate` (loci replicated across eyes)")
    parser.add_argument("--probes", default=None, metavar="TSV",
                        help="probe summary of `contig evaluate`: method label metric fraction "
                             "n_seeds mean sd")
    parser.add_argument("--probe", nargs="+", type=_probe, default=None, metavar="LABEL:METRIC",
                        help=f"probe columns to show (default: {' '.join(DEFAULT_PROBES)})")
    parser.add_argument("--probe-fraction", type=float, default=1.0,
                        help="label fraction of the probe results shown (default 1.0)")
    parser.add_argument("--metrics", nargs="+", action="extend", type=name_path, default=[],
                        metavar="METHOD=METRICS_TSV[,METRICS_TSV...]",
                        help="`contig train` metrics.tsv of every fold of a method (comma-separated "
                             "or repeated): last epoch's validation top-1 retrieval, mean over folds")
    parser.add_argument("--header", default=None,
                        help="first line of the Markdown (default: the command that made it)")


def command_line(args: argparse.Namespace) -> str:
    """The ``contig compare`` command that reproduces this table (for the Markdown header)."""
    parts = ["contig", "compare", "--methods", *args.methods]
    for option, pairs in (("--loci", args.loci), ("--replication", args.replication),
                          ("--metrics", args.metrics)):
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


def run(args: argparse.Namespace) -> int:
    if len(set(args.methods)) != len(args.methods):
        raise InputError("--methods: a method is listed twice", "command line")
    probes = args.probe or [Probe.parse(p) for p in DEFAULT_PROBES]
    metrics: dict[str, list[str]] = {}
    for method, paths in args.metrics:
        metrics.setdefault(method, []).extend(p for p in paths.split(",") if p)
    table, notes = comparison_table(
        args.methods, loci=paths_by_name(args.loci, "--loci"), truth=args.truth_table,
        replication=paths_by_name(args.replication, "--replication"), probes_path=args.probes,
        probes=probes, probe_fraction=args.probe_fraction, metrics=metrics)
    given = {"--loci or --truth-table": bool(args.loci or args.truth_table),
             "--truth-table": bool(args.truth_table), "--replication": bool(args.replication),
             "--probes": bool(args.probes), "--metrics": bool(metrics)}
    for option, present in given.items():
        if not present:
            log.info("no %s: its columns are NA", option)
    for note in notes:
        log.info("%s", note)
    header = args.header or f"Made by `{command_line(args)}`"
    paths = write_comparison(table, markdown_table(table, probes, header), args.out)
    log.info("wrote %s and %s (%d methods)", paths["tsv"], paths["md"], table.height)
    return 0
