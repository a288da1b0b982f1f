"""Contrastive batches larger than the GPU: a two-pass gradient cache (Gao et al. 2021).

Shapes: ``B`` images and ``P`` people of a batch, ``d`` the embedding size; a sub-batch holds
the images of ``chunk`` consecutive people of the batch.

1. The image tower (backbone + projection head(s)) embeds the batch sub-batch by sub-batch
   without a graph; the random state before each sub-batch is saved.
2. The genetic encoders run once on the whole batch with a graph (they are small MLPs), the
   contrastive loss is computed on all embeddings, and its backward pass gives the gradients of
   the genetic encoders and τ, and of the loss w.r.t. the cached image embeddings ``(B, d)``.
3. Each sub-batch is embedded again, with a graph and its saved random state, and the cached
   embedding gradients of its rows are propagated through it.

The loss therefore sees every negative of the batch, while GPU memory holds the activations of
one sub-batch. Costs one extra forward pass of the image tower (~1/3 more compute).

What is not the same as one pass: the ResNet's BatchNorm normalizes each sub-batch with that
sub-batch's statistics (as data-parallel training normalizes per GPU without ``sync_bn``), and
its running statistics get one update per sub-batch. The first, graph-free pass leaves the
running statistics untouched, so each sub-batch updates them exactly once. Genetic encoders,
τ and the loss are computed exactly as in one pass (their dropout draws come first from the
batch's seeded generator, which the ResNet, having no dropout, does not consume in one pass).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from contig.pretrain.models import frozen_norm_statistics

Embeddings = torch.Tensor | dict[str, torch.Tensor]
"""Image projections: ``(B, d)`` with a shared head, ``{name: (B, d)}`` with one per modality."""


@dataclass
class RandomState:
    """The global torch generators' state (CPU, and the current CUDA device when used)."""

    cpu: torch.Tensor
    cuda: torch.Tensor | None

    @classmethod
    def capture(cls, device: torch.device) -> RandomState:
        return cls(torch.get_rng_state(),
                   torch.cuda.get_rng_state(device) if device.type == "cuda" else None)

    def restore(self, device: torch.device) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, device)


def sub_batches(image_person: torch.Tensor, n_people: int, chunk: int) -> list[torch.Tensor]:
    """Image rows of each sub-batch: those of people ``k·chunk … (k+1)·chunk − 1``, for every
    ``k`` with at least one image; ``image_person`` is ``(B,)``. ``chunk`` ≤ 0: one sub-batch."""
    rows = torch.arange(image_person.shape[0], device=image_person.device)
    if chunk <= 0 or chunk >= n_people:
        return [rows]
    group = torch.div(image_person, chunk, rounding_mode="floor")
    parts = [rows[group == k] for k in range((n_people + chunk - 1) // chunk)]
    return [p for p in parts if p.numel() > 0]


def _as_dict(emb: Embeddings) -> dict[str, torch.Tensor]:
    return dict(emb) if isinstance(emb, Mapping) else {"": emb}


def _as_embeddings(values: dict[str, torch.Tensor]) -> Embeddings:
    return values[""] if set(values) == {""} else dict(values)


def rows_of(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``x[rows]`` in ``x``'s memory format (indexing returns NCHW even from channels_last)."""
    part = x[rows]
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        part = part.contiguous(memory_format=torch.channels_last)
    return part


@dataclass
class CachedEmbeddings:
    """Pass 1's output: leaf embeddings of the whole batch (fp32, requiring grad) and what the
    recompute needs (each sub-batch's rows and random state)."""

    leaves: Embeddings
    rows: list[torch.Tensor]
    states: list[RandomState]


def embed_without_graph(tower: Callable[[torch.Tensor], Embeddings], module: torch.nn.Module,
                        x: torch.Tensor, rows: list[torch.Tensor], device: torch.device
                        ) -> CachedEmbeddings:
    """Pass 1: ``tower(x[r])`` for each sub-batch ``r`` of ``x`` ``(B, ...)`` without a graph,
    assembled into fp32 leaves ``(B, d)`` (or a dict of them); ``module``'s BatchNorm running
    statistics are left as they were (the recompute updates them)."""
    states, parts = [], []
    with torch.no_grad(), frozen_norm_statistics(module):
        for r in rows:
            states.append(RandomState.capture(device))
            parts.append(_as_dict(tower(rows_of(x, r))))
    leaves = {}
    for name in parts[0]:
        full = torch.empty(x.shape[0], parts[0][name].shape[1], device=x.device)
        for r, part in zip(rows, parts):
            full[r] = part[name].float()
        leaves[name] = full.requires_grad_(True)
    return CachedEmbeddings(_as_embeddings(leaves), rows, states)


def backward_through_sub_batches(tower: Callable[[torch.Tensor], Embeddings], x: torch.Tensor,
                                 cache: CachedEmbeddings, device: torch.device,
                                 forward_context: Callable[[], AbstractContextManager] =
                                 contextlib.nullcontext) -> None:
    """Pass 3: re-embed each sub-batch (inside ``forward_context()``, e.g. autocast, as pass 1)
    with a graph and its saved random state, and backpropagate the gradients the loss left on the
    cached leaves. Outputs whose leaf got no gradient (a per-modality head no loss term used) are
    not backpropagated, as in one pass."""
    grads = {name: leaf.grad for name, leaf in _as_dict(cache.leaves).items()}
    used = [name for name, g in grads.items() if g is not None]
    if not used:
        return
    after = RandomState.capture(device)
    for r, state in zip(cache.rows, cache.states):
        state.restore(device)
        with forward_context():
            out = _as_dict(tower(rows_of(x, r)))
        torch.autograd.backward([out[name].float() for name in used],
                                [grads[name][r] for name in used])
    after.restore(device)
