"""``contig replicate``: do the loci of one GWAS (e.g. left eye) replicate in another (right eye)?"""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import float_in
from contig.core.errors import InputError
from contig.evaluate.replicate import ReplicationSettings, replicate, write_replication

log = logging.getLogger("contig.evaluate.replicate")
DEFAULTS = ReplicationSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loci", required=True, metavar="A_LOCI_TSV",
                        help="OUT.tsv (loci) of `contig clump` for GWAS A")
    parser.add_argument("--sumstats-other", required=True, metavar="B_COMBINED",
                        help="OUT.combined.parquet (or .tsv.gz) of `contig gwas` for GWAS B")
    parser.add_argument("--loci-other", default=None, metavar="B_LOCI_TSV",
                        help="loci of B, to test them in A as well (needs --sumstats)")
    parser.add_argument("--sumstats", default=None, metavar="A_COMBINED",
                        help="combined summary statistics of A (needs --loci-other)")
    parser.add_argument("--alpha", type=float_in(0, 1, include_low=False, include_high=False),
                        default=DEFAULTS.alpha,
                        help="a locus replicates when its lead's combined p in the other GWAS is "
                             "below alpha / (number of loci tested); below 1 (default "
                             f"{DEFAULTS.alpha:g})")
    parser.add_argument("--window-kb", type=float_in(0, float("inf")), default=DEFAULTS.window_kb,
                        help="replicated loci of A and B whose spans are within this distance count "
                             f"as one distinct locus (use the clump --kb; default {DEFAULTS.window_kb:g})")
    parser.add_argument("--name", default=DEFAULTS.name,
                        help=f"name of GWAS A in the outputs (default {DEFAULTS.name})")
    parser.add_argument("--name-other", default=DEFAULTS.name_other,
                        help=f"name of GWAS B (default {DEFAULTS.name_other})")
    parser.add_argument("--out", required=True,
                        help="per-locus TSV; also writes OUT-stem.summary.tsv (one row of counts)")


def run(args: argparse.Namespace) -> int:
    if (args.loci_other is None) != (args.sumstats is None):
        raise InputError("--loci-other and --sumstats go together (the reverse direction needs "
                         "both)", "command line")
    settings = ReplicationSettings(args.alpha, args.window_kb, args.name, args.name_other)
    result = replicate(args.loci, args.sumstats_other, args.loci_other, args.sumstats, settings)
    s = result.summary.row(0, named=True)
    log.info("%s: %d loci, %d replicate in %s at p < %g/%d; %d leads not in %s's summary statistics",
             args.name, s["n_loci_a"], s["replicated_a_in_b"], args.name_other, args.alpha,
             max(s["n_loci_a"], 1), s["lead_missing_in_b"], args.name_other)
    if s["n_loci_b"] is not None:
        log.info("%s: %d loci, %d replicate in %s at p < %g/%d; %d leads not in %s's summary "
                 "statistics", args.name_other, s["n_loci_b"], s["replicated_b_in_a"], args.name,
                 args.alpha, max(s["n_loci_b"], 1), s["lead_missing_in_a"], args.name)
    log.info("%d distinct replicated loci (replicated loci of both within %g kb merged)",
             s["n_replicated"], args.window_kb)
    paths = write_replication(result, args.out)
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return 0
