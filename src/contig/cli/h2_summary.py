"""``contig h2-summary``: the heritability tables of every analysis side by side (with the planted
h² of simulated traits) and the figure of h² per phenotype per method."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from contig.cli.argtypes import name_path
from contig.heritability.report import (
    TRUTH_ANALYSIS,
    combined_table,
    planted_h2,
    read_estimates,
    write_figure,
    write_tables,
)

log = logging.getLogger("contig.heritability")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--estimates", nargs="+", type=name_path, required=True,
                        metavar="ANALYSIS=TSV",
                        help="estimate tables (`contig h2-rhe`, `contig h2-ldsc`); an analysis may "
                             "be named several times (one table per estimator)")
    parser.add_argument("--truth-estimates", default=None, metavar="TSV",
                        help="`contig h2-rhe` of the simulator's true traits (analysis 'truth')")
    parser.add_argument("--truth", default=None, metavar="TSV",
                        help="the simulator's truth.tsv: the planted h² of the true traits")
    parser.add_argument("--out", required=True, metavar="TSV", help="the combined table")
    parser.add_argument("--per-analysis-dir", default=None, metavar="DIR",
                        help="also write each analysis' own table as DIR/<analysis>.h2.tsv")
    parser.add_argument("--figure", required=True, metavar="PNG", help="h² per phenotype per method")
    parser.add_argument("--settings-text", default="", help="a line of settings for the figure's title")


def run(args: argparse.Namespace) -> int:
    estimates: dict[str, list] = {}
    for analysis, path in args.estimates:
        estimates.setdefault(analysis, []).append(read_estimates(path))
    if args.truth_estimates:
        estimates[TRUTH_ANALYSIS] = [read_estimates(args.truth_estimates)]
    planted = planted_h2(args.truth) if args.truth else None
    table = combined_table(estimates, planted)
    per_analysis = ({} if args.per_analysis_dir is None else
                    {a: Path(args.per_analysis_dir) / f"{a}.h2.tsv" for a in estimates
                     if a != TRUTH_ANALYSIS})
    write_figure(table, args.figure, args.settings_text)
    write_tables(table, args.out, per_analysis)
    log.info("wrote %s, %s and %d per-analysis tables", args.out, args.figure, len(per_analysis))
    return 0
