"""``contig pca-plot``: the PC1-PC2 figure from an .eigenvec/.eigenval pair (scatter or aggregate density)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("contig.genotypes.pca")


def add_figure_arguments(parser: argparse.ArgumentParser) -> None:
    """--density and --color-by, shared with `contig pca`."""
    parser.add_argument("--density", action="store_true",
                        help="aggregate-only figure: hexagonal-bin counts, cells with < 5 people "
                             "hidden (for reports that must not show individuals)")
    parser.add_argument("--color-by", default=None, metavar="FILE:COLUMN",
                        help="colour the scatter by COLUMN of a TSV with an IID column")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--eigenvec", required=True, help="plink2-layout .eigenvec (#FID IID PC1 ...)")
    parser.add_argument("--eigenval", required=True, help=".eigenval (one eigenvalue per line)")
    parser.add_argument("--out", required=True, help="output PNG")
    add_figure_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import polars as pl

    from contig.core.errors import InputError
    from contig.genotypes.pca import plot_pcs, read_color_column
    from contig.core.tables import read_tsv

    table = read_tsv(args.eigenvec, required=["IID", "PC1"])
    pcs = [c for c in table.columns if c.startswith("PC")]
    table = read_tsv(args.eigenvec, required=["IID"], dtypes={c: pl.Float64 for c in pcs})
    try:
        eigenvalues = np.loadtxt(args.eigenval, ndmin=1)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read eigenvalues ({error})", args.eigenval) from None
    color = read_color_column(args.color_by, table["IID"]) if args.color_by else None
    plot_pcs(args.out, table.select(pcs).to_numpy(), eigenvalues, color, density=args.density)
    log.info("wrote %s (%s)", args.out, "density" if args.density else "scatter")
    return 0
