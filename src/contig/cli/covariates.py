"""``contig covariates``: the numeric GWAS covariate file from the covariate sheet and genetic PCs."""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import positive_int
from contig.gwas.phenotypes import build_covariates
from contig.core.tables import write_tsv

log = logging.getLogger("contig.covariates")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--covariates", required=True, help="TSV: IID + covariate columns")
    parser.add_argument("--quantitative", nargs="*", default=[], metavar="COL",
                        help="columns used as numbers")
    parser.add_argument("--categorical", nargs="*", default=[], metavar="COL",
                        help="columns one-hot coded (first level in sorted order dropped)")
    parser.add_argument("--eigenvec", default=None,
                        help="plink2-layout .eigenvec (#FID IID PC1 ...) to add as covariates")
    parser.add_argument("--n-pcs", type=positive_int, default=None, help="use only the first N PCs")
    parser.add_argument("--out", required=True, help="output TSV: IID + numeric columns")


def run(args: argparse.Namespace) -> int:
    table = build_covariates(args.covariates, args.quantitative, args.categorical, args.eigenvec,
                             args.n_pcs)
    write_tsv(table, args.out)
    log.info("wrote %d people x %d covariate columns (%s) to %s", table.height, table.width - 1,
             ", ".join(table.columns[1:]), args.out)
    return 0
