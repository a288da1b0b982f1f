"""Shared argument types of the contig subcommands."""

import argparse

import pytest

from contig.cli.argtypes import float_in, name_path, paths_by_name, positive_int, prune_window
from contig.errors import InputError


def test_positive_int():
    assert positive_int("3") == 3
    for bad in ("0", "-2", "x", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(bad)


def test_float_in_closed_and_half_open():
    closed, half_open = float_in(0.0, 1.0), float_in(0.0, 0.5, include_low=False)
    assert closed("0") == 0.0 and closed("1") == 1.0 and half_open("0.5") == 0.5
    for parse, bad in ((closed, "1.01"), (closed, "-0.1"), (half_open, "0"), (half_open, "nan?")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)


def test_prune_window():
    assert prune_window(None) is None
    assert prune_window(["200kb", "1", "0.1"]) is not None
    with pytest.raises(InputError, match="--indep-pairwise"):
        prune_window(["200kb", "1", "1.5"])


def test_name_path_and_paths_by_name():
    assert name_path("contig=results/a=b.tsv") == ("contig", "results/a=b.tsv")
    for bad in ("contig", "=x.tsv", "contig="):
        with pytest.raises(argparse.ArgumentTypeError):
            name_path(bad)
    assert paths_by_name([("a", "1"), ("b", "2")], "--loci") == {"a": "1", "b": "2"}
    with pytest.raises(InputError, match="--loci: 'a' given twice"):
        paths_by_name([("a", "1"), ("a", "2")], "--loci")
