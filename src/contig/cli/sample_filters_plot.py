"""``contig sample-filters-plot``: kinship histogram and ancestry-outlier figure of `contig qc`."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("contig.genotypes.sample_filters")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--qc", required=True, help="OUT.qc.tsv of `contig qc` (thresholds, counts)")
    parser.add_argument("--king", required=True, help="OUT.king.tsv: the kinship histogram")
    parser.add_argument("--ancestry", required=True, help="OUT.ancestry.tsv: PCs and who was removed")
    parser.add_argument("--out", required=True, help="output PNG")
    parser.add_argument("--density", action="store_true",
                        help="aggregate-only ancestry panel: kept people as a density with cells of "
                             "< 5 people hidden, removed people only counted")


def run(args: argparse.Namespace) -> int:
    import polars as pl

    from contig.core.tables import read_tsv
    from contig.genotypes.sample_filter_plots import plot_sample_filters

    steps = read_tsv(args.qc, required=["step", "samples_removed", "threshold"],
                     dtypes={"threshold": pl.Float64})
    histogram = read_tsv(args.king, required=["from", "to", "pairs"],
                         dtypes={"from": pl.Float64, "to": pl.Float64, "pairs": pl.Int64})
    ancestry = read_tsv(args.ancestry, required=["IID", "removed"])
    if ancestry.height:
        ancestry = ancestry.with_columns(pl.col("removed").cast(pl.String) == "true",
                                         *(pl.col(c).cast(pl.Float64) for c in ancestry.columns
                                           if c.startswith("PC")))
    plot_sample_filters(args.out, histogram, ancestry, steps, density=args.density)
    log.info("wrote %s", args.out)
    return 0
