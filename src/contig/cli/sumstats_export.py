"""``contig sumstats-export``: per-phenotype summary statistics from the wide layout
(``all.wide.parquet`` of ``contig gwas``/``gwas-gather --formats wide``), on demand: regenie's
text (tsv.gz), parquet, or GWAS-SSF, identical to what ``--formats`` writes at scan time."""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import positive_int
from contig.gwas.wide import EXPORT_FORMATS, export_phenotypes

log = logging.getLogger("contig.gwas.wide")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wide", required=True, metavar="PARQUET",
                        help="all.wide.parquet of `contig gwas` / `gwas-gather --formats wide`")
    parser.add_argument("--pheno", nargs="+", default=None, metavar="NAME",
                        help="phenotypes to export (default: all)")
    parser.add_argument("--formats", nargs="+", choices=EXPORT_FORMATS, default=["tsv.gz"],
                        help="tsv.gz (regenie's columns), parquet, ssf (GWAS-SSF .ssf.tsv.gz with "
                             "-meta.yaml) (default: tsv.gz)")
    parser.add_argument("--genome-assembly", default="NR", metavar="BUILD",
                        help="genome build recorded in GWAS-SSF metadata (default NR: not reported)")
    parser.add_argument("--threads", type=positive_int, default=1, help="writers (default 1)")
    parser.add_argument("--out-dir", required=True, metavar="DIR",
                        help="writes DIR/<pheno>.tsv.gz, .parquet, .ssf.tsv.gz(-meta.yaml)")


def run(args: argparse.Namespace) -> int:
    paths = export_phenotypes(args.wide, args.pheno, args.out_dir, args.formats, args.threads,
                              args.genome_assembly)
    log.info("wrote %d files to %s", len(paths), args.out_dir)
    return 0
