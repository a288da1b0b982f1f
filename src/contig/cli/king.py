"""``contig king``: KING-robust kinship (plink2 --make-king-table) and relative pruning (--king-cutoff)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from contig.cli.argtypes import float_in, positive_int
from contig.genotypes.king import DEFAULTS

log = logging.getLogger("contig.genotypes.king")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bfile", required=True, help="input PLINK 1 prefix (or a {chrom} pattern)")
    parser.add_argument("--out", required=True,
                        help="output prefix: OUT.kin0, OUT.king.cutoff.in.id, OUT.king.cutoff.out.id")
    parser.add_argument("--make-king-table", action="store_true",
                        help="write OUT.kin0: every pair's NSNP, HETHET, IBS0, KINSHIP (plink2 layout)")
    parser.add_argument("--king-table-filter", type=float_in(-float("inf"), 0.5), default=None,
                        metavar="MIN", help="only pairs with kinship >= MIN in OUT.kin0")
    parser.add_argument("--king-cutoff", type=float_in(-float("inf"), 0.5), default=None,
                        help="remove one person of each pair with kinship > X, as plink2 chooses")
    parser.add_argument("--block-size", type=positive_int, default=DEFAULTS.block_size,
                        help="people per block of rows (default: ~1 GiB of pair counts per block)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from contig.core.atomic import write_text_atomic
    from contig.core.errors import InputError
    from contig.genotypes.king import (KingSettings, cutoff_pairs, kin0_table, king_cutoff_removed,
                                       king_pairs, write_kin0)
    from contig.genotypes.plinkio import Genotypes, is_autosome

    if not args.make_king_table and args.king_cutoff is None:
        raise InputError("nothing to do: give --make-king-table and/or --king-cutoff")
    genotypes = Genotypes.open(args.bfile)
    variants = np.flatnonzero(is_autosome(genotypes.bim["CHROM"].to_numpy()))
    if not len(variants):
        raise InputError("no autosomal variant", args.bfile)
    log.info("KING-robust kinship of %d people on %d autosomal variants", genotypes.n_samples,
             len(variants))
    floor = args.king_table_filter if args.make_king_table else args.king_cutoff
    if args.make_king_table and args.king_cutoff is not None and floor is not None:
        floor = min(floor, args.king_cutoff)
    pairs = king_pairs(genotypes, variants, min_kinship=floor,
                       settings=KingSettings(block_size=args.block_size))
    out = Path(args.out)
    if args.make_king_table:
        table = kin0_table(pairs, genotypes.fam)
        if args.king_table_filter is not None:
            table = table.filter(table["KINSHIP"] >= args.king_table_filter)
        write_kin0(out.with_name(out.name + ".kin0"), table)
        log.info("wrote %s.kin0 (%d pairs)", args.out, table.height)
    if args.king_cutoff is not None:
        above = cutoff_pairs(pairs, args.king_cutoff)
        removed = king_cutoff_removed(genotypes.n_samples, pairs.first[above], pairs.second[above])
        fam = genotypes.fam.select("FID", "IID")
        for suffix, rows in ((".king.cutoff.in.id", ~removed), (".king.cutoff.out.id", removed)):
            ids = fam.filter(rows)
            text = "#FID\tIID\n" + "".join(f"{f}\t{i}\n" for f, i in ids.iter_rows())
            write_text_atomic(out.with_name(out.name + suffix), text)
        log.info("--king-cutoff %g: %d pairs above it; %d people removed, %d remain", args.king_cutoff,
                 int(above.sum()), int(removed.sum()), int((~removed).sum()))
    return 0
