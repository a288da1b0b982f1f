"""``contig truth``: check GWAS loci against the simulator's planted effects (simulated data only)."""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import name_path, paths_by_name
from contig.truth import null_chromosomes, truth_check, write_truth_check

log = logging.getLogger("contig.truth")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loci", required=True, nargs="+", action="extend", type=name_path,
                        metavar="METHOD=LOCI_TSV",
                        help="OUT.loci.tsv of `contig clump`, one per method")
    parser.add_argument("--pheno-sumstats", nargs="+", action="extend", type=name_path, default=[],
                        metavar="METHOD=DIR_OR_PREFIX",
                        help="a method's per-phenotype summary statistics, for λGC on the null "
                             "chromosomes per phenotype: the --per-pheno-dir folder of `contig gwas` "
                             "/ `gwas-gather` (every <pheno>.parquet), or the --out prefix of "
                             "`contig gwas` (phenotypes listed in PREFIX.summary.tsv); without it a "
                             "method's λ columns are NA")
    parser.add_argument("--truth", required=True, help="truth.tsv of `contig simulate`")
    parser.add_argument("--simulation", required=True,
                        help="simulation.json of `contig simulate` (which chromosomes are null)")
    parser.add_argument("--window-kb", type=float, default=250.0,
                        help="a locus tags a planted SNP or gene when its span START..END comes "
                             "within this many kb of it (default 250)")
    parser.add_argument("--out", required=True,
                        help="summary TSV (one row per method); also writes OUT-stem.loci.tsv "
                             "(every locus classified) and OUT-stem.lambda.tsv (λGC per phenotype)")


def run(args: argparse.Namespace) -> int:
    if args.window_kb < 0:
        raise SystemExit("contig truth: error: --window-kb must not be negative")
    loci = paths_by_name(args.loci, "--loci")
    pheno_sumstats = paths_by_name(args.pheno_sumstats, "--pheno-sumstats")
    log.info("null chromosomes (no planted effect): %s",
             ", ".join(null_chromosomes(args.simulation)) or "none")
    check = truth_check(loci, args.truth, args.simulation, args.window_kb, pheno_sumstats)
    for row in check.summary.iter_rows(named=True):
        lam = row["lambda_gc_null_median"]
        log.info("%s: %d loci = %d major + %d burden + %d polygenic + %d false (%d of them on null "
                 "chromosomes); planted major SNPs found %d/%d; burden genes found %d/%d; "
                 "λGC on null chromosomes, median over %s phenotypes: %s",
                 row["method"], row["n_loci"], row["loci_major"], row["loci_burden"],
                 row["loci_polygenic"], row["loci_false"], row["loci_false_null_chrom"],
                 row["major_found"], row["planted_major"], row["burden_found"], row["planted_burden"],
                 row["n_phenotypes"] if row["n_phenotypes"] is not None else "no",
                 "NA" if lam is None else f"{lam:.3f}")
    for row in check.lambdas.iter_rows(named=True):
        log.debug("%s %s: %d null-chromosome variants, λGC %s", row["method"], row["PHENO"],
                  row["N_VARIANTS"], row["LAMBDA_GC"])
    paths = write_truth_check(check, args.out)
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return 0
