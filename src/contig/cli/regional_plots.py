"""``contig regional-plots``: one regional plot per lead locus, points coloured by r² with the
lead variant, genes underneath."""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import float_in, non_negative_int
from contig.loci.regional import RegionalSettings

log = logging.getLogger("contig.loci.regional")
DEFAULTS = RegionalSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loci", required=True, help="OUT.tsv (loci) of `contig clump`")
    parser.add_argument("--sumstats", required=True,
                        help="summary statistics (parquet or tsv[.gz]) with CHROM GENPOS ID and the "
                             "p column")
    parser.add_argument("--bfile", required=True,
                        help="genotypes for r² (PLINK 1 prefix or {chrom} pattern; the QC'd fileset)")
    parser.add_argument("--keep", default=None,
                        help="r² from these people only (TSV with an IID column, or FID IID lines)")
    parser.add_argument("--genes", required=True,
                        help="gene table: TSV chrom start end gene (1-based inclusive) or BED")
    parser.add_argument("--window-kb", type=float_in(0.0, float("inf"), include_low=False),
                        default=DEFAULTS.window_kb,
                        help=f"window either side of the lead variant (default {DEFAULTS.window_kb:g})")
    parser.add_argument("--max-plots", type=non_negative_int, default=DEFAULTS.max_plots,
                        help="plot at most this many loci, smallest p first (default "
                             f"{DEFAULTS.max_plots})")
    parser.add_argument("--threshold", type=float_in(0.0, 1.0, include_low=False),
                        default=DEFAULTS.threshold, metavar="P",
                        help=f"the dashed significance line (default {DEFAULTS.threshold:g})")
    parser.add_argument("--p-column", default=DEFAULTS.p_column, metavar="COLUMN",
                        help="the -log10 p column plotted (default LOG10P)")
    parser.add_argument("--title", default="", help="title prefix (e.g. the GWAS)")
    parser.add_argument("--out", required=True,
                        help="output folder: locus<N>_<lead>.png per plotted locus, regional.tsv")


def run(args: argparse.Namespace) -> int:
    from contig.evaluate.truth import read_loci
    from contig.genotypes.plinkio import Genotypes
    from contig.gwas.clump import read_keep
    from contig.gwas.sumstats import read_sumstats
    from contig.loci.plots import write_regional_plots
    from contig.scores.burden import read_gene_table

    settings = RegionalSettings(args.window_kb, args.max_plots, args.threshold, args.p_column)
    settings.validate()
    loci = read_loci(args.loci)
    sumstats = read_sumstats(args.sumstats, args.p_column)
    genes = read_gene_table(args.genes)
    genotypes = Genotypes.open(args.bfile)
    sample_idx = read_keep(args.keep, genotypes) if args.keep else None
    table = write_regional_plots(loci, sumstats, genotypes, genes, args.out, settings, sample_idx,
                                 args.title)
    plotted = table["LOCUS"].n_unique()
    log.info("%d of %d loci plotted (at most %d), ±%g kb, %d variants; r² on %d people; %d variants "
             "without r² (not in the .bim or constant)", plotted, loci.height, args.max_plots,
             args.window_kb, table.height,
             genotypes.n_samples if sample_idx is None else len(sample_idx),
             int(table["R2"].is_null().sum() + table["R2"].is_nan().sum()))
    log.info("wrote %s", args.out)
    return 0
