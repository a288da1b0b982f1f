"""Contrastive pretraining: ContIG (images vs genetic modalities), SimCLR, and a random-init baseline.

One AdamW optimizer for every parameter (biases, norms and τ without weight decay); learning
rate warmed up linearly over ``warmup_epochs`` then cosine-decayed to 0, **per optimizer step**.
bf16 autocast and channels_last on CUDA, fp32 on CPU. Gradient accumulation over
``accumulate`` batches. Several GPUs: run under ``torchrun``; each rank loads a contiguous slice
of every global batch and the loss sees the all-gathered embeddings of the whole global batch
(gradients flow back through the gather), so it equals the single-process loss.
(The ResNet's own BatchNorm uses per-rank statistics unless ``sync_bn``, CUDA only.)

Outputs in ``out``: ``split.tsv`` (IID, set, fold), ``checkpoint.pt`` (after every epoch and on
SIGTERM; the run resumes from it automatically), ``metrics.tsv`` and ``curves.png`` (per epoch),
``model.pt`` (final). Checkpoints are written atomically and read with ``weights_only=True``.

Preemption: on SIGTERM the trainer finishes the current optimizer step, writes a checkpoint that
records the position inside the epoch, and raises :class:`TrainingPreempted`; ``contig train``
then exits with status :data:`EXIT_PREEMPTED` (75, EX_TEMPFAIL) so a cluster profile can requeue
it. Rerunning the same command resumes exactly: batches and augmentations are functions of
(seed, epoch, batch) only, so an interrupted-and-resumed run ends with the same weights as an
uninterrupted one on CPU. A checkpoint written with other settings, other people or other input
files (size or modification time) is out of date: the run says so and starts from scratch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import torch
import torch.distributed as tdist
from torch import nn

from contig.atomic import atomic_path
from contig.data import (
    BatchAugment,
    Cohort,
    PersonBatchDataset,
    assign_folds,
    batch_seed,
    build_cohort,
    epoch_batches,
    eval_images,
    fold_split,
    make_loader,
    read_image_cache,
    split_by_fraction,
    split_table,
)
from contig.errors import InputError
from contig.losses import multimodal_loss, nt_xent_loss
from contig.modality import load_modality
from contig.models import ContIGModel, ModelConfig, build_model, load_weights_only
from contig.tables import write_tsv

log = logging.getLogger("contig.train")

EXIT_PREEMPTED = 75
"""Exit status of ``contig train`` after checkpointing on SIGTERM (EX_TEMPFAIL: rerun to resume)."""

METHODS = ("contig", "simclr", "random")
CHECKPOINT_FORMAT = "contig-checkpoint-1"
MODEL_FORMAT = "contig-model-1"
# Settings that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = {"workers", "threads", "device", "out", "images", "modalities", "weights",
                     "progress"}
METRIC_COLUMNS = ["epoch", "train_loss", "val_loss", "val_top1", "val_top5", "chance_top1",
                  "lr", "temperature", "images_per_s", "data_wait_fraction", "epoch_seconds"]


class TrainingPreempted(Exception):
    """SIGTERM arrived; a checkpoint was written and the run can be resumed."""


@dataclass
class TrainConfig:
    """Settings of one pretraining run (``contig train`` flags)."""

    images: str
    out: str
    modalities: dict[str, str] = field(default_factory=dict)
    method: str = "contig"
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    n_folds: int | None = None
    fold: int | None = None
    val_fraction: float = 0.1
    join: str = "inner"
    arch: str = "resnet50"
    weights: str | None = None
    image_size: int | None = None
    epochs: int = 100
    batch_size: int = 64
    accumulate: int = 1
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    temperature: float = 0.1
    learnable_temperature: bool = False
    alpha: float = 0.75
    hidden_layers: int = 1
    genetic_hidden: int = 2048
    genetic_norm: str = "batch"
    proj_hidden: int | None = None
    proj_dim: int = 128
    rotation: float = 20.0
    min_crop_scale: float | None = None
    sync_bn: bool = False
    seed: int = 42
    workers: int = 0
    threads: int | None = None
    device: str = "auto"
    progress: bool | None = None  # None: a bar only when stderr is a terminal

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["split"] = list(values["split"])
        return values

    @classmethod
    def from_dict(cls, values: Mapping) -> TrainConfig:
        values = dict(values)
        values["split"] = tuple(values.get("split", (0.7, 0.1, 0.2)))
        return cls(**values)

    def validate(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        need(self.method in METHODS, f"method must be one of {METHODS}, got {self.method!r}")
        need(self.join in ("inner", "outer"), f"join must be inner or outer, got {self.join!r}")
        need(self.method == "simclr" or bool(self.modalities),
             f"method {self.method} needs at least one --modality")
        need(self.epochs >= 1 and self.batch_size >= 2 and self.accumulate >= 1,
             "epochs >= 1, batch size >= 2 and accumulate >= 1 required")
        need((self.n_folds is None) == (self.fold is None), "--n-folds and --fold go together")
        if self.n_folds is not None:
            need(self.n_folds >= 2 and 0 <= self.fold < self.n_folds,
                 f"fold must be in 0..{self.n_folds - 1} with at least 2 folds")
        need(0 <= self.alpha <= 1, "alpha must be in [0, 1]")
        need(self.temperature > 0, "temperature must be positive")


# ---------------------------------------------------------------------------------------------
# Distributed helpers
# ---------------------------------------------------------------------------------------------

@dataclass
class Dist:
    """This process's place in a torchrun job (world 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> Dist:
    """Join the process group when ``WORLD_SIZE`` > 1 (NCCL on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    return Dist(tdist.get_rank(), tdist.get_world_size(), local_rank)


def all_gather_rows(t: torch.Tensor, dist: Dist) -> torch.Tensor:
    """Concatenate every rank's ``(n_r, ...)`` tensor in rank order → ``(Σ n_r, ...)``.

    Row counts may differ between ranks (rows are padded for the collective). Gradients flow back
    to each rank's own rows when ``t`` requires grad.
    """
    if not dist.enabled:
        return t
    n = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(dist.world)]
    tdist.all_gather(sizes, n)
    counts = [int(s) for s in sizes]
    padded = torch.cat([t, t.new_zeros((max(counts) - t.shape[0],) + t.shape[1:])])
    if t.requires_grad:
        from torch.distributed.nn.functional import all_gather as all_gather_with_grad

        with warnings.catch_warnings():  # deprecated in favour of a private API; still correct
            warnings.simplefilter("ignore", FutureWarning)
            parts = list(all_gather_with_grad(padded))
    else:
        parts = [torch.empty_like(padded) for _ in range(dist.world)]
        tdist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:c] for p, c in zip(parts, counts)])


def gather_global_batch(image_emb: torch.Tensor, image_person: torch.Tensor,
                        genetic_embs: Mapping[str, torch.Tensor],
                        present: Mapping[str, torch.Tensor], dist: Dist
                        ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor],
                                   dict[str, torch.Tensor]]:
    """The global batch from every rank's slice: images ``(B, d)``, ``image_person`` ``(B,)``
    (re-indexed into the concatenated people), genetics ``{name: (P, d)}``, presence ``(P,)``."""
    if not dist.enabled:
        return image_emb, image_person, dict(genetic_embs), dict(present)
    n_people = next(iter(present.values())).shape[0] if present else \
        int(image_person.max()) + 1
    counts = all_gather_rows(torch.tensor([n_people], device=image_emb.device), dist)
    offset = int(counts[:dist.rank].sum())
    people_all = all_gather_rows(image_person + offset, dist)
    genetics = {name: all_gather_rows(e, dist) for name, e in genetic_embs.items()}
    masks = {name: all_gather_rows(p.to(torch.uint8), dist).bool() for name, p in present.items()}
    return all_gather_rows(image_emb, dist), people_all, genetics, masks


# ---------------------------------------------------------------------------------------------
# One batch
# ---------------------------------------------------------------------------------------------

def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batch_loss(model: nn.Module, batch: Mapping[str, torch.Tensor], method: str,
               augment: BatchAugment | None, image_size: int, seed: int, alpha: float,
               dist: Dist, device: torch.device, channels_last: bool = False
               ) -> tuple[torch.Tensor, int]:
    """Loss of one (rank's slice of a) batch and the number of images put through the backbone.

    ``augment`` None = unaugmented images (validation; SimCLR always augments, with ``seed``).
    ``seed`` seeds this batch's augmentation generator.
    """
    images = batch["images"].to(device, non_blocking=True)
    generator = torch.Generator().manual_seed(seed)
    where = {"offset": int(batch.get("image_offset", 0)),
             "total": int(batch.get("global_images", images.shape[0]))}
    memory = torch.channels_last if channels_last else torch.contiguous_format
    if method == "simclr":
        aug = augment or BatchAugment("simclr", image_size)
        x = torch.cat([aug(images, generator, **where), aug(images, generator, **where)])
        with _autocast(device):
            z, _, tau = model(x.contiguous(memory_format=memory))
        z1, z2 = z.float().chunk(2)
        loss = nt_xent_loss(all_gather_rows(z1, dist), all_gather_rows(z2, dist), tau)
        return loss, x.shape[0]
    x = augment(images, generator, **where) if augment is not None else \
        eval_images(images, image_size)
    names = [k.split("/", 1)[1] for k in batch if k.startswith("genetic/")]
    genetics = {n: batch[f"genetic/{n}"].to(device, non_blocking=True) for n in names}
    present = {n: batch[f"present/{n}"].to(device, non_blocking=True) for n in names}
    with _autocast(device):
        image_proj, genetic_proj, tau = model(x.contiguous(memory_format=memory), genetics, present)
    image_person = batch["image_person"].to(device, non_blocking=True)
    img, person, gen, pres = gather_global_batch(
        image_proj.float(), image_person, {n: g.float() for n, g in genetic_proj.items()},
        present, dist)
    return multimodal_loss(img, gen, person, pres, tau, alpha), x.shape[0]


# ---------------------------------------------------------------------------------------------
# Optimizer and schedule
# ---------------------------------------------------------------------------------------------

def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """One AdamW over every parameter; weight decay only on weight matrices/kernels (ndim ≥ 2)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup, then cosine to 0."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(model: ContIGModel, cohort: Cohort, cache_prefix: str, cfg: TrainConfig,
             image_size: int, device: torch.device, epoch: int) -> dict[str, float]:
    """Validation loss (unaugmented images; SimCLR: fixed-seed views) and image→genetics
    retrieval over the whole validation set: for every image whose person has a modality, the
    rank of that person among all present people by cosine similarity; top-1/top-5 averaged over
    modalities, with chance top-1 = mean over modalities of 1 / (people present)."""
    nan = float("nan")
    if len(cohort) == 0:
        return {"val_loss": nan, "val_top1": nan, "val_top5": nan, "chance_top1": nan}
    was_training = model.training
    model.eval()
    batches = epoch_batches(len(cohort), cfg.batch_size, cfg.seed, epoch, shuffle=False)
    dataset = PersonBatchDataset(cohort, cache_prefix, batches,
                                 with_genetics=cfg.method != "simclr")
    losses, weights = [], []
    image_proj, image_person, genetic_proj, present = [], [], {}, {}
    offset = 0
    for i, batch in enumerate(make_loader(dataset, workers=0)):
        weights.append(len(batch["people"]))
        if cfg.method == "simclr":
            augment = BatchAugment("simclr", image_size, min_scale=cfg.min_crop_scale)
            loss, _ = batch_loss(model, batch, cfg.method, augment, image_size,
                                 batch_seed(cfg.seed, 0, i, stream=1), cfg.alpha, Dist(), device)
            losses.append(float(loss))
            continue
        names = [k.split("/", 1)[1] for k in batch if k.startswith("genetic/")]
        pres = {n: batch[f"present/{n}"].to(device) for n in names}
        with _autocast(device):
            img, gen, tau = model(eval_images(batch["images"].to(device), image_size),
                                  {n: batch[f"genetic/{n}"].to(device) for n in names}, pres)
        img, gen = img.float(), {n: g.float() for n, g in gen.items()}
        people = batch["image_person"].to(device)
        losses.append(float(multimodal_loss(img, gen, people, pres, tau, cfg.alpha)))
        image_proj.append(img.cpu())
        image_person.append(batch["image_person"] + offset)
        for n in names:
            genetic_proj.setdefault(n, []).append(gen[n].cpu())
            present.setdefault(n, []).append(batch[f"present/{n}"])
        offset += len(batch["people"])
    model.train(was_training)
    result = {"val_loss": float(np.average(losses, weights=weights)), "val_top1": nan,
              "val_top5": nan, "chance_top1": nan}
    if genetic_proj:
        img = torch.cat(image_proj)
        person = torch.cat(image_person)
        stats = [retrieval_accuracy(img, torch.cat(genetic_proj[n]), person, torch.cat(present[n]))
                 for n in genetic_proj]
        stats = [s for s in stats if not math.isnan(s[0])]
        if stats:
            result["val_top1"], result["val_top5"], result["chance_top1"] = \
                (float(np.mean(col)) for col in zip(*stats))
    return result


def retrieval_accuracy(image_emb: torch.Tensor, genetic_emb: torch.Tensor,
                       image_person: torch.Tensor, present: torch.Tensor
                       ) -> tuple[float, float, float]:
    """Image→genetics top-1 and top-5 accuracy and chance top-1 for one modality.

    ``image_emb`` (B, d), ``genetic_emb`` (P, d), ``image_person`` (B,), ``present`` (P,) bool.
    Only images of present people are scored; candidates are the present people. Ties count
    against the image (its person must be strictly more similar than the k-th competitor).
    """
    keep = present[image_person]
    n_present = int(present.sum())
    if not bool(keep.any()) or n_present == 0:
        return float("nan"), float("nan"), float("nan")
    img = nn.functional.normalize(image_emb[keep], dim=-1)
    gen = nn.functional.normalize(genetic_emb, dim=-1)
    sim = img @ gen.T  # (B', P)
    sim[:, ~present] = -math.inf
    own = sim.gather(1, image_person[keep][:, None])
    rank = (sim >= own).sum(1) - 1  # competitors at least as similar as the own person
    return (float((rank < 1).float().mean()), float((rank < 5).float().mean()), 1.0 / n_present)


# ---------------------------------------------------------------------------------------------
# Checkpoints, metrics, figure
# ---------------------------------------------------------------------------------------------

def save_torch_atomic(obj: Mapping, path: str | Path) -> None:
    """``torch.save`` through a temporary file renamed into place."""
    with atomic_path(path) as tmp:
        torch.save(dict(obj), tmp)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint or model file with ``weights_only=True`` (see :func:`load_weights_only`)."""
    saved = load_weights_only(path, "contig checkpoint")
    if not isinstance(saved, dict):
        raise InputError(f"not a contig checkpoint (holds a {type(saved).__name__}, not a dict)", path)
    return saved


def write_metrics(rows: Sequence[Mapping[str, float]], out: Path) -> None:
    """``out/metrics.tsv`` (one row per epoch) and ``out/curves.png``."""
    table = pl.DataFrame([{c: row.get(c) for c in METRIC_COLUMNS} for row in rows],
                         schema={c: (pl.Int64 if c == "epoch" else pl.Float64)
                                 for c in METRIC_COLUMNS}, orient="row")
    write_tsv(table.with_columns(pl.col(pl.Float64).fill_nan(None)), out / "metrics.tsv")
    plot_curves(table, out / "curves.png")


def plot_curves(table: pl.DataFrame, path: Path) -> None:
    """Loss and retrieval accuracy per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    epoch = table["epoch"].to_numpy()
    for column, label in (("train_loss", "train"), ("val_loss", "validation")):
        ax_loss.plot(epoch, table[column].to_numpy(), marker="o", ms=3, label=label)
    ax_loss.set(xlabel="epoch", ylabel="contrastive loss", title="loss")
    ax_loss.legend()
    for column, label in (("val_top1", "top-1"), ("val_top5", "top-5"), ("chance_top1", "chance top-1")):
        ax_acc.plot(epoch, table[column].to_numpy(), marker="o", ms=3, label=label,
                    ls="--" if column == "chance_top1" else "-")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1),
               title="validation retrieval image → genetics")
    ax_acc.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


class _Progress:
    """A one-line progress bar on stderr (only drawn on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def update(self, epoch: int, epochs: int, done: int, total: int, text: str) -> None:
        if not self.enabled:
            return
        width = 24
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\repoch {epoch}/{epochs} [{'#' * filled}{'.' * (width - filled)}] "
                         f"{done}/{total} {text}   ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


class _StopFlag:
    """Set by SIGTERM; checked between optimizer steps (the handler does no I/O)."""

    def __init__(self) -> None:
        self.set = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[_StopFlag]:
        if threading_main():
            previous = signal.signal(signal.SIGTERM, self._handle)
            try:
                yield self
            finally:
                signal.signal(signal.SIGTERM, previous)
        else:
            yield self

    def _handle(self, signum, frame) -> None:  # noqa: ANN001 - signal handler signature
        self.set = True

    def agreed(self, dist: Dist, device: torch.device) -> bool:
        """Whether any rank got SIGTERM (all ranks stop at the same step)."""
        if not dist.enabled:
            return self.set
        flag = torch.tensor([int(self.set)], device=device)
        tdist.all_reduce(flag, op=tdist.ReduceOp.MAX)
        return bool(flag.item())


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------

@dataclass
class PreparedData:
    cohort: Cohort
    split: pl.DataFrame  # IID, set, fold
    train: Cohort
    val: Cohort
    cache_size: int


def prepare_data(cfg: TrainConfig) -> PreparedData:
    """Load the cache index and modalities, join them per person, split (plain or fold)."""
    images, index = read_image_cache(cfg.images)
    modalities = {name: load_modality(path) for name, path in cfg.modalities.items()}
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


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but no CUDA device is available")
    return torch.device(name)


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
    return ModelConfig(
        arch=cfg.arch, proj_hidden=cfg.proj_hidden, proj_dim=cfg.proj_dim,
        genetic_features={} if cfg.method == "simclr" else
        {n: int(g.X.shape[1]) for n, g in cohort.genetics.items()},
        hidden_layers=cfg.hidden_layers, genetic_hidden=cfg.genetic_hidden,
        genetic_norm=cfg.genetic_norm, temperature=cfg.temperature,
        learnable_temperature=cfg.learnable_temperature)


def train(cfg: TrainConfig) -> Path:
    """Run (or resume) one pretraining run; returns the path of ``model.pt``.

    Raises :class:`TrainingPreempted` after checkpointing on SIGTERM (the handler is installed
    first thing, so a SIGTERM during data loading also ends in a checkpoint at the first step).
    """
    stop = _StopFlag()
    with stop.installed():
        return _train(cfg, stop)


def _train(cfg: TrainConfig, stop: _StopFlag) -> Path:
    cfg.validate()
    out = Path(cfg.out)
    device = _resolve_device(cfg.device)
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
    channels_last = device.type == "cuda"

    data = prepare_data(cfg)
    image_size = cfg.image_size or data.cache_size
    if image_size > data.cache_size:
        log.warning("image size %d is larger than the cache's %d px: images are upsampled",
                    image_size, data.cache_size)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        write_tsv(data.split, out / "split.tsv")

    model_config = model_config_for(cfg, data.cohort)
    torch.manual_seed(cfg.seed)
    model = build_model(model_config, cfg.weights).to(device)
    model_path = out / "model.pt"
    fingerprint = input_fingerprint(cfg)
    base = {"config": cfg.to_dict(), "model_config": model_config.to_dict(),
            "split": _split_dict(data.split), "image_size": image_size, "method": cfg.method,
            "inputs": fingerprint}

    if cfg.method == "random":
        metrics = [{"epoch": 0, **evaluate(model, data.val, cfg.images, cfg, image_size, device, 0),
                    "lr": 0.0, "temperature": cfg.temperature}]
        if dist.main:
            save_torch_atomic({"format": MODEL_FORMAT, **base, "model": model.state_dict(),
                               "epochs": 0, "metrics": metrics}, model_path)
            write_metrics(metrics, out)
            log.info("random-init encoder saved (no training): %s; validation top-1 %.3f "
                     "(chance %.3f)", model_path, metrics[0]["val_top1"], metrics[0]["chance_top1"])
        return model_path

    if cfg.sync_bn and dist.enabled and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    n_batches = len(epoch_batches(len(data.train), cfg.batch_size, cfg.seed, 0))
    steps_per_epoch = math.ceil(n_batches / cfg.accumulate)
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = min(total_steps, round(cfg.warmup_epochs * steps_per_epoch))

    # Resume.
    start_epoch, start_batch, partial, metrics = 0, 0, None, []
    ckpt_path = out / "checkpoint.pt"
    saved = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    if saved is not None and saved.get("format") != CHECKPOINT_FORMAT:
        raise InputError("not a contig training checkpoint", ckpt_path)
    # An out-of-date checkpoint belongs to a run whose results are being recomputed (the
    # workflow reruns training when settings or inputs change): start afresh and overwrite it.
    reason = None if saved is None else checkpoint_mismatch(saved, cfg, data.split, fingerprint)
    if reason is not None:
        log.warning("not resuming from %s: %s; training from scratch", ckpt_path, reason)
        saved = None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng_torch"])
        start_epoch, start_batch = int(saved["epoch"]), int(saved["next_batch"])
        partial, metrics = saved["partial"], list(saved["metrics"])
        log.info("resumed from epoch %d%s (%s)", start_epoch,
                 f", batch {start_batch}" if start_batch else "", ckpt_path)

    ddp_model: nn.Module = model
    if dist.enabled:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.join == "outer")
    augment = BatchAugment("simclr" if cfg.method == "simclr" else "contig", image_size,
                           rotation=cfg.rotation, min_scale=cfg.min_crop_scale)
    progress = _Progress(sys.stderr.isatty() if cfg.progress is None else cfg.progress)

    def checkpoint(epoch: int, next_batch: int, partial_stats: dict | None) -> None:
        if dist.main:
            save_torch_atomic({"format": CHECKPOINT_FORMAT, **base, "model": model.state_dict(),
                               "optimizer": optimizer.state_dict(), "epoch": epoch,
                               "next_batch": next_batch, "partial": partial_stats,
                               "metrics": metrics, "rng_torch": torch.get_rng_state()}, ckpt_path)
        if dist.enabled:
            tdist.barrier()

    for epoch in range(start_epoch, cfg.epochs):
        batches = epoch_batches(len(data.train), cfg.batch_size, cfg.seed, epoch)
        first = start_batch if epoch == start_epoch else 0
        stats = dict(partial) if (partial and epoch == start_epoch) else \
            {"loss_sum": 0.0, "loss_n": 0, "images": 0, "wait": 0.0, "seconds": 0.0}
        dataset = PersonBatchDataset(data.train, cfg.images, batches[first:], first_index=first,
                                     with_genetics=cfg.method != "simclr", rank=dist.rank,
                                     world_size=dist.world)
        model.train()
        loss_sum = torch.zeros((), device=device)
        loss_n = 0
        t_start = time.perf_counter()
        wait = 0.0
        images_seen = 0
        iterator = iter(make_loader(dataset, cfg.workers, pin_memory=device.type == "cuda"))
        i = first
        while i < len(batches):
            t0 = time.perf_counter()
            batch = next(iterator)
            wait += time.perf_counter() - t0
            group_start = (i // cfg.accumulate) * cfg.accumulate
            group_size = min(cfg.accumulate, len(batches) - group_start)
            last_in_group = i == group_start + group_size - 1
            sync = contextlib.nullcontext() if (last_in_group or not dist.enabled) \
                else ddp_model.no_sync()
            with sync:
                loss, n_images = batch_loss(ddp_model, batch, cfg.method, augment, image_size,
                                            batch_seed(cfg.seed, epoch, i), cfg.alpha, dist,
                                            device, channels_last)
                (loss / group_size).backward()
            loss_sum += loss.detach()
            loss_n += 1
            images_seen += n_images
            if last_in_group:
                step = epoch * steps_per_epoch + i // cfg.accumulate
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, cfg.lr, warmup_steps, total_steps)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if progress.enabled and (i % 5 == 0 or i == len(batches) - 1):
                    progress.update(epoch + 1, cfg.epochs, i + 1, len(batches),
                                    f"loss {float(loss_sum) / loss_n:.4f}")
                if stop.agreed(dist, device):
                    progress.close()
                    stats = _merge_stats(stats, loss_sum, loss_n, images_seen * dist.world,
                                         wait, time.perf_counter() - t_start)
                    checkpoint(epoch, i + 1, stats)
                    log.warning("SIGTERM: checkpoint written at epoch %d, batch %d; exiting "
                                "with status %d (rerun to resume)", epoch, i + 1,
                                EXIT_PREEMPTED)
                    raise TrainingPreempted(str(ckpt_path))
            i += 1
        progress.close()
        stats = _merge_stats(stats, loss_sum, loss_n, images_seen * dist.world, wait,
                             time.perf_counter() - t_start)
        val = evaluate(model, data.val, cfg.images, cfg, image_size, device, epoch)
        row = {"epoch": epoch + 1,
               "train_loss": stats["loss_sum"] / max(stats["loss_n"], 1), **val,
               "lr": optimizer.param_groups[0]["lr"],
               "temperature": float(model.temperature().detach()),
               "images_per_s": stats["images"] / max(stats["seconds"], 1e-9),
               "data_wait_fraction": stats["wait"] / max(stats["seconds"], 1e-9),
               "epoch_seconds": stats["seconds"]}
        metrics.append(row)
        log.info("epoch %d/%d: train loss %.4f, val loss %.4f, val top-1 %.3f, top-5 %.3f "
                 "(chance %.3f), lr %.2e, %.0f images/s, %.0f%% of step time waiting on data",
                 epoch + 1, cfg.epochs, row["train_loss"], row["val_loss"], row["val_top1"],
                 row["val_top5"], row["chance_top1"], row["lr"], row["images_per_s"],
                 100 * row["data_wait_fraction"])
        checkpoint(epoch + 1, 0, None)
        if dist.main:
            write_metrics(metrics, out)
    if dist.main:
        if start_epoch >= cfg.epochs:  # resumed a finished run whose outputs were removed
            write_metrics(metrics, out)
        save_torch_atomic({"format": MODEL_FORMAT, **base, "model": model.state_dict(),
                           "epochs": cfg.epochs, "metrics": metrics}, model_path)
        log.info("wrote %s", model_path)
    if dist.enabled:
        tdist.barrier()
    return model_path


def _merge_stats(stats: dict, loss_sum: torch.Tensor, loss_n: int, images: int, wait: float,
                 seconds: float) -> dict:
    return {"loss_sum": stats["loss_sum"] + float(loss_sum), "loss_n": stats["loss_n"] + loss_n,
            "images": stats["images"] + images, "wait": stats["wait"] + wait,
            "seconds": stats["seconds"] + seconds}
