"""``contig train``: contrastive pretraining of an image encoder (ContIG, SimCLR, random baseline).

Resumes automatically from OUT/checkpoint.pt. On SIGTERM it checkpoints and exits with status 75
(EX_TEMPFAIL): rerun the same command (or let the cluster requeue it) to continue.
Every default comes from :class:`contig.pretrain.config.TrainConfig`; values out of range are
refused, never clamped.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math

from contig.cli.argtypes import float_in, name_path, non_negative_int, paths_by_name, positive_int
from contig.core.errors import InputError
from contig.pretrain.config import METHODS, SELECT_EPOCHS, TrainConfig
from contig.pretrain.losses import TAU_MAX, TAU_MIN
from contig.pretrain.models import BACKBONE_DIMS, IMAGE_HEADS
from contig.pretrain.train import EXIT_PREEMPTED, TrainingPreempted, train

log = logging.getLogger("contig.pretrain.train")

D = TrainConfig  # class attributes hold the field defaults
PROGRESS = {"auto": None, "on": True, "off": False}
non_negative = float_in(0.0, math.inf)
positive = float_in(0.0, math.inf, include_low=False)


def dropout_rate(text: str) -> float:
    """argparse type: a probability in [0, 1)."""
    value = float_in(0.0, 1.0)(text)
    if value >= 1.0:
        raise argparse.ArgumentTypeError(f"{value:g} is not in [0, 1)")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_io(parser)
    _add_people(parser)
    _add_model(parser)
    _add_optimization(parser)
    _add_running(parser)


def _add_io(parser: argparse.ArgumentParser) -> None:
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--images", required=True, metavar="PREFIX",
                    help="image cache from `contig images` (PREFIX.npy, PREFIX.index.tsv)")
    io.add_argument("--modality", type=name_path, action="append", default=[],
                    metavar="NAME=PATH", help="genetic modality file (.npz), repeatable: "
                    "snps=..., prs=..., burden=...")
    io.add_argument("--out", required=True, metavar="DIR",
                    help="writes DIR/model.pt, checkpoint.pt, metrics.tsv, curves.png, split.tsv")
    io.add_argument("--method", choices=METHODS, default=D.method,
                    help="contig: images vs genetics; simclr: image-only NT-Xent; random: save "
                    "the untrained encoder (default %(default)s)")


def _add_people(parser: argparse.ArgumentParser) -> None:
    split = parser.add_argument_group("people")
    split.add_argument("--split", type=float_in(0.0, 1.0), nargs=3, default=D.split,
                       metavar=("TRAIN", "VAL", "TEST"),
                       help="fractions of people, summing to 1 (default %(default)s); both eyes "
                       "stay together")
    split.add_argument("--n-folds", type=positive_int, default=D.n_folds, metavar="K",
                       help="K-fold cross-fitting (K >= 2): hold out fold --fold (its people "
                       "are embedded)")
    split.add_argument("--fold", type=non_negative_int, default=D.fold, metavar="k",
                       help="the held-out fold, 0..K-1; each fold model draws from its own seed")
    split.add_argument("--val-fraction", type=float_in(0.0, 1.0), default=D.val_fraction,
                       help="with folds: share of the training folds used for validation, in "
                       "[0, 1) (default %(default)s)")
    split.add_argument("--modalities-join", dest="join", choices=("inner", "outer"),
                       default=D.join, help="inner: people with every modality; outer: people "
                       "with any, absent modalities masked out of their terms (default "
                       "%(default)s)")


def _add_model(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model")
    model.add_argument("--arch", choices=sorted(BACKBONE_DIMS), default=D.arch,
                       help="image backbone (default %(default)s)")
    model.add_argument("--weights", default=D.weights, metavar="FILE",
                       help="local torchvision state dict to start from (default: random init)")
    model.add_argument("--image-size", type=positive_int, default=D.image_size,
                       help="training side in pixels (default: the cache's)")
    model.add_argument("--proj-hidden", type=positive_int, default=D.proj_hidden,
                       help="projection hidden size (default: backbone size, 2048 for ResNet-50)")
    model.add_argument("--proj-dim", type=positive_int, default=D.proj_dim,
                       help="embedding size of the loss (default %(default)s)")
    model.add_argument("--image-heads", choices=IMAGE_HEADS, default=D.image_heads,
                       help="image projection head: one shared by the modalities, or one per "
                       "modality as the reference implementation (default %(default)s; SimCLR "
                       "always has one; embeddings are backbone features either way)")
    model.add_argument("--hidden-layers", type=int, choices=(0, 1, 2), default=D.hidden_layers,
                       help="hidden layers of each genetic MLP (default %(default)s)")
    model.add_argument("--genetic-hidden", type=positive_int, default=D.genetic_hidden,
                       help="width of the genetic hidden layers (default %(default)s)")
    model.add_argument("--genetic-norm", choices=("batch", "layer"), default=D.genetic_norm,
                       help="normalization in the genetic MLP, over present rows only (default "
                       "%(default)s)")
    model.add_argument("--input-dropout", type=dropout_rate, default=D.input_dropout,
                       help="dropout on the genetic encoders' input features, in [0, 1) "
                       "(default %(default)s)")
    model.add_argument("--genetic-dropout", type=dropout_rate, default=D.genetic_dropout,
                       help="dropout after each genetic hidden layer, in [0, 1) (default "
                       "%(default)s)")
    model.add_argument("--sync-bn", action="store_true", default=D.sync_bn,
                       help="synchronize the ResNet's BatchNorm across GPUs under torchrun")


def _add_optimization(parser: argparse.ArgumentParser) -> None:
    opt = parser.add_argument_group("optimization")
    opt.add_argument("--epochs", type=positive_int, default=D.epochs,
                     help="default %(default)s")
    opt.add_argument("--batch-size", type=positive_int, default=D.batch_size,
                     help="people per (global) batch, >= 2; each brings all their images "
                     "(default %(default)s)")
    opt.add_argument("--accumulate", type=positive_int, default=D.accumulate,
                     help="batches per optimizer step (default %(default)s)")
    opt.add_argument("--grad-cache-chunk", type=non_negative_int, default=D.grad_cache_chunk,
                     help="gradient cache: embed images this many people at a time, so the "
                     "batch size does not depend on GPU memory; 0 = one pass (default "
                     "%(default)s; one process only)")
    opt.add_argument("--activation-checkpointing", action="store_true",
                     default=D.activation_checkpointing,
                     help="recompute the backbone's stage activations in the backward pass "
                     "(less memory, about one more forward pass of compute)")
    opt.add_argument("--lr", type=positive, default=D.lr,
                     help="peak AdamW learning rate, > 0 (default %(default)s)")
    opt.add_argument("--weight-decay", type=non_negative, default=D.weight_decay,
                     help="AdamW weight decay of weight matrices, >= 0 (default %(default)s)")
    opt.add_argument("--genetic-weight-decay", type=non_negative,
                     default=D.genetic_weight_decay,
                     help="weight decay of the genetic encoders' weight matrices, >= 0 "
                     "(default: --weight-decay)")
    opt.add_argument("--warmup-epochs", type=non_negative, default=D.warmup_epochs,
                     help="linear warmup, then cosine decay per step (default %(default)s)")
    opt.add_argument("--temperature", type=float_in(TAU_MIN, TAU_MAX), default=D.temperature,
                     help=f"τ of the contrastive loss, in [{TAU_MIN:g}, {TAU_MAX:g}] "
                     "(default %(default)s)")
    opt.add_argument("--learnable-temperature", action="store_true",
                     default=D.learnable_temperature,
                     help=f"learn τ (kept in [{TAU_MIN:g}, {TAU_MAX:g}])")
    opt.add_argument("--alpha", type=float_in(0.0, 1.0), default=D.alpha,
                     help="weight of the image→genetics direction, in [0, 1] (default "
                     "%(default)s)")
    opt.add_argument("--rotation", type=float_in(0.0, 180.0), default=D.rotation,
                     help="ContIG augmentation: max rotation in degrees, in [0, 180] (default "
                     "%(default)s)")
    opt.add_argument("--min-crop-scale", type=float_in(0.0, 1.0, include_low=False),
                     default=D.min_crop_scale,
                     help="SimCLR crop: smallest area fraction, in (0, 1] (default 0.08, 0.25 "
                     "below 96 px)")
    opt.add_argument("--select-epoch", choices=SELECT_EPOCHS, default=D.select_epoch,
                     help="weights model.pt keeps: the epoch with the best validation retrieval "
                     "(top-5, then top-1, then loss; SimCLR: loss) or the last (default "
                     "%(default)s)")


def _add_running(parser: argparse.ArgumentParser) -> None:
    run_group = parser.add_argument_group("running")
    run_group.add_argument("--seed", type=non_negative_int, default=D.seed,
                           help="seed of the split; fold models derive theirs from it and the "
                           "fold (default %(default)s)")
    run_group.add_argument("--workers", type=non_negative_int, default=D.workers,
                           help="data loader processes (default %(default)s)")
    run_group.add_argument("--threads", type=positive_int, default=D.threads,
                           help="torch CPU threads")
    run_group.add_argument("--device", choices=("auto", "cpu", "cuda"), default=D.device)
    run_group.add_argument("--progress", choices=tuple(PROGRESS),
                           default={v: k for k, v in PROGRESS.items()}[D.progress],
                           help="progress bar (auto: only when stderr is a terminal)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed arguments (argument names are its field names)."""
    modalities = paths_by_name(args.modality, "--modality")
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
              if hasattr(args, f.name)}
    values.update(modalities=modalities, split=tuple(args.split),
                  progress=PROGRESS[args.progress])
    return TrainConfig(**values)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        cfg.validate()
    except ValueError as error:
        raise InputError(str(error)) from None
    try:
        path = train(cfg)
    except TrainingPreempted:
        return EXIT_PREEMPTED
    log.info("done: %s", path)
    return 0
