"""Pieces of the training loop: the loss of one batch, the optimizer and its schedule, the
SIGTERM flag and the progress bar.

Shapes: ``B`` images and ``P`` people of a (rank's slice of a) batch, ``d`` the embedding size.

Randomness inside a batch is a function of (seed, epoch, batch, rank) only: augmentations draw
from a CPU generator seeded with the batch seed, and dropout in the genetic encoders draws from
the global torch generators re-seeded from it for the forward pass (their previous state is
restored afterwards), so loader workers, checkpoints and resumption never shift a draw.
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import sys
import threading
from collections.abc import Iterator, Mapping

import numpy as np
import torch
import torch.distributed as tdist
from torch import nn

from contig.pretrain.augment import BatchAugment, eval_images
from contig.pretrain.distributed import (
    Dist,
    all_gather_rows,
    gather_global_batch,
    gather_image_person,
)
from contig.pretrain.gradcache import (
    backward_through_sub_batches,
    embed_without_graph,
    sub_batches,
)
from contig.pretrain.losses import multimodal_loss, nt_xent_loss
from contig.pretrain.models import ContIGModel


class TrainingPreempted(Exception):
    """SIGTERM arrived; a checkpoint was written and the run can be resumed."""


# ---------------------------------------------------------------------------------------------
# One batch
# ---------------------------------------------------------------------------------------------

def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, nothing on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def seeded_forward(seed: int, rank: int, device: torch.device) -> Iterator[None]:
    """Run a forward pass with the global torch generators (CPU, and ``device`` on CUDA) seeded
    from (``seed``, ``rank``), restoring their state afterwards (dropout draws from them)."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        forward_seed = int(np.random.default_rng([seed, rank, 13]).integers(2**62))
        torch.default_generator.manual_seed(forward_seed)
        if devices:
            torch.cuda.manual_seed(forward_seed)
        yield


def _float(proj: torch.Tensor | Mapping[str, torch.Tensor]
           ) -> torch.Tensor | dict[str, torch.Tensor]:
    if isinstance(proj, Mapping):
        return {name: p.float() for name, p in proj.items()}
    return proj.float()


def model_images(batch: Mapping[str, torch.Tensor], method: str, augment: BatchAugment | None,
                 image_size: int, seed: int, device: torch.device, channels_last: bool = False
                 ) -> torch.Tensor:
    """The backbone's input: ``(B, 3, size, size)`` augmented (``augment``) or not (None), or
    for SimCLR, always augmented, both views ``(2B, 3, size, size)`` (view 1 then view 2)."""
    images = batch["images"].to(device, non_blocking=True)
    generator = torch.Generator().manual_seed(seed)
    where = {"offset": int(batch.get("image_offset", 0)),
             "total": int(batch.get("global_images", images.shape[0]))}
    memory = torch.channels_last if channels_last else torch.contiguous_format
    if method == "simclr":
        aug = augment or BatchAugment("simclr", image_size)
        x = torch.cat([aug(images, generator, **where), aug(images, generator, **where)])
    else:
        x = augment(images, generator, **where) if augment is not None else \
            eval_images(images, image_size)
    return x.contiguous(memory_format=memory)


def batch_genetics(batch: Mapping[str, torch.Tensor], device: torch.device
                   ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The batch's genetic features ``{name: (P, m)}`` and presence ``{name: (P,)}``."""
    names = [k.split("/", 1)[1] for k in batch if k.startswith("genetic/")]
    genetics = {n: batch[f"genetic/{n}"].to(device, non_blocking=True) for n in names}
    present = {n: batch[f"present/{n}"].to(device, non_blocking=True) for n in names}
    return genetics, present


def batch_loss(model: nn.Module, batch: Mapping[str, torch.Tensor], method: str,
               augment: BatchAugment | None, image_size: int, seed: int, alpha: float,
               dist: Dist, device: torch.device, channels_last: bool = False
               ) -> tuple[torch.Tensor, int]:
    """Loss of one (rank's slice of a) batch and the number of images put through the backbone.

    ``augment`` None = unaugmented images (validation; SimCLR always augments, with ``seed``).
    ``seed`` seeds this batch's augmentation generator and its dropout draws. SimCLR's negatives
    leave out the other images of the same person (:func:`nt_xent_loss` with ``person``).
    """
    x = model_images(batch, method, augment, image_size, seed, device, channels_last)
    image_person = batch["image_person"].to(device, non_blocking=True)
    if method == "simclr":
        with autocast(device), seeded_forward(seed, dist.rank, device):
            z, _, tau = model(x)
        z1, z2 = z.float().chunk(2)
        person = gather_image_person(image_person, len(batch["people"]), dist)
        loss = nt_xent_loss(all_gather_rows(z1, dist), all_gather_rows(z2, dist), tau, person)
        return loss, x.shape[0]
    genetics, present = batch_genetics(batch, device)
    with autocast(device), seeded_forward(seed, dist.rank, device):
        image_proj, genetic_proj, tau = model(x, genetics, present)
    img, person, gen, pres = gather_global_batch(
        _float(image_proj), image_person, {n: g.float() for n, g in genetic_proj.items()},
        present, dist)
    return multimodal_loss(img, gen, person, pres, tau, alpha), x.shape[0]


def grad_cached_backward(model: ContIGModel, batch: Mapping[str, torch.Tensor], method: str,
                         augment: BatchAugment | None, image_size: int, seed: int, alpha: float,
                         device: torch.device, chunk: int, scale: float = 1.0,
                         channels_last: bool = False) -> tuple[torch.Tensor, int]:
    """What ``(batch_loss(...) * scale).backward()`` does, with the image tower run ``chunk``
    people at a time (:mod:`contig.pretrain.gradcache`; one process only). Returns the loss
    (detached) and the number of images put through the backbone."""
    x = model_images(batch, method, augment, image_size, seed, device, channels_last)
    image_person = batch["image_person"].to(device, non_blocking=True)
    rows = sub_batches(image_person, len(batch["people"]), chunk)
    if method == "simclr":  # a person's sub-batch holds both views of their images
        rows = [torch.cat([r, r + image_person.shape[0]]) for r in rows]
    genetics, present = batch_genetics(batch, device) if method != "simclr" else ({}, {})
    with seeded_forward(seed, 0, device):
        with autocast(device):
            genetic_proj = model.embed_genetics(genetics, present)
            tau = model.temperature()
            cache = embed_without_graph(model.embed_images, model, x, rows, device)
        if method == "simclr":
            z1, z2 = cache.leaves.chunk(2)
            loss = nt_xent_loss(z1, z2, tau, image_person)
        else:
            loss = multimodal_loss(cache.leaves, {n: g.float() for n, g in genetic_proj.items()},
                                   image_person, present, tau, alpha)
        (loss * scale).backward()
        backward_through_sub_batches(model.embed_images, x, cache, device,
                                     functools.partial(autocast, device))
    return loss.detach(), x.shape[0]


# ---------------------------------------------------------------------------------------------
# Optimizer and schedule
# ---------------------------------------------------------------------------------------------

def build_optimizer(model: nn.Module, lr: float, weight_decay: float,
                    genetic_weight_decay: float | None = None) -> torch.optim.AdamW:
    """One AdamW over every parameter; weight decay only on weight matrices/kernels (ndim ≥ 2):
    ``genetic_weight_decay`` on the genetic encoders' (default: ``weight_decay``),
    ``weight_decay`` on the others."""
    genetic_module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    genetic = {id(p) for p in genetic_module.genetic.parameters()} \
        if hasattr(genetic_module, "genetic") else set()
    trained = [p for p in model.parameters() if p.requires_grad]
    matrices = [p for p in trained if p.ndim >= 2]
    groups = [
        {"params": [p for p in matrices if id(p) not in genetic], "weight_decay": weight_decay},
        {"params": [p for p in matrices if id(p) in genetic],
         "weight_decay": weight_decay if genetic_weight_decay is None else genetic_weight_decay},
        {"params": [p for p in trained if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup, then cosine to 0."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------------------------
# Progress bar and SIGTERM
# ---------------------------------------------------------------------------------------------

class Progress:
    """A one-line progress bar on stderr (only drawn when enabled, i.e. on a terminal)."""

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


class StopFlag:
    """Set by SIGTERM; checked between optimizer steps (the handler does no I/O)."""

    def __init__(self) -> None:
        self.set = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopFlag]:
        if threading.current_thread() is threading.main_thread():
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
