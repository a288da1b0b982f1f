"""Activation memory of the image encoder per image: the bytes autograd keeps for the backward
pass of one training forward (backbone + projection head), counted with saved-tensor hooks, with
and without activation checkpointing. Device-independent (runs on the CPU); sizes
``pretrain.grad_cache_chunk`` (config/README.md). bf16 is CPU autocast (CUDA autocast keeps a
similar set of tensors in bf16); a GPU's peak adds allocator slack and convolution workspace.

Usage: .venv/bin/python bench/activation_memory.py [--arch resnet50] [--size 448] [--images 2]
Writes bench/out/activation_memory.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import torch


def saved_bytes(model: torch.nn.Module, x: torch.Tensor, bf16: bool) -> int:
    """Bytes of the distinct tensors saved for backward by one forward of ``model`` on ``x``."""
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return t

    amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), amp:
        out = model.embed_images(x)
    del out
    return sum(seen.values())


def largest_stage_bytes(model: torch.nn.Module, x: torch.Tensor, bf16: bool) -> int:
    """Bytes saved by the most expensive backbone stage alone: with checkpointing, the backward
    pass holds one stage's recomputed activations on top of the stage inputs."""
    from contig.pretrain.models import resnet_stages

    sizes = []
    with torch.no_grad():
        inputs = [x]
        for stage in resnet_stages(model.backbone):
            inputs.append(stage(inputs[-1]))
    for stage, stage_input in zip(resnet_stages(model.backbone), inputs):
        holder = torch.nn.Module()
        holder.embed_images = stage  # saved_bytes calls model.embed_images
        sizes.append(saved_bytes(holder, stage_input, bf16))
    return max(sizes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--images", type=int, default=2, help="images per forward (>= 2)")
    args = parser.parse_args()
    from contig.pretrain.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=args.arch)).train()
    x = torch.randn(args.images, 3, args.size, args.size)
    results = {}
    for bf16 in (False, True):
        for checkpointing in (False, True):
            model.activation_checkpointing = checkpointing
            per_image = saved_bytes(model, x, bf16) / args.images / 2**30
            key = f"{'bf16' if bf16 else 'fp32'}, checkpointing {'on' if checkpointing else 'off'}"
            results[key] = per_image
            print(f"{args.arch} {args.size} px, {key}: {per_image:.3f} GiB saved per image")
        model.activation_checkpointing = False
        stage = largest_stage_bytes(model, x, bf16) / args.images / 2**30
        results[f"{'bf16' if bf16 else 'fp32'}, largest stage recomputed"] = stage
        print(f"{args.arch} {args.size} px, {'bf16' if bf16 else 'fp32'}: largest stage "
              f"{stage:.3f} GiB per image (held during its recompute)")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "activation_memory.json").write_text(json.dumps(
        {"args": vars(args), "gib_per_image": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
