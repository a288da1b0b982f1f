"""``contig prune``: LD pruning with plink2 ``--indep-pairwise``'s meaning and output files."""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import positive_int

log = logging.getLogger("contig.genotypes.ld")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bfile", required=True, help="input PLINK 1 prefix (or a {chrom} pattern)")
    parser.add_argument("--out", required=True,
                        help="output prefix: OUT.prune.in (kept IDs) and OUT.prune.out (pruned IDs)")
    parser.add_argument("--indep-pairwise", nargs=3, metavar=("WINDOW", "STEP", "R2"), required=True,
                        help="WINDOW variants (or e.g. 200kb), STEP variants, r^2 threshold in [0, 1), "
                             "as plink2: r^2 over founders, the lower-MAF variant of a pair removed")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="chromosomes pruned at once (default: the CPUs this process may use)")


def run(args: argparse.Namespace) -> int:
    from contig.cli.argtypes import prune_window
    from contig.genotypes.ld import indep_pairwise, write_prune_lists
    from contig.genotypes.plinkio import Genotypes

    window = prune_window(args.indep_pairwise)
    genotypes = Genotypes.open(args.bfile)
    log.info("%d samples, %d variants in %s", genotypes.n_samples, genotypes.n_variants, args.bfile)
    keep = indep_pairwise(genotypes, window, threads=args.threads)
    kept_path, pruned_path = write_prune_lists(args.out, genotypes.bim["ID"].to_list(), keep)
    log.info("kept %d and pruned %d variants: wrote %s and %s", int(keep.sum()), int((~keep).sum()),
             kept_path, pruned_path)
    return 0
