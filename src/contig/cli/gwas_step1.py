"""``contig gwas-step1``: regenie-style whole-genome ridge regression -> LOCO predictions."""

from __future__ import annotations

import argparse
import logging

from contig.ridge import run_step1, write_loco

log = logging.getLogger("contig.ridge")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bfile", required=True,
                        help="PLINK 1 prefix, or a pattern with {chrom} for per-chromosome filesets")
    parser.add_argument("--pheno", required=True, help="TSV: IID + numeric phenotype columns")
    parser.add_argument("--covar", required=True, help="TSV: IID + numeric covariate columns")
    parser.add_argument("--out", required=True, help="output prefix: OUT.loco.tsv.gz, OUT.step1.tsv")
    parser.add_argument("--block-size", type=int, default=500, help="variants per level-0 block (default 500)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fold assignment")


def run(args: argparse.Namespace) -> int:
    result = run_step1(args.bfile, args.pheno, args.covar, block_size=args.block_size,
                       n_folds=args.folds, seed=args.seed)
    c = result.counts
    log.info("people: %d in .fam; dropped %d missing a phenotype, %d missing a covariate; %d used",
             c["fam"], c["missing_pheno"], c["missing_covar"], c["used"])
    log.info("variants: %d, of which %d monomorphic among the people used (skipped); %d blocks",
             c["variants"], c["monomorphic"], c["blocks"])
    for name, h2, r2 in zip(result.pheno_names, result.level1_h2, result.cv_r2):
        log.info("%s: level-1 h2 %.2f, out-of-fold R^2 %.3f", name, h2, r2)
    paths = write_loco(result, args.out)
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return 0
