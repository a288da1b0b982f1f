"""``contig annotate-loci``: lead loci with their genes, significant phenotypes and replication in
the other eye."""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import float_in, name_path, paths_by_name
from contig.loci.annotate import AnnotateSettings, annotate_loci, write_annotated_loci

log = logging.getLogger("contig.loci.annotate")
DEFAULTS = AnnotateSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loci", required=True, help="OUT.tsv (loci) of `contig clump`")
    parser.add_argument("--clumps", required=True,
                        help="OUT.clumps.tsv of the same `contig clump` run (clump sizes)")
    parser.add_argument("--genes", required=True,
                        help="gene table: TSV chrom start end gene (1-based inclusive) or BED")
    parser.add_argument("--pheno-sumstats", required=True, metavar="DIR_OR_PREFIX",
                        help="per-phenotype summary statistics: a folder of <pheno>.parquet "
                             "(gwas-gather --per-pheno-dir) or a `contig gwas --out` prefix")
    parser.add_argument("--other-eye", type=name_path, action="append", default=[],
                        metavar="EYE=COMBINED",
                        help="combined summary statistics of the GWAS of another eye: the lead's p "
                             "there and whether it replicates (repeatable)")
    parser.add_argument("--threshold", type=float_in(0.0, 1.0, include_low=False),
                        default=DEFAULTS.threshold, metavar="P",
                        help="a phenotype counts when the lead's p is at or below this (default "
                             f"{DEFAULTS.threshold:g})")
    parser.add_argument("--alpha", type=float_in(0, 1, include_low=False, include_high=False),
                        default=DEFAULTS.alpha,
                        help="replicated: the lead's p in the other eye below alpha / number of "
                             f"loci (default {DEFAULTS.alpha:g})")
    parser.add_argument("--p-column", default=DEFAULTS.p_column, metavar="COLUMN",
                        help="the -log10 p column read from the other eye's combined table (default "
                             "LOG10P; LOG10P_JOINT for joint-test loci)")
    parser.add_argument("--out", required=True, help="the annotated loci (TSV)")


def run(args: argparse.Namespace) -> int:
    settings = AnnotateSettings(args.threshold, args.alpha, args.p_column)
    other_eyes = paths_by_name(args.other_eye, "--other-eye")
    table = annotate_loci(args.loci, args.clumps, args.genes, args.pheno_sumstats, other_eyes,
                          settings)
    log.info("%d loci; %d overlap a gene; %d significant for more than one phenotype at p <= %g",
             table.height, int((table["OVERLAPPING_GENES"] != "NONE").sum()),
             int((table["N_SIGNIFICANT_PHENOTYPES"] > 1).sum()), args.threshold)
    for eye in other_eyes:
        log.info("%d of %d replicate in the %s eye at p < %g/%d", int(table[f"REPLICATED_{eye.upper()}"].sum()),
                 table.height, eye, args.alpha, max(table.height, 1))
    write_annotated_loci(table, args.out)
    log.info("wrote %s", args.out)
    return 0
