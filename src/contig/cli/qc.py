"""``contig qc``: genotype QC with plink2's --keep/--mind/--geno/--hwe/--maf meaning and order."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from contig.cli.argtypes import float_in, non_negative_int, positive_int
from contig.core.errors import InputError
from contig.genotypes.qc import BARE_FLAG_THRESHOLDS, DEFAULT_CHUNK_SIZE
from contig.genotypes.sample_filters import DEFAULTS as SAMPLE_FILTER_DEFAULTS

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
    add_sample_filter_arguments(parser)


def add_sample_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """Relatives and ancestry outliers, after the filters above (contig.genotypes.sample_filters)."""
    sf = SAMPLE_FILTER_DEFAULTS
    group = parser.add_argument_group("sample filters after QC, on common autosomal variants")
    group.add_argument("--king-cutoff", type=float_in(-1.0, 0.5), default=None,
                       help="remove one person of each pair with KING-robust kinship > X (plink2's "
                            "--king-cutoff choice); 0.0884 removes 2nd degree and closer")
    group.add_argument("--king-table", action="store_true",
                       help="compute every pair's kinship even without --king-cutoff: OUT.kin0 (pairs "
                            ">= 0.0442) and OUT.king.tsv (the kinship histogram)")
    group.add_argument("--ancestry-sd", type=float_in(0.0, math.inf, include_low=False), default=None,
                       help="remove people more than K standard deviations from the mean on any of the "
                            "top --ancestry-pcs PCs (computed after --king-cutoff); OUT.ancestry.tsv")
    group.add_argument("--ancestry-pcs", type=positive_int, default=sf.ancestry_pcs,
                       help=f"PCs the ancestry filter looks at (default {sf.ancestry_pcs})")
    group.add_argument("--filter-maf", type=float_in(0.0, 0.5), default=sf.maf,
                       help=f"variants for both filters: founder MAF >= X (default {sf.maf:g})")
    group.add_argument("--filter-indep-pairwise", nargs=3, metavar=("WINDOW", "STEP", "R2"),
                       default=None, help="LD-prune the ancestry PCA's variants as plink "
                                          "--indep-pairwise (kinship uses them all)")
    group.add_argument("--filter-seed", type=non_negative_int, default=sf.seed,
                       help=f"seed of the ancestry PCA's randomized eigensolver (default {sf.seed})")


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
    result, reasons, write_filter_tables = apply_sample_filters(genotypes, result, args)
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
    write_removed(genotypes, result, args.out, reasons)
    write_filter_tables()
    log.info("wrote %s.bed/.bim/.fam and %s.qc.tsv", args.out, args.out)
    return 0


def apply_sample_filters(genotypes, result, args: argparse.Namespace):
    """Relatives and ancestry outliers among the people QC kept (when asked). Returns the QC result
    with their removals, the reason per removed IID, and a function that writes their tables (called
    once everything else succeeded, so that a failure leaves no output)."""
    from contig.cli.argtypes import prune_window
    from contig.core.tables import write_tsv
    from contig.genotypes.king import histogram_table, kin0_table, write_kin0
    from contig.genotypes.sample_filters import (SampleFilterSettings, ancestry_table, apply_to_qc,
                                                 removed_table, run_sample_filters)

    settings = SampleFilterSettings(king_cutoff=args.king_cutoff, ancestry_sd=args.ancestry_sd,
                                    ancestry_pcs=args.ancestry_pcs, king_table=args.king_table,
                                    maf=args.filter_maf, window=prune_window(args.filter_indep_pairwise),
                                    seed=args.filter_seed)
    if not settings.active or not len(result.sample_idx) or not len(result.variant_idx):
        return result, {}, write_nothing
    filtered = run_sample_filters(genotypes, result.sample_idx, result.variant_idx, settings)
    fam = genotypes.fam[result.sample_idx]
    out = Path(args.out)
    removed = removed_table(filtered, fam)
    for row in removed.iter_rows(named=True):
        log.info("%s removed %s: %s", row["step"], row["IID"], row["reason"])

    def write_filter_tables() -> None:
        if filtered.pairs is not None:
            write_kin0(out.with_name(out.name + ".kin0"), kin0_table(filtered.pairs, fam))
            write_tsv(histogram_table(filtered.pairs), out.with_name(out.name + ".king.tsv"))
        if settings.ancestry_sd is not None or args.king_table:
            write_tsv(ancestry_table(filtered, fam), out.with_name(out.name + ".ancestry.tsv"))

    reasons = dict(zip(removed["IID"], removed["reason"]))
    return apply_to_qc(result, filtered, settings, genotypes.fam), reasons, write_filter_tables


def write_nothing() -> None:
    """The table writer of sample filters that did not run."""


def write_removed(genotypes, result, out: str, reasons: dict[str, str]) -> None:
    """OUT.removed.tsv: every person a step removed (FID, IID, step, reason where one is known)."""
    import polars as pl

    from contig.core.tables import write_tsv

    rows = [(step, iid, reasons.get(iid, "")) for step, iids in result.removed_samples.items()
            for iid in iids]
    table = pl.DataFrame(rows, schema={"step": pl.String, "IID": pl.String, "reason": pl.String},
                         orient="row")
    fids = genotypes.fam.select("IID", "FID").unique("IID", keep="first")
    table = table.join(fids, on="IID", how="left", maintain_order="left").select("FID", "IID", "step",
                                                                                 "reason")
    write_tsv(table, Path(out).with_name(Path(out).name + ".removed.tsv"))
