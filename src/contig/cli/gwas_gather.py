"""``contig gwas-gather``: join the per-chromosome parts of ``contig gwas --part-out`` into the
per-phenotype summary statistics and the combined table (the per-phenotype summary at a
threshold is ``contig gwas-summary``'s, so changing the threshold rewrites no statistics).
Streams: memory is the variant columns plus one batch of phenotypes, whatever their number."""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import positive_int
from contig.gwas.association import SCAN_DEFAULTS
from contig.gwas.gather import gather_gwas_parts
from contig.gwas.sumstats import OUTPUT_FORMATS, PER_PHENO_FORMATS

log = logging.getLogger("contig.gwas.sumstats")


def add_formats_arguments(parser: argparse.ArgumentParser) -> None:
    """--formats and --genome-assembly, shared with `contig gwas`."""
    parser.add_argument("--formats", nargs="+", choices=OUTPUT_FORMATS, default=list(PER_PHENO_FORMATS),
                        help="summary statistics to write besides the combined table: per phenotype "
                             "parquet and tsv.gz (regenie's layout), ssf (GWAS-SSF .ssf.tsv.gz with "
                             "-meta.yaml), and wide (all phenotypes in one all.wide.parquet; "
                             "`contig sumstats-export` writes per-phenotype files from it) "
                             "(default: parquet tsv.gz)")
    parser.add_argument("--genome-assembly", default="NR", metavar="BUILD",
                        help="genome build recorded in GWAS-SSF metadata, e.g. GRCh37 (default NR: "
                             "not reported)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parts", required=True, nargs="+", metavar="PART_PARQUET",
                        help="parts from `contig gwas --part-out`, in genome order")
    parser.add_argument("--out", required=True,
                        help="output prefix: OUT.combined.parquet/.tsv.gz (and "
                             "OUT.<pheno>.tsv.gz/.parquet unless --per-pheno-dir)")
    parser.add_argument("--per-pheno-dir", default=None, metavar="DIR",
                        help="write the per-phenotype files as DIR/<pheno>.tsv.gz/.parquet")
    add_formats_arguments(parser)
    parser.add_argument("--threads", type=positive_int, default=SCAN_DEFAULTS.threads,
                        help=f"threads for writing (default {SCAN_DEFAULTS.threads})")


def run(args: argparse.Namespace) -> int:
    paths, scan = gather_gwas_parts(args.parts, args.out, args.per_pheno_dir, args.threads, args.formats,
                                    ssf_meta={"genome_assembly": args.genome_assembly})
    c = scan.counts
    log.info("gathered %d parts: %d variants (%d NA), %d phenotypes, %d people, df = %d",
             len(args.parts), scan.n_variants, c.get("variants_na", 0), len(scan.pheno_names),
             scan.n_samples, scan.df)
    for name in scan.pheno_names:
        log.info("%s: %d tested, lambda_GC %.3f", name, scan.tested[name], scan.lambdas[name])
        if name in scan.ssf_dropped:
            log.info("%s: GWAS-SSF file leaves out %d variants (untested, non-nucleotide allele or "
                     "a chromosome outside 1-22, X, Y, MT)", name, scan.ssf_dropped[name])
    log.info("joint test of %d phenotypes (F on %d and %d df): %d tested, lambda_GC %.3f",
             len(scan.pheno_names), len(scan.pheno_names), scan.df_joint, scan.joint_tested,
             scan.joint_lambda)
    log.info("wrote %d files with prefix %s", len(paths), args.out)
    return 0
