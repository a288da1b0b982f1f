"""``contig explain``: Integrated Gradients of each held-out person's contrastive loss, attributed
to the genetic features, summarized per feature and per modality (and scored against the planted
truth on simulated data)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from contig.cli.argtypes import float_in, name_path, non_negative_int, positive_int
from contig.embed import EYES
from contig.errors import InputError
from contig.explain import (
    GENE_MODALITIES,
    SNP_MODALITIES,
    ExplainSettings,
    explain_models,
    feature_table,
    image_saliency,
    load_explain_model,
    modality_chromosomes,
    modality_table,
    output_paths,
    precision_at_k,
    read_truth,
    snp_positions,
    summary_table,
    write_outputs,
)
from contig.modality import load_modality
from contig.plinkio import read_bim

log = logging.getLogger("contig.explain")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--images", required=True, metavar="PREFIX",
                    help="image cache from `contig images` (the one the models trained on)")
    io.add_argument("--checkpoint", required=True, action="append", metavar="MODEL_PT",
                    help="model.pt from `contig train --method contig`; repeat once per fold: "
                    "each model explains people its fold held out")
    io.add_argument("--modality", type=name_path, action="append", default=[],
                    metavar="NAME=NPZ", required=True,
                    help="genetic modality file, repeatable; exactly the models' modalities")
    io.add_argument("--out", required=True, metavar="OUT_PREFIX",
                    help="writes OUT.features.tsv, OUT.modalities.tsv, OUT.summary.tsv, "
                    "OUT.top_features.png, OUT.modalities.png (+ OUT.precision.tsv with --truth, "
                    "OUT.saliency.png with --saliency)")
    io.add_argument("--bim", metavar="BIM", help="adds chrom/pos of the snps features (needed "
                    "for --truth with a snps modality)")
    ig = parser.add_argument_group("integrated gradients")
    ig.add_argument("--n-people", type=positive_int, default=256,
                    help="people explained, spread over the fold models (default 256)")
    ig.add_argument("--n-reference", type=positive_int, default=64,
                    help="reference people per fold model the loss compares against (default 64)")
    ig.add_argument("--steps", type=positive_int, default=32,
                    help="integration steps (Gauss-Legendre, default 32)")
    ig.add_argument("--noise-tunnel-samples", type=non_negative_int, default=0,
                    help="SmoothGrad noise tunnel samples over IG (default 0: off)")
    ig.add_argument("--noise-sd", type=float_in(0, float("inf")), default=0.1,
                    help="noise tunnel standard deviation, in feature units (default 0.1)")
    ig.add_argument("--eye", choices=EYES, default="left",
                    help="image per person, as `contig embed` (default left)")
    ig.add_argument("--batch-size", type=positive_int, default=32,
                    help="people per attribution batch (default 32)")
    truth = parser.add_argument_group("truth (simulated data)")
    truth.add_argument("--truth", metavar="TSV", help="truth.tsv of `contig simulate`: writes "
                       "OUT.precision.tsv (precision@k of the top SNPs and genes)")
    truth.add_argument("--window-kb", type=float_in(0, float("inf")), default=250.0,
                       help="a top SNP within this distance of a planted SNP is a hit (250)")
    truth.add_argument("--top-k", type=positive_int, nargs="+", default=[10, 20, 50])
    parser.add_argument("--saliency", type=non_negative_int, default=0,
                        help="image saliency maps for this many people (individual-level; "
                        "default 0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("contig explain: error: --device cuda but no CUDA device is available")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    sources = {}
    for name, path in args.modality:
        if name in sources:
            raise SystemExit(f"contig explain: error: --modality {name} given twice")
        sources[name] = path
    if args.truth and not args.bim and any(n in SNP_MODALITIES for n in sources):
        raise InputError("--truth with a snps modality needs --bim (to place the SNPs)",
                         args.truth)
    settings = ExplainSettings(n_people=args.n_people, n_reference=args.n_reference,
                               steps=args.steps, noise_samples=args.noise_tunnel_samples,
                               noise_sd=args.noise_sd, batch_size=args.batch_size, eye=args.eye,
                               seed=args.seed)
    models = [load_explain_model(path, device) for path in args.checkpoint]
    modalities = {name: load_modality(path) for name, path in sources.items()}
    truth = read_truth(args.truth) if args.truth else None
    bim = read_bim(args.bim) if args.bim else None

    attr, report, context = explain_models(models, args.images, modalities, settings, device,
                                           sources)
    for line in report:
        log.info("%s", line)

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
                     name, len(p) - missing, len(p), args.bim, missing)
            if missing == len(p):
                raise InputError(f"none of the {name} features is a variant ID of this .bim",
                                 args.bim)
    features = feature_table(attr, chrom, pos)
    per_modality = modality_table(features)
    for row in per_modality.iter_rows(named=True):
        log.info("modality %s: %d features, %.1f%% of the total mean |attribution|",
                 row["modality"], row["n_features"], 100 * row["share"])
    precision = None
    if truth is not None:
        precision = precision_at_k(features, truth, args.window_kb, args.top_k)
        for row in precision.iter_rows(named=True):
            log.info("precision@%d %s (%s): %d hits, %.2f (chance %.2f); %d of %d planted found",
                     row["k"], row["modality"], row["target"], row["hits"], row["precision"],
                     row["chance"], row["planted_found"], row["n_planted"])
        if precision.height == 0:
            log.warning("--truth given but no modality is named %s: no precision rows",
                        " or ".join(SNP_MODALITIES + GENE_MODALITIES))
    saliency = None
    if args.saliency:
        saliency = image_saliency(models, attr, context, args.saliency, settings, device)
        log.info("saliency maps (image->genetics term, IG vs a black image) for %d people",
                 len(saliency))
    written = write_outputs(args.out, features, per_modality, summary_table(attr, settings, models),
                            precision, saliency)
    stale = [p for p in output_paths(args.out, True, True).values()
             if p not in written and Path(p).exists()]
    for path in written:
        log.info("wrote %s", path)
    # Outputs of an earlier run with other settings would pass for this run's: remove them (a
    # saliency figure left behind after individual-level output was switched off, above all).
    for path in stale:
        Path(path).unlink()
        log.warning("removed %s: left from an earlier run with other settings", path)
    return 0
