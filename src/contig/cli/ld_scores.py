"""``contig ld-scores``: LD scores of the common autosomal variants from the genotypes themselves
(window in kb; no genetic map needed)."""

from __future__ import annotations

import argparse
import logging
import math

from contig.cli.argtypes import float_in
from contig.cli.h2_rhe import add_maf_argument
from contig.heritability.ldscore import write_ld_scores
from contig.heritability.run import ld_score_reference
from contig.heritability.settings import HERITABILITY_DEFAULTS, HeritabilitySettings

log = logging.getLogger("contig.heritability")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bfile", required=True,
                        help="PLINK 1 prefix, or a pattern with {chrom} for per-chromosome filesets")
    add_maf_argument(parser)
    parser.add_argument("--ld-window-kb", type=float_in(0.0, math.inf, include_low=False),
                        default=HERITABILITY_DEFAULTS.ld_window_kb,
                        help="variants within this distance on the same chromosome enter a variant's "
                             f"LD score (default {HERITABILITY_DEFAULTS.ld_window_kb:g})")
    parser.add_argument("--out", required=True, metavar="PARQUET", help="CHR SNP BP MAF L2")


def run(args: argparse.Namespace) -> int:
    settings = HeritabilitySettings(maf=args.maf, ld_window_kb=args.ld_window_kb)
    write_ld_scores(ld_score_reference(args.bfile, settings), args.out)
    log.info("wrote %s", args.out)
    return 0
