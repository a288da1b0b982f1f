"""``contig clump``: LD clumping of summary statistics into loci (plink 1.9 ``--clump`` meaning)."""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import float_in
from contig.genotypes.plinkio import Genotypes
from contig.gwas.clump import CLUMP_DEFAULTS, clump, merge_sumstats, read_keep, write_clump_outputs

log = logging.getLogger("contig.gwas.clump")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = CLUMP_DEFAULTS
    probability = float_in(0.0, 1.0, include_low=False)
    parser.add_argument("--sumstats", required=True, nargs="+", metavar="FILE",
                        help="summary statistics (parquet or tsv[.gz]) with CHROM GENPOS ID and LOG10P "
                             "or P; with several files each variant takes its smallest p")
    parser.add_argument("--bfile", required=True, help="genotypes for LD (PLINK 1 prefix or {chrom} pattern)")
    parser.add_argument("--out", required=True,
                        help="output prefix: OUT.tsv (loci), OUT.clumps.tsv, OUT.summary.tsv")
    parser.add_argument("--keep", default=None,
                        help="compute LD on these people only (TSV with an IID column, or FID IID lines)")
    parser.add_argument("--p-column", default=defaults.p_column, metavar="COLUMN",
                        help="the -log10 p column clumped (default LOG10P: min p x k in a combined "
                             "table; LOG10P_JOINT: the joint test)")
    parser.add_argument("--p1", type=probability, default=defaults.p1,
                        help=f"index variant p threshold (default {defaults.p1:g})")
    parser.add_argument("--p2", type=probability, default=defaults.p2,
                        help=f"clumped variant p threshold (default {defaults.p2:g})")
    parser.add_argument("--r2", type=float_in(0.0, 1.0), default=defaults.r2,
                        help=f"LD threshold: r² above this (default {defaults.r2:g})")
    parser.add_argument("--kb", type=float_in(0.0, float("inf"), include_low=False), default=defaults.kb,
                        help=f"window in kb (default {defaults.kb:g})")


def run(args: argparse.Namespace) -> int:
    genotypes = Genotypes.open(args.bfile)
    sample_idx = read_keep(args.keep, genotypes) if args.keep else None
    sumstats = merge_sumstats(args.sumstats, args.p_column)
    result = clump(sumstats, genotypes, args.p1, args.p2, args.r2, args.kb, sample_idx)
    c = result.counts
    log.info("%d variants with a p-value (%s); %d not in the .bim (ignored); LD on %d people",
             c["variants"], args.p_column, c["not_in_bim"],
             genotypes.n_samples if sample_idx is None else len(sample_idx))
    log.info("%d variants at p <= %g; %d independent loci", c["index_candidates"], args.p1, c["loci"])
    write_clump_outputs(result, args.out)
    return 0
