"""The ``contig`` command: one subcommand per workflow stage.

Each subcommand lives in ``contig.cli.<module>`` with two functions, ``add_arguments(parser)``
and ``run(args) -> int``; modules are imported only when their command runs, so ``contig qc``
never imports torch. Input errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys

from contig import __version__
from contig.core.errors import InputError

# command name -> (module under contig.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("simulate", "simulate a cohort: genotypes, fundus images, covariates, PGS files, truth"),
    "qc": ("qc", "genotype QC with plink2's --mind/--geno/--maf/--hwe meaning and order"),
    "pca": ("pca", "LD pruning and principal components of the genotypes"),
    "pca-plot": ("pca_plot", "the PC1-PC2 figure (scatter, or aggregate-only density)"),
    "prune": ("prune", "LD pruning: OUT.prune.in/.prune.out as plink2 --indep-pairwise writes them"),
    "king": ("king", "KING-robust kinship (plink2 --make-king-table) and --king-cutoff relative pruning"),
    "sample-filters-plot": ("sample_filters_plot", "kinship histogram and ancestry outliers of `contig qc` (figure)"),
    "snps": ("snps", "the raw-SNP modality: selected, standardized, mean-imputed SNP matrix"),
    "prs": ("prs", "polygenic scores from PGS Catalog scoring files (plink2 --score semantics)"),
    "match-samples": ("match_samples", "people in the array genotypes, the imputed ones, or both (by IID)"),
    "burden": ("burden", "rare-variant gene burden scores"),
    "covariates": ("covariates", "the numeric GWAS covariate file: covariate sheet + genetic PCs"),
    "phenotypes": ("phenotypes", "GWAS phenotypes from embeddings: PCs or all dims, adjusted, RINT"),
    "gwas-step1": ("gwas_step1", "regenie-style whole-genome ridge regression: LOCO predictions"),
    "gwas": ("gwas", "exact OLS association of every phenotype with every variant"),
    "gwas-gather": ("gwas_gather", "join per-chromosome GWAS parts into summary statistics"),
    "gwas-summary": ("gwas_summary", "per-phenotype summary of a GWAS at a threshold: tested, significant, λGC"),
    "sumstats-export": ("sumstats_export", "per-phenotype summary statistics (regenie text, parquet, GWAS-SSF) from the wide layout"),
    "clump": ("clump", "LD clumping of summary statistics into loci (plink --clump meaning)"),
    "gwas-plots": ("plots", "Manhattan and QQ plots of summary statistics"),
    "truth": ("truth", "check loci against the simulator's planted effects; λGC on null chromosomes"),
    "replicate": ("replicate", "replication of loci between two GWAS (left and right eye)"),
    "annotate-loci": ("annotate_loci", "lead loci with nearest genes, significant phenotypes, replication in the other eye"),
    "regional-plots": ("regional_plots", "regional plots of lead loci coloured by r² with the lead, genes underneath"),
    "miami-plot": ("miami_plot", "Miami plot: one GWAS above the mirrored other (left eye against right eye)"),
    "h2-rhe": ("h2_rhe", "SNP heritability of phenotypes by randomized Haseman-Elston regression on the genotypes"),
    "ld-scores": ("ld_scores", "LD scores of the common variants from the cohort's own genotypes (kb window)"),
    "h2-ldsc": ("h2_ldsc", "SNP heritability and intercept of summary statistics by LD score regression"),
    "h2-summary": ("h2_summary", "heritability tables of every method side by side, and the h² figure"),
    "compare": ("compare", "one table comparing the methods: loci, truth, replication, probes, retrieval"),
    "train": ("train", "contrastive pretraining of the image encoder (contig, simclr, random)"),
    "embed": ("embed", "image embeddings of held-out people (gathers cross-fitting folds)"),
    "probes": ("probes", "downstream probes on frozen embeddings: AUROC / quadratic kappa vs label fraction, with intervals"),
    "explain": ("explain", "integrated gradients of the contrastive loss over the genetic features"),
    "images": ("images", "validate the image manifest, crop the fundus field, resize, write a uint8 cache"),
}


# Commands tuned for their own process (not when main() runs inside another program, as in the
# tests, which have NumPy loaded already). Their parallelism is their own worker threads, each
# calling BLAS single-threaded: OpenBLAS threads started when NumPy (and SciPy) load would only
# spin, ~0.2 s of CPU a run of `contig gwas` on 2 cores, so OPENBLAS_NUM_THREADS defaults to 1
# before the command's module loads (a value in the environment is kept). After the imports,
# gc.freeze() keeps the collector off their ~10^6 objects, during the run and at exit (~0.1 s).
PROCESS_TUNED_COMMANDS = frozenset({"gwas"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="contig", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"contig {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    # First pass only finds the command; its own parser then reads the remaining arguments.
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    module_name, help_text = COMMANDS[args.command]
    tuned = args.command in PROCESS_TUNED_COMMANDS and "numpy" not in sys.modules
    if tuned:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    module = importlib.import_module(f"contig.cli.{module_name}")
    if tuned:
        gc.freeze()
    sub_parser = argparse.ArgumentParser(prog=f"contig {args.command}", description=help_text)
    module.add_arguments(sub_parser)
    sub_args = sub_parser.parse_args(rest)
    try:
        return int(module.run(sub_args) or 0)
    except InputError as error:
        print(f"contig {args.command}: error: {error.one_line()}", file=sys.stderr)
        return 2
