"""``contig snps``: the raw-SNP modality (MAF filter, every k-th per chromosome or LD pruning)."""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import float_in, positive_int

log = logging.getLogger("contig.scores.snps")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bfile", required=True, help="input PLINK 1 prefix (or a {chrom} pattern)")
    parser.add_argument("--out", required=True, help="output prefix: OUT.npz and OUT.variants.tsv")
    parser.add_argument("--maf", type=float_in(0.0, 0.5), default=None,
                        help="keep variants with founder minor allele frequency >= X")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--every-kth", type=positive_int, default=None, metavar="K",
                        help="keep every K-th variant per chromosome (the reference study: 100)")
    choice.add_argument("--indep-pairwise", nargs=3, metavar=("WINDOW", "STEP", "R2"), default=None,
                        help="keep the variants plink --indep-pairwise keeps")


def run(args: argparse.Namespace) -> int:
    from contig.cli.argtypes import prune_window
    from contig.genotypes.plinkio import Genotypes
    from contig.scores.snps import build_snp_modality, select_snps, write_snp_outputs

    window = prune_window(args.indep_pairwise)
    genotypes = Genotypes.open(args.bfile)
    log.info("%d samples, %d variants in %s", genotypes.n_samples, genotypes.n_variants, args.bfile)
    selection = select_snps(genotypes, args.maf, args.every_kth, window)
    for step, count in selection.removed.items():
        log.info("%s removed %d variants", step, count)
    modality = build_snp_modality(genotypes, selection)
    write_snp_outputs(args.out, genotypes, selection, modality)
    log.info("wrote %s.npz (%d samples x %d SNPs, %d chromosomes) and %s.variants.tsv",
             args.out, modality.X.shape[0], modality.X.shape[1], len(modality.extra["chrom"]), args.out)
    return 0
