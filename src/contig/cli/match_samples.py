"""``contig match-samples``: who is in the array genotypes, the imputed genotypes, or both (by IID)."""

from __future__ import annotations

import argparse
import logging

from contig.core.atomic import atomic_path
from contig.genotypes.plinkio import expand_prefix_pattern, read_fam
from contig.genotypes.sources import match_samples, read_source_samples, sample_match_table

log = logging.getLogger("contig.genotypes.sources")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bfile", required=True,
                        help="array genotypes: PLINK 1 prefix, or a pattern with {chrom}")
    imputed = parser.add_mutually_exclusive_group(required=True)
    imputed.add_argument("--pfile", help="imputed genotypes: PLINK 2 prefix or pattern with {chrom}")
    imputed.add_argument("--bgen", help="imputed genotypes: BGEN file or pattern with {chrom}")
    parser.add_argument("--sample", default=None, help="with --bgen: its .sample file (may contain {chrom})")
    parser.add_argument("--out", required=True, help="TSV: SOURCE (both, array_only, imputed_only), N")


def run(args: argparse.Namespace) -> int:
    array = read_fam(expand_prefix_pattern(args.bfile)[0] + ".fam")
    imputed = read_source_samples(args.pfile, args.bgen, args.sample)
    counts = match_samples(array["IID"].to_list(), imputed["IID"].to_list())
    with atomic_path(args.out) as tmp:
        sample_match_table(counts).write_csv(tmp, separator="\t")
    return 0
