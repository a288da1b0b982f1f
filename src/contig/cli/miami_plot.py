"""``contig miami-plot``: the Manhattan plot of one GWAS above the mirrored one of another (e.g.
the left eye against the right eye)."""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import float_in
from contig.gwas.stats import GENOME_WIDE
from contig.gwas.sumstats import DEFAULT_P_COLUMN

log = logging.getLogger("contig.loci.plots")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sumstats", required=True, help="summary statistics of the upper GWAS")
    parser.add_argument("--sumstats-other", required=True, help="summary statistics of the lower GWAS")
    parser.add_argument("--loci", default=None, help="loci of the upper GWAS (`contig clump` OUT.tsv): "
                                                     "label their lead variants")
    parser.add_argument("--loci-other", default=None, help="loci of the lower GWAS")
    parser.add_argument("--name", default="left eye", help="name of the upper GWAS (default left eye)")
    parser.add_argument("--name-other", default="right eye",
                        help="name of the lower GWAS (default right eye)")
    parser.add_argument("--threshold", type=float_in(0.0, 1.0, include_low=False), default=GENOME_WIDE,
                        metavar="P", help=f"the dashed significance lines (default {GENOME_WIDE:g})")
    parser.add_argument("--p-column", default=DEFAULT_P_COLUMN, metavar="COLUMN",
                        help="the -log10 p column plotted (default LOG10P)")
    parser.add_argument("--title", default="", help="plot title")
    parser.add_argument("--out", required=True, help="the PNG")


def _leads(path: str | None) -> list[str]:
    from contig.evaluate.truth import read_loci

    return read_loci(path)["LEAD_ID"].to_list() if path else []


def run(args: argparse.Namespace) -> int:
    from contig.gwas.sumstats import read_sumstats
    from contig.loci.plots import miami_plot

    top = read_sumstats(args.sumstats, args.p_column)
    bottom = read_sumstats(args.sumstats_other, args.p_column)
    leads = (_leads(args.loci), _leads(args.loci_other))
    miami_plot(top, bottom, args.out, (args.name, args.name_other), leads, args.threshold,
               args.p_column, args.title)
    log.info("Miami plot of %s (%d variants, %d loci) over %s (%d variants, %d loci), line at p = %g",
             args.name, top.height, len(leads[0]), args.name_other, bottom.height, len(leads[1]),
             args.threshold)
    log.info("wrote %s", args.out)
    return 0
