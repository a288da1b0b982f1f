"""The heritability commands' work: read the inputs, run an estimator, return its table.

Every estimate table has the columns of :data:`ESTIMATE_COLUMNS`, one row per phenotype:
``PHENO ESTIMATOR H2 SE INTERCEPT INTERCEPT_SE N M`` (``ESTIMATOR`` RHE or LDSC; the intercept
is LDSC's, NA for RHE; ``N`` people (LDSC: mean N of the regression variants), ``M`` variants in
the GRM or behind the LD scores).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.errors import InputError
from contig.genotypes.plinkio import Genotypes
from contig.gwas.inputs import MISSING_PHENOTYPE, covariate_basis, load_association_data
from contig.gwas.wide import WIDE_SUFFIX, wide_file, wide_phenotypes
from contig.heritability.ldsc import ld_score_regression, regression_inputs
from contig.heritability.ldscore import ld_score_table, ld_scores
from contig.heritability.rhe import rhe
from contig.heritability.settings import HERITABILITY_DEFAULTS, HeritabilitySettings
from contig.heritability.variants import select_variants

log = logging.getLogger("contig.heritability")

ESTIMATE_COLUMNS = ("PHENO", "ESTIMATOR", "H2", "SE", "INTERCEPT", "INTERCEPT_SE", "N", "M")
ESTIMATE_SCHEMA = {"PHENO": pl.Utf8, "ESTIMATOR": pl.Utf8, "H2": pl.Float64, "SE": pl.Float64,
                   "INTERCEPT": pl.Float64, "INTERCEPT_SE": pl.Float64, "N": pl.Float64,
                   "M": pl.Int64}


def estimate_table(rows: list[dict]) -> pl.DataFrame:
    """Rows of :data:`ESTIMATE_COLUMNS` as a table (empty rows list: an empty table)."""
    return pl.DataFrame(rows, schema=ESTIMATE_SCHEMA)


def rhe_table(bfile: str | Path, pheno: str | Path, covar: str | Path,
              pheno_cols: Sequence[str] | None = None,
              settings: HeritabilitySettings = HERITABILITY_DEFAULTS,
              missing_phenotype: float | None = MISSING_PHENOTYPE) -> pl.DataFrame:
    """RHE h² of every phenotype column, with the covariates projected out (people as in
    ``contig gwas``: those with every phenotype and covariate)."""
    settings.validate()
    genotypes = Genotypes.open(bfile)
    data = load_association_data(genotypes, pheno, covar, pheno_cols=pheno_cols,
                                 missing_phenotype=missing_phenotype)
    log.info("people: %d in .fam; %d without phenotype row, %d without covariate row; dropped %d "
             "missing a phenotype, %d missing a covariate; %d used", data.counts["fam"],
             data.counts["fam_without_pheno"], data.counts["fam_without_covar"],
             data.counts["missing_pheno"], data.counts["missing_covar"], data.counts["used"])
    q = covariate_basis(data.covariates, data.covar_names, covar)
    variants = select_variants(genotypes, data.sample_idx, settings.maf, settings.jackknife_blocks)
    estimate = rhe(genotypes, data.sample_idx, variants, q, data.phenotypes, settings.probes,
                   settings.seed)
    return estimate_table([
        {"PHENO": name, "ESTIMATOR": "RHE", "H2": float(estimate.h2[j]), "SE": float(estimate.se[j]),
         "INTERCEPT": None, "INTERCEPT_SE": None, "N": float(estimate.n_samples),
         "M": estimate.n_variants}
        for j, name in enumerate(data.pheno_names)])


def ld_score_reference(bfile: str | Path,
                       settings: HeritabilitySettings = HERITABILITY_DEFAULTS) -> pl.DataFrame:
    """CHR SNP BP MAF L2 of every autosomal variant with MAF >= ``settings.maf`` (everyone in the
    fileset as the reference panel; window ``settings.ld_window_kb``)."""
    settings.validate()
    genotypes = Genotypes.open(bfile)
    variants = select_variants(genotypes, None, settings.maf, settings.jackknife_blocks)
    scores = ld_scores(genotypes, variants, settings.ld_window_kb)
    log.info("LD scores of %d variants over a %g kb window: median %.2f, max %.2f", len(scores),
             settings.ld_window_kb, float(np.median(scores)), float(scores.max()))
    return ld_score_table(genotypes, variants, scores)


def phenotype_order(names: Sequence[str]) -> list[str]:
    """Phenotype names, numbered ones (PC1, PC2, ..., PC10) in numeric order."""
    def key(name: str) -> tuple[str, int]:
        stem = name.rstrip("0123456789")
        return stem, int(name[len(stem):]) if name[len(stem):] else -1

    return sorted(dict.fromkeys(names), key=key)


def sumstats_files(folder: str | Path) -> dict[str, Path]:
    """{phenotype: file} of a folder of per-phenotype summary statistics (parquet preferred over
    tsv.gz), in :func:`phenotype_order`."""
    folder = Path(folder)
    files: dict[str, Path] = {}
    for path in sorted(folder.glob("*.tsv.gz")) + sorted(folder.glob("*.parquet")):
        if not path.name.endswith((".ssf.tsv.gz", WIDE_SUFFIX)):  # GWAS-SSF copies, the wide layout
            files[path.name.removesuffix(".tsv.gz").removesuffix(".parquet")] = path
    wide = wide_file(folder)
    if not files and wide is not None:  # only the wide layout: one file, a column per phenotype
        files = {name: wide for name in wide_phenotypes(wide)}
    if not files:
        raise InputError("no <phenotype>.parquet or .tsv.gz summary statistics", folder)
    return {name: files[name] for name in phenotype_order(list(files))}


def ldsc_table(sumstats_dir: str | Path, ld_table: pl.DataFrame,
               settings: HeritabilitySettings = HERITABILITY_DEFAULTS) -> pl.DataFrame:
    """LDSC h² and intercept of every phenotype in ``sumstats_dir``."""
    settings.validate()
    m = ld_table.height
    rows = []
    for name, path in sumstats_files(sumstats_dir).items():
        joined = regression_inputs(path, ld_table, name)
        try:
            fit = ld_score_regression(joined["CHISQ"].to_numpy(), joined["L2"].to_numpy(),
                                      joined["N"].to_numpy(), float(m), settings.jackknife_blocks)
        except InputError as error:
            raise InputError(error.message, path) from None
        log.info("%s: %d regression variants (%d with chi2 above the cap left out), h2 %.3f (SE "
                 "%.3f), intercept %.3f (SE %.3f)", name, fit.n_variants, fit.n_removed, fit.h2,
                 fit.se, fit.intercept, fit.intercept_se)
        rows.append({"PHENO": name, "ESTIMATOR": "LDSC", "H2": fit.h2, "SE": fit.se,
                     "INTERCEPT": fit.intercept, "INTERCEPT_SE": fit.intercept_se, "N": fit.mean_n,
                     "M": m})
    return estimate_table(rows)
