"""``contig gwas-gather``: join the per-chromosome parts of ``contig gwas --part-out`` into the
per-phenotype summary statistics and the combined table (the per-phenotype summary at a
threshold is ``contig gwas-summary``'s, so changing the threshold rewrites no statistics)."""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import positive_int
from contig.cli.gwas import log_inflation
from contig.gwas.association import SCAN_DEFAULTS
from contig.gwas.sumstats import PER_PHENO_FORMATS, read_gwas_parts, write_gwas_outputs

log = logging.getLogger("contig.gwas.sumstats")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parts", required=True, nargs="+", metavar="PART_PARQUET",
                        help="parts from `contig gwas --part-out`, in genome order")
    parser.add_argument("--out", required=True,
                        help="output prefix: OUT.combined.parquet/.tsv.gz (and "
                             "OUT.<pheno>.tsv.gz/.parquet unless --per-pheno-dir)")
    parser.add_argument("--per-pheno-dir", default=None, metavar="DIR",
                        help="write the per-phenotype files as DIR/<pheno>.tsv.gz/.parquet")
    parser.add_argument("--formats", nargs="+", choices=PER_PHENO_FORMATS, default=list(PER_PHENO_FORMATS),
                        help="per-phenotype file formats (default: parquet tsv.gz)")
    parser.add_argument("--threads", type=positive_int, default=SCAN_DEFAULTS.threads,
                        help=f"threads for writing (default {SCAN_DEFAULTS.threads})")


def run(args: argparse.Namespace) -> int:
    result = read_gwas_parts(args.parts)
    c = result.counts
    log.info("gathered %d parts: %d variants (%d NA), %d phenotypes, %d people, df = %d",
             len(args.parts), len(result.variants), c.get("variants_na", 0), len(result.pheno_names),
             result.n_samples, result.df)
    paths = write_gwas_outputs(result, args.out, args.per_pheno_dir, args.threads, args.formats)
    log_inflation(result)
    log.info("wrote %d files with prefix %s", len(paths), args.out)
    return 0
