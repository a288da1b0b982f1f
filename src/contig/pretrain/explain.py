"""``contig explain`` end to end: which genetic features drive a ContIG model.

The parts: :mod:`contig.pretrain.attribution` (Integrated Gradients of each held-out person's
contrastive loss, the people and fold models, image saliency; its docstring gives the method),
:mod:`contig.pretrain.explain_tables` (per feature, per modality, summary, precision@k against
the planted truth) and :mod:`contig.pretrain.explain_plots` (figures). This module loads the
inputs, runs the parts in order and writes every output for a prefix as one atomic set
(:func:`output_paths`), removing outputs that an earlier run with other settings left behind.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from contig.core.atomic import atomic_paths
from contig.core.errors import InputError
from contig.genotypes.plinkio import read_bim
from contig.pretrain.attribution import (
    ExplainSettings,
    explain_models,
    image_saliency,
    load_explain_model,
)
from contig.pretrain.explain_plots import plot_modality_shares, plot_saliency, plot_top_features
from contig.pretrain.explain_tables import (
    GENE_MODALITIES,
    SNP_MODALITIES,
    feature_table,
    modality_chromosomes,
    modality_table,
    precision_at_k,
    read_truth,
    snp_positions,
    summary_table,
)
from contig.scores.modality import Modality, load_modality, without_empty_modalities

__all__ = ["ExplainInputs", "ExplainSettings", "output_paths", "run_explain", "write_outputs"]

log = logging.getLogger("contig.pretrain.explain")


@dataclass(frozen=True)
class ExplainInputs:
    """The files of one run: image cache prefix, fold ``model.pt`` files, modality ``.npz`` by
    name (exactly the models' modalities), and optionally a ``.bim`` (places SNP features) and
    the simulator's ``truth.tsv`` (precision@k)."""

    images: str | Path
    checkpoints: Sequence[str | Path]
    modalities: Mapping[str, str | Path]
    bim: str | Path | None = None
    truth: str | Path | None = None


def feature_positions(modalities: Mapping[str, Modality], bim: pl.DataFrame | None,
                      bim_path: str | Path | None
                      ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Chromosome and position ``(m,)`` of the features of each SNP modality: chromosomes from
    the modality file, both from the ``.bim`` when given (it wins). Logs how many were placed;
    a ``.bim`` that places none of a modality's features is an :class:`InputError`."""
    chrom, pos = {}, {}
    for name, mod in modalities.items():
        if name not in SNP_MODALITIES:
            continue
        from_npz = modality_chromosomes(mod)
        if from_npz is not None:
            chrom[name] = from_npz
        if bim is not None:
            c, p, missing = snp_positions(bim, mod.feature)
            chrom[name], pos[name] = c, p
            log.info("%s: %d of %d features placed by %s; %d not found there (no chrom/pos)",
                     name, len(p) - missing, len(p), bim_path, missing)
            if missing == len(p):
                raise InputError(f"none of the {name} features is a variant ID of this .bim",
                                 bim_path)
    return chrom, pos


def score_against_truth(features: pl.DataFrame, truth: pl.DataFrame,
                        settings: ExplainSettings) -> pl.DataFrame:
    """precision@k of the top features (:func:`precision_at_k`), logged row by row."""
    precision = precision_at_k(features, truth, settings.window_kb, settings.top_k)
    for row in precision.iter_rows(named=True):
        log.info("precision@%d %s (%s): %d hits, %.2f (chance %.2f); %d of %d planted found",
                 row["k"], row["modality"], row["target"], row["hits"], row["precision"],
                 row["chance"], row["planted_found"], row["n_planted"])
    if precision.height == 0:
        log.warning("--truth given but no modality is named %s: no precision rows",
                    " or ".join(SNP_MODALITIES + GENE_MODALITIES))
    return precision


def run_explain(inputs: ExplainInputs, out: str | Path, settings: ExplainSettings,
                device: torch.device | str = "cpu") -> list[Path]:
    """Explain the fold models of ``inputs`` and write every output for the prefix ``out``;
    returns the paths written."""
    settings.validate()
    if inputs.truth and not inputs.bim and any(n in SNP_MODALITIES for n in inputs.modalities):
        raise InputError("--truth with a snps modality needs --bim (to place the SNPs)",
                         inputs.truth)
    models = [load_explain_model(path, device) for path in inputs.checkpoints]
    modalities = without_empty_modalities(
        {name: load_modality(path) for name, path in inputs.modalities.items()}, inputs.modalities)
    truth = read_truth(inputs.truth) if inputs.truth else None
    bim = read_bim(inputs.bim) if inputs.bim else None
    attr, report, context = explain_models(models, inputs.images, modalities, settings, device,
                                           inputs.modalities)
    for line in report:
        log.info("%s", line)
    features = feature_table(attr, *feature_positions(modalities, bim, inputs.bim))
    per_modality = modality_table(features)
    for row in per_modality.iter_rows(named=True):
        log.info("modality %s: %d features, %.1f%% of the total mean |attribution|",
                 row["modality"], row["n_features"], 100 * row["share"])
    precision = score_against_truth(features, truth, settings) if truth is not None else None
    saliency = None
    if settings.saliency:
        saliency = image_saliency(models, attr, context, settings.saliency, settings, device)
        log.info("saliency maps (image->genetics term, IG vs a black image) for %d people",
                 len(saliency))
    written = write_outputs(out, features, per_modality, summary_table(attr, settings, models),
                            precision, saliency)
    for path in written:
        log.info("wrote %s", path)
    remove_stale_outputs(out, written)
    return written


def output_paths(prefix: str | Path, truth: bool, saliency: bool) -> dict[str, Path]:
    """Files written for ``prefix``: features/modalities/summary tables, the two figures, and
    the precision table and saliency figure when asked."""
    names = ["features.tsv", "modalities.tsv", "summary.tsv", "top_features.png",
             "modalities.png"]
    if truth:
        names.append("precision.tsv")
    if saliency:
        names.append("saliency.png")
    return {n: Path(f"{prefix}.{n}") for n in names}


def write_outputs(prefix: str | Path, features: pl.DataFrame, modalities: pl.DataFrame,
                  summary: pl.DataFrame, precision: pl.DataFrame | None,
                  saliency: Sequence[tuple[str, np.ndarray, np.ndarray]] | None
                  ) -> list[Path]:
    """Write every output for ``prefix`` as one atomic set (all or none); returns the paths."""
    paths = output_paths(prefix, precision is not None, bool(saliency))
    with atomic_paths(list(paths.values())) as temps:
        tmp = dict(zip(paths, temps))
        for name, table in (("features.tsv", features), ("modalities.tsv", modalities),
                            ("summary.tsv", summary), ("precision.tsv", precision)):
            if table is not None:
                table.write_csv(tmp[name], separator="\t", null_value="NA")
        plot_top_features(features, tmp["top_features.png"])
        plot_modality_shares(modalities, tmp["modalities.png"])
        if saliency:
            plot_saliency(saliency, tmp["saliency.png"])
    return list(paths.values())


def remove_stale_outputs(prefix: str | Path, written: Sequence[Path]) -> None:
    """Remove outputs of ``prefix`` this run did not write: an earlier run's, with other
    settings, would pass for this run's (a saliency figure left behind after individual-level
    output was switched off, above all)."""
    for path in output_paths(prefix, True, True).values():
        if path not in written and path.exists():
            path.unlink()
            log.warning("removed %s: left from an earlier run with other settings", path)
