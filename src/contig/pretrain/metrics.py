"""Validation of a training run: loss and image→genetics retrieval per epoch, the choice of the
epoch whose weights ``model.pt`` keeps, and ``metrics.tsv`` / ``curves.png``.

Shapes: ``B`` images, ``P`` people, ``d`` the embedding size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import torch
from torch import nn

from contig.core.atomic import atomic_path
from contig.core.tables import write_tsv
from contig.pretrain.augment import BatchAugment, eval_images
from contig.pretrain.data import Cohort, PersonBatchDataset, batch_seed, epoch_batches, make_loader
from contig.pretrain.distributed import Dist
from contig.pretrain.loop import autocast, batch_loss
from contig.pretrain.losses import multimodal_loss
from contig.pretrain.models import ContIGModel

if TYPE_CHECKING:
    from contig.pretrain.config import TrainConfig

METRIC_COLUMNS = ["epoch", "train_loss", "val_loss", "val_top1", "val_top5", "chance_top1",
                  "lr", "temperature", "images_per_s", "data_wait_fraction", "epoch_seconds",
                  "selected"]
NAN = float("nan")


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(model: ContIGModel, cohort: Cohort, cache_prefix: str, cfg: TrainConfig,
             image_size: int, device: torch.device, seed: int) -> dict[str, float]:
    """Validation loss (unaugmented images; SimCLR: views seeded by ``seed``) and image→genetics
    retrieval over the whole validation set: for every image whose person has a modality, the
    rank of that person among all present people by cosine similarity (with that modality's
    image head); top-1/top-5 averaged over modalities, with chance top-1 = mean over modalities
    of 1 / (people present)."""
    result = {"val_loss": NAN, "val_top1": NAN, "val_top5": NAN, "chance_top1": NAN}
    if len(cohort) == 0:
        return result
    was_training = model.training
    model.eval()
    batches = epoch_batches(len(cohort), cfg.batch_size, seed, 0, shuffle=False)
    dataset = PersonBatchDataset(cohort, cache_prefix, batches,
                                 with_genetics=cfg.method != "simclr")
    try:
        if cfg.method == "simclr":
            result["val_loss"] = _simclr_validation_loss(model, dataset, cfg, image_size, device,
                                                          seed)
        else:
            result.update(_contig_validation(model, dataset, cfg.alpha, image_size, device))
    finally:
        model.train(was_training)
    return result


def _simclr_validation_loss(model: nn.Module, dataset: PersonBatchDataset, cfg: TrainConfig,
                            image_size: int, device: torch.device, seed: int) -> float:
    augment = BatchAugment("simclr", image_size, min_scale=cfg.min_crop_scale)
    losses, weights = [], []
    for i, batch in enumerate(make_loader(dataset, workers=0)):
        loss, _ = batch_loss(model, batch, "simclr", augment, image_size,
                             batch_seed(seed, 0, i, stream=1), cfg.alpha, Dist(), device)
        losses.append(float(loss))
        weights.append(len(batch["people"]))
    return float(np.average(losses, weights=weights))


def _contig_validation(model: ContIGModel, dataset: PersonBatchDataset, alpha: float,
                       image_size: int, device: torch.device) -> dict[str, float]:
    """Loss per batch (weighted by people) and retrieval over every batch's projections."""
    losses, weights, people, offset = [], [], [], 0
    image_proj: dict[str, list[torch.Tensor]] = {}
    genetic_proj: dict[str, list[torch.Tensor]] = {}
    present: dict[str, list[torch.Tensor]] = {}
    for batch in make_loader(dataset, workers=0):
        names = [k.split("/", 1)[1] for k in batch if k.startswith("genetic/")]
        pres = {n: batch[f"present/{n}"].to(device) for n in names}
        with autocast(device):
            img, gen, tau = model(eval_images(batch["images"].to(device), image_size),
                                  {n: batch[f"genetic/{n}"].to(device) for n in names}, pres)
        img = {n: p.float() for n, p in img.items()} if isinstance(img, Mapping) else img.float()
        gen = {n: g.float() for n, g in gen.items()}
        losses.append(float(multimodal_loss(img, gen, batch["image_person"].to(device), pres, tau,
                                            alpha)))
        weights.append(len(batch["people"]))
        people.append(batch["image_person"] + offset)
        offset += len(batch["people"])
        for n in names:
            image_proj.setdefault(n, []).append((img[n] if isinstance(img, Mapping) else img).cpu())
            genetic_proj.setdefault(n, []).append(gen[n].cpu())
            present.setdefault(n, []).append(batch[f"present/{n}"])
    result = {"val_loss": float(np.average(losses, weights=weights))}
    person = torch.cat(people)
    stats = [retrieval_accuracy(torch.cat(image_proj[n]), torch.cat(genetic_proj[n]), person,
                                torch.cat(present[n])) for n in genetic_proj]
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
        return NAN, NAN, NAN
    img = nn.functional.normalize(image_emb[keep], dim=-1)
    gen = nn.functional.normalize(genetic_emb, dim=-1)
    sim = img @ gen.T  # (B', P)
    sim[:, ~present] = -math.inf
    own = sim.gather(1, image_person[keep][:, None])
    rank = (sim >= own).sum(1) - 1  # competitors at least as similar as the own person
    return (float((rank < 1).float().mean()), float((rank < 5).float().mean()), 1.0 / n_present)


# ---------------------------------------------------------------------------------------------
# Which epoch model.pt keeps
# ---------------------------------------------------------------------------------------------

def selection_score(row: Mapping[str, float]) -> tuple[float, ...] | None:
    """How good an epoch's validation was (greater is better), or None without a validation
    score. Retrieval first: top-5 (steadier than top-1 on a small validation set), then top-1,
    then the validation loss; methods without retrieval (SimCLR) by validation loss alone."""
    def value(column: str) -> float:
        v = row.get(column)
        return NAN if v is None else float(v)

    loss, top5, top1 = value("val_loss"), value("val_top5"), value("val_top1")
    if not (math.isnan(top5) or math.isnan(top1)):
        return (top5, top1, -loss if not math.isnan(loss) else -math.inf)
    return None if math.isnan(loss) else (-loss,)


def improves(score: tuple[float, ...] | None, best: Sequence[float] | None) -> bool:
    """Whether an epoch with ``score`` replaces the best so far (ties keep the earlier epoch;
    without validation scores every epoch replaces it, so the last one is kept)."""
    if best is None or score is None:
        return True
    return tuple(score) > tuple(best)


# ---------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------

def write_metrics(rows: Sequence[Mapping[str, float]], out: Path, selected_epoch: int) -> None:
    """``out/metrics.tsv`` (one row per epoch; ``selected`` is 1 on the epoch whose weights
    ``model.pt`` holds) and ``out/curves.png``."""
    rows = [{**row, "selected": int(row["epoch"] == selected_epoch)} for row in rows]
    integer = {"epoch", "selected"}
    table = pl.DataFrame([{c: row.get(c) for c in METRIC_COLUMNS} for row in rows],
                         schema={c: (pl.Int64 if c in integer else pl.Float64)
                                 for c in METRIC_COLUMNS}, orient="row")
    write_tsv(table.with_columns(pl.col(pl.Float64).fill_nan(None)), out / "metrics.tsv")
    plot_curves(table, out / "curves.png", selected_epoch)


def plot_curves(table: pl.DataFrame, path: Path, selected_epoch: int | None = None) -> None:
    """Loss and retrieval accuracy per epoch; a dotted line at the epoch ``model.pt`` keeps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    epoch = table["epoch"].to_numpy()
    for column, label in (("train_loss", "train"), ("val_loss", "validation")):
        ax_loss.plot(epoch, table[column].to_numpy(), marker="o", ms=3, label=label)
    ax_loss.set(xlabel="epoch", ylabel="contrastive loss", title="loss")
    for column, label in (("val_top1", "top-1"), ("val_top5", "top-5"), ("chance_top1", "chance top-1")):
        ax_acc.plot(epoch, table[column].to_numpy(), marker="o", ms=3, label=label,
                    ls="--" if column == "chance_top1" else "-")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1),
               title="validation retrieval image → genetics")
    if selected_epoch is not None and len(epoch) > 1:
        for ax in (ax_loss, ax_acc):
            ax.axvline(selected_epoch, color="grey", ls=":", lw=1, label="kept in model.pt")
    ax_loss.legend()
    ax_acc.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
