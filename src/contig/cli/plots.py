"""``contig gwas-plots``: Manhattan and QQ plots (PNG) of one summary-statistics file."""

from __future__ import annotations

import argparse
import logging

import polars as pl

from contig.gwas import read_sumstats
from contig.plots import manhattan, qq

log = logging.getLogger("contig.plots")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sumstats", required=True,
                        help="summary statistics (parquet or tsv[.gz]) with CHROM GENPOS ID and LOG10P or P")
    parser.add_argument("--out", required=True, help="output prefix: OUT.manhattan.png, OUT.qq.png")
    parser.add_argument("--loci", default=None,
                        help="OUT.loci.tsv of `contig clump`: label these lead variants")
    parser.add_argument("--title", default="", help="plot title (e.g. the phenotype)")


def run(args: argparse.Namespace) -> int:
    sumstats = read_sumstats(args.sumstats)
    leads = None
    if args.loci:
        from contig.tables import read_tsv

        leads = read_tsv(args.loci, required=["LEAD_ID"])["LEAD_ID"].to_list()
    n_na = sumstats.filter(pl.col("LOG10P").is_null() | pl.col("LOG10P").is_nan()).height
    manhattan(sumstats, f"{args.out}.manhattan.png", args.title, leads)
    lam = qq(sumstats, f"{args.out}.qq.png", args.title)
    log.info("plotted %d variants (%d with NA p-values left out); lambda_GC %.3f; %d lead loci labelled",
             sumstats.height - n_na, n_na, lam, len(leads or []))
    return 0
