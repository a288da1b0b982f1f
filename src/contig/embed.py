"""Image embeddings for GWAS: backbone features of people the model did not train on.

Shapes: ``P`` people, ``D`` backbone features (512 ResNet-18, 2048 ResNet-50).

Each ``model.pt`` written by ``contig train`` records its split. By default every model embeds
its held-out (``test``) people:
- plain split: one model, its test people (the reference study's choice);
- K-fold cross-fitting: the K fold models together embed everyone, each person by the model whose
  fold held them out. Passing all K ``model.pt`` files to one ``contig embed`` call gathers them
  into one table; a person held out by two models, or a model trained on another cohort, is an
  error.
``people="all"`` embeds everyone with a single model (e.g. for downstream probing).

Eyes: ``left`` / ``right`` use that eye's image; a person with only the other eye is embedded from
it (counted in the log); ``mean`` averages the features of all the person's images. Images with
no eye label count as "other" for left/right.

``both_eyes_only`` keeps only people with at least one left and one right image (others are
dropped and counted): then ``left`` and ``right`` never fall back, so a left-eye and a right-eye
GWAS are two measurements of the same people (replication across eyes).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from contig.atomic import atomic_path
from contig.data import PersonImages, eval_images, read_image_cache
from contig.errors import InputError
from contig.models import ContIGModel, build_model
from contig.train import MODEL_FORMAT, load_checkpoint

log = logging.getLogger("contig.embed")

EYES = ("left", "right", "mean")


@dataclass
class TrainedModel:
    """A model rebuilt from ``model.pt`` with its split (``IID`` → set) and image size."""

    model: ContIGModel
    split: pl.DataFrame  # IID, set, fold
    image_size: int
    method: str
    path: Path


def load_trained_model(path: str | Path, device: torch.device | str = "cpu") -> TrainedModel:
    """Rebuild the model stored in ``path`` (weights loaded with ``weights_only=True``), eval mode."""
    path = Path(path)
    saved = load_checkpoint(path)
    if saved.get("format") != MODEL_FORMAT:
        raise InputError("not a contig model file (expected model.pt from `contig train`)", path)
    model = build_model(saved["model_config"])
    model.load_state_dict(saved["model"])
    model.to(device).eval()
    fold = [None if f < 0 else f for f in saved["split"]["fold"]]
    split = pl.DataFrame({"IID": saved["split"]["IID"], "set": saved["split"]["set"],
                          "fold": pl.Series(fold, dtype=pl.Int64)})
    return TrainedModel(model, split, int(saved["image_size"]), str(saved["method"]), path)


def choose_images(people: PersonImages, eye: str) -> tuple[list[np.ndarray], int]:
    """Cache rows to average for each person, and how many people lacked the requested eye.

    ``left``/``right``: that eye's image(s), else the person's other images; ``mean``: all images.
    """
    if eye not in EYES:
        raise ValueError(f"eye must be one of {EYES}, got {eye!r}")
    chosen, fallback = [], 0
    for p in range(len(people)):
        rows = people.rows[people.offsets[p]:people.offsets[p + 1]]
        eyes = people.eye[people.offsets[p]:people.offsets[p + 1]]
        if eye != "mean":
            wanted = rows[eyes == eye]
            if len(wanted) == 0:
                fallback += 1
            else:
                rows = wanted
        chosen.append(rows)
    return chosen, fallback


def has_both_eyes(people: PersonImages) -> np.ndarray:
    """Whether each person has a left and a right image, ``(P,)`` bool."""
    owner = np.repeat(np.arange(len(people)), people.n_images())
    left = np.bincount(owner[people.eye == "left"], minlength=len(people)) > 0
    right = np.bincount(owner[people.eye == "right"], minlength=len(people)) > 0
    return left & right


@torch.no_grad()
def backbone_features(model: ContIGModel, cache: np.ndarray, rows_per_person: Sequence[np.ndarray],
                      image_size: int, device: torch.device | str = "cpu",
                      batch_size: int = 128) -> np.ndarray:
    """Mean backbone feature over each person's chosen images, float32 ``(P, D)`` (no augmentation)."""
    device = torch.device(device)
    model.eval()
    rows = np.concatenate(rows_per_person) if rows_per_person else np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(rows_per_person)), [len(r) for r in rows_per_person])
    sums = torch.zeros(len(rows_per_person), model.feature_dim, dtype=torch.float64)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        order = np.argsort(chunk, kind="stable")
        pixels = np.empty((len(chunk),) + cache.shape[1:], np.uint8)
        pixels[order] = cache[chunk[order]]
        x = eval_images(torch.from_numpy(pixels).to(device), image_size)
        with autocast:
            feats = model.features(x).double().cpu()
        sums.index_add_(0, torch.from_numpy(owner[start:start + batch_size]), feats)
    counts = torch.tensor([len(r) for r in rows_per_person], dtype=torch.float64).clamp(min=1)
    return (sums / counts[:, None]).float().numpy()


def embed_people(models: Sequence[TrainedModel], cache_prefix: str | Path, eye: str = "left",
                 people: str = "test", device: torch.device | str = "cpu",
                 batch_size: int = 128, both_eyes_only: bool = False) -> tuple[pl.DataFrame, list[str]]:
    """Embeddings ``IID, dim_0000, ...`` (float32) of each model's held-out people (or, with
    ``people="all"`` and one model, of everyone in its split), and log lines with the counts.
    ``both_eyes_only``: only those of them with both a left and a right image.

    Raises :class:`InputError` if two models hold out the same person or a person of a model's
    split has no image in the cache.
    """
    if people not in ("test", "all"):
        raise ValueError(f"people must be test or all, got {people!r}")
    if people == "all" and len(models) != 1:
        raise ValueError("people='all' takes exactly one model")
    cache, index = read_image_cache(cache_prefix)
    all_images = PersonImages.from_index(index)
    report: list[str] = []
    owner: dict[str, Path] = {}
    frames = []
    dims = {m.model.feature_dim for m in models}
    if len(dims) != 1:
        raise InputError(f"models have different feature sizes {sorted(dims)}", models[0].path)
    for tm in models:
        wanted = tm.split["IID"] if people == "all" else \
            tm.split.filter(pl.col("set") == "test")["IID"]
        wanted = np.asarray(wanted.to_list(), dtype=str)
        for iid in wanted:
            if iid in owner:
                raise InputError(f"person {iid!r} is held out by both {owner[iid]} and {tm.path}: "
                                 "these are not folds of one cross-fitting", tm.path)
            owner[iid] = tm.path
        pos = np.searchsorted(all_images.iid, wanted)
        pos = np.minimum(pos, max(len(all_images.iid) - 1, 0))
        missing = wanted[all_images.iid[pos] != wanted] if len(wanted) else wanted
        if len(missing):
            raise InputError(f"{len(missing)} people of the model's split have no image in the "
                             f"cache (first: {missing[0]!r})", f"{cache_prefix}.index.tsv")
        subset = all_images.subset(pos)
        one_eye = 0
        if both_eyes_only:
            both = has_both_eyes(subset)
            one_eye = int((~both).sum())
            subset = subset.subset(np.flatnonzero(both))
        rows, fallback = choose_images(subset, eye)
        feats = backbone_features(tm.model, cache, rows, tm.image_size, device, batch_size)
        report.append(f"{tm.path}: embedded {len(subset)} {'held-out ' if people == 'test' else ''}"
                      f"people ({tm.method}, eye {eye}"
                      + (f"; dropped {one_eye} without images of both eyes" if both_eyes_only else "")
                      + (f"; {fallback} lacked the {eye} eye and used their other image" if
                         eye != "mean" else "") + ")")
        frames.append(embedding_table(subset.iid, feats))
    table = pl.concat(frames).sort("IID") if frames else embedding_table(np.zeros(0, str),
                                                                         np.zeros((0, 0)))
    if both_eyes_only and table.height == 0:
        raise InputError("no person to embed has images of both eyes (the index's eye column must "
                         "say left and right)", f"{cache_prefix}.index.tsv", column="eye")
    not_embedded = len(set(all_images.iid) - set(owner))
    report.append(f"{table.height} people embedded in total; {not_embedded} people of the image "
                  "cache were not embedded (training/validation people of every model, or not in "
                  "any model's cohort)"
                  + (f"; {len(owner) - table.height} more lacked an image of one eye"
                     if both_eyes_only else ""))
    return table, report


def embedding_table(iid: np.ndarray, features: np.ndarray) -> pl.DataFrame:
    """``IID`` then ``dim_0000 ...`` float32 columns from ``(P, D)`` features."""
    columns = {"IID": pl.Series(np.asarray(iid).astype(str), dtype=pl.String)}
    for j in range(features.shape[1]):
        columns[f"dim_{j:04d}"] = pl.Series(features[:, j].astype(np.float32), dtype=pl.Float32)
    return pl.DataFrame(columns)


def write_embeddings(table: pl.DataFrame, path: str | Path) -> None:
    """Write the embeddings parquet atomically."""
    with atomic_path(path) as tmp:
        table.write_parquet(tmp)
