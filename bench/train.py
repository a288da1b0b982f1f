"""Training throughput on this CPU: ``contig train`` (ResNet-18, 64 px, batch 64) vs a bare PyTorch
loop on in-memory tensors (the upper bound: same model, optimizer and loss, no data pipeline).

Prints images/s for ContIG (workers 0 and 2) and SimCLR, the fraction of step time spent waiting
on the loader, and the ratio to the bare loop; writes bench/out/train.json.
Usage: .venv/bin/python bench/train.py [--people 640] [--size 64] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from contig.pretrain.augment import BatchAugment
from contig.pretrain.losses import multimodal_loss
from contig.scores.modality import Modality, save_modality
from contig.pretrain.models import ModelConfig, build_model
from contig.pretrain.config import TrainConfig
from contig.pretrain.loop import build_optimizer
from contig.pretrain.train import train


def make_cohort(root: Path, people: int, size: int, seed: int = 0) -> tuple[str, dict[str, str]]:
    """One image per person (so a batch of 64 people is 64 images) and a 500-feature modality."""
    rng = np.random.default_rng(seed)
    np.save(root / "cache.npy", rng.integers(0, 256, (people, size, size, 3), dtype=np.uint8))
    iid = np.array([f"P{i:05d}" for i in range(people)])
    pl.DataFrame({"row": np.arange(people), "IID": iid, "eye": ["left"] * people,
                  "path": [f"{i}.png" for i in iid]}).write_csv(root / "cache.index.tsv",
                                                                separator="\t")
    save_modality(root / "snps.npz", Modality(iid, np.arange(500).astype(str),
                                              rng.normal(size=(people, 500)).astype(np.float32)))
    return str(root / "cache"), {"snps": str(root / "snps.npz")}


def bare_loop(size: int, batch: int, steps: int) -> float:
    """images/s of forward+backward+AdamW on tensors already in memory (augmentation included)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="resnet18", proj_dim=128, genetic_features={"snps": 500}))
    opt = build_optimizer(model, 1e-3, 1e-4)
    images = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8)
    genetics = {"snps": torch.randn(batch, 500)}
    present = {"snps": torch.ones(batch, dtype=torch.bool)}
    person = torch.arange(batch)
    augment = BatchAugment("contig", size)
    for step in range(steps + 1):
        if step == 1:
            start = time.perf_counter()
        x = augment(images, torch.Generator().manual_seed(step))
        img, gen, tau = model(x, genetics, present)
        loss = multimodal_loss(img, gen, person, present, tau, 0.75)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return steps * batch / (time.perf_counter() - start)


def ours(cache: str, mods: dict[str, str], out: Path, method: str, workers: int, size: int,
         batch: int) -> dict[str, float]:
    cfg = TrainConfig(images=cache, out=str(out), modalities=mods, method=method,
                      arch="resnet18", epochs=1, batch_size=batch, split=(0.9, 0.1, 0.0),
                      workers=workers, image_size=size, progress=False)
    train(cfg)
    row = pl.read_csv(out / "metrics.tsv", separator="\t").row(-1, named=True)
    return {"images_per_s": row["images_per_s"], "data_wait_fraction": row["data_wait_fraction"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=640)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        root = Path(tmp)
        cache, mods = make_cohort(root, args.people, args.size)
        steps = int(args.people * 0.9) // args.batch
        results["bare PyTorch loop (contig loss)"] = {
            "images_per_s": bare_loop(args.size, args.batch, steps), "data_wait_fraction": 0.0}
        for method, workers in (("contig", 0), ("contig", 2), ("simclr", 2)):
            results[f"contig train --method {method} --workers {workers}"] = ours(
                cache, mods, root / f"{method}{workers}", method, workers, args.size, args.batch)
    bare = results["bare PyTorch loop (contig loss)"]["images_per_s"]
    print(f"ResNet-18, {args.size} px, batch {args.batch}, {torch.get_num_threads()} threads, "
          f"{int(args.people * 0.9) // args.batch} steps of one epoch")
    print(f"{'run':<42} {'images/s':>9} {'waiting on data':>16} {'vs bare loop':>13}")
    for name, r in results.items():
        print(f"{name:<42} {r['images_per_s']:>9.1f} {100 * r['data_wait_fraction']:>15.1f}% "
              f"{r['images_per_s'] / bare:>13.2f}")
    print("(SimCLR pushes two views per image through the backbone; images/s counts views.)")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "train.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
