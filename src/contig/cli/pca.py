"""``contig pca``: LD pruning (plink --indep-pairwise) and principal components (plink2 --pca approx)."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from contig.cli.argtypes import float_in, non_negative_int, positive_int
from contig.cli.pca_plot import add_figure_arguments
from contig.genotypes.pca import DEFAULTS

log = logging.getLogger("contig.genotypes.pca")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bfile", required=True, help="input PLINK 1 prefix (or a {chrom} pattern)")
    parser.add_argument("--out", required=True,
                        help="output prefix: OUT.eigenvec, OUT.eigenval, OUT.prune.in, OUT.png")
    parser.add_argument("--n-pcs", type=positive_int, default=DEFAULTS.n_pcs,
                        help=f"number of principal components (default {DEFAULTS.n_pcs})")
    parser.add_argument("--maf", type=float_in(0.0, 0.5), default=None,
                        help="leave out variants with founder minor allele frequency < X "
                             "(default: only monomorphic ones)")
    parser.add_argument("--indep-pairwise", nargs=3, metavar=("WINDOW", "STEP", "R2"), default=None,
                        help="LD-prune first, as plink: WINDOW variants (or e.g. 200kb), STEP, r^2")
    parser.add_argument("--seed", type=non_negative_int, default=DEFAULTS.seed,
                        help=f"seed of the randomized eigensolver (default {DEFAULTS.seed})")
    parser.add_argument("--passes", type=positive_int, default=DEFAULTS.n_passes,
                        help="passes over the genotypes of the block Krylov eigensolver "
                             f"(default {DEFAULTS.n_passes})")
    parser.add_argument("--cache-gb", type=float_in(0.0, math.inf), default=DEFAULTS.cache_gb,
                        help="keep standardized genotypes in memory up to this size, else stream "
                             f"(default {DEFAULTS.cache_gb:g})")
    parser.add_argument("--no-plot", action="store_true",
                        help="skip OUT.png (the workflow draws it with `contig pca-plot`)")
    add_figure_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from contig.core.atomic import atomic_path
    from contig.cli.argtypes import prune_window
    from contig.genotypes.pca import genotype_pca, plot_pcs, read_color_column, write_eigenval, write_eigenvec
    from contig.genotypes.plinkio import Genotypes
    from contig.scores.snps import select_snps

    window = prune_window(args.indep_pairwise)
    genotypes = Genotypes.open(args.bfile)
    color = read_color_column(args.color_by, genotypes.fam["IID"]) if args.color_by else None
    log.info("%d samples, %d variants in %s", genotypes.n_samples, genotypes.n_variants, args.bfile)
    selection = select_snps(genotypes, maf=args.maf, window=window)
    for step, count in selection.removed.items():
        log.info("%s removed %d variants", step, count)
    variant_idx = selection.variant_idx
    log.info("%d variants enter the PCA", len(variant_idx))
    result = genotype_pca(genotypes, args.n_pcs, variant_idx, n_passes=args.passes, seed=args.seed,
                          cache_gb=args.cache_gb)
    log.info("PCA on %d samples x %d variants (%d passes); eigenvalues %s", genotypes.n_samples,
             result.n_variants, result.n_passes, " ".join(f"{v:.4g}" for v in result.eigenvalues))
    out = Path(args.out)
    ids = genotypes.bim["ID"].gather(variant_idx).to_list()
    with atomic_path(out.with_name(out.name + ".prune.in")) as tmp:
        Path(tmp).write_text("".join(f"{i}\n" for i in ids))
    write_eigenvec(out.with_name(out.name + ".eigenvec"), genotypes.fam, result.eigenvectors)
    write_eigenval(out.with_name(out.name + ".eigenval"), result.eigenvalues)
    if not args.no_plot:
        plot_pcs(out.with_name(out.name + ".png"), result.eigenvectors, result.eigenvalues, color,
                 density=args.density)
    log.info("wrote %s.eigenvec, .eigenval, .prune.in%s", args.out, "" if args.no_plot else ", .png")
    return 0
