"""``contig truth``: check GWAS loci against the simulator's planted effects (simulated data only)."""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import float_in, name_path, paths_by_name
from contig.evaluate.truth import TruthSettings, null_chromosomes, truth_check, write_truth_check

log = logging.getLogger("contig.evaluate.truth")
DEFAULTS = TruthSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loci", required=True, nargs="+", action="extend", type=name_path,
                        metavar="METHOD=LOCI_TSV",
                        help="OUT.tsv (loci) of `contig clump`, one per method")
    parser.add_argument("--loci-joint", nargs="+", action="extend", type=name_path, default=[],
                        metavar="METHOD=LOCI_TSV",
                        help="loci of the joint multivariate test (same columns as --loci), for "
                             "methods also given in --loci: adds the summary columns n_loci_joint, "
                             "loci_false_joint, loci_false_null_chrom_joint, major_found_joint, "
                             "major_recall_joint, burden_found_joint and a `test` column "
                             "(combined/joint) to the per-locus table")
    parser.add_argument("--pheno-sumstats", nargs="+", action="extend", type=name_path, default=[],
                        metavar="METHOD=DIR_OR_PREFIX",
                        help="a method's per-phenotype summary statistics, for λGC on the null "
                             "chromosomes per phenotype: the --per-pheno-dir folder of `contig gwas` "
                             "/ `gwas-gather` (every <pheno>.parquet), or the --out prefix of "
                             "`contig gwas` (phenotypes listed in PREFIX.summary.tsv); without it a "
                             "method's λ columns are NA")
    parser.add_argument("--combined", nargs="+", action="extend", type=name_path, default=[],
                        metavar="METHOD=PARQUET",
                        help="a method's combined table (OUT.combined.parquet of `contig gwas` / "
                             "`gwas-gather`), for methods also given in --loci: adds "
                             "lambda_gc_null_joint, the joint test's λGC on the null chromosomes")
    parser.add_argument("--truth", required=True, help="truth.tsv of `contig simulate`")
    parser.add_argument("--simulation", required=True,
                        help="simulation.json of `contig simulate` (which chromosomes are null)")
    parser.add_argument("--window-kb", type=float_in(0, float("inf")), default=DEFAULTS.window_kb,
                        help="a locus tags a planted SNP or gene when its span START..END comes "
                             f"within this many kb of it (default {DEFAULTS.window_kb:g})")
    parser.add_argument("--out", required=True,
                        help="summary TSV (one row per method); also writes OUT-stem.loci.tsv "
                             "(every locus classified) and OUT-stem.lambda_gc.tsv (λGC per phenotype)")


def run(args: argparse.Namespace) -> int:
    loci = paths_by_name(args.loci, "--loci")
    pheno_sumstats = paths_by_name(args.pheno_sumstats, "--pheno-sumstats")
    joint = paths_by_name(args.loci_joint, "--loci-joint")
    combined = paths_by_name(args.combined, "--combined")
    log.info("null chromosomes (no planted effect): %s",
             ", ".join(null_chromosomes(args.simulation)) or "none")
    check = truth_check(loci, args.truth, args.simulation, args.window_kb, pheno_sumstats, joint,
                        combined)
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
    for row in check.summary.iter_rows(named=True):
        if row.get("n_loci_joint") is not None:
            log.info("%s, joint test: %d loci, %d false (%d on null chromosomes); planted major SNPs "
                     "found %d/%d; burden genes found %d/%d", row["method"], row["n_loci_joint"],
                     row["loci_false_joint"], row["loci_false_null_chrom_joint"],
                     row["major_found_joint"], row["planted_major"], row["burden_found_joint"],
                     row["planted_burden"])
        if row.get("lambda_gc_null_joint") is not None:
            log.info("%s, joint test: λGC on null chromosomes %.3f", row["method"],
                     row["lambda_gc_null_joint"])
    for row in check.lambdas.iter_rows(named=True):
        log.debug("%s %s: %d null-chromosome variants, λGC %s", row["method"], row["PHENO"],
                  row["N_VARIANTS"], row["LAMBDA_GC"])
    paths = write_truth_check(check, args.out)
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return 0
