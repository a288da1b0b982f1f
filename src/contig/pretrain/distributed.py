"""Several processes under ``torchrun``: the process group, and all-gathers that rebuild a
global batch from every rank's slice (gradients flow back through them).

Shapes: ``B`` images and ``P`` people of a rank's slice, ``d`` the embedding size; the gathered
tensors concatenate the slices in rank order.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as tdist

from contig.core.errors import InputError

log = logging.getLogger("contig.pretrain.distributed")


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
    dist = Dist(tdist.get_rank(), tdist.get_world_size(), local_rank)
    log.info("process group (%s): rank %d of %d", tdist.get_backend(), dist.rank, dist.world)
    return dist


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


def gather_image_person(image_person: torch.Tensor, n_people: int, dist: Dist) -> torch.Tensor:
    """The person of every image of the global batch ``(Σ B_r,)``, as indices into the
    concatenation of every rank's ``n_people`` people (a rank's own indices are 0-based)."""
    if not dist.enabled:
        return image_person
    counts = all_gather_rows(torch.tensor([n_people], device=image_person.device), dist)
    offset = int(counts[:dist.rank].sum())
    return all_gather_rows(image_person + offset, dist)


def gather_global_batch(image_emb: torch.Tensor | Mapping[str, torch.Tensor],
                        image_person: torch.Tensor, genetic_embs: Mapping[str, torch.Tensor],
                        present: Mapping[str, torch.Tensor], dist: Dist
                        ) -> tuple[torch.Tensor | dict[str, torch.Tensor], torch.Tensor,
                                   dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The global batch from every rank's slice: images ``(B, d)`` or ``{name: (B, d)}`` (one
    projection head per modality), ``image_person`` ``(B,)`` (re-indexed into the concatenated
    people), genetics ``{name: (P, d)}``, presence ``{name: (P,)}``."""
    if not dist.enabled:
        images = dict(image_emb) if isinstance(image_emb, Mapping) else image_emb
        return images, image_person, dict(genetic_embs), dict(present)
    n_people = next(iter(present.values())).shape[0] if present else \
        int(image_person.max()) + 1
    people_all = gather_image_person(image_person, n_people, dist)
    if isinstance(image_emb, Mapping):
        images = {name: all_gather_rows(e, dist) for name, e in image_emb.items()}
    else:
        images = all_gather_rows(image_emb, dist)
    genetics = {name: all_gather_rows(e, dist) for name, e in genetic_embs.items()}
    masks = {name: all_gather_rows(p.to(torch.uint8), dist).bool() for name, p in present.items()}
    return images, people_all, genetics, masks


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a CUDA device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda but no CUDA device is available", "command line")
    return torch.device(name)
