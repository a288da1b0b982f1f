"""``contig h2-rhe``: SNP heritability of every phenotype by randomized Haseman-Elston regression
on the genotypes, covariates projected out, jackknife SE over variant blocks."""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import add_missing_phenotype_argument, float_in, int_at_least, non_negative_int
from contig.core.tables import write_tsv
from contig.gwas.inputs import MISSING_PHENOTYPE
from contig.heritability.run import rhe_table
from contig.heritability.settings import HERITABILITY_DEFAULTS, HeritabilitySettings

log = logging.getLogger("contig.heritability")


def add_maf_argument(parser: argparse.ArgumentParser) -> None:
    """--maf (shared with ``contig ld-scores``)."""
    parser.add_argument("--maf", type=float_in(0.0, 0.5, include_high=False),
                        default=HERITABILITY_DEFAULTS.maf,
                        help="autosomal variants with a minor allele frequency below this are left "
                             f"out (default {HERITABILITY_DEFAULTS.maf:g})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = HERITABILITY_DEFAULTS
    parser.add_argument("--bfile", required=True,
                        help="PLINK 1 prefix, or a pattern with {chrom} for per-chromosome filesets")
    parser.add_argument("--pheno", required=True,
                        help="TSV: IID + numeric phenotype columns (people missing any are dropped)")
    parser.add_argument("--pheno-cols", nargs="+", default=None, metavar="COL",
                        help="use only these phenotype columns (default: all)")
    parser.add_argument("--covar", required=True,
                        help="TSV: IID + numeric covariate columns, projected out of phenotypes and GRM")
    add_missing_phenotype_argument(parser, MISSING_PHENOTYPE)
    add_maf_argument(parser)
    parser.add_argument("--jackknife-blocks", type=int_at_least(2), default=defaults.jackknife_blocks,
                        help="contiguous variant blocks of the delete-one jackknife (default "
                             f"{defaults.jackknife_blocks})")
    parser.add_argument("--probes", type=non_negative_int, default=defaults.probes,
                        help="random probe vectors of the trace estimate; 0 = exact traces (n probes: "
                             f"small cohorts only) (default {defaults.probes})")
    parser.add_argument("--seed", type=non_negative_int, default=defaults.seed,
                        help=f"seed of the probe vectors (default {defaults.seed})")
    parser.add_argument("--out", required=True, metavar="TSV",
                        help="PHENO ESTIMATOR H2 SE INTERCEPT INTERCEPT_SE N M, one row per phenotype")


def run(args: argparse.Namespace) -> int:
    settings = HeritabilitySettings(maf=args.maf, probes=args.probes,
                                    jackknife_blocks=args.jackknife_blocks, seed=args.seed)
    table = rhe_table(args.bfile, args.pheno, args.covar, args.pheno_cols, settings,
                      args.input_missing_phenotype)
    for row in table.iter_rows(named=True):
        log.info("%s: h2 %.3f (SE %.3f)", row["PHENO"], row["H2"], row["SE"])
    write_tsv(table, args.out)
    log.info("wrote %s", args.out)
    return 0
