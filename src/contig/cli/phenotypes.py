"""``contig phenotypes``: the tested phenotype matrix from image embeddings, the covariate file of
the association (the eye added where mixed) and the figure of the embedding spectrum."""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import positive_int
from contig.gwas.phenotypes import PHENOTYPE_DEFAULTS, PhenotypeResult, make_phenotypes, write_phenotypes

log = logging.getLogger("contig.gwas.phenotypes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--embeddings", required=True,
                        help="parquet: IID (str), optionally EYE (left/right/mean), then float columns "
                             "dim_0000 ...")
    parser.add_argument("--covar", required=True, help="TSV: IID + numeric covariate columns")
    parser.add_argument("--out", required=True,
                        help="output prefix: OUT.pheno.tsv, OUT.covar.tsv (the covariates plus EYE_* "
                             "indicators where eyes are mixed: give it to `contig gwas --covar`), "
                             "OUT.spectrum.png (+ OUT.pca_loadings.tsv, OUT.pca_variance.tsv)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--n-pcs", type=positive_int, default=PHENOTYPE_DEFAULTS.n_pcs,
                       help="test the top-k principal components of the embeddings (default "
                            f"{PHENOTYPE_DEFAULTS.n_pcs})")
    which.add_argument("--all-dims", action="store_true", help="test every embedding dimension")
    parser.add_argument("--no-rint", action="store_true",
                        help="skip the rank-inverse-normal transform (Blom, offset 3/8)")
    parser.add_argument("--covar-cols", nargs="+", default=None, metavar="COL",
                        help="adjust for these covariate columns only (default: all)")


def run(args: argparse.Namespace) -> int:
    from contig.gwas.plots import embedding_spectrum_plot

    result = make_phenotypes(args.embeddings, args.covar, n_pcs=None if args.all_dims else args.n_pcs,
                             covar_cols=args.covar_cols, rint=not args.no_rint)
    c = result.counts
    log.info("people: %d with embeddings; dropped %d not in the covariate file, %d missing a "
             "covariate; %d kept", c["embeddings"], c["not_in_covariates"], c["missing_covariate"],
             c["kept"])
    log_eyes(result)
    if result.pca is not None:
        log.info("PCA of %d dimensions: the top %d PCs explain %.1f%% of the variance", len(result.dims),
                 len(result.names), 100 * result.pca.explained_ratio.sum())
    paths = write_phenotypes(result, args.out)
    embedding_spectrum_plot(result.spectrum, len(result.names) if result.pca is not None else 0,
                            f"{args.out}.spectrum.png")
    log.info("wrote %d phenotypes%s to %s; covariates for the association to %s", len(result.names),
             "" if args.no_rint else " (rank-inverse-normal transformed)", paths["pheno"], paths["covar"])
    return 0


def log_eyes(result: PhenotypeResult) -> None:
    """Which eye the embeddings of the people kept come from, and whether it became a covariate."""
    if not result.eye_counts:
        log.info("eye: no EYE column in the embeddings; OUT.covar.tsv is a copy of --covar")
        return
    shares = ", ".join(f"{n} {level}" for level, n in result.eye_counts.items())
    if result.eye_covariates:
        log.info("eye: %s among the people kept: mixed, adjusted for and added to OUT.covar.tsv as %s",
                 shares, ", ".join(result.eye_covariates))
    else:
        log.info("eye: %s among the people kept: not a covariate; OUT.covar.tsv is a copy of --covar",
                 shares)
