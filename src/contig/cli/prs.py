"""``contig prs``: polygenic scores from PGS Catalog scoring files, with plink2 ``--score`` semantics."""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import float_in, positive_int
from contig.cli.gwas import add_genotype_source_arguments, open_dosage_source
from contig.scores.prs import DEFAULTS, LOW_OVERLAP_ACTIONS, output_paths, run_prs

log = logging.getLogger("contig.scores.prs")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_genotype_source_arguments(parser)
    parser.add_argument("--scores", required=True, nargs="+", metavar="FILE",
                        help="PGS Catalog scoring files (format v2, plain or .gz, harmonized or not)")
    parser.add_argument("--out", required=True,
                        help="output prefix: OUT.scores.tsv, OUT.npz, OUT.match.tsv.gz, OUT.summary.tsv")
    parser.add_argument("--min-overlap", type=float_in(0.0, 1.0), default=DEFAULTS.min_overlap,
                        help="a score with fewer than this fraction of its variants matched is "
                             f"skipped, or fails the run (default {DEFAULTS.min_overlap:g})")
    parser.add_argument("--on-low-overlap", choices=LOW_OVERLAP_ACTIONS, default=DEFAULTS.on_low_overlap,
                        help="skip a score below --min-overlap (listed in OUT.summary.tsv with the "
                             "reason; the run fails only if no score is left) or fail the run "
                             f"(default {DEFAULTS.on_low_overlap})")
    parser.add_argument("--keep-ambiguous", action="store_true",
                        help="keep strand-ambiguous A/T and C/G variants, assuming the .bim strand")
    parser.add_argument("--no-mean-imputation", action="store_true",
                        help="missing calls contribute nothing and shrink the denominator (plink2 "
                             "no-mean-imputation); default: impute 2 x founder allele frequency")
    parser.add_argument("--genome-build", default=None,
                        help="refuse scoring files whose reported build differs (e.g. GRCh38)")
    parser.add_argument("--chunk-size", type=positive_int, default=DEFAULTS.chunk_size,
                        help=f"variants per chunk (default {DEFAULTS.chunk_size})")
    parser.add_argument("--threads", type=positive_int, default=DEFAULTS.threads,
                        help="scoring files parsed and matched at a time, by worker threads "
                             f"(default {DEFAULTS.threads})")


def run(args: argparse.Namespace) -> int:
    source = open_dosage_source(args)
    result = run_prs(args.bfile if source is None else source, args.scores, args.out, min_overlap=args.min_overlap,
                     on_low_overlap=args.on_low_overlap,
                     keep_ambiguous=args.keep_ambiguous, mean_imputation=not args.no_mean_imputation,
                     genome_build=args.genome_build, chunk_size=args.chunk_size,
                     threads=args.threads)
    paths = output_paths(args.out)
    n_skipped = result.summary.height - len(result.score_ids)
    log.info("scored %d samples on %d scores (%d skipped for low overlap); wrote %s",
             len(result.iid), len(result.score_ids), n_skipped,
             ", ".join(str(p) for p in paths.values()))
    return 0
