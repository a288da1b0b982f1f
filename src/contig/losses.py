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
    image_emb: torch.Tensor,
    genetic_embs: Mapping[str, torch.Tensor],
    image_person: torch.Tensor,
    present: Mapping[str, torch.Tensor],
    temperature: float | torch.Tensor = 0.1,
    alpha: float = 0.75,
) -> torch.Tensor:
    """Average of :func:`image_genetics_loss` over the modalities that have a present person.

    ``genetic_embs[m]`` is ``(P, d)``; ``present[m]`` is ``(P,)`` bool.
    """
    losses = [
        image_genetics_loss(image_emb, emb, image_person, present[name], temperature, alpha)
        for name, emb in genetic_embs.items()
        if bool(present[name][image_person].any())
    ]
    if not losses:
        return image_emb.sum() * 0.0
    return torch.stack(losses).mean()


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's NT-Xent: ``z1``, ``z2`` are ``(N, d)`` embeddings of two views of N images.

    Each view's positive is the other view of the same image; the 2N − 2 other views are negatives.
    """
    z = F.normalize(torch.cat([z1, z2]), dim=-1)  # (2N, d)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device),
                                torch.finfo(logits.dtype).min)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


class ContrastiveTemperature(nn.Module):
    """τ as a module: fixed, or learnable through log τ (clamped to [0.01, 1])."""

    def __init__(self, initial: float = 0.1, learnable: bool = False) -> None:
        super().__init__()
        log_tau = torch.tensor(math.log(initial))
        if learnable:
            self.log_tau = nn.Parameter(log_tau)
        else:
            self.register_buffer("log_tau", log_tau)

    def forward(self) -> torch.Tensor:
        return self.log_tau.clamp(math.log(0.01), 0.0).exp()
