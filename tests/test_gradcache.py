"""Gradient cache and activation checkpointing against direct computations of the same objective:
one pass with a graph through the whole batch (or, with training-mode BatchNorm, through each
sub-batch), on a tiny ResNet-18 on the CPU."""

from __future__ import annotations

import copy

import pytest
import torch

from helpers.toy_training import tiny_config, write_toy_cohort
from contig.pretrain.augment import BatchAugment
from contig.pretrain.checkpoint import load_checkpoint
from contig.pretrain.distributed import Dist
from contig.pretrain.gradcache import (
    backward_through_sub_batches,
    embed_without_graph,
    sub_batches,
)
from contig.pretrain.loop import batch_loss, grad_cached_backward, model_images, seeded_forward
from contig.pretrain.losses import multimodal_loss, nt_xent_loss
from contig.pretrain.models import ModelConfig, build_model
from contig.pretrain.train import train

SIZE = 16
CPU = torch.device("cpu")


def toy_batch(seed: int = 0, n_people: int = 7) -> dict[str, torch.Tensor]:
    """A batch as the loader gives it: some people with two images, prs missing for some."""
    g = torch.Generator().manual_seed(seed)
    person = torch.tensor([p for p in range(n_people) for _ in range(1 + p % 2)])
    present_prs = torch.rand(n_people, generator=g) > 0.3
    present_prs[0] = True
    return {"images": torch.randint(0, 256, (len(person), SIZE, SIZE, 3), generator=g,
                                    dtype=torch.uint8),
            "image_person": person, "people": torch.arange(n_people),
            "genetic/snps": torch.randn(n_people, 16, generator=g),
            "present/snps": torch.ones(n_people, dtype=torch.bool),
            "genetic/prs": torch.randn(n_people, 3, generator=g) * present_prs[:, None],
            "present/prs": present_prs}


def toy_model(method: str, image_heads: str = "shared", backbone_train: bool = False):
    torch.manual_seed(1)
    features = {} if method == "simclr" else {"snps": 16, "prs": 3}
    model = build_model(ModelConfig(
        arch="resnet18", proj_hidden=32, proj_dim=16, genetic_hidden=32,
        genetic_features=features, genetic_dropout=0.3 if features else 0.0,
        input_dropout=0.2 if features else 0.0, learnable_temperature=True,
        image_heads=image_heads if features else "shared"))
    model.train()
    if not backbone_train:  # BatchNorm from running statistics: every image independent
        model.backbone.eval()
    return model


def one_pass_gradients(model, batch, method, seed=5):
    loss, _ = batch_loss(model, batch, method, BatchAugment(method, SIZE), SIZE, seed, 0.75,
                         Dist(), CPU)
    (loss * 0.5).backward()
    return float(loss.detach())


def gradients(model) -> dict[str, torch.Tensor | None]:
    return {k: None if p.grad is None else p.grad.clone() for k, p in model.named_parameters()}


def norm_buffers(model) -> dict[str, torch.Tensor]:
    return {k: b.clone() for k, b in model.named_buffers() if "running" in k or "tracked" in k}


def assert_same_gradients(a, b, rtol=1e-4, atol=1e-6):
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] is None) == (b[key] is None), key
        if a[key] is not None:
            torch.testing.assert_close(a[key], b[key], rtol=rtol, atol=atol, msg=key)


def test_sub_batches_group_images_by_consecutive_people():
    person = torch.tensor([0, 0, 1, 2, 2, 4, 5, 5])
    rows = sub_batches(person, 6, 2)
    assert [r.tolist() for r in rows] == [[0, 1, 2], [3, 4], [5, 6, 7]]
    assert [r.tolist() for r in sub_batches(person, 6, 0)] == [list(range(8))]
    assert [r.tolist() for r in sub_batches(person, 6, 6)] == [list(range(8))]


@pytest.mark.parametrize("method,image_heads", [("contig", "shared"), ("contig", "per_modality"),
                                                ("simclr", "shared")])
@pytest.mark.parametrize("chunk", [1, 3])
def test_grad_cache_equals_one_pass(method, image_heads, chunk):
    """With per-image BatchNorm (eval-mode backbone), the gradient cache gives the gradients of
    one pass over the whole batch, dropout in the genetic encoders included."""
    batch = toy_batch()
    reference = toy_model(method, image_heads)
    cached = copy.deepcopy(reference)
    loss = one_pass_gradients(reference, batch, method)
    cached_loss, n_images = grad_cached_backward(
        cached, batch, method, BatchAugment(method, SIZE), SIZE, 5, 0.75, CPU, chunk, 0.5)
    assert float(cached_loss) == pytest.approx(loss, rel=1e-5)
    assert n_images == len(batch["image_person"]) * (2 if method == "simclr" else 1)
    assert_same_gradients(gradients(reference), gradients(cached))
    assert cached.temperature.log_tau.grad is not None


@pytest.mark.parametrize("method", ["contig", "simclr"])
def test_one_sub_batch_equals_one_pass_with_training_batch_norm(method):
    """chunk 0 (the whole batch): gradients and BatchNorm running statistics as one pass."""
    batch = toy_batch(1)
    reference = toy_model(method, backbone_train=True)
    cached = copy.deepcopy(reference)
    one_pass_gradients(reference, batch, method)
    grad_cached_backward(cached, batch, method, BatchAugment(method, SIZE), SIZE, 5, 0.75, CPU,
                         0, 0.5)
    assert_same_gradients(gradients(reference), gradients(cached))
    for key, value in norm_buffers(reference).items():
        torch.testing.assert_close(norm_buffers(cached)[key], value, msg=key)


def per_sub_batch_pass(model, batch, method, chunk, seed=5):
    """The objective the gradient cache computes with training-mode BatchNorm, written directly:
    each sub-batch through the image tower with a graph, then the loss of the whole batch."""
    x = model_images(batch, method, BatchAugment(method, SIZE), SIZE, seed, CPU)
    person = batch["image_person"]
    rows = sub_batches(person, len(batch["people"]), chunk)
    if method == "simclr":
        rows = [torch.cat([r, r + len(person)]) for r in rows]
    genetics = {n: batch[f"genetic/{n}"] for n in ("snps", "prs")} if method != "simclr" else {}
    present = {n: batch[f"present/{n}"] for n in genetics}
    with seeded_forward(seed, 0, CPU):
        gen = model.embed_genetics(genetics, present)
        order = torch.cat(rows)
        parts = torch.cat([model.embed_images(x[r]) for r in rows])
        z = torch.empty_like(parts).index_copy(0, order, parts)
        tau = model.temperature()
    if method == "simclr":
        loss = nt_xent_loss(*z.chunk(2), tau, person)
    else:
        loss = multimodal_loss(z, gen, person, present, tau, 0.75)
    (loss * 0.5).backward()


@pytest.mark.parametrize("method", ["contig", "simclr"])
def test_grad_cache_with_training_batch_norm_equals_per_sub_batch_pass(method):
    """Training-mode BatchNorm normalizes each sub-batch on its own: gradients equal a direct pass
    sub-batch by sub-batch, and running statistics are updated once per sub-batch (not twice)."""
    batch = toy_batch(2, n_people=6)  # sub-batches of 4 and 5 images: BatchNorm needs >= 2
    reference = toy_model(method, backbone_train=True)
    cached = copy.deepcopy(reference)
    per_sub_batch_pass(reference, batch, method, 3)
    grad_cached_backward(cached, batch, method, BatchAugment(method, SIZE), SIZE, 5, 0.75, CPU,
                         3, 0.5)
    assert_same_gradients(gradients(reference), gradients(cached))
    for key, value in norm_buffers(reference).items():
        torch.testing.assert_close(norm_buffers(cached)[key], value, msg=key)


@pytest.mark.parametrize("method", ["contig", "simclr"])
def test_activation_checkpointing_gives_the_same_gradients_and_statistics(method):
    batch = toy_batch(3)
    reference = toy_model(method, backbone_train=True)
    checkpointed = copy.deepcopy(reference)
    checkpointed.activation_checkpointing = True
    one_pass_gradients(reference, batch, method)
    one_pass_gradients(checkpointed, batch, method)
    assert_same_gradients(gradients(reference), gradients(checkpointed), rtol=1e-5, atol=1e-7)
    for key, value in norm_buffers(reference).items():
        torch.testing.assert_close(norm_buffers(checkpointed)[key], value, msg=key)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_cohort(tmp_path_factory.mktemp("toy"), n_people=24)


@pytest.mark.parametrize("method", ["contig", "simclr"])
def test_training_with_both_settings_is_deterministic(toy, tmp_path, method):
    cache, mods, _ = toy
    runs = []
    for name in ("a", "b"):
        # 64 px: a one-image sub-batch still has 2 x 2 values per channel for BatchNorm
        cfg = tiny_config(cache, mods, tmp_path / name, method=method, epochs=1, image_size=64,
                          grad_cache_chunk=3, activation_checkpointing=True, genetic_dropout=0.2)
        runs.append(load_checkpoint(train(cfg)))
    assert all(torch.isfinite(torch.tensor(m["train_loss"])) for m in runs[0]["metrics"])
    for key, value in runs[0]["model"].items():
        assert torch.equal(value, runs[1]["model"][key]), key


def test_recompute_replays_the_random_state_of_each_sub_batch():
    """A tower with dropout: pass 3 must draw the masks pass 1 drew, sub-batch by sub-batch, so
    the gradients equal one pass that puts the sub-batches through in the same order."""
    torch.manual_seed(0)
    tower = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Dropout(0.5),
                                torch.nn.Linear(8, 4))
    cached = copy.deepcopy(tower)
    x = torch.randn(10, 6)
    rows = [torch.arange(0, 4), torch.arange(4, 7), torch.arange(7, 10)]
    target = torch.randn(10, 4)

    torch.manual_seed(7)
    z = torch.cat([tower(x[r]) for r in rows])
    ((z - target) ** 2).sum().backward()

    torch.manual_seed(7)
    cache = embed_without_graph(cached, cached, x, rows, CPU)
    torch.manual_seed(123)  # whatever the generator holds now, the recompute replays pass 1
    ((cache.leaves - target) ** 2).sum().backward()
    backward_through_sub_batches(cached, x, cache, CPU)
    assert_same_gradients(gradients(tower), gradients(cached), rtol=1e-6, atol=1e-7)


def test_settings_reach_the_config_from_the_command_line(tmp_path):
    import argparse

    from contig.cli.train import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--images", "c", "--out", str(tmp_path), "--modality", "a=b.npz",
                              "--grad-cache-chunk", "16", "--activation-checkpointing"])
    cfg = config_from_args(args)
    assert (cfg.grad_cache_chunk, cfg.activation_checkpointing) == (16, True)
    cfg.grad_cache_chunk = -1
    with pytest.raises(ValueError, match="grad cache chunk"):
        cfg.validate()
