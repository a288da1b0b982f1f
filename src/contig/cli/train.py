"""``contig train``: contrastive pretraining of an image encoder (ContIG, SimCLR, random baseline).

Resumes automatically from OUT/checkpoint.pt. On SIGTERM it checkpoints and exits with status 75
(EX_TEMPFAIL): rerun the same command (or let the cluster requeue it) to continue.
"""

from __future__ import annotations

import argparse
import logging

from contig.cli.argtypes import name_path
from contig.train import EXIT_PREEMPTED, METHODS, TrainConfig, TrainingPreempted, train

log = logging.getLogger("contig.train")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--images", required=True, metavar="PREFIX",
                    help="image cache from `contig images` (PREFIX.npy, PREFIX.index.tsv)")
    io.add_argument("--modality", type=name_path, action="append", default=[],
                    metavar="NAME=PATH", help="genetic modality file (.npz), repeatable: "
                    "snps=..., prs=..., burden=...")
    io.add_argument("--out", required=True, metavar="DIR",
                    help="writes DIR/model.pt, checkpoint.pt, metrics.tsv, curves.png, split.tsv")
    io.add_argument("--method", choices=METHODS, default="contig",
                    help="contig: images vs genetics; simclr: image-only NT-Xent; random: save "
                    "the untrained encoder (default contig)")
    split = parser.add_argument_group("people")
    split.add_argument("--split", type=float, nargs=3, default=(0.7, 0.1, 0.2),
                       metavar=("TRAIN", "VAL", "TEST"),
                       help="fractions of people (default 0.7 0.1 0.2); both eyes stay together")
    split.add_argument("--n-folds", type=int, default=None, metavar="K",
                       help="K-fold cross-fitting: hold out fold --fold (its people are embedded)")
    split.add_argument("--fold", type=int, default=None, metavar="k")
    split.add_argument("--val-fraction", type=float, default=0.1,
                       help="with folds: share of the training folds used for validation (0.1)")
    split.add_argument("--modalities-join", dest="join", choices=("inner", "outer"),
                       default="inner", help="inner: people with every modality; outer: people "
                       "with any, absent modalities masked out of their terms (default inner)")
    model = parser.add_argument_group("model")
    model.add_argument("--arch", choices=("resnet18", "resnet50"), default="resnet50")
    model.add_argument("--weights", default=None, metavar="FILE",
                       help="local torchvision state dict to start from (default: random init)")
    model.add_argument("--image-size", type=int, default=None,
                       help="training side in pixels (default: the cache's)")
    model.add_argument("--proj-hidden", type=int, default=None,
                       help="projection hidden size (default: backbone size, 2048 for ResNet-50)")
    model.add_argument("--proj-dim", type=int, default=128, help="embedding size of the loss (128)")
    model.add_argument("--hidden-layers", type=int, choices=(0, 1, 2), default=1,
                       help="hidden layers of each genetic MLP (default 1)")
    model.add_argument("--genetic-hidden", type=int, default=2048,
                       help="width of the genetic hidden layers (2048)")
    model.add_argument("--genetic-norm", choices=("batch", "layer"), default="batch",
                       help="normalization in the genetic MLP, over present rows only (batch)")
    model.add_argument("--sync-bn", action="store_true",
                       help="synchronize the ResNet's BatchNorm across GPUs under torchrun")
    opt = parser.add_argument_group("optimization")
    opt.add_argument("--epochs", type=int, default=100)
    opt.add_argument("--batch-size", type=int, default=64,
                     help="people per (global) batch; each brings all their images (64)")
    opt.add_argument("--accumulate", type=int, default=1, help="batches per optimizer step (1)")
    opt.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate (1e-3)")
    opt.add_argument("--weight-decay", type=float, default=1e-4)
    opt.add_argument("--warmup-epochs", type=float, default=1.0,
                     help="linear warmup, then cosine decay per step (1)")
    opt.add_argument("--temperature", type=float, default=0.1)
    opt.add_argument("--learnable-temperature", action="store_true")
    opt.add_argument("--alpha", type=float, default=0.75,
                     help="weight of the image→genetics direction (0.75)")
    opt.add_argument("--rotation", type=float, default=20.0,
                     help="ContIG augmentation: max rotation in degrees (20)")
    opt.add_argument("--min-crop-scale", type=float, default=None,
                     help="SimCLR crop: smallest area fraction (default 0.08, 0.25 below 96 px)")
    run_group = parser.add_argument_group("running")
    run_group.add_argument("--seed", type=int, default=42)
    run_group.add_argument("--workers", type=int, default=2, help="data loader processes (2)")
    run_group.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    run_group.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    run_group.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                           help="progress bar (auto: only when stderr is a terminal)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    modalities: dict[str, str] = {}
    for name, path in args.modality:
        if name in modalities:
            raise SystemExit(f"contig train: error: --modality {name} given twice")
        modalities[name] = path
    return TrainConfig(
        images=args.images, out=args.out, modalities=modalities, method=args.method,
        split=tuple(args.split), n_folds=args.n_folds, fold=args.fold,
        val_fraction=args.val_fraction, join=args.join, arch=args.arch, weights=args.weights,
        image_size=args.image_size, epochs=args.epochs, batch_size=args.batch_size,
        accumulate=args.accumulate, lr=args.lr, weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs, temperature=args.temperature,
        learnable_temperature=args.learnable_temperature, alpha=args.alpha,
        hidden_layers=args.hidden_layers, genetic_hidden=args.genetic_hidden,
        genetic_norm=args.genetic_norm, proj_hidden=args.proj_hidden, proj_dim=args.proj_dim,
        rotation=args.rotation, min_crop_scale=args.min_crop_scale, sync_bn=args.sync_bn,
        seed=args.seed, workers=args.workers, threads=args.threads, device=args.device,
        progress={"auto": None, "on": True, "off": False}[args.progress])


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        cfg.validate()
    except ValueError as error:
        raise SystemExit(f"contig train: error: {error}") from None
    try:
        path = train(cfg)
    except TrainingPreempted:
        return EXIT_PREEMPTED
    log.info("done: %s", path)
    return 0
