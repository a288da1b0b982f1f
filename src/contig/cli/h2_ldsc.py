"""``contig h2-ldsc``: SNP heritability and intercept of every phenotype's summary statistics by
LD score regression (ldsc --h2 without --two-step), jackknife SE over variant blocks."""

from __future__ import annotations

import argparse
import logging

import polars as pl

from contig.cli.argtypes import int_at_least
from contig.core.errors import InputError
from contig.core.tables import write_tsv
from contig.heritability.run import ldsc_table
from contig.heritability.settings import HERITABILITY_DEFAULTS, HeritabilitySettings

log = logging.getLogger("contig.heritability")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sumstats-dir", required=True, metavar="DIR",
                        help="per-phenotype summary statistics <pheno>.parquet or .tsv.gz (ID CHISQ N)")
    parser.add_argument("--ldscores", required=True, metavar="PARQUET", help="`contig ld-scores` output")
    parser.add_argument("--jackknife-blocks", type=int_at_least(2),
                        default=HERITABILITY_DEFAULTS.jackknife_blocks,
                        help="contiguous blocks of regression variants of the delete-one jackknife "
                             f"(default {HERITABILITY_DEFAULTS.jackknife_blocks})")
    parser.add_argument("--out", required=True, metavar="TSV",
                        help="PHENO ESTIMATOR H2 SE INTERCEPT INTERCEPT_SE N M, one row per phenotype")


def run(args: argparse.Namespace) -> int:
    try:
        ld_table = pl.read_parquet(args.ldscores)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise InputError(f"cannot read LD scores ({str(error).splitlines()[0]})", args.ldscores) from None
    settings = HeritabilitySettings(jackknife_blocks=args.jackknife_blocks)
    write_tsv(ldsc_table(args.sumstats_dir, ld_table, settings), args.out)
    log.info("wrote %s", args.out)
    return 0
