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


def prune_window(values: Sequence[str] | None):
    """``--indep-pairwise WINDOW STEP R2`` as a :class:`contig.ld.PruneWindow` (None if not given)."""
    from contig.ld import PruneWindow

    if values is None:
        return None
    try:
        return PruneWindow.parse(*values)
    except ValueError as error:
        raise InputError(f"--indep-pairwise: {error}") from None
