"""``contig gwas-plots``: Manhattan and QQ plots (PNG) of one summary-statistics file."""

from __future__ import annotations

import argparse
import logging

import polars as pl

from contig.cli.argtypes import float_in
from contig.gwas.plots import manhattan, qq
from contig.gwas.stats import GENOME_WIDE
from contig.gwas.sumstats import DEFAULT_P_COLUMN, read_sumstats

log = logging.getLogger("contig.gwas.plots")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sumstats", required=True,
                        help="summary statistics (parquet or tsv[.gz]) with CHROM GENPOS ID and LOG10P or P")
    parser.add_argument("--out", required=True, help="output prefix: OUT.manhattan.png, OUT.qq.png")
    parser.add_argument("--loci", default=None,
                        help="OUT.tsv (loci) of `contig clump`: label these lead variants")
    parser.add_argument("--title", default="", help="plot title (e.g. the phenotype)")
    parser.add_argument("--threshold", type=float_in(0.0, 1.0, include_low=False), default=GENOME_WIDE,
                        metavar="P", help=f"genome-wide significance line of the Manhattan plot "
                                          f"(default {GENOME_WIDE:g})")
    parser.add_argument("--p-column", default=DEFAULT_P_COLUMN, metavar="COLUMN",
                        help="the -log10 p column plotted (default LOG10P; LOG10P_JOINT in a combined "
                             "table: the joint test)")


def run(args: argparse.Namespace) -> int:
    sumstats = read_sumstats(args.sumstats, args.p_column)
    leads = None
    if args.loci:
        from contig.core.tables import read_tsv

        leads = read_tsv(args.loci, required=["LEAD_ID"])["LEAD_ID"].to_list()
    column = pl.col(args.p_column)
    n_na = sumstats.filter(column.is_null() | column.is_nan()).height
    manhattan(sumstats, f"{args.out}.manhattan.png", args.title, leads, threshold=args.threshold,
              p_column=args.p_column)
    lam = qq(sumstats, f"{args.out}.qq.png", args.title, p_column=args.p_column)
    log.info("plotted %s of %d variants (%d with NA p-values left out); line at p = %g; lambda_GC %.3f; "
             "%d lead loci labelled", args.p_column, sumstats.height - n_na, n_na, args.threshold, lam,
             len(leads or []))
    return 0
