"""Argument types and parsers shared by the subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from contig.errors import InputError


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def float_in(low: float, high: float, include_low: bool = True):
    """argparse type: a number in [low, high] (or (low, high] with ``include_low=False``)."""
    interval = f"{'[' if include_low else '('}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        above_low = value >= low if include_low else value > low
        if not (above_low and value <= high):
            raise argparse.ArgumentTypeError(f"{value:g} is not in {interval}")
        return value

    parse.__name__ = f"number in {interval}"
    return parse


def prune_window(values: Sequence[str] | None):
    """``--indep-pairwise WINDOW STEP R2`` as a :class:`contig.ld.PruneWindow` (None if not given)."""
    from contig.ld import PruneWindow

    if values is None:
        return None
    try:
        return PruneWindow.parse(*values)
    except ValueError as error:
        raise InputError(f"--indep-pairwise: {error}") from None
