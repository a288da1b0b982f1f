"""Settings of one ``contig train`` run: :class:`TrainConfig`, its bounds, and the seed of a
fold model."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from contig.pretrain.losses import TAU_MAX, TAU_MIN
from contig.pretrain.models import BACKBONE_DIMS, IMAGE_HEADS

METHODS = ("contig", "simclr", "random")
SELECT_EPOCHS = ("best", "last")
"""Which epoch's weights model.pt keeps: the best validation score, or the last epoch."""


@dataclass
class TrainConfig:
    """Settings of one pretraining run (``contig train`` flags; bounds in :meth:`validate`)."""

    images: str
    out: str
    modalities: dict[str, str] = field(default_factory=dict)
    method: str = "contig"
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    n_folds: int | None = None
    fold: int | None = None
    val_fraction: float = 0.1
    join: str = "outer"
    arch: str = "resnet50"
    weights: str | None = None
    image_size: int | None = None
    epochs: int = 100
    batch_size: int = 64
    accumulate: int = 1
    # Memory, not method: people per image-tower sub-batch (0 = the whole batch in one pass),
    # and recomputing the backbone's stage activations in the backward pass.
    grad_cache_chunk: int = 0
    activation_checkpointing: bool = False
    lr: float = 1e-3
    weight_decay: float = 1e-4
    genetic_weight_decay: float | None = None  # None: weight_decay
    warmup_epochs: float = 1.0
    temperature: float = 0.1
    learnable_temperature: bool = False
    alpha: float = 0.75
    hidden_layers: int = 1
    genetic_hidden: int = 2048
    genetic_norm: str = "batch"
    # Off as in the reference ContIG; regularization against overfitting genetic encoders.
    input_dropout: float = 0.0
    genetic_dropout: float = 0.0
    proj_hidden: int | None = None
    proj_dim: int = 128
    image_heads: str = "shared"
    rotation: float = 20.0
    min_crop_scale: float | None = None
    select_epoch: str = "best"
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
        values["split"] = tuple(values.get("split", cls.split))
        return cls(**values)

    @property
    def run_seed(self) -> int:
        """Seed of everything this model draws: ``seed`` itself without folds, else a number
        derived from (seed, fold), distinct for every fold."""
        if self.fold is None:
            return self.seed
        return int(np.random.default_rng([self.seed, self.fold, 5021]).integers(2**31 - 1))

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of its range."""
        for ok, message in self._checks():
            if not ok:
                raise ValueError(message)

    def _checks(self) -> list[tuple[bool, str]]:
        def optional_at_least(value: float | None, low: float) -> bool:
            return value is None or value >= low

        split_ok = len(self.split) == 3 and all(f >= 0 for f in self.split) and \
            math.isclose(sum(self.split), 1, abs_tol=1e-6)
        return [
            (self.method in METHODS, f"method must be one of {METHODS}, got {self.method!r}"),
            (self.join in ("inner", "outer"), f"join must be inner or outer, got {self.join!r}"),
            (self.method == "simclr" or bool(self.modalities),
             f"method {self.method} needs at least one --modality"),
            (self.arch in BACKBONE_DIMS, f"arch must be one of {sorted(BACKBONE_DIMS)}"),
            (self.epochs >= 1 and self.batch_size >= 2 and self.accumulate >= 1,
             "epochs >= 1, batch size >= 2 and accumulate >= 1 required"),
            (self.grad_cache_chunk >= 0, "grad cache chunk must be >= 0 (0 = one pass)"),
            (split_ok, f"split must be three non-negative fractions summing to 1, got {self.split}"),
            ((self.n_folds is None) == (self.fold is None), "--n-folds and --fold go together"),
            (self.n_folds is None or self.fold is None or
             (self.n_folds >= 2 and 0 <= self.fold < self.n_folds),
             f"fold must be in 0..{(self.n_folds or 2) - 1} with at least 2 folds"),
            (0 <= self.val_fraction < 1, "val fraction must be in [0, 1)"),
            (self.lr > 0, "learning rate must be positive"),
            (self.weight_decay >= 0 and optional_at_least(self.genetic_weight_decay, 0),
             "weight decays must be >= 0"),
            (self.warmup_epochs >= 0, "warmup epochs must be >= 0"),
            (TAU_MIN <= self.temperature <= TAU_MAX,
             f"temperature must be in [{TAU_MIN:g}, {TAU_MAX:g}], got {self.temperature:g}"),
            (0 <= self.alpha <= 1, "alpha must be in [0, 1]"),
            (self.hidden_layers in (0, 1, 2), "hidden layers must be 0, 1 or 2"),
            (self.genetic_norm in ("batch", "layer"), "genetic norm must be batch or layer"),
            (0 <= self.input_dropout < 1 and 0 <= self.genetic_dropout < 1,
             "dropout rates must be in [0, 1)"),
            (self.genetic_hidden >= 1 and self.proj_dim >= 1 and
             optional_at_least(self.proj_hidden, 1) and optional_at_least(self.image_size, 1),
             "layer widths and the image size must be >= 1"),
            (self.image_heads in IMAGE_HEADS, f"image heads must be one of {IMAGE_HEADS}"),
            (0 <= self.rotation <= 180, "rotation must be in [0, 180] degrees"),
            (self.min_crop_scale is None or 0 < self.min_crop_scale <= 1,
             "min crop scale must be in (0, 1]"),
            (self.select_epoch in SELECT_EPOCHS, f"select epoch must be one of {SELECT_EPOCHS}"),
            (self.seed >= 0 and self.workers >= 0 and optional_at_least(self.threads, 1),
             "seed and workers must be >= 0, threads >= 1"),
            (self.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda"),
        ]
