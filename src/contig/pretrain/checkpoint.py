"""The checkpoint and model file format of ``contig train``, read by embed and explain.

``checkpoint.pt`` (format :data:`CHECKPOINT_FORMAT`) holds everything needed to resume a run:
the last weights (``model``), ``optimizer``, position (``epoch``, ``next_batch``, ``partial``),
``metrics`` and ``best`` (``epoch``, ``score``, and ``model``: that epoch's weights, or None when
they are the last weights). ``model.pt`` (format :data:`MODEL_FORMAT`) holds the weights of the
selected epoch (``selected_epoch``, chosen by ``select_epoch``: ``best`` or ``last``; absent in
files written before selection existed, where the weights are the last epoch's), the model
configuration, the training ``config``, the split (``IID``, ``set``, ``fold``; fold -1 = none),
the image size, ``epochs`` and ``metrics``. Both are plain dicts of tensors and Python scalars,
written atomically and read with ``weights_only=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch

from contig.core.atomic import atomic_path
from contig.core.errors import InputError
from contig.pretrain.models import ContIGModel, build_model, load_weights_only

CHECKPOINT_FORMAT = "contig-checkpoint-1"
MODEL_FORMAT = "contig-model-1"


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


