"""``contig simulate``: write a simulated cohort (genotypes, images, covariates, PGS files, truth)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from contig.errors import InputError
from contig.simulate import SimulationConfig, simulate_cohort

log = logging.getLogger("contig.simulate")
DEFAULTS = SimulationConfig()


def _chromosome_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated chromosome numbers, got {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output folder (replaced as a whole)")
    parser.add_argument("--n-samples", type=int, default=DEFAULTS.n_samples, help="people")
    parser.add_argument("--n-snps", type=int, default=DEFAULTS.n_snps, help="array SNPs")
    parser.add_argument("--n-chromosomes", type=int, default=DEFAULTS.n_chromosomes,
                        help="autosomes 1..N (2-22)")
    parser.add_argument("--image-size", type=int, default=DEFAULTS.image_size, help="image side, px")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="random seed")
    parser.add_argument("--n-populations", type=int, default=DEFAULTS.n_populations)
    parser.add_argument("--fst", type=float, default=DEFAULTS.fst,
                        help="Balding-Nichols F per population (~ Hudson Fst between two)")
    parser.add_argument("--h2", type=float, default=DEFAULTS.h2,
                        help="genetic variance share of each image trait")
    parser.add_argument("--missing-rate", type=float, default=DEFAULTS.missing_rate,
                        help="mean rate of missing genotype calls")
    parser.add_argument("--causal-chromosomes", type=_chromosome_list,
                        default=DEFAULTS.causal_chromosomes,
                        help="comma-separated chromosomes carrying causal variants (others null)")
    parser.add_argument("--n-major-snps", type=int, default=DEFAULTS.n_major_snps,
                        help="major causal SNPs per trait")
    parser.add_argument("--major-variance", type=float, default=DEFAULTS.major_variance,
                        help="trait variance explained by each major SNP")
    parser.add_argument("--two-eye-fraction", type=float, default=DEFAULTS.two_eye_fraction)
    parser.add_argument("--workers", type=int, default=DEFAULTS.n_workers,
                        help="processes rendering images (does not change the output)")
    parser.add_argument("--no-images", action="store_true",
                        help="skip rendering (images.tsv is still written)")


def run(args: argparse.Namespace) -> int:
    for name in ("n_samples", "n_snps", "image_size", "workers", "n_major_snps"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1, got "
                             f"{getattr(args, name)}", "command line")
    config = SimulationConfig(
        n_samples=args.n_samples, n_snps=args.n_snps, n_chromosomes=args.n_chromosomes,
        image_size=args.image_size, seed=args.seed, images=not args.no_images,
        n_workers=args.workers, n_populations=args.n_populations, fst=args.fst, h2=args.h2,
        missing_rate=args.missing_rate, causal_chromosomes=args.causal_chromosomes,
        n_major_snps=args.n_major_snps, major_variance=args.major_variance,
        two_eye_fraction=args.two_eye_fraction,
    )
    simulate_cohort(args.out, config)
    log.info("wrote %s", args.out)
    return 0
