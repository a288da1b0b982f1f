"""Pure helpers of the Snakemake workflow (``workflow/rules/common.smk`` names them in its rules):
the job plan and command-line arguments computed from config values and paths. Nothing here
reads Snakemake state, so tests import them directly."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence

# The pretraining methods and the eyes of the replication analyses; an {analysis} is a method or
# <method>_<eye> (that method's embeddings of one eye, people with both eyes only).
METHODS = ("contig", "simclr", "random")
EYES = ("left", "right")
METHOD_PATTERN = "|".join(METHODS)
ANALYSIS_PATTERN = rf"({METHOD_PATTERN})(_({'|'.join(EYES)}))?"
FOLD_PATTERN = r"fold\d+|holdout"


def fold_names(n_folds: int) -> list[str]:
    """The pretraining jobs of one method: fold0..fold{K-1} for K-fold cross-fitting, or
    ``holdout`` for a single train/validation/test split (K = 1)."""
    if n_folds < 1:
        raise ValueError(f"n_folds must be at least 1, got {n_folds}")
    return [f"fold{k}" for k in range(n_folds)] if n_folds > 1 else ["holdout"]


def split_option(fold: str, n_folds: int, holdout: Sequence[float]) -> str:
    """``contig train``'s split: ``--n-folds K --fold k`` for a cross-fitting fold, ``--split
    TRAIN VAL TEST`` for the holdout."""
    if fold == "holdout":
        return "--split " + " ".join(str(f) for f in holdout)
    match = re.fullmatch(r"fold(\d+)", fold)
    if match is None or int(match.group(1)) >= n_folds:
        raise ValueError(f"no fold {fold!r} among {n_folds} folds")
    return f"--n-folds {n_folds} --fold {match.group(1)}"


def split_analysis(analysis: str) -> tuple[str, str | None]:
    """An {analysis} as (method, eye): ``contig`` -> (contig, None), ``contig_left`` ->
    (contig, left)."""
    match = re.fullmatch(ANALYSIS_PATTERN, analysis)
    if match is None:
        raise ValueError(f"not an analysis: {analysis!r} (a method of {METHOD_PATTERN}, "
                         "optionally with _left or _right)")
    return match.group(1), match.group(3)


def chromosome_groups(chromosomes: Sequence[str], n_parts: int) -> dict[str, list[str]]:
    """The GWAS scatter: ``chromosomes`` (in genome order) cut into ``min(n_parts, len)``
    contiguous groups whose sizes differ by at most one, the larger first. Each group is named
    ``chr<first>`` or ``chr<first>-<last>``."""
    if not chromosomes:
        raise ValueError("no chromosomes to scatter")
    if n_parts < 1:
        raise ValueError(f"n_parts must be at least 1, got {n_parts}")
    n_parts = min(n_parts, len(chromosomes))
    size, extra = divmod(len(chromosomes), n_parts)
    groups, start = {}, 0
    for k in range(n_parts):
        group = list(chromosomes[start : start + size + (k < extra)])
        start += len(group)
        name = f"chr{group[0]}" if len(group) == 1 else f"chr{group[0]}-{group[-1]}"
        groups[name] = group
    return groups


def _quoted(value: object) -> str:
    return shlex.quote(value) if isinstance(value, str) else str(value)


def cli_options(options: Mapping[str, object]) -> str:
    """Command-line options as one shell string, in the order given: ``True`` -> the bare flag;
    ``False``, ``None``, ``""`` and ``[]`` -> left out; a list -> the flag and its items; anything
    else -> the flag and the value. Strings are quoted for the shell."""
    words = []
    for flag, value in options.items():
        if value is None or value is False or value == "" or value == []:
            continue
        if value is True:
            words.append(flag)
        elif isinstance(value, (list, tuple)):
            words += [flag, *(_quoted(v) for v in value)]
        else:
            words += [flag, _quoted(value)]
    return " ".join(words)


def repeated_option(flag: str, values: Iterable[str]) -> str:
    """``--flag a --flag b ...`` for options given once per value (argparse ``append``)."""
    return " ".join(f"{flag} {_quoted(v)}" for v in values)


def named_paths(names: Sequence[str], paths: Sequence[str]) -> list[str]:
    """``NAME=PATH`` arguments pairing each name with its path."""
    if len(names) != len(paths):
        raise ValueError(f"{len(names)} names but {len(paths)} paths")
    return [f"{name}={path}" for name, path in zip(names, paths)]


def comparison_arguments(methods: Sequence[str], folds: Sequence[str], loci: Sequence[str],
                         metrics: Sequence[str], truth: str | None = None,
                         replication: Sequence[str] = (), probes: str | None = None,
                         loci_joint: Sequence[str] = ()) -> str:
    """The input options of ``contig compare``: per method its loci table and its metrics of
    every fold (``metrics`` is methods x folds, method-major as ``expand`` makes it), plus the
    truth table, the replication summaries and the joint-test loci tables (one per method) and
    the probe summary if given."""
    if len(metrics) != len(methods) * len(folds):
        raise ValueError(f"{len(metrics)} metrics tables for {len(methods)} methods x "
                         f"{len(folds)} folds")
    per_method = [",".join(metrics[i * len(folds) : (i + 1) * len(folds)])
                  for i in range(len(methods))]
    args = ["--loci", *named_paths(methods, loci), "--metrics", *named_paths(methods, per_method)]
    if truth:
        args += ["--truth-table", truth]
    if replication:
        args += ["--replication", *named_paths(methods, replication)]
    if loci_joint:
        args += ["--loci-joint", *named_paths(methods, loci_joint)]
    if probes:
        args += ["--probes", probes]
    return " ".join(args)


def other_eyes(embedded_eye: str) -> list[str]:
    """The eyes whose per-eye GWAS test a method's loci for replication: the other one when the
    method embeds one eye (``embed.eye`` left or right), both when it averages them (mean)."""
    return [eye for eye in EYES if eye != embedded_eye]


def train_launcher(gpus: int) -> str:
    """The start of the train rule's command: ``python -m contig`` for one process (CPU or one
    GPU), ``torchrun`` with one process per GPU for ``gpus`` > 1, so that DDP runs (each process
    reads its rank from torchrun's environment; ``--standalone``: one node, local rendezvous)."""
    if gpus > 1:
        return f"torchrun --standalone --nproc-per-node {int(gpus)} -m contig"
    return "python -m contig"


def sample_filter_options(qc: Mapping[str, object], pca: Mapping[str, object]) -> dict[str, object]:
    """``contig qc``'s sample-filter flags from the config's ``qc`` and ``pca`` sections: the
    kinship table always (the report shows it), on variants with MAF >= pca.maf; the relatives
    and ancestry filters when their keys are set, the ancestry PCs with the PCA's pruning and seed."""
    ancestry = qc.get("ancestry_sd") is not None
    return {
        "--king-table": True,
        "--king-cutoff": qc.get("king_cutoff"),
        "--ancestry-sd": qc.get("ancestry_sd"),
        "--ancestry-pcs": qc.get("ancestry_pcs") if ancestry else None,
        "--filter-maf": pca["maf"],
        "--filter-indep-pairwise": pca["indep_pairwise"] if ancestry else None,
        "--filter-seed": pca["seed"] if ancestry else None,
    }


def prune_window_errors(config: Mapping[str, Mapping[str, object]]) -> list[str]:
    """``config <section>.indep_pairwise: <why>`` for each LD-pruning setting (pca, snps) that the
    pruning would refuse, e.g. a step longer than the window (the schema cannot compare the two),
    so that a run stops before its first job instead of at the pruning."""
    from contig.genotypes.ld import PruneWindow

    errors = []
    for section in ("pca", "snps"):
        value = config.get(section, {}).get("indep_pairwise")
        if value is None:
            continue
        try:
            PruneWindow.parse(*value)
        except ValueError as error:
            errors.append(f"config {section}.indep_pairwise: {error}")
    return errors
