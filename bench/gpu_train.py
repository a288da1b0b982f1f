"""GPU training throughput: ResNet-50 at 224 px, bf16 autocast, channels_last, through
``contig train`` (memory-mapped uint8 cache → loader workers → batched GPU augmentation), and the
loader's share of step time; compared with a bare loop on tensors already on the GPU.

Goal (issue 5): ≥ 2,000 images/s on one H200 with the loader's share near 0.
Usage: .venv/bin/python bench/gpu_train.py [--people 8192] [--batch 256] [--workers 8]
       [--grad-cache-chunk 32] [--activation-checkpointing]  (e.g. --size 448 --batch 256: the
       ukb_like.yaml batch; both runs then use the gradient cache and report their peak memory)
Exits with status 1 and a message when no CUDA device is present. Writes bench/out/gpu_train.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=8192, help="one 224 px image each")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--epochs", type=int, default=2, help="the last epoch is reported")
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--tmp", default=None, help="folder for the synthetic cache (local disk)")
    parser.add_argument("--grad-cache-chunk", type=int, default=0,
                        help="people per image sub-batch (gradient cache); 0 = one pass")
    parser.add_argument("--activation-checkpointing", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench/gpu_train.py: no CUDA device here; run it on a GPU machine "
              "(nothing measured)", file=sys.stderr)
        return 1
    from contig.pretrain.augment import BatchAugment
    from contig.pretrain.losses import multimodal_loss
    from contig.scores.modality import Modality, save_modality
    from contig.pretrain.models import ModelConfig, build_model
    from contig.pretrain.config import TrainConfig
    from contig.pretrain.loop import build_optimizer, grad_cached_backward
    from contig.pretrain.train import train

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = torch.device("cuda")
    results: dict[str, dict] = {}

    # Bare loop: same model, loss, optimizer and GPU augmentation, inputs resident on the GPU.
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=args.arch, genetic_features={"snps": 2000}))
    model = model.to(device).to(memory_format=torch.channels_last)
    model.activation_checkpointing = args.activation_checkpointing
    opt = build_optimizer(model, 1e-3, 1e-4)
    images = torch.randint(0, 256, (args.batch, args.size, args.size, 3), dtype=torch.uint8,
                           device=device)
    genetics = {"snps": torch.randn(args.batch, 2000, device=device)}
    present = {"snps": torch.ones(args.batch, dtype=torch.bool, device=device)}
    person = torch.arange(args.batch, device=device)
    augment = BatchAugment("contig", args.size)
    batch = {"images": images, "image_person": person, "people": person,
             "genetic/snps": genetics["snps"], "present/snps": present["snps"]}
    n_steps = 30
    torch.cuda.reset_peak_memory_stats()
    for step in range(n_steps + 5):
        if step == 5:
            torch.cuda.synchronize()
            start = time.perf_counter()
        if args.grad_cache_chunk:
            grad_cached_backward(model, batch, "contig", augment, args.size, step, 0.75, device,
                                 args.grad_cache_chunk, channels_last=True)
        else:
            x = augment(images, torch.Generator().manual_seed(step))
            with torch.autocast("cuda", dtype=torch.bfloat16):
                img, gen, tau = model(x.contiguous(memory_format=torch.channels_last), genetics,
                                      present)
            loss = multimodal_loss(img.float(), {k: v.float() for k, v in gen.items()}, person,
                                   present, tau, 0.75)
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    results["bare loop (GPU-resident inputs)"] = {
        "images_per_s": n_steps * args.batch / (time.perf_counter() - start),
        "data_wait_fraction": 0.0, "peak_gib": torch.cuda.max_memory_allocated() / 2**30}
    del model, opt

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        root = Path(tmp)
        rng = np.random.default_rng(0)
        cache = np.lib.format.open_memmap(root / "cache.npy", mode="w+", dtype=np.uint8,
                                          shape=(args.people, args.size, args.size, 3))
        for start_row in range(0, args.people, 1024):
            stop = min(args.people, start_row + 1024)
            cache[start_row:stop] = rng.integers(0, 256, (stop - start_row, args.size,
                                                          args.size, 3), dtype=np.uint8)
        cache.flush()
        del cache
        iid = np.array([f"P{i:06d}" for i in range(args.people)])
        pl.DataFrame({"row": np.arange(args.people), "IID": iid, "eye": ["left"] * args.people,
                      "path": [f"{i}.png" for i in iid]}).write_csv(root / "cache.index.tsv",
                                                                    separator="\t")
        save_modality(root / "snps.npz", Modality(
            iid, np.arange(2000).astype(str), rng.normal(size=(args.people, 2000)).astype(np.float32)))
        cfg = TrainConfig(images=str(root / "cache"), out=str(root / "run"),
                          modalities={"snps": str(root / "snps.npz")}, arch=args.arch,
                          epochs=args.epochs, batch_size=args.batch, split=(0.95, 0.05, 0.0),
                          workers=args.workers, device="cuda", progress=False,
                          grad_cache_chunk=args.grad_cache_chunk,
                          activation_checkpointing=args.activation_checkpointing)
        torch.cuda.reset_peak_memory_stats()
        train(cfg)
        metrics = pl.read_csv(root / "run" / "metrics.tsv", separator="\t")
        row = metrics.row(-1, named=True)
        results[f"contig train ({args.workers} workers)"] = {
            "images_per_s": row["images_per_s"], "data_wait_fraction": row["data_wait_fraction"],
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30}

    name = torch.cuda.get_device_name()
    print(f"{name}: {args.arch}, {args.size} px, batch {args.batch}, bf16 autocast, channels_last"
          f", grad cache chunk {args.grad_cache_chunk or 'off'}, activation checkpointing "
          f"{'on' if args.activation_checkpointing else 'off'}")
    bare = results["bare loop (GPU-resident inputs)"]["images_per_s"]
    print(f"{'run':<36} {'images/s':>9} {'waiting on data':>16} {'vs bare loop':>13} "
          f"{'peak GiB':>9}")
    for key, r in results.items():
        print(f"{key:<36} {r['images_per_s']:>9.0f} {100 * r['data_wait_fraction']:>15.1f}% "
              f"{r['images_per_s'] / bare:>13.2f} {r['peak_gib']:>9.1f}")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "gpu_train.json").write_text(json.dumps(
        {"device": name, "args": vars(args), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
