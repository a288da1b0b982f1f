"""Argument types and parsers shared by the subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from contig.core.errors import InputError


def _int_at_least(text: str, low: int, complaint: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} {complaint}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1, "is not a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0, "is negative")


def int_at_least(low: int):
    """argparse type: an integer >= ``low``."""

    def parse(text: str) -> int:
        return _int_at_least(text, low, f"is less than {low}")

    parse.__name__ = f"integer >= {low}"
    return parse


def float_in(low: float, high: float, include_low: bool = True, include_high: bool = True):
    """argparse type: a number in [low, high]; ``include_low``/``include_high`` False open that end.

    NaN is refused; ``high`` may be ``math.inf``.
    """
    interval = f"{'[' if include_low else '('}{low:g}, {high:g}{']' if include_high else ')'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        above_low = value >= low if include_low else value > low
        below_high = value <= high if include_high else value < high
        if not (above_low and below_high):
            raise argparse.ArgumentTypeError(f"{value:g} is not in {interval}")
        return value

    parse.__name__ = f"number in {interval}"
    return parse


def prune_window(values: Sequence[str] | None):
    """``--indep-pairwise WINDOW STEP R2`` as a :class:`contig.genotypes.ld.PruneWindow` (None if not given)."""
    from contig.genotypes.ld import PruneWindow

    if values is None:
        return None
    try:
        return PruneWindow.parse(*values)
    except ValueError as error:
        raise InputError(f"--indep-pairwise: {error}") from None


def name_path(text: str) -> tuple[str, str]:
    """argparse type: ``NAME=PATH`` as (name, path)."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def paths_by_name(pairs: Sequence[tuple[str, str]], option: str) -> dict[str, str]:
    """{name: path} from ``NAME=PATH`` pairs; a name given twice is an error."""
    out: dict[str, str] = {}
    for name, path in pairs:
        if name in out:
            raise InputError(f"{option}: {name!r} given twice ({out[name]} and {path})", "command line")
        out[name] = path
    return out


def missing_code(text: str) -> float | None:
    """argparse type of ``--input-missing-phenotype``: a number, or ``none`` for no code."""
    if text.lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor none") from None
    if value != value:
        raise argparse.ArgumentTypeError("NaN is not a missing code (NA already is missing)")
    return value


def add_missing_phenotype_argument(parser: argparse.ArgumentParser, default: float) -> None:
    """plink2's ``--input-missing-phenotype``: this value in the phenotype file means missing."""
    parser.add_argument("--input-missing-phenotype", type=missing_code, default=default,
                        metavar="VALUE", help="phenotype values equal to this are missing, as in "
                        f"plink2 (default {default:g}); none = no such code")
