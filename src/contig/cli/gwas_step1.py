"""``contig gwas-step1``: regenie-style whole-genome ridge regression -> LOCO predictions."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from contig.cli.argtypes import (
    add_missing_phenotype_argument,
    float_in,
    int_at_least,
    non_negative_int,
    positive_int,
)
from contig.gwas.inputs import MISSING_PHENOTYPE
from contig.gwas.step1 import STEP1_DEFAULTS, run_step1, write_loco

log = logging.getLogger("contig.gwas.step1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = STEP1_DEFAULTS
    parser.add_argument("--bfile", required=True,
                        help="PLINK 1 prefix, or a pattern with {chrom} for per-chromosome filesets")
    parser.add_argument("--pheno", required=True, help="TSV: IID + numeric phenotype columns")
    parser.add_argument("--covar", required=True, help="TSV: IID + numeric covariate columns")
    add_missing_phenotype_argument(parser, MISSING_PHENOTYPE)
    parser.add_argument("--out", required=True, help="output prefix: OUT.loco.tsv.gz, OUT.step1.tsv")
    parser.add_argument("--block-size", type=positive_int, default=defaults.block_size,
                        help=f"variants per level-0 block (default {defaults.block_size})")
    parser.add_argument("--folds", type=int_at_least(2), default=defaults.n_folds,
                        help=f"cross-validation folds (default {defaults.n_folds})")
    parser.add_argument("--seed", type=non_negative_int, default=defaults.seed,
                        help=f"seed of the fold assignment (default {defaults.seed})")
    parser.add_argument("--min-maf", type=float_in(0.0, 0.5), default=defaults.min_maf,
                        help="variants below this minor allele frequency do not enter the ridge "
                             f"(default {defaults.min_maf:g}, as regenie's step 1)")
    parser.add_argument("--mem-mb", type=positive_int, default=defaults.mem_mb,
                        help="level-0 predictions (float32) stay in memory up to half of this, "
                             f"else in a temporary file next to OUT (default {defaults.mem_mb})")


def run(args: argparse.Namespace) -> int:
    result = run_step1(args.bfile, args.pheno, args.covar, block_size=args.block_size,
                       n_folds=args.folds, seed=args.seed,
                       missing_phenotype=args.input_missing_phenotype, min_maf=args.min_maf,
                       mem_mb=args.mem_mb, scratch_dir=Path(args.out).resolve().parent)
    c = result.counts
    log.info("people: %d in .fam; dropped %d missing a phenotype (%d values equal to the missing "
             "code), %d missing a covariate; %d used", c["fam"], c["missing_pheno"],
             c["pheno_missing_code"], c["missing_covar"], c["used"])
    log.info("variants: %d, of which %d monomorphic and %d with MAF < %g among the people used "
             "(skipped); %d blocks", c["variants"], c["monomorphic"], c["rare"], args.min_maf,
             c["blocks"])
    for name, h2, r2 in zip(result.pheno_names, result.level1_h2, result.cv_r2):
        log.info("%s: level-1 h2 %.2f, out-of-fold R^2 %.3f", name, h2, r2)
    paths = write_loco(result, args.out)
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return 0
