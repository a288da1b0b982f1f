"""``contig qc``: genotype QC with plink2's --keep/--mind/--geno/--hwe/--maf meaning and order."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from contig.errors import InputError

log = logging.getLogger("contig.qc")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bfile", required=True,
                        help="input PLINK 1 prefix (or a pattern with {chrom} for per-chromosome files)")
    parser.add_argument("--out", required=True, help="output prefix: OUT.bed/.bim/.fam and OUT.qc.tsv")
    parser.add_argument("--mind", type=float, nargs="?", const=0.1, default=None,
                        help="remove samples with missing call rate > X (plink2 default 0.1 when bare)")
    parser.add_argument("--geno", type=float, nargs="?", const=0.1, default=None,
                        help="remove variants with missing call rate > X (default 0.1 when bare)")
    parser.add_argument("--maf", type=float, nargs="?", const=0.01, default=None,
                        help="remove variants with founder minor allele frequency < X (default 0.01)")
    parser.add_argument("--hwe", type=float, default=None,
                        help="remove autosomal variants with founder HWE exact-test p < P")
    parser.add_argument("--keep", type=Path, default=None,
                        help="samples to keep: plink-style FID IID / IID file, or a TSV with an IID column")
    parser.add_argument("--chunk-size", type=int, default=4096, help="variants per streamed chunk")


def run(args: argparse.Namespace) -> int:
    from contig.plinkio import Genotypes
    from contig.qc import (QCThresholds, keep_sample_indices, read_keep_file, run_qc,
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
