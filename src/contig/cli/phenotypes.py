"""``contig phenotypes``: the tested phenotype matrix from image embeddings."""

from __future__ import annotations

import argparse
import logging

from contig.phenotypes import make_phenotypes, write_phenotypes

log = logging.getLogger("contig.phenotypes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--embeddings", required=True,
                        help="parquet: IID (str) then float columns dim_0000 ...")
    parser.add_argument("--covar", required=True, help="TSV: IID + numeric covariate columns")
    parser.add_argument("--out", required=True,
                        help="output prefix: OUT.pheno.tsv (+ OUT.pca_loadings.tsv, OUT.pca_variance.tsv)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--n-pcs", type=int, default=10,
                       help="test the top-k principal components of the embeddings (default 10)")
    which.add_argument("--all-dims", action="store_true", help="test every embedding dimension")
    parser.add_argument("--no-rint", action="store_true",
                        help="skip the rank-inverse-normal transform (Blom, offset 3/8)")
    parser.add_argument("--covar-cols", nargs="+", default=None, metavar="COL",
                        help="adjust for these covariate columns only (default: all)")


def run(args: argparse.Namespace) -> int:
    result = make_phenotypes(args.embeddings, args.covar, n_pcs=None if args.all_dims else args.n_pcs,
                             covar_cols=args.covar_cols, rint=not args.no_rint)
    c = result.counts
    log.info("people: %d with embeddings; dropped %d not in the covariate file, %d missing a "
             "covariate; %d kept", c["embeddings"], c["not_in_covariates"], c["missing_covariate"],
             c["kept"])
    if result.pca is not None:
        log.info("PCA of %d dimensions: the top %d PCs explain %.1f%% of the variance", len(result.dims),
                 len(result.names), 100 * result.pca.explained_ratio.sum())
    paths = write_phenotypes(result, args.out)
    log.info("wrote %d phenotypes%s to %s", len(result.names),
             "" if args.no_rint else " (rank-inverse-normal transformed)", paths["pheno"])
    return 0
