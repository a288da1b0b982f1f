"""``contig gwas``: exact OLS association of every phenotype with every variant (GWAS step 2),
and the joint test of each variant against all phenotypes."""

from __future__ import annotations

import argparse
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from contig.cli.argtypes import add_missing_phenotype_argument, float_in, non_negative_int, positive_int
from contig.core.errors import InputError
from contig.genotypes.sources import DosageSource
from contig.gwas.association import DTYPES, SCAN_DEFAULTS, GwasResult, run_gwas
from contig.gwas.dosage import DOSAGE_FILTER_DEFAULTS, DosageFilters, run_dosage_gwas
from contig.gwas.inputs import MISSING_PHENOTYPE
from contig.gwas.stats import lambda_gc
from contig.cli.gwas_gather import add_formats_arguments
from contig.gwas.sumstats import write_gwas_outputs, write_gwas_part

log = logging.getLogger("contig.gwas.association")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SCAN_DEFAULTS
    add_genotype_source_arguments(parser)
    parser.add_argument("--pheno", required=True,
                        help="TSV: IID + numeric phenotype columns (NA = missing; people missing any "
                             "phenotype are dropped)")
    parser.add_argument("--covar", required=True, help="TSV: IID + numeric covariate columns")
    add_missing_phenotype_argument(parser, MISSING_PHENOTYPE)
    outputs = parser.add_mutually_exclusive_group(required=True)
    outputs.add_argument("--out",
                         help="output prefix: OUT.<pheno>.tsv.gz/.parquet, OUT.combined.parquet/.tsv.gz "
                              "(the per-phenotype summary is `contig gwas-summary`'s)")
    outputs.add_argument("--part-out", metavar="PART_PARQUET",
                         help="scatter mode: write one part (usually with --chrom) for "
                              "`contig gwas-gather`; a part with no variant left is allowed")
    parser.add_argument("--per-pheno-dir", default=None, metavar="DIR",
                        help="write the per-phenotype files as DIR/<pheno>.tsv.gz/.parquet "
                             "(one folder, replaced as a whole) instead of OUT.<pheno>.*")
    add_formats_arguments(parser)
    parser.add_argument("--threads", type=positive_int, default=defaults.threads,
                        help="scan workers (each decodes, multiplies with single-threaded BLAS and "
                             f"computes p-values for its own chunks) and output writers (default "
                             f"{defaults.threads})")
    parser.add_argument("--pheno-cols", nargs="+", default=None, metavar="COL",
                        help="test only these phenotype columns (default: all)")
    parser.add_argument("--covar-cols", nargs="+", default=None, metavar="COL",
                        help="use only these covariate columns (default: all)")
    parser.add_argument("--chunk-size", type=non_negative_int, default=defaults.chunk_size,
                        help="variants per chunk and worker; 0 (default) = sized so that a worker's "
                             "float buffer is ~2.5 MiB, at least 64 variants")
    parser.add_argument("--device", default=defaults.device,
                        help="cpu (NumPy), cpu-torch (torch on the CPU) or cuda[:N] (torch on a GPU)")
    parser.add_argument("--dtype", choices=DTYPES, default=defaults.dtype,
                        help="precision of the genotype products (float32: ~2x faster, ~1e-6 relative)")
    parser.add_argument("--loco", default=None, metavar="PRED",
                        help="OUT.loco.tsv.gz of `contig gwas-step1`: subtract each chromosome's "
                             "leave-one-chromosome-out prediction before testing its variants")
    parser.add_argument("--maf", type=float_in(0.0, 0.5), default=defaults.maf,
                        help="skip variants with minor allele frequency below this among the people "
                             f"used (default {defaults.maf:g})")
    parser.add_argument("--chrom", nargs="+", default=None, help="test only these chromosomes")
    filters = DOSAGE_FILTER_DEFAULTS
    parser.add_argument("--min-info", type=float_in(0.0, 1.0), default=filters.min_info,
                        help="dosages (--pfile/--bgen) only: skip variants whose INFO (MACH r^2 among "
                             f"the people used) is below this (default {filters.min_info:g})")
    parser.add_argument("--min-mac", type=float_in(0.0, float("inf")), default=filters.min_mac,
                        help="dosages (--pfile/--bgen) only: skip variants whose minor allele dosage "
                             f"count among the people used is below this (default {filters.min_mac:g})")


def add_genotype_source_arguments(parser: argparse.ArgumentParser) -> None:
    """--bfile (array hard calls) or --pfile / --bgen + --sample (imputed dosages)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bfile",
                        help="PLINK 1 prefix, or a pattern with {chrom} for per-chromosome filesets")
    source.add_argument("--pfile", help="PLINK 2 prefix (.pgen/.pvar/.psam; hard calls and dosages), "
                                        "or a pattern with {chrom}")
    source.add_argument("--bgen", help="BGEN v1.2/1.3 file (first allele REF), or a pattern with {chrom}")
    parser.add_argument("--sample", default=None,
                        help="with --bgen: Oxford .sample file (may contain {chrom}); default: the "
                             "sample identifiers stored in the .bgen")


def open_dosage_source(args: argparse.Namespace, chroms: list[str] | None = None) -> DosageSource | None:
    """The dosage source the arguments name (None for --bfile); of a {chrom} pattern only the
    files of ``chroms`` when given."""
    if args.bgen is None and args.sample is not None:
        raise InputError("--sample goes with --bgen", "--sample")
    if args.bfile is not None:
        return None
    return DosageSource.open(pfile=args.pfile, bgen=args.bgen, sample=args.sample, chroms=chroms)


def run(args: argparse.Namespace) -> int:
    source = open_dosage_source(args, args.chrom)
    options = dict(loco=args.loco, chunk_size=args.chunk_size, device=args.device, dtype=args.dtype,
                   maf=args.maf, chroms=args.chrom, pheno_cols=args.pheno_cols,
                   covar_cols=args.covar_cols, threads=args.threads,
                   allow_empty=args.part_out is not None, missing_phenotype=args.input_missing_phenotype)
    if source is None:
        result = run_gwas(args.bfile, args.pheno, args.covar, **options)
    else:
        result = run_dosage_gwas(source, args.pheno, args.covar, **options,
                                 filters=DosageFilters(args.min_info, args.min_mac))
    log_counts(result, args.maf)
    if args.part_out is not None:
        write_gwas_part(result, args.part_out)
        log.info("wrote part %s: %d variants x %d phenotypes", args.part_out, len(result.variants),
                 len(result.pheno_names))
        return 0
    # λGC (a median per phenotype: ~1 ms each) is computed while the files are written.
    with ThreadPoolExecutor(max_workers=1) as pool:
        inflation = pool.submit(genomic_inflation, result)
        paths = write_gwas_outputs(result, args.out, args.per_pheno_dir, args.threads, args.formats,
                                   {"genome_assembly": args.genome_assembly})
    log_inflation(result, inflation.result())
    log.info("wrote %d files with prefix %s", len(paths), args.out)
    return 0


def log_counts(result: GwasResult, maf: float) -> None:
    """What the scan used and what every filter removed."""
    c = result.counts
    log.info("people: %d in .fam; %d without phenotype row, %d without covariate row%s; dropped %d "
             "missing a phenotype, %d missing a covariate%s; %d used", c["fam"], c["fam_without_pheno"],
             c["fam_without_covar"],
             f", {c['fam_without_loco']} without LOCO row" if "fam_without_loco" in c else "",
             c["missing_pheno"], c["missing_covar"],
             f", {c['missing_loco']} missing a LOCO prediction" if "missing_loco" in c else "", c["used"])
    log.info("phenotype rows not in .fam: %d; covariate rows not in .fam: %d", c["pheno_not_in_fam"],
             c["covar_not_in_fam"])
    if c.get("pheno_missing_code"):
        log.info("phenotype values equal to the missing code (--input-missing-phenotype) read as "
                 "missing: %d", c["pheno_missing_code"])
    if "variants_other_chrom" in c:
        log.info("variants on other chromosomes skipped: %d", c["variants_other_chrom"])
    if "variants_below_maf" in c:
        log.info("variants below --maf %g skipped: %d", maf, c["variants_below_maf"])
    for key, option in (("variants_below_min_mac", "--min-mac"), ("variants_below_min_info", "--min-info")):
        if key in c:
            log.info("variants below %s skipped: %d", option, c[key])
    log.info("variants tested: %d (%d NA: monomorphic among the people used or explained by the "
             "covariates); %d phenotypes; df = %d", c["variants_tested"], c["variants_na"],
             len(result.pheno_names), result.df)


def genomic_inflation(result: GwasResult) -> list[tuple[int, float]]:
    """Variants tested and λGC of each phenotype, then of the joint test."""
    columns = [result.log10p[:, j] for j in range(len(result.pheno_names))] + [result.log10p_joint]
    return [(int(np.isfinite(column).sum()), lambda_gc(column)) for column in columns]


def log_inflation(result: GwasResult, inflation: list[tuple[int, float]] | None = None) -> None:
    """Variants tested and λGC per phenotype and for the joint test (significance counts at the
    configured threshold are `contig gwas-summary`'s); ``inflation`` from
    :func:`genomic_inflation` when already computed."""
    inflation = genomic_inflation(result) if inflation is None else inflation
    for name, (tested, inflation_factor) in zip(result.pheno_names, inflation):
        log.info("%s: %d tested, lambda_GC %.3f", name, tested, inflation_factor)
    tested, inflation_factor = inflation[-1]
    log.info("joint test of %d phenotypes (F on %d and %d df): %d tested, lambda_GC %.3f",
             len(result.pheno_names), len(result.pheno_names), result.df_joint, tested, inflation_factor)
