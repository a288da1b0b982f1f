"""Contrastive losses: ContIG's image-genetics loss (CLIP/ConVIRT style) and SimCLR's NT-Xent.

Shapes: ``B`` images in the batch, ``P`` people, ``d`` embedding size. Every image belongs to one
person (``image_person``, indices into the people); a person may have several images (both eyes).
Images of the same person are never negatives of each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn


def image_genetics_loss(
    image_emb: torch.Tensor,
    genetic_emb: torch.Tensor,
    image_person: torch.Tensor,
    present: torch.Tensor | None = None,
    temperature: float | torch.Tensor = 0.1,
    alpha: float = 0.75,
) -> torch.Tensor:
    """ContIG loss for one genetic modality.

    Args:
        image_emb: ``(B, d)`` image embeddings (normalized here).
        genetic_emb: ``(P, d)`` genetic embeddings of the people in the batch (normalized here).
        image_person: ``(B,)`` long, the person (row of ``genetic_emb``) of each image.
        present: ``(P,)`` bool, whether each person has this modality (default: all).
            Absent people are neither anchors nor negatives, so they get no gradient from it.
        temperature: τ; logits are cosine similarities / τ.
        alpha: weight of the image→genetics direction; (1 − α) for genetics→image.

    Returns:
        Scalar loss: α · mean_i CE(image i → its person among present people)
        + (1 − α) · mean_i CE(person of i → image i among images of other present people and i).
        Zero (with a graph) if no image of the batch belongs to a present person.
    """
    n_people = genetic_emb.shape[0]
    if present is None:
        present = torch.ones(n_people, dtype=torch.bool, device=genetic_emb.device)
    img = F.normalize(image_emb, dim=-1)
    gen = F.normalize(genetic_emb, dim=-1)
    logits = img @ gen.T / temperature  # (B, P)
    anchors = present[image_person]  # (B,) images whose person has the modality
    if not bool(anchors.any()):
        return logits.sum() * 0.0

    neg_inf = torch.finfo(logits.dtype).min
    # image -> genetics: softmax over present people.
    row_logits = logits.masked_fill(~present[None, :], neg_inf)
    loss_ig = F.cross_entropy(row_logits[anchors], image_person[anchors])

    # genetics -> image: for image i of person p, softmax over image i and all images of
    # other present people (other images of p are excluded: not negatives).
    own = logits.gather(1, image_person[:, None]).squeeze(1)  # (B,) s(i, p(i))
    column = logits.T[image_person]  # (B, B): row i = similarities of person p(i) to every image
    same_person = image_person[:, None] == image_person[None, :]
    other_present = present[image_person][None, :] & ~same_person
    column = column.masked_fill(~other_present, neg_inf)
    denominator = torch.logsumexp(torch.cat([own[:, None], column], dim=1), dim=1)
    loss_gi = (denominator - own)[anchors].mean()
    return alpha * loss_ig + (1.0 - alpha) * loss_gi


def multimodal_loss(
    image_emb: torch.Tensor | Mapping[str, torch.Tensor],
    genetic_embs: Mapping[str, torch.Tensor],
    image_person: torch.Tensor,
    present: Mapping[str, torch.Tensor],
    temperature: float | torch.Tensor = 0.1,
    alpha: float = 0.75,
) -> torch.Tensor:
    """Average of :func:`image_genetics_loss` over the modalities that have a present person.

    ``image_emb`` is ``(B, d)`` (one image projection head shared by the modalities) or
    ``{m: (B, d)}`` (one head per modality: modality ``m``'s term uses its own projections);
    ``genetic_embs[m]`` is ``(P, d)``; ``present[m]`` is ``(P,)`` bool.
    """
    def image_side(name: str) -> torch.Tensor:
        return image_emb[name] if isinstance(image_emb, Mapping) else image_emb

    losses = [
        image_genetics_loss(image_side(name), emb, image_person, present[name], temperature,
                            alpha)
        for name, emb in genetic_embs.items()
        if bool(present[name][image_person].any())
    ]
    if not losses:
        reference = next(iter(image_emb.values())) if isinstance(image_emb, Mapping) else image_emb
        return reference.sum() * 0.0
    return torch.stack(losses).mean()


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float | torch.Tensor = 0.1,
                 person: torch.Tensor | None = None) -> torch.Tensor:
    """SimCLR's NT-Xent: ``z1``, ``z2`` are ``(N, d)`` embeddings of two views of N images.

    Each view's positive is the other view of the same image. Negatives are the views of the
    other images, except, when ``person`` ``(N,)`` (the person of each image) is given, the views
    of other images of the same person (their other eye): those are neither positive nor
    negative, as in :func:`image_genetics_loss`. Without ``person`` all 2N − 2 other views are
    negatives (SimCLR's original form).
    """
    z = F.normalize(torch.cat([z1, z2]), dim=-1)  # (2N, d)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    image = torch.arange(2 * n, device=z.device) % n  # image of each view
    excluded = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    if person is not None:
        owner = person.to(z.device).repeat(2)  # (2N,)
        same_person = owner[:, None] == owner[None, :]
        excluded = excluded | (same_person & (image[:, None] != image[None, :]))
    logits = logits.masked_fill(excluded, torch.finfo(logits.dtype).min)
    targets = (torch.arange(2 * n, device=z.device) + n) % (2 * n)
    return F.cross_entropy(logits, targets)


TAU_MIN, TAU_MAX = 0.01, 1.0
"""Bounds of τ: the initial value must lie in them, and a learnable τ is kept inside them."""


class ContrastiveTemperature(nn.Module):
    """τ as a module: fixed, or learnable through log τ (kept in [:data:`TAU_MIN`,
    :data:`TAU_MAX`] while it learns). An initial τ outside those bounds is refused."""

    def __init__(self, initial: float = 0.1, learnable: bool = False) -> None:
        super().__init__()
        if not TAU_MIN <= initial <= TAU_MAX:
            raise ValueError(f"temperature must be in [{TAU_MIN:g}, {TAU_MAX:g}], got {initial:g}")
        log_tau = torch.tensor(math.log(initial))
        if learnable:
            self.log_tau = nn.Parameter(log_tau)
        else:
            self.register_buffer("log_tau", log_tau)

    def forward(self) -> torch.Tensor:
        return self.log_tau.clamp(math.log(TAU_MIN), math.log(TAU_MAX)).exp()
