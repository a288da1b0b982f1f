"""``contig embed``: backbone features of held-out people, gathered over cross-fitting folds."""

from __future__ import annotations

import argparse
import logging

import torch

from contig.embed import EYES, embed_people, load_trained_model, write_embeddings

log = logging.getLogger("contig.embed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, metavar="PREFIX",
                        help="image cache from `contig images` (the one the models trained on)")
    parser.add_argument("--checkpoint", required=True, action="append", metavar="MODEL_PT",
                        help="model.pt from `contig train`; repeat once per fold to gather K "
                        "fold models (each embeds the people its fold held out)")
    parser.add_argument("--out", required=True, help="embeddings parquet: IID, dim_0000, ...")
    parser.add_argument("--eye", choices=EYES, default="left",
                        help="left / right (the other eye when missing) or mean of both (left)")
    parser.add_argument("--people", choices=("test", "all"), default="test",
                        help="test: held-out people only (for GWAS, default); all: everyone in the "
                        "model's cohort (one model only)")
    parser.add_argument("--both-eyes-only", action="store_true",
                        help="embed only people with images of both eyes (with --eye left/right: "
                        "that eye, never the other; for replication across eyes)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def run(args: argparse.Namespace) -> int:
    if args.people == "all" and len(args.checkpoint) != 1:
        raise SystemExit("contig embed: error: --people all takes exactly one --checkpoint")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [load_trained_model(path, device) for path in args.checkpoint]
    table, report = embed_people(models, args.images, eye=args.eye, people=args.people,
                                 device=device, batch_size=args.batch_size,
                                 both_eyes_only=args.both_eyes_only)
    for line in report:
        log.info("%s", line)
    write_embeddings(table, args.out)
    log.info("wrote %s: %d people x %d dimensions", args.out, table.height, table.width - 1)
    return 0
