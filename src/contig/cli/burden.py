"""``contig burden``: rare-variant gene burden scores (carrier flag, allele count or Madsen-Browning)."""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import float_in, positive_int
from contig.scores.burden import DEFAULTS, MODES, gene_burden, write_burden_outputs

log = logging.getLogger("contig.scores.burden")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bfile", required=True,
                        help="PLINK 1 prefix, or a pattern with {chrom} for per-chromosome filesets")
    parser.add_argument("--genes", required=True,
                        help="gene regions: TSV with header 'chrom start end gene' (1-based, inclusive) "
                             "or a .bed/.bed.gz file (no header, 0-based half-open)")
    parser.add_argument("--out", required=True, help="output prefix: OUT.npz and OUT.genes.tsv")
    parser.add_argument("--max-maf", type=float_in(0.0, 0.5, include_low=False), default=DEFAULTS.max_maf,
                        help=f"rare = 0 < sample MAF <= this (default {DEFAULTS.max_maf:g})")
    parser.add_argument("--mode", choices=MODES, default=DEFAULTS.mode,
                        help="carrier flag, minor-allele count, or Madsen-Browning weighted count "
                             f"(default {DEFAULTS.mode})")
    parser.add_argument("--min-carriers", type=positive_int, default=DEFAULTS.min_carriers,
                        help=f"drop genes with fewer carriers than this (default {DEFAULTS.min_carriers})")
    parser.add_argument("--chunk-size", type=positive_int, default=DEFAULTS.chunk_size,
                        help=f"variants per chunk (default {DEFAULTS.chunk_size})")


def run(args: argparse.Namespace) -> int:
    result = gene_burden(args.bfile, args.genes, max_maf=args.max_maf, mode=args.mode,
                         min_carriers=args.min_carriers, chunk_size=args.chunk_size)
    paths = write_burden_outputs(result, args.out, args.mode)
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return 0
