"""``contig explain``: Integrated Gradients of each held-out person's contrastive loss, attributed
to the genetic features, summarized per feature and per modality (and scored against the planted
truth on simulated data)."""

from __future__ import annotations

import argparse
import logging
import sys

import torch

from contig.cli.argtypes import float_in, name_path, non_negative_int, paths_by_name, positive_int
from contig.pretrain.distributed import resolve_device
from contig.pretrain.embed import EYES
from contig.pretrain.explain import ExplainInputs, ExplainSettings, run_explain

log = logging.getLogger("contig.pretrain.explain")
DEFAULTS = ExplainSettings()


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
    ig.add_argument("--n-people", type=positive_int, default=DEFAULTS.n_people,
                    help=f"people explained, spread over the fold models ({DEFAULTS.n_people})")
    ig.add_argument("--n-reference", type=positive_int, default=DEFAULTS.n_reference,
                    help="reference people per fold model the loss compares against "
                    f"({DEFAULTS.n_reference})")
    ig.add_argument("--steps", type=positive_int, default=DEFAULTS.steps,
                    help=f"integration steps, at least 2 (Gauss-Legendre, {DEFAULTS.steps})")
    ig.add_argument("--noise-tunnel-samples", type=non_negative_int,
                    default=DEFAULTS.noise_samples,
                    help=f"SmoothGrad noise tunnel samples over IG ({DEFAULTS.noise_samples}: off)")
    ig.add_argument("--noise-sd", type=float_in(0, float("inf")), default=DEFAULTS.noise_sd,
                    help=f"noise tunnel standard deviation, in feature units ({DEFAULTS.noise_sd})")
    ig.add_argument("--eye", choices=EYES, default=DEFAULTS.eye,
                    help=f"image per person, as `contig embed` ({DEFAULTS.eye})")
    ig.add_argument("--batch-size", type=positive_int, default=DEFAULTS.batch_size,
                    help=f"people per attribution batch ({DEFAULTS.batch_size})")
    truth = parser.add_argument_group("truth (simulated data)")
    truth.add_argument("--truth", metavar="TSV", help="truth.tsv of `contig simulate`: writes "
                       "OUT.precision.tsv (precision@k of the top SNPs and genes)")
    truth.add_argument("--window-kb", type=float_in(0, float("inf")), default=DEFAULTS.window_kb,
                       help="a top SNP within this distance of a planted SNP is a hit "
                       f"({DEFAULTS.window_kb:g})")
    truth.add_argument("--top-k", type=positive_int, nargs="+", default=list(DEFAULTS.top_k))
    parser.add_argument("--saliency", type=non_negative_int, default=DEFAULTS.saliency,
                        help="image saliency maps for this many people (individual-level; "
                        f"{DEFAULTS.saliency}: none)")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")


def settings_from_args(args: argparse.Namespace) -> ExplainSettings:
    """The run's settings; out-of-range values end the command with status 2."""
    settings = ExplainSettings(
        n_people=args.n_people, n_reference=args.n_reference, steps=args.steps,
        noise_samples=args.noise_tunnel_samples, noise_sd=args.noise_sd,
        batch_size=args.batch_size, eye=args.eye, seed=args.seed, window_kb=args.window_kb,
        top_k=tuple(args.top_k), saliency=args.saliency)
    try:
        settings.validate()
    except ValueError as error:
        print(f"contig explain: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    return settings


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    inputs = ExplainInputs(args.images, args.checkpoint, paths_by_name(args.modality, "--modality"),
                           args.bim, args.truth)
    run_explain(inputs, args.out, settings, device)
    return 0
