"""``contig clump``: LD clumping of summary statistics into loci (plink 1.9 ``--clump`` meaning)."""

from __future__ import annotations

import argparse
import logging

from contig.clump import clump, merge_sumstats, read_keep, write_clump_outputs
from contig.plinkio import Genotypes

log = logging.getLogger("contig.clump")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sumstats", required=True, nargs="+", metavar="FILE",
                        help="summary statistics (parquet or tsv[.gz]) with CHROM GENPOS ID and LOG10P "
                             "or P; with several files each variant takes its smallest p")
    parser.add_argument("--bfile", required=True, help="genotypes for LD (PLINK 1 prefix or {chrom} pattern)")
    parser.add_argument("--out", required=True,
                        help="output prefix: OUT.clumps.tsv, OUT.loci.tsv, OUT.clump_summary.tsv")
    parser.add_argument("--keep", default=None,
                        help="compute LD on these people only (TSV with an IID column, or FID IID lines)")
    parser.add_argument("--p1", type=float, default=5e-8, help="index variant p threshold (default 5e-8)")
    parser.add_argument("--p2", type=float, default=1e-7, help="clumped variant p threshold (default 1e-7)")
    parser.add_argument("--r2", type=float, default=0.1, help="LD threshold: r² above this (default 0.1)")
    parser.add_argument("--kb", type=float, default=250.0, help="window in kb (default 250)")


def run(args: argparse.Namespace) -> int:
    genotypes = Genotypes.open(args.bfile)
    sample_idx = read_keep(args.keep, genotypes) if args.keep else None
    sumstats = merge_sumstats(args.sumstats)
    result = clump(sumstats, genotypes, args.p1, args.p2, args.r2, args.kb, sample_idx)
    c = result.counts
    log.info("%d variants with a p-value; %d not in the .bim (ignored); LD on %d people",
             c["variants"], c["not_in_bim"], genotypes.n_samples if sample_idx is None else len(sample_idx))
    log.info("%d variants at p <= %g; %d independent loci", c["index_candidates"], args.p1, c["loci"])
    write_clump_outputs(result, args.out)
    return 0
