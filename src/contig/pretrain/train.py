"""Contrastive pretraining: ContIG (images vs genetic modalities), SimCLR, and a random-init baseline.

One AdamW optimizer for every parameter (biases, norms and τ without weight decay; the genetic
encoders' weights may have their own decay); learning rate warmed up linearly over
``warmup_epochs`` then cosine-decayed to 0, **per optimizer step**. bf16 autocast and
channels_last on CUDA, fp32 on CPU. Gradient accumulation over ``accumulate`` batches. Several
GPUs: run under ``torchrun``; each rank loads a contiguous slice of every global batch and the
loss sees the all-gathered embeddings of the whole global batch (gradients flow back through the
gather), so it equals the single-process loss. (The ResNet's own BatchNorm uses per-rank
statistics unless ``sync_bn``, CUDA only; dropout masks are drawn per rank.)

Batches larger than the GPU: ``grad_cache_chunk`` runs the image encoder that many people at a
time with a gradient cache (:mod:`contig.pretrain.gradcache`; the loss sees the whole batch; one
process only), and ``activation_checkpointing`` recomputes the ResNet's stage activations in the
backward pass (:func:`contig.pretrain.models.checkpointed`). Both are off by default.

Outputs in ``out``: ``split.tsv`` (IID, set, fold), ``checkpoint.pt`` (the last epoch's state,
after every epoch and on SIGTERM; the run resumes from it automatically), ``metrics.tsv`` and
``curves.png`` (per epoch), ``model.pt``: the weights of the epoch with the best validation
score (``select_epoch="best"``, see :func:`contig.pretrain.metrics.selection_score`) or of the
last epoch (``"last"``); ``model.pt`` records which (``selected_epoch``), and so does the
``selected`` column of ``metrics.tsv``. Checkpoints are written atomically and read with
``weights_only=True``.

Seeds: the split (and the fold of every person) comes from ``seed``; everything a fold model
draws (initialization, batches, augmentation, dropout) from :attr:`TrainConfig.run_seed`,
which differs between folds, so the K fold models of a method are K independent draws.

Preemption: on SIGTERM the trainer finishes the current optimizer step, writes a checkpoint that
records the position inside the epoch, and raises :class:`TrainingPreempted`; ``contig train``
then exits with status :data:`EXIT_PREEMPTED` (75, EX_TEMPFAIL) so a cluster profile can requeue
it. Rerunning the same command resumes exactly: batches, augmentations and dropout are functions
of (seed, epoch, batch) only, so an interrupted-and-resumed run ends with the same weights as an
uninterrupted one on CPU. A checkpoint written with other settings, other people or other input
files (size or modification time) is out of date: the run says so and starts from scratch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import torch
import torch.distributed as tdist
from torch import nn

from contig.core.errors import InputError
from contig.core.tables import write_tsv
from contig.pretrain.augment import BatchAugment
from contig.pretrain.checkpoint import (
    CHECKPOINT_FORMAT,
    MODEL_FORMAT,
    load_checkpoint,
    save_torch_atomic,
)
from contig.pretrain.config import TrainConfig
from contig.pretrain.data import (
    Cohort,
    PersonBatchDataset,
    assign_folds,
    batch_seed,
    build_cohort,
    epoch_batches,
    fold_split,
    make_loader,
    read_image_cache,
    split_by_fraction,
    split_table,
)
from contig.pretrain.distributed import Dist, init_distributed, resolve_device
from contig.pretrain.loop import (
    Progress,
    StopFlag,
    TrainingPreempted,
    batch_loss,
    build_optimizer,
    grad_cached_backward,
    lr_at,
)
from contig.pretrain.metrics import evaluate, improves, selection_score, write_metrics
from contig.pretrain.models import ContIGModel, ModelConfig, build_model
from contig.scores.modality import Modality, load_modality, without_empty_modalities

log = logging.getLogger("contig.pretrain.train")

EXIT_PREEMPTED = 75
"""Exit status of ``contig train`` after checkpointing on SIGTERM (EX_TEMPFAIL: rerun to resume)."""

# Settings that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = {"workers", "threads", "device", "out", "images", "modalities", "weights",
                     "progress", "select_epoch", "activation_checkpointing"}


# ---------------------------------------------------------------------------------------------
# Data and run metadata
# ---------------------------------------------------------------------------------------------

@dataclass
class PreparedData:
    cohort: Cohort
    split: pl.DataFrame  # IID, set, fold
    train: Cohort
    val: Cohort
    cache_size: int


def genetic_modalities(cfg: TrainConfig) -> dict[str, Modality]:
    """Load ``cfg.modalities``, leaving out (with a warning) those with zero features.

    Raises :class:`InputError` when that leaves a method that aligns with genetics none at all.
    """
    loaded = {name: load_modality(path) for name, path in cfg.modalities.items()}
    kept = without_empty_modalities(loaded, cfg.modalities)
    if loaded and not kept and cfg.method != "simclr":
        raise InputError(f"no modality has any feature ({', '.join(loaded)}): method {cfg.method} "
                         "has no genetics to align with", next(iter(cfg.modalities.values())))
    return kept


def prepare_data(cfg: TrainConfig) -> PreparedData:
    """Load the cache index and modalities, join them per person, split (plain or fold)."""
    images, index = read_image_cache(cfg.images)
    modalities = genetic_modalities(cfg)
    cohort, report = build_cohort(index, modalities, cfg.join, sources=cfg.modalities)
    for line in report:
        log.info("%s", line)
    if len(cohort) < 4:
        raise InputError(f"only {len(cohort)} people with images and genetics: too few to train",
                         f"{cfg.images}.index.tsv")
    if cfg.n_folds is not None:
        folds = assign_folds(cohort.iid, cfg.n_folds, cfg.seed)
        sets = fold_split(cohort.iid, folds, cfg.fold, cfg.val_fraction, cfg.seed)
    else:
        folds = None
        sets = split_by_fraction(cohort.iid, cfg.split, cfg.seed)
    table = split_table(cohort.iid, sets, folds)
    counts = {s: int((sets == s).sum()) for s in ("train", "val", "test")}
    log.info("split by person%s: %d train, %d validation, %d held out (test)",
             "" if folds is None else f" (fold {cfg.fold} of {cfg.n_folds} held out)",
             counts["train"], counts["val"], counts["test"])
    if counts["train"] < 2:
        raise InputError(f"only {counts['train']} training people", f"{cfg.images}.index.tsv")
    return PreparedData(cohort, table, cohort.subset(np.flatnonzero(sets == "train")),
                        cohort.subset(np.flatnonzero(sets == "val")), images.shape[1])


def _split_dict(split: pl.DataFrame) -> dict[str, list]:
    return {"IID": split["IID"].to_list(), "set": split["set"].to_list(),
            "fold": [-1 if f is None else int(f) for f in split["fold"].to_list()]}


def input_fingerprint(cfg: TrainConfig) -> dict[str, list[int]]:
    """(size, mtime in ns) of every input file: a checkpoint resumes only on unchanged inputs."""
    paths = [f"{cfg.images}.npy", f"{cfg.images}.index.tsv", *cfg.modalities.values()]
    if cfg.weights:
        paths.append(cfg.weights)
    fingerprint = {}
    for path in paths:
        stat = Path(path).stat()
        fingerprint[str(Path(path).resolve())] = [stat.st_size, stat.st_mtime_ns]
    return fingerprint


def checkpoint_mismatch(saved: Mapping, cfg: TrainConfig, split: pl.DataFrame,
                        fingerprint: Mapping) -> str | None:
    """Why a checkpoint cannot be resumed by this run (other settings, people or input files), or None."""
    now = cfg.to_dict()
    changed = [f"{k}: {saved['config'].get(k)!r} -> {now[k]!r}" for k in now
               if k not in RESUMABLE_CHANGES and saved["config"].get(k) != now[k]]
    if changed:
        return "it was written with other settings (" + "; ".join(changed) + ")"
    if saved["split"] != _split_dict(split):
        return "it was trained on other people (the cohort or split changed)"
    if saved.get("inputs") != dict(fingerprint):
        return "its input files (image cache, modalities, weights) have changed since"
    return None


def model_config_for(cfg: TrainConfig, cohort: Cohort) -> ModelConfig:
    """The model of a run; image-only SimCLR has no genetic encoders, hence one image head."""
    image_only = cfg.method == "simclr"
    return ModelConfig(
        arch=cfg.arch, proj_hidden=cfg.proj_hidden, proj_dim=cfg.proj_dim,
        genetic_features={} if image_only else
        {n: int(g.X.shape[1]) for n, g in cohort.genetics.items()},
        hidden_layers=cfg.hidden_layers, genetic_hidden=cfg.genetic_hidden,
        genetic_norm=cfg.genetic_norm, temperature=cfg.temperature,
        learnable_temperature=cfg.learnable_temperature, genetic_dropout=cfg.genetic_dropout,
        input_dropout=cfg.input_dropout, image_heads="shared" if image_only else cfg.image_heads)


# ---------------------------------------------------------------------------------------------
# Setup, random baseline, resume
# ---------------------------------------------------------------------------------------------

@dataclass
class Run:
    """What every stage of a run shares."""

    cfg: TrainConfig
    out: Path
    device: torch.device
    dist: Dist
    data: PreparedData
    image_size: int
    model: ContIGModel
    base: dict  # metadata written into checkpoint.pt and model.pt

    @property
    def seed(self) -> int:
        return self.cfg.run_seed

    @property
    def channels_last(self) -> bool:
        return self.device.type == "cuda"

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    @property
    def model_path(self) -> Path:
        return self.out / "model.pt"

    def validation(self) -> dict[str, float]:
        return evaluate(self.model, self.data.val, self.cfg.images, self.cfg, self.image_size,
                        self.device, self.seed)


def _configure_torch(cfg: TrainConfig) -> tuple[torch.device, Dist]:
    device = resolve_device(cfg.device)
    dist = init_distributed(device.type)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device, dist


def setup(cfg: TrainConfig) -> Run:
    """Validate, pick the device, load and split the data, write split.tsv, build the model."""
    cfg.validate()
    device, dist = _configure_torch(cfg)
    if cfg.grad_cache_chunk and dist.enabled:
        raise InputError("--grad-cache-chunk runs in one process only, not under torchrun: "
                         "leave it 0 or train on one GPU", "command line")
    data = prepare_data(cfg)
    image_size = cfg.image_size or data.cache_size
    if image_size > data.cache_size:
        log.warning("image size %d is larger than the cache's %d px: images are upsampled",
                    image_size, data.cache_size)
    out = Path(cfg.out)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        write_tsv(data.split, out / "split.tsv")
    model_config = model_config_for(cfg, data.cohort)
    torch.manual_seed(cfg.run_seed)
    model = build_model(model_config, cfg.weights).to(device)
    model.activation_checkpointing = cfg.activation_checkpointing
    base = {"config": cfg.to_dict(), "model_config": model_config.to_dict(),
            "split": _split_dict(data.split), "image_size": image_size, "method": cfg.method,
            "inputs": input_fingerprint(cfg)}
    return Run(cfg, out, device, dist, data, image_size, model, base)


def save_random_baseline(run: Run) -> Path:
    """The untrained encoder as model.pt, with its validation metrics as epoch 0."""
    metrics = [{"epoch": 0, **run.validation(), "lr": 0.0, "temperature": run.cfg.temperature}]
    if run.dist.main:
        save_torch_atomic({"format": MODEL_FORMAT, **run.base, "model": run.model.state_dict(),
                           "epochs": 0, "selected_epoch": 0, "select_epoch": run.cfg.select_epoch,
                           "metrics": metrics}, run.model_path)
        write_metrics(metrics, run.out, selected_epoch=0)
        log.info("random-init encoder saved (no training): %s; validation top-1 %.3f "
                 "(chance %.3f)", run.model_path, metrics[0]["val_top1"],
                 metrics[0]["chance_top1"])
    return run.model_path


@dataclass
class Best:
    """The epoch with the best validation score so far and a CPU copy of its weights."""

    epoch: int
    score: list[float] | None
    model: dict[str, torch.Tensor]


@dataclass
class TrainState:
    """Where training stands (fresh or resumed from checkpoint.pt)."""

    optimizer: torch.optim.Optimizer
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    start_epoch: int = 0  # where this process started (resumed runs: the checkpoint's position)
    start_batch: int = 0
    partial: dict | None = None  # stats of the batches of start_epoch done before the checkpoint
    metrics: list[dict] = field(default_factory=list)
    best: Best | None = None


def _cpu_copy(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def start_training(run: Run) -> TrainState:
    """Optimizer and schedule for a fresh run (SyncBatchNorm and channels_last applied first)."""
    cfg = run.cfg
    if cfg.sync_bn and run.dist.enabled and run.device.type == "cuda":
        run.model = nn.SyncBatchNorm.convert_sync_batchnorm(run.model)
    if run.channels_last:
        run.model = run.model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(run.model, cfg.lr, cfg.weight_decay, cfg.genetic_weight_decay)
    n_batches = len(epoch_batches(len(run.data.train), cfg.batch_size, run.seed, 0))
    steps_per_epoch = math.ceil(n_batches / cfg.accumulate)
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = min(total_steps, round(cfg.warmup_epochs * steps_per_epoch))
    return TrainState(optimizer, steps_per_epoch, total_steps, warmup_steps)


def resume(run: Run, state: TrainState) -> None:
    """Load checkpoint.pt into ``run``/``state`` when it belongs to this run; an out-of-date one
    belongs to a run whose results are being recomputed (the workflow reruns training when
    settings or inputs change): it is set aside, and overwritten by this run."""
    path = run.checkpoint_path
    saved = load_checkpoint(path) if path.exists() else None
    if saved is None:
        return
    if saved.get("format") != CHECKPOINT_FORMAT:
        raise InputError("not a contig training checkpoint", path)
    reason = checkpoint_mismatch(saved, run.cfg, run.data.split, run.base["inputs"])
    if reason is not None:
        log.warning("not resuming from %s: %s; training from scratch", path, reason)
        return
    run.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng_torch"])
    state.start_epoch, state.start_batch = int(saved["epoch"]), int(saved["next_batch"])
    state.partial, state.metrics = saved["partial"], list(saved["metrics"])
    best = saved.get("best")
    if best is not None:
        weights = saved["model"] if best["model"] is None else best["model"]
        state.best = Best(int(best["epoch"]), best["score"], _cpu_copy(weights))
    log.info("resumed from epoch %d%s (%s)", state.start_epoch,
             f", batch {state.start_batch}" if state.start_batch else "", path)


def save_checkpoint(run: Run, state: TrainState, epoch: int, next_batch: int,
                    partial: dict | None) -> None:
    """checkpoint.pt: the last weights, the optimizer, the position (``epoch``, ``next_batch``)
    and the best epoch's weights (None when they are the last weights)."""
    if run.dist.main:
        best = None
        if state.best is not None:
            same = next_batch == 0 and state.best.epoch == epoch
            best = {"epoch": state.best.epoch, "score": state.best.score,
                    "model": None if same else state.best.model}
        save_torch_atomic({"format": CHECKPOINT_FORMAT, **run.base,
                           "model": run.model.state_dict(),
                           "optimizer": state.optimizer.state_dict(), "epoch": epoch,
                           "next_batch": next_batch, "partial": partial,
                           "metrics": state.metrics, "best": best,
                           "rng_torch": torch.get_rng_state()}, run.checkpoint_path)
    if run.dist.enabled:
        tdist.barrier()


# ---------------------------------------------------------------------------------------------
# Epochs
# ---------------------------------------------------------------------------------------------

@dataclass
class EpochContext:
    """The per-run objects an epoch uses besides the run and its state."""

    model: nn.Module  # DistributedDataParallel wrapper, or the model itself
    augment: BatchAugment
    progress: Progress
    stop: StopFlag


def _new_stats() -> dict:
    return {"loss_sum": 0.0, "loss_n": 0, "images": 0, "wait": 0.0, "seconds": 0.0}


def train_epoch(run: Run, state: TrainState, ctx: EpochContext, epoch: int) -> dict:
    """Train epoch ``epoch`` (from ``state.start_batch`` when resuming inside it); returns its
    stats (loss sum and count, images, seconds waiting on data, seconds)."""
    cfg, dist = run.cfg, run.dist
    batches = epoch_batches(len(run.data.train), cfg.batch_size, run.seed, epoch)
    first = state.start_batch if epoch == state.start_epoch else 0
    stats = dict(state.partial) if (state.partial and epoch == state.start_epoch) else _new_stats()
    dataset = PersonBatchDataset(run.data.train, cfg.images, batches[first:], first_index=first,
                                 with_genetics=cfg.method != "simclr", rank=dist.rank,
                                 world_size=dist.world)
    run.model.train()
    loss_sum, loss_n, wait, images_seen = torch.zeros((), device=run.device), 0, 0.0, 0
    t_start = time.perf_counter()
    iterator = iter(make_loader(dataset, cfg.workers, pin_memory=run.device.type == "cuda"))
    for i in range(first, len(batches)):
        t0 = time.perf_counter()
        batch = next(iterator)
        wait += time.perf_counter() - t0
        group_start = (i // cfg.accumulate) * cfg.accumulate
        group_size = min(cfg.accumulate, len(batches) - group_start)
        last_in_group = i == group_start + group_size - 1
        sync = contextlib.nullcontext() if (last_in_group or not dist.enabled) \
            else ctx.model.no_sync()
        if cfg.grad_cache_chunk:
            loss, n_images = grad_cached_backward(
                run.model, batch, cfg.method, ctx.augment, run.image_size,
                batch_seed(run.seed, epoch, i), cfg.alpha, run.device, cfg.grad_cache_chunk,
                1.0 / group_size, run.channels_last)
        else:
            with sync:
                loss, n_images = batch_loss(ctx.model, batch, cfg.method, ctx.augment,
                                            run.image_size, batch_seed(run.seed, epoch, i),
                                            cfg.alpha, dist, run.device, run.channels_last)
                (loss / group_size).backward()
        loss_sum += loss.detach()
        loss_n += 1
        images_seen += n_images
        if not last_in_group:
            continue
        _optimizer_step(state, cfg.lr, epoch * state.steps_per_epoch + i // cfg.accumulate)
        if ctx.progress.enabled and (i % 5 == 0 or i == len(batches) - 1):
            ctx.progress.update(epoch + 1, cfg.epochs, i + 1, len(batches),
                                f"loss {float(loss_sum) / loss_n:.4f}")
        if ctx.stop.agreed(dist, run.device):
            ctx.progress.close()
            stats = _merge_stats(stats, loss_sum, loss_n, images_seen * dist.world, wait,
                                 time.perf_counter() - t_start)
            _preempt(run, state, epoch, i + 1, stats)
    ctx.progress.close()
    return _merge_stats(stats, loss_sum, loss_n, images_seen * dist.world, wait,
                        time.perf_counter() - t_start)


def _optimizer_step(state: TrainState, base_lr: float, step: int) -> None:
    for group in state.optimizer.param_groups:
        group["lr"] = lr_at(step, base_lr, state.warmup_steps, state.total_steps)
    state.optimizer.step()
    state.optimizer.zero_grad(set_to_none=True)


def _preempt(run: Run, state: TrainState, epoch: int, next_batch: int, stats: dict) -> None:
    save_checkpoint(run, state, epoch, next_batch, stats)
    log.warning("SIGTERM: checkpoint written at epoch %d, batch %d; exiting with status %d "
                "(rerun to resume)", epoch, next_batch, EXIT_PREEMPTED)
    raise TrainingPreempted(str(run.checkpoint_path))


def end_epoch(run: Run, state: TrainState, epoch: int, stats: dict) -> None:
    """Validate, record the metrics row, keep the best weights, checkpoint, write metrics."""
    row = {"epoch": epoch + 1,
           "train_loss": stats["loss_sum"] / max(stats["loss_n"], 1), **run.validation(),
           "lr": state.optimizer.param_groups[0]["lr"],
           "temperature": float(run.model.temperature().detach()),
           "images_per_s": stats["images"] / max(stats["seconds"], 1e-9),
           "data_wait_fraction": stats["wait"] / max(stats["seconds"], 1e-9),
           "epoch_seconds": stats["seconds"]}
    state.metrics.append(row)
    score = selection_score(row)
    if improves(score, None if state.best is None else state.best.score):
        state.best = Best(epoch + 1, None if score is None else list(score),
                          _cpu_copy(run.model.state_dict()))
    log.info("epoch %d/%d: train loss %.4f, val loss %.4f, val top-1 %.3f, top-5 %.3f "
             "(chance %.3f), lr %.2e, %.0f images/s, %.0f%% of step time waiting on data; "
             "best epoch so far %d", epoch + 1, run.cfg.epochs, row["train_loss"],
             row["val_loss"], row["val_top1"], row["val_top5"], row["chance_top1"], row["lr"],
             row["images_per_s"], 100 * row["data_wait_fraction"], state.best.epoch)
    save_checkpoint(run, state, epoch + 1, 0, None)
    if run.dist.main:
        write_metrics(state.metrics, run.out, _selected_epoch(run.cfg, state))


def _selected_epoch(cfg: TrainConfig, state: TrainState) -> int:
    return state.best.epoch if cfg.select_epoch == "best" else len(state.metrics)


def save_model(run: Run, state: TrainState) -> Path:
    """model.pt with the selected epoch's weights (metrics rewritten when a finished run was
    resumed: the workflow removes a job's outputs before rerunning it)."""
    if run.dist.main:
        selected = _selected_epoch(run.cfg, state)
        weights = state.best.model if selected != len(state.metrics) else run.model.state_dict()
        if state.start_epoch >= run.cfg.epochs:
            write_metrics(state.metrics, run.out, selected)
        save_torch_atomic({"format": MODEL_FORMAT, **run.base, "model": weights,
                           "epochs": run.cfg.epochs, "selected_epoch": selected,
                           "select_epoch": run.cfg.select_epoch, "metrics": state.metrics},
                          run.model_path)
        log.info("wrote %s (weights of epoch %d of %d, select %s)", run.model_path, selected,
                 run.cfg.epochs, run.cfg.select_epoch)
    if run.dist.enabled:
        tdist.barrier()
    return run.model_path


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------

def train(cfg: TrainConfig) -> Path:
    """Run (or resume) one pretraining run; returns the path of ``model.pt``.

    Raises :class:`TrainingPreempted` after checkpointing on SIGTERM (the handler is installed
    first thing, so a SIGTERM during data loading also ends in a checkpoint at the first step).
    """
    stop = StopFlag()
    with stop.installed():
        return _train(cfg, stop)


def _train(cfg: TrainConfig, stop: StopFlag) -> Path:
    run = setup(cfg)
    if cfg.method == "random":
        return save_random_baseline(run)
    state = start_training(run)
    resume(run, state)
    ddp_model: nn.Module = run.model
    if run.dist.enabled:
        ddp_model = nn.parallel.DistributedDataParallel(
            run.model, device_ids=[run.device.index] if run.device.type == "cuda" else None,
            find_unused_parameters=cfg.join == "outer")
    augment = BatchAugment("simclr" if cfg.method == "simclr" else "contig", run.image_size,
                           rotation=cfg.rotation, min_scale=cfg.min_crop_scale)
    progress = Progress(sys.stderr.isatty() if cfg.progress is None else cfg.progress)
    ctx = EpochContext(ddp_model, augment, progress, stop)
    for epoch in range(state.start_epoch, cfg.epochs):
        stats = train_epoch(run, state, ctx, epoch)
        end_epoch(run, state, epoch, stats)
    return save_model(run, state)


def _merge_stats(stats: dict, loss_sum: torch.Tensor, loss_n: int, images: int, wait: float,
                 seconds: float) -> dict:
    return {"loss_sum": stats["loss_sum"] + float(loss_sum), "loss_n": stats["loss_n"] + loss_n,
            "images": stats["images"] + images, "wait": stats["wait"] + wait,
            "seconds": stats["seconds"] + seconds}
