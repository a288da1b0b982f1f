"""``contig gwas-summary``: per phenotype (and for the combined and joint tests) the people,
variants tested, variants at the genome-wide threshold and λGC, from written summary statistics."""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import float_in
from contig.gwas.summary import SUMMARY_DEFAULTS, summarize_scan, write_summary

log = logging.getLogger("contig.gwas.summary")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--sumstats-dir", metavar="DIR",
                       help="folder of per-phenotype summary statistics (<pheno>.parquet or .tsv.gz; "
                            "`contig gwas`/`gwas-gather --per-pheno-dir`)")
    where.add_argument("--sumstats-prefix", metavar="PREFIX",
                       help="or their prefix (PREFIX.<pheno>.parquet or .tsv.gz; `contig gwas --out`)")
    parser.add_argument("--combined", required=True, metavar="PARQUET",
                        help="OUT.combined.parquet of the same scan (its phenotypes and people; the "
                             "combined and joint rows)")
    parser.add_argument("--threshold", type=float_in(0.0, 1.0, include_low=False),
                        default=SUMMARY_DEFAULTS.threshold, metavar="P",
                        help="genome-wide significance: N_SIG counts variants with p <= P "
                             f"(default {SUMMARY_DEFAULTS.threshold:g})")
    parser.add_argument("--out", required=True, metavar="TSV",
                        help="output: PHENO N_SAMPLES N_TESTED N_SIG LAMBDA_GC, one row per phenotype, "
                             "then combined (min p x k) and joint")


def run(args: argparse.Namespace) -> int:
    table = summarize_scan(args.combined, args.sumstats_dir, args.sumstats_prefix, args.threshold)
    write_summary(table, args.out)
    for row in table.iter_rows(named=True):
        log.info("%s: %d tested, %d at p <= %g, lambda_GC %s", row["PHENO"], row["N_TESTED"], row["N_SIG"],
                 args.threshold, "NA" if row["LAMBDA_GC"] is None else f"{row['LAMBDA_GC']:.3f}")
    log.info("wrote %s", args.out)
    return 0
