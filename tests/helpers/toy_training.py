"""A toy image cache and genetic modalities whose shared latent makes images learnable, and a tiny
training configuration for fast CPU runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from contig.pretrain.config import TrainConfig
from contig.scores.modality import Modality, save_modality


def write_toy_cohort(out: Path, n_people: int = 40, size: int = 16, seed: int = 0,
                     two_eye_fraction: float = 0.7, prs_missing: float = 0.0
                     ) -> tuple[Path, dict[str, str], np.ndarray]:
    """A tiny image cache + two modalities driven by a per-person latent ``z`` (n_people, 3).

    Image colour = tanh(z) (plus noise and an eye-specific bright disc), so genetics determine
    something visible. ``snps`` = z·W + noise (16 features), ``prs`` = z + noise (3 features),
    missing for a ``prs_missing`` share of people. Returns (cache prefix, modality paths, z).
    """
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_people, 3))
    iid = np.array([f"P{i:04d}" for i in range(n_people)])
    yy, xx = np.mgrid[0:size, 0:size] / size
    images, rows = [], []
    for p in range(n_people):
        eyes = ["left", "right"] if rng.random() < two_eye_fraction else \
            [str(rng.choice(["left", "right"]))]
        for eye in eyes:
            img = np.broadcast_to(128 + 100 * np.tanh(z[p] / 1.5), (size, size, 3)).copy()
            img[(xx - (0.3 if eye == "left" else 0.7)) ** 2 + (yy - 0.5) ** 2 < 0.02] = 255
            img += rng.normal(0, 8, img.shape)
            rows.append((len(images), iid[p], eye, f"img/{iid[p]}_{eye}.png"))
            images.append(np.clip(img, 0, 255).astype(np.uint8))
    np.save(out / "cache.npy", np.stack(images))
    pl.DataFrame(rows, schema=["row", "IID", "eye", "path"], orient="row").write_csv(
        out / "cache.index.tsv", separator="\t")
    X = z @ rng.normal(size=(3, 16)) + 0.3 * rng.normal(size=(n_people, 16))
    save_modality(out / "snps.npz", Modality(iid, np.array([f"s{j}" for j in range(16)]),
                                             X.astype(np.float32)))
    keep = rng.random(n_people) >= prs_missing
    Xp = z[keep] + 0.3 * rng.normal(size=(int(keep.sum()), 3))
    save_modality(out / "prs.npz", Modality(iid[keep], np.array(["a", "b", "c"]),
                                            Xp.astype(np.float32)))
    return out / "cache", {"snps": str(out / "snps.npz"), "prs": str(out / "prs.npz")}, z


def tiny_config(cache: Path, modalities: dict[str, str], out: Path, **overrides) -> TrainConfig:
    values = dict(images=str(cache), out=str(out), modalities=modalities, arch="resnet18",
                  epochs=2, batch_size=8, proj_hidden=32, proj_dim=16, genetic_hidden=32,
                  lr=1e-3, warmup_epochs=0.5, split=(0.6, 0.2, 0.2), workers=0, seed=3,
                  threads=1, progress=False)  # float results depend on the thread count
    values.update(overrides)
    return TrainConfig(**values)
