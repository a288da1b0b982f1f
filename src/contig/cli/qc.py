"""``contig qc``: genotype QC with plink2's --keep/--mind/--geno/--hwe/--maf meaning and order."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from contig.cli.argtypes import float_in, positive_int
from contig.core.errors import InputError
from contig.genotypes.qc import BARE_FLAG_THRESHOLDS, DEFAULT_CHUNK_SIZE

log = logging.getLogger("contig.genotypes.qc")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    bare = BARE_FLAG_THRESHOLDS
    parser.add_argument("--bfile", required=True,
                        help="input PLINK 1 prefix (or a pattern with {chrom} for per-chromosome files)")
    parser.add_argument("--out", required=True, help="output prefix: OUT.bed/.bim/.fam and OUT.qc.tsv")
    parser.add_argument("--mind", type=float_in(0.0, 1.0), nargs="?", const=bare.mind, default=None,
                        help=f"remove samples with missing call rate > X (plink2's {bare.mind:g} when bare)")
    parser.add_argument("--geno", type=float_in(0.0, 1.0), nargs="?", const=bare.geno, default=None,
                        help=f"remove variants with missing call rate > X ({bare.geno:g} when bare)")
    parser.add_argument("--maf", type=float_in(0.0, 0.5), nargs="?", const=bare.maf, default=None,
                        help=f"remove variants with founder minor allele frequency < X ({bare.maf:g} "
                             "when bare)")
    parser.add_argument("--hwe", type=float_in(0.0, 1.0, include_high=False), default=None,
                        help="remove autosomal variants with founder HWE exact-test p < P")
    parser.add_argument("--keep", type=Path, default=None,
                        help="samples to keep: plink-style FID IID / IID file, or a TSV with an IID column")
    parser.add_argument("--chunk-size", type=positive_int, default=DEFAULT_CHUNK_SIZE,
                        help=f"variants per streamed chunk (default {DEFAULT_CHUNK_SIZE})")


def run(args: argparse.Namespace) -> int:
    from contig.genotypes.plinkio import Genotypes
    from contig.genotypes.qc import (QCThresholds, keep_sample_indices, read_keep_file, run_qc,
                                     write_qc_outputs)

    thresholds = QCThresholds(mind=args.mind, geno=args.geno, maf=args.maf, hwe=args.hwe)
    try:
        thresholds.validate()
    except ValueError as error:
        raise InputError(str(error)) from None
    keep = read_keep_file(args.keep) if args.keep is not None else None
    genotypes = Genotypes.open(args.bfile)
    log.info("%d samples, %d variants in %s", genotypes.n_samples, genotypes.n_variants, args.bfile)
    if keep is not None and not len(keep_sample_indices(genotypes.fam, keep)[0]):
        raise InputError(f"none of the {keep.height} IDs is a sample of {args.bfile}", args.keep)
    result = run_qc(genotypes, thresholds, keep, chunk_size=args.chunk_size)
    if keep is not None:
        log.info("--keep: %d samples not in %s (e.g. no images) removed; %d IDs in %s match no sample",
                 len(result.removed_samples.get("keep", [])), args.bfile, result.keep_unmatched, args.keep)
    for row in result.steps.iter_rows(named=True):
        if row["step"] == "input":
            continue
        ids = result.removed_samples.get(row["step"]) or result.removed_variants.get(row["step"]) or []
        example = f" (e.g. {', '.join(ids[:3])})" if ids else ""
        log.info("%s%s: removed %d samples, %d variants%s; %d samples, %d variants remain",
                 row["step"], "" if row["threshold"] is None else f" {row['threshold']:g}",
                 row["samples_removed"], row["variants_removed"], example,
                 row["samples_remaining"], row["variants_remaining"])
    if not len(result.sample_idx) or not len(result.variant_idx):
        raise InputError(f"QC removed every {'sample' if not len(result.sample_idx) else 'variant'}; "
                         "relax the thresholds", args.bfile)
    write_qc_outputs(genotypes, result, args.out)
    log.info("wrote %s.bed/.bim/.fam and %s.qc.tsv", args.out, args.out)
    return 0
