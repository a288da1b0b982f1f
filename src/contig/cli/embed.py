"""``contig embed``: backbone features of held-out people, gathered over cross-fitting folds into
one feature space."""

from __future__ import annotations

import argparse
import logging

import torch

from contig.cli.argtypes import positive_int
from contig.pretrain.align import ALIGN_METHODS
from contig.pretrain.checkpoint import load_trained_model
from contig.pretrain.distributed import resolve_device
from contig.pretrain.embed import EYES, PEOPLE, EmbedSettings, embed_people, write_embeddings

log = logging.getLogger("contig.pretrain.embed")
DEFAULTS = EmbedSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, metavar="PREFIX",
                        help="image cache from `contig images` (the one the models trained on)")
    parser.add_argument("--checkpoint", required=True, action="append", metavar="MODEL_PT",
                        help="model.pt from `contig train`; repeat once per fold to gather K "
                        "fold models (each embeds the people its fold held out)")
    parser.add_argument("--out", required=True, metavar="OUT.parquet",
                        help="embeddings parquet: IID, EYE, dim_0000, ...; also writes "
                        "OUT.alignment.tsv (one row per model)")
    parser.add_argument("--eye", choices=EYES, default=DEFAULTS.eye,
                        help="left / right (the other eye when missing) or mean of both "
                        f"({DEFAULTS.eye})")
    parser.add_argument("--people", choices=PEOPLE, default=DEFAULTS.people,
                        help="test: held-out people only (for GWAS, default); all: everyone in the "
                        "model's cohort (one model only)")
    parser.add_argument("--both-eyes-only", action="store_true", default=DEFAULTS.both_eyes_only,
                        help="embed only people with images of both eyes (with --eye left/right: "
                        "that eye, never the other; for replication across eyes)")
    parser.add_argument("--align", choices=ALIGN_METHODS, default=DEFAULTS.align,
                        help="procrustes: every fold model embeds everyone and the K feature "
                        "spaces are mapped onto one (generalized Procrustes on image features); "
                        f"none: stack the raw held-out features ({DEFAULTS.align})")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULTS.batch_size,
                        help=f"images per forward pass ({DEFAULTS.batch_size})")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")


def run(args: argparse.Namespace) -> int:
    if args.people == "all" and len(args.checkpoint) != 1:
        raise SystemExit("contig embed: error: --people all takes exactly one --checkpoint")
    settings = EmbedSettings(eye=args.eye, people=args.people,
                             both_eyes_only=args.both_eyes_only, align=args.align,
                             batch_size=args.batch_size)
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [load_trained_model(path, device) for path in args.checkpoint]
    result = embed_people(models, args.images, settings, device)
    for line in result.report:
        log.info("%s", line)
    parquet, alignment = write_embeddings(result, args.out)
    log.info("wrote %s: %d people x %d dimensions; %s", parquet, result.table.height,
             result.table.width - 2, alignment)
    return 0
