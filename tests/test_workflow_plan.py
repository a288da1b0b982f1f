"""The pure helpers the workflow's rules are built from (contig.core.plan, named in
workflow/rules/common.smk), tested without Snakemake, and static checks of the rule files."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from contig.core import plan
from helpers.workflow import ROOT

RULES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))


# ----------------------------------------------------------------------------- GWAS scatter


def test_scatter_of_the_tiny_cohort_is_two_halves():
    chroms = [str(c) for c in range(1, 7)]
    assert plan.chromosome_groups(chroms, 2) == {"chr1-3": ["1", "2", "3"], "chr4-6": ["4", "5", "6"]}


def test_scatter_at_least_the_chromosomes_gives_one_part_each():
    chroms = [str(c) for c in range(1, 23)] + ["X"]
    for n_parts in (23, 24, 1000):
        groups = plan.chromosome_groups(chroms, n_parts)
        assert groups == {f"chr{c}": [c] for c in chroms}


@pytest.mark.parametrize("n_chroms", [1, 2, 5, 6, 22, 25])
def test_scatter_is_contiguous_balanced_and_complete(n_chroms):
    chroms = [str(c) for c in range(1, n_chroms + 1)]
    for n_parts in range(1, n_chroms + 3):
        groups = plan.chromosome_groups(chroms, n_parts)
        parts = list(groups.values())
        assert len(parts) == min(n_parts, n_chroms)
        assert [c for part in parts for c in part] == chroms  # every chromosome once, in order
        sizes = [len(part) for part in parts]
        assert max(sizes) - min(sizes) <= 1
        assert sizes == sorted(sizes, reverse=True)  # the larger groups first
        for name, part in groups.items():
            assert name == (f"chr{part[0]}" if len(part) == 1 else f"chr{part[0]}-{part[-1]}")


def test_scatter_refuses_nothing_to_split():
    with pytest.raises(ValueError):
        plan.chromosome_groups([], 2)
    with pytest.raises(ValueError):
        plan.chromosome_groups(["1"], 0)


# ----------------------------------------------------------------------------- folds and splits


def test_prune_window_errors_name_the_setting():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert plan.prune_window_errors(config) == []
    config["pca"]["indep_pairwise"] = ["10", 20, 0.2]
    config["snps"]["indep_pairwise"] = ["200kb", 1, 0.2]
    assert plan.prune_window_errors(config) == [
        "config pca.indep_pairwise: step 20 is larger than the window (10 variants)"]


def test_fold_names():
    assert plan.fold_names(1) == ["holdout"]
    assert plan.fold_names(3) == ["fold0", "fold1", "fold2"]
    with pytest.raises(ValueError):
        plan.fold_names(0)


def test_split_option_of_folds_and_holdout():
    assert plan.split_option("fold1", 2, [0.7, 0.1, 0.2]) == "--n-folds 2 --fold 1"
    assert plan.split_option("holdout", 1, [0.7, 0.1, 0.2]) == "--split 0.7 0.1 0.2"
    for bad in ("fold2", "fold", "holdout1", "x"):
        with pytest.raises(ValueError):
            plan.split_option(bad, 2, [0.7, 0.1, 0.2])


def test_every_fold_name_matches_the_fold_wildcard():
    for n_folds in (1, 2, 12):
        for fold in plan.fold_names(n_folds):
            assert re.fullmatch(plan.FOLD_PATTERN, fold)


# ----------------------------------------------------------------------------- analyses


def test_split_analysis():
    assert plan.split_analysis("contig") == ("contig", None)
    assert plan.split_analysis("simclr_right") == ("simclr", "right")
    assert plan.split_analysis("random_left") == ("random", "left")
    for bad in ("contig_middle", "resnet", "contig_", "_left", "contigleft"):
        with pytest.raises(ValueError):
            plan.split_analysis(bad)


def test_methods_are_the_config_schema_methods():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    enum = schema["properties"]["pretrain"]["properties"]["methods"]["items"]["enum"]
    assert list(plan.METHODS) == enum
    assert {m: bool(re.fullmatch(plan.METHOD_PATTERN, m)) for m in enum + ["contig_left"]} == {
        **{m: True for m in enum}, "contig_left": False}


# ----------------------------------------------------------------------------- command lines


def test_cli_options_keeps_order_and_drops_what_is_off():
    options = {"--b": 2, "--off": False, "--none": None, "--empty": "", "--no-list": [],
               "--on": True, "--zero": 0, "--list": ["500kb", 1, 0.2], "--a": 1e-8}
    assert plan.cli_options(options) == "--b 2 --on --zero 0 --list 500kb 1 0.2 --a 1e-08"


def test_cli_options_quotes_strings_for_the_shell():
    pattern = "/data/my cohort/ukb_chr{chrom}"
    text = plan.cli_options({"--bfile": pattern, "--probe": ["disease:auroc", "a b"]})
    assert shlex.split(text) == ["--bfile", pattern, "--probe", "disease:auroc", "a b"]


def test_cli_options_with_equal_values_still_names_each():
    one = plan.cli_options({"--genetic-hidden": 512, "--proj-hidden": 256})
    swapped = plan.cli_options({"--genetic-hidden": 256, "--proj-hidden": 512})
    assert one != swapped


def test_repeated_option():
    assert plan.repeated_option("--checkpoint", ["a.pt", "b c.pt"]) == \
        "--checkpoint a.pt --checkpoint 'b c.pt'"
    assert plan.repeated_option("--checkpoint", []) == ""


def test_named_paths_pair_names_with_paths():
    assert plan.named_paths(["contig", "random"], ["c.tsv", "r.tsv"]) == ["contig=c.tsv", "random=r.tsv"]
    with pytest.raises(ValueError):
        plan.named_paths(["contig", "random"], ["c.tsv"])


def test_comparison_arguments_group_metrics_per_method():
    methods, folds = ["contig", "random"], ["fold0", "fold1"]
    metrics = [f"{m}/{f}.tsv" for m in methods for f in folds]  # expand order: method-major
    text = plan.comparison_arguments(methods, folds, ["c.loci", "r.loci"], metrics, truth="truth.tsv",
                                     replication=["c.rep", "r.rep"], probes="probes.summary.tsv",
                                     loci_joint=["c.joint", "r.joint"])
    assert shlex.split(text) == [
        "--loci", "contig=c.loci", "random=r.loci",
        "--metrics", "contig=contig/fold0.tsv,contig/fold1.tsv", "random=random/fold0.tsv,random/fold1.tsv",
        "--truth-table", "truth.tsv", "--replication", "contig=c.rep", "random=r.rep",
        "--loci-joint", "contig=c.joint", "random=r.joint", "--probes", "probes.summary.tsv"]
    bare = plan.comparison_arguments(["contig"], ["holdout"], ["c.loci"], ["m.tsv"])
    assert bare == "--loci contig=c.loci --metrics contig=m.tsv"
    with pytest.raises(ValueError):
        plan.comparison_arguments(methods, folds, ["c.loci", "r.loci"], metrics[:3])


# ----------------------------------------------------------------------------- rule files


def test_rules_have_no_lambdas():
    found = [f"{path.name}:{n}" for path in RULES
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"(?<![\w.])lambda\b(?!\.)", line)]
    assert not found


def test_no_rule_gets_a_whole_config_section():
    """A section as a param would make every key of it a rerun trigger of the rule."""
    found = [f"{path.name}:{n}: {line.strip()}" for path in RULES
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"""^\s+\w+=\s*config\[["']\w+["']\],\s*$""", line)]
    assert not found


def test_method_pattern_is_written_once():
    found = [path.name for path in RULES if "contig|simclr|random" in path.read_text()]
    assert not found
