"""``contig simulate``: write a simulated cohort (genotypes, images, covariates, PGS files, truth).

Every default comes from :class:`contig.simulate.SimulationConfig` and every bound from
:data:`contig.simulate.config.RANGES` (what ``SimulationConfig.validate`` checks): values out of
range are refused, never clamped.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from contig.simulate import SimulationConfig, simulate_cohort
from contig.simulate.config import RANGES

log = logging.getLogger("contig.simulate")
DEFAULTS = SimulationConfig()

# flag -> (SimulationConfig field, help); type and default come from the field
SETTINGS: dict[str, tuple[str, str]] = {
    "--n-samples": ("n_samples", "people"),
    "--n-snps": ("n_snps", "array SNPs (at least 50 per chromosome)"),
    "--n-chromosomes": ("n_chromosomes", "autosomes 1..N"),
    "--image-size": ("image_size", "image side, px"),
    "--seed": ("seed", "random seed"),
    "--n-populations": ("n_populations", "populations"),
    "--fst": ("fst", "Balding-Nichols F per population (~ Hudson Fst between two)"),
    "--h2": ("h2", "genetic variance share of each image trait"),
    "--missing-rate": ("missing_rate", "mean rate of missing genotype calls"),
    "--n-major-snps": ("n_major_snps", "major causal SNPs per trait"),
    "--major-variance": ("major_variance", "trait variance explained by each major SNP"),
    "--two-eye-fraction": ("two_eye_fraction", "share of people with both eyes imaged"),
    "--n-duplicates": ("n_duplicates", "planted duplicate pairs (kinship 0.5)"),
    "--n-parent-offspring": ("n_parent_offspring", "planted parent-offspring pairs"),
    "--n-sibling-pairs": ("n_sibling_pairs", "planted full-sibling pairs"),
    "--workers": ("n_workers", "processes rendering images (does not change the output)"),
}


def setting_type(name: str):
    """argparse type for the numeric setting ``name``: its field's type, inside RANGES[name]."""
    kind = type(getattr(DEFAULTS, name))
    allowed = RANGES[name]

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind.__name__}") from None
        if value not in allowed:
            raise argparse.ArgumentTypeError(f"{value} is not in {allowed}")
        return value

    parse.__name__ = f"{kind.__name__} in {allowed}"
    return parse


def chromosome_list(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated chromosome numbers."""
    try:
        return tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated chromosome numbers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output folder (replaced as a whole)")
    for flag, (name, help_text) in SETTINGS.items():
        parser.add_argument(flag, dest=name, type=setting_type(name),
                            default=getattr(DEFAULTS, name), metavar=flag[2:].upper().replace("-", "_"),
                            help=f"{help_text}; {RANGES[name]} (default %(default)s)")
    parser.add_argument("--causal-chromosomes", type=chromosome_list,
                        default=DEFAULTS.causal_chromosomes,
                        help="comma-separated chromosomes carrying causal variants (others null)")
    parser.add_argument("--no-images", action="store_true",
                        help="skip rendering (images.tsv is still written)")


def config_from_args(args: argparse.Namespace) -> SimulationConfig:
    """The SimulationConfig the parsed command line describes (unset settings keep their defaults)."""
    settings = {name: getattr(args, name) for name, _ in SETTINGS.values()}
    return SimulationConfig(**settings, causal_chromosomes=args.causal_chromosomes,
                            images=not args.no_images)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    config.validate()  # the checks across settings (e.g. n_snps per chromosome)
    simulate_cohort(args.out, config)
    log.info("wrote %s", args.out)
    return 0
