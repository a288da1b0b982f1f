"""Shared argument types of the contig subcommands."""

import argparse
import importlib
import math

import pytest

from contig.cli import COMMANDS, main
from contig.cli.argtypes import float_in, int_at_least, name_path, paths_by_name, positive_int, prune_window
from contig.core.errors import InputError


def test_positive_int():
    assert positive_int("3") == 3
    for bad in ("0", "-2", "x", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(bad)


def test_int_at_least():
    assert int_at_least(8)("8") == 8
    for bad in ("7", "x", "8.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            int_at_least(8)(bad)


def test_float_in_closed_and_half_open():
    closed, half_open = float_in(0.0, 1.0), float_in(0.0, 0.5, include_low=False)
    open_high, unbounded = float_in(0.0, 1.0, include_high=False), float_in(0.0, math.inf)
    assert closed("0") == 0.0 and closed("1") == 1.0 and half_open("0.5") == 0.5
    assert open_high("0.999") == 0.999 and unbounded("inf") == math.inf
    for parse, bad in ((closed, "1.01"), (closed, "-0.1"), (half_open, "0"), (half_open, "nan?"),
                       (open_high, "1"), (closed, "nan"), (unbounded, "-1")):
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


def parse_command(command: str, argv: list[str]) -> argparse.Namespace:
    """The arguments of ``contig COMMAND ARGV`` as its own parser reads them (nothing runs)."""
    parser = argparse.ArgumentParser(prog=f"contig {command}")
    importlib.import_module(f"contig.cli.{COMMANDS[command][0]}").add_arguments(parser)
    return parser.parse_args(argv)


REQUIRED = {
    "qc": ["--bfile", "g", "--out", "o"],
    "pca": ["--bfile", "g", "--out", "o"],
    "prune": ["--bfile", "g", "--out", "o", "--indep-pairwise", "50", "5", "0.2"],
    "snps": ["--bfile", "g", "--out", "o"],
    "prs": ["--bfile", "g", "--out", "o", "--scores", "s.txt"],
    "burden": ["--bfile", "g", "--out", "o", "--genes", "genes.tsv"],
    "images": ["--manifest", "m.tsv", "--out", "o", "--size", "32"],
}


def test_command_defaults_are_the_library_defaults():
    from contig.genotypes import pca, qc
    from contig.images import cache
    from contig.scores import burden, prs

    args = parse_command("qc", REQUIRED["qc"])
    assert (args.mind, args.geno, args.maf, args.hwe, args.chunk_size) == (
        None, None, None, None, qc.DEFAULT_CHUNK_SIZE)
    bare = parse_command("qc", REQUIRED["qc"] + ["--mind", "--geno", "--maf"])
    assert (bare.mind, bare.geno, bare.maf) == (qc.BARE_FLAG_THRESHOLDS.mind, qc.BARE_FLAG_THRESHOLDS.geno,
                                                qc.BARE_FLAG_THRESHOLDS.maf)
    args = parse_command("pca", REQUIRED["pca"])
    assert (args.n_pcs, args.passes, args.seed, args.cache_gb) == (
        pca.DEFAULTS.n_pcs, pca.DEFAULTS.n_passes, pca.DEFAULTS.seed, pca.DEFAULTS.cache_gb)
    args = parse_command("prs", REQUIRED["prs"])
    assert (args.min_overlap, args.chunk_size, not args.no_mean_imputation, args.keep_ambiguous) == (
        prs.DEFAULTS.min_overlap, prs.DEFAULTS.chunk_size, prs.DEFAULTS.mean_imputation,
        prs.DEFAULTS.keep_ambiguous)
    args = parse_command("burden", REQUIRED["burden"])
    assert (args.max_maf, args.mode, args.min_carriers, args.chunk_size) == (
        burden.DEFAULTS.max_maf, burden.DEFAULTS.mode, burden.DEFAULTS.min_carriers, burden.DEFAULTS.chunk_size)
    args = parse_command("images", REQUIRED["images"])
    assert (args.on_error, args.brightness_z, args.workers) == (
        cache.DEFAULTS.on_error, cache.DEFAULTS.brightness_z, cache.DEFAULTS.workers)


@pytest.mark.parametrize("command, flag, value", [
    ("qc", "--mind", "1.5"), ("qc", "--maf", "0.51"), ("qc", "--hwe", "1"), ("qc", "--chunk-size", "0"),
    ("pca", "--n-pcs", "0"), ("pca", "--maf", "-0.1"), ("pca", "--passes", "0"), ("pca", "--seed", "-1"),
    ("pca", "--cache-gb", "-1"), ("snps", "--maf", "0.6"), ("snps", "--every-kth", "0"),
    ("prs", "--min-overlap", "1.5"), ("prs", "--chunk-size", "0"), ("burden", "--max-maf", "0"),
    ("burden", "--min-carriers", "0"), ("burden", "--chunk-size", "-4"), ("images", "--size", "4"),
    ("images", "--workers", "0"), ("images", "--brightness-z", "-2"),
])
def test_out_of_range_values_are_refused_not_clamped(command, flag, value, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, *REQUIRED[command], flag, value])
    assert stop.value.code == 2
    assert f"argument {flag}: " in capsys.readouterr().err
