"""Training loop: schedule, retrieval metric, DDP equivalence, determinism, resume after kill -9
and SIGTERM, learning on a toy cohort whose genetics determine the image colours."""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from contig.modality import Modality, save_modality
from contig.train import (
    EXIT_PREEMPTED,
    METRIC_COLUMNS,
    TrainConfig,
    load_checkpoint,
    lr_at,
    retrieval_accuracy,
    train,
)

CONTIG = [sys.executable, "-m", "contig"]


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


def cli_args(cfg: TrainConfig) -> list[str]:
    args = ["train", "--images", cfg.images, "--out", cfg.out, "--method", cfg.method,
            "--arch", cfg.arch, "--epochs", str(cfg.epochs), "--batch-size", str(cfg.batch_size),
            "--proj-hidden", str(cfg.proj_hidden), "--proj-dim", str(cfg.proj_dim),
            "--genetic-hidden", str(cfg.genetic_hidden), "--lr", str(cfg.lr),
            "--warmup-epochs", str(cfg.warmup_epochs), "--split", *map(str, cfg.split),
            "--workers", str(cfg.workers), "--seed", str(cfg.seed), "--progress", "off",
            "--threads", str(cfg.threads)]
    for name, path in cfg.modalities.items():
        args += ["--modality", f"{name}={path}"]
    return args


def state(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    sa, sb = state(a), state(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_cohort(tmp_path_factory.mktemp("toy"))


# --- pieces -----------------------------------------------------------------------------------

def test_lr_warmup_then_cosine_to_zero():
    lrs = [lr_at(s, 1.0, 4, 20) for s in range(20)]
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0)
    assert lrs[12] == pytest.approx(0.5 * (1 + math.cos(math.pi * 8 / 16)))
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))  # decays every step
    assert lrs[-1] < 0.01


def test_retrieval_accuracy_matches_loop():
    g = torch.Generator().manual_seed(0)
    img, gen = torch.randn(11, 4, generator=g), torch.randn(6, 4, generator=g)
    person = torch.tensor([0, 0, 1, 2, 2, 3, 4, 4, 5, 5, 1])
    present = torch.tensor([True, True, False, True, True, True])
    top1, top5, chance = retrieval_accuracy(img, gen, person, present)
    hits1 = hits5 = n = 0
    for i in range(11):
        p = int(person[i])
        if not present[p]:
            continue
        sims = {q: float(torch.cosine_similarity(img[i], gen[q], dim=0)) for q in range(6)
                if present[q]}
        better = sum(1 for q, s in sims.items() if q != p and s >= sims[p])
        hits1 += better < 1
        hits5 += better < 5
        n += 1
    assert (top1, top5, chance) == pytest.approx((hits1 / n, hits5 / n, 1 / 5))


# --- DDP ----------------------------------------------------------------------------------------

DDP_SCRIPT = Path(__file__).with_name("test_train.py")  # the script below is written to tmp


def _ddp_script() -> str:
    return textwrap.dedent('''
        """One loss+backward on this rank's share of a fixed global batch (run under torchrun)."""
        import sys
        import numpy as np
        import torch
        import torch.distributed as dist
        from contig.data import BatchAugment, Cohort, GeneticRows, PersonBatchDataset, PersonImages
        from contig.models import ModelConfig, build_model
        from contig.train import batch_loss, init_distributed

        def cohort():
            rng = np.random.default_rng(0)
            counts = np.array([2, 1, 2, 1, 1, 2, 2])   # both eyes for some people
            offsets = np.concatenate([[0], np.cumsum(counts)])
            people = PersonImages(np.array([f"P{i}" for i in range(7)]),
                                  rng.permutation(counts.sum()),
                                  np.array(["left"] * counts.sum()), offsets)
            X = rng.normal(size=(7, 6)).astype(np.float32)
            present = np.array([1, 1, 0, 1, 1, 1, 0], bool)   # two people lack the modality
            X[~present] = 0
            cache = rng.integers(0, 256, size=(counts.sum(), 16, 16, 3), dtype=np.uint8)
            return Cohort(people, {"snps": GeneticRows(X, present, np.arange(6).astype(str))}), cache

        def main(out, prefix, method):
            d = init_distributed("cpu")
            c, cache = cohort()
            if out == "--write-cache":
                np.save(prefix + ".npy", cache)
                return
            torch.manual_seed(0)
            model = build_model(ModelConfig(
                arch="resnet18", proj_hidden=16, proj_dim=8, genetic_hidden=16,
                genetic_features={} if method == "simclr" else {"snps": 6}, genetic_norm="layer"))
            model.eval()   # the ResNet's BatchNorm would use per-rank batch statistics in train mode
            if d.enabled:
                model = torch.nn.parallel.DistributedDataParallel(model)
            batch = PersonBatchDataset(c, prefix, [np.arange(len(c))], rank=d.rank,
                                       world_size=d.world, with_genetics=method != "simclr")[0]
            loss, _ = batch_loss(model, batch, method, BatchAugment(method, 16), 16, 123, 0.75, d,
                                 torch.device("cpu"))
            loss.backward()
            if d.rank == 0:
                grads = {k.removeprefix("module."): p.grad.clone()
                         for k, p in model.named_parameters() if p.grad is not None}
                torch.save({"loss": loss.detach(), "grads": grads, "n_images": len(batch["images"])},
                           out)
            if d.enabled:
                dist.barrier()
                dist.destroy_process_group()

        if __name__ == "__main__":
            main(*sys.argv[1:])
    ''')


@pytest.mark.slow
@pytest.mark.parametrize("method", ["contig", "simclr"])
def test_ddp_two_processes_equal_one_process(tmp_path, method):
    """2 gloo ranks each load half of the global batch; the all-gathered loss and the DDP-averaged
    gradients equal one process on the whole batch (augmentations included)."""
    script = tmp_path / "ddp_step.py"
    script.write_text(_ddp_script())
    prefix = str(tmp_path / "cache")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), "--write-cache", prefix, method], check=True,
                   env=env)
    subprocess.run([sys.executable, str(script), str(tmp_path / "one.pt"), prefix, method],
                   check=True, env=env)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc-per-node", "2", str(script), str(tmp_path / "two.pt"), prefix, method],
                   check=True, env=env, capture_output=True, timeout=240)
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert two["n_images"] < one["n_images"]  # rank 0 really saw only its share
    assert float(two["loss"]) == pytest.approx(float(one["loss"]), rel=1e-5)
    assert one["grads"].keys() == two["grads"].keys() and len(one["grads"]) > 10
    for key, g in one["grads"].items():
        torch.testing.assert_close(two["grads"][key], g, rtol=1e-4, atol=1e-6 * float(g.abs().max()) + 1e-9)


# --- runs ----------------------------------------------------------------------------------------

def test_same_seed_same_weights_and_metrics(toy, tmp_path):
    cache, mods, _ = toy
    a = train(tiny_config(cache, mods, tmp_path / "a", epochs=1))
    b = train(tiny_config(cache, mods, tmp_path / "b", epochs=1, workers=2))  # workers don't matter
    assert_same_weights(a, b)
    ma, mb = (pl.read_csv(p.parent / "metrics.tsv", separator="\t") for p in (a, b))
    assert ma.columns == METRIC_COLUMNS
    for column in ("train_loss", "val_loss", "val_top1", "val_top5", "lr"):
        assert ma[column].to_list() == mb[column].to_list()
    assert (tmp_path / "a" / "curves.png").stat().st_size > 1000
    split = pl.read_csv(tmp_path / "a" / "split.tsv", separator="\t")
    assert dict(split["set"].value_counts().iter_rows()) == {"train": 24, "val": 8, "test": 8}
    c = train(tiny_config(cache, mods, tmp_path / "c", epochs=1, seed=4))
    assert not torch.equal(state(a)["image_head.0.weight"], state(c)["image_head.0.weight"])


def test_random_method_saves_untrained_encoder(toy, tmp_path):
    cache, mods, _ = toy
    path = train(tiny_config(cache, mods, tmp_path / "r", method="random"))
    saved = load_checkpoint(path)
    assert saved["epochs"] == 0 and not (tmp_path / "r" / "checkpoint.pt").exists()
    from contig.models import build_model

    torch.manual_seed(3)
    fresh = build_model(saved["model_config"]).state_dict()
    assert all(torch.equal(fresh[k], v) for k, v in saved["model"].items())
    metrics = pl.read_csv(tmp_path / "r" / "metrics.tsv", separator="\t")
    assert metrics["epoch"].to_list() == [0] and metrics["val_top1"][0] >= 0


def test_simclr_and_outer_join_train(tmp_path):
    cache, mods, _ = write_toy_cohort(tmp_path / "data", n_people=30, prs_missing=0.3)
    s = train(tiny_config(cache, mods, tmp_path / "s", method="simclr", epochs=1))
    saved = load_checkpoint(s)
    assert not any(k.startswith("genetic.") for k in saved["model"])
    assert np.isfinite(saved["metrics"][0]["train_loss"])
    inner = train(tiny_config(cache, mods, tmp_path / "i", epochs=1, join="inner"))
    outer = train(tiny_config(cache, mods, tmp_path / "o", epochs=1, join="outer"))
    n_inner = pl.read_csv(inner.parent / "split.tsv", separator="\t").height
    n_outer = pl.read_csv(outer.parent / "split.tsv", separator="\t").height
    assert n_outer == 30 and n_inner < 30


def _weights(model_pt) -> dict:
    return load_checkpoint(model_pt)["model"]


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_out_of_date_checkpoint_is_set_aside(toy, tmp_path, caplog):
    """Changed settings or input files: the workflow reruns training, which must start afresh
    (and end exactly as a fresh run), not resume or fail."""
    cache, mods, _ = toy
    caplog.set_level(logging.WARNING, logger="contig.train")
    train(tiny_config(cache, mods, tmp_path / "x", epochs=1))
    changed = _weights(train(tiny_config(cache, mods, tmp_path / "x", epochs=1, lr=5e-4)))
    assert "other settings" in caplog.text and "lr" in caplog.text
    fresh = _weights(train(tiny_config(cache, mods, tmp_path / "fresh", epochs=1, lr=5e-4)))
    assert _same_weights(changed, fresh)
    caplog.clear()
    modality = Path(next(iter(mods.values())))
    os.utime(modality, ns=(modality.stat().st_atime_ns, modality.stat().st_mtime_ns + 10**9))
    again = _weights(train(tiny_config(cache, mods, tmp_path / "x", epochs=1, lr=5e-4)))
    assert "input files" in caplog.text
    assert _same_weights(again, fresh)


def test_finished_run_rewrites_removed_outputs(toy, tmp_path, caplog):
    """Snakemake removes a job's outputs before rerunning it; a finished checkpoint restores them."""
    cache, mods, _ = toy
    model = train(tiny_config(cache, mods, tmp_path / "x", epochs=1))
    metrics = (tmp_path / "x" / "metrics.tsv").read_text()
    weights = _weights(model)
    for name in ("metrics.tsv", "curves.png", "model.pt"):
        (tmp_path / "x" / name).unlink()
    caplog.set_level(logging.INFO, logger="contig.train")
    train(tiny_config(cache, mods, tmp_path / "x", epochs=1))
    assert "resumed from epoch 1" in caplog.text
    assert (tmp_path / "x" / "metrics.tsv").read_text() == metrics
    assert (tmp_path / "x" / "curves.png").exists()
    assert _same_weights(_weights(model), weights)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, "training ended before the test could interrupt it"
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_kill9_and_sigterm_resume_to_the_same_weights(toy, tmp_path):
    """Uninterrupted run vs (a) kill -9 after the first epoch's checkpoint + rerun, and (b) SIGTERM
    mid-epoch (checkpoint, exit 75) + rerun: all end with bit-identical weights."""
    cache, mods, _ = toy
    ref = train(tiny_config(cache, mods, tmp_path / "ref", epochs=3))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tiny_config(cache, mods, tmp_path / "killed", epochs=3)
    proc = subprocess.Popen(CONTIG + cli_args(killed), env=env, stderr=subprocess.PIPE, text=True)
    ckpt = Path(killed.out) / "checkpoint.pt"
    _wait_for(ckpt.exists, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (Path(killed.out) / "model.pt").exists()
    rerun = subprocess.run(CONTIG + cli_args(killed), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed from epoch" in rerun.stderr
    assert_same_weights(ref, Path(killed.out) / "model.pt")

    termed = tiny_config(cache, mods, tmp_path / "termed", epochs=3)
    proc = subprocess.Popen(CONTIG + cli_args(termed), env=env, stderr=subprocess.PIPE, text=True)
    _wait_for((Path(termed.out) / "split.tsv").exists, proc)
    time.sleep(0.5)  # inside the first epoch's steps (or the model build); SIGTERM is deferred
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == EXIT_PREEMPTED, err
    saved = load_checkpoint(Path(termed.out) / "checkpoint.pt")
    assert (saved["epoch"], saved["next_batch"]) != (3, 0)
    rerun = subprocess.run(CONTIG + cli_args(termed), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed from epoch" in rerun.stderr
    assert_same_weights(ref, Path(termed.out) / "model.pt")
    ref_metrics = pl.read_csv(ref.parent / "metrics.tsv", separator="\t")
    got = pl.read_csv(Path(termed.out) / "metrics.tsv", separator="\t")
    assert got["train_loss"].to_list() == pytest.approx(ref_metrics["train_loss"].to_list(), rel=1e-6)
    assert got["val_top1"].to_list() == ref_metrics["val_top1"].to_list()


@pytest.mark.slow
def test_contig_learns_retrieval_well_above_chance(tmp_path):
    cache, mods, _ = write_toy_cohort(tmp_path / "data", n_people=100, seed=5)
    cfg = tiny_config(cache, {"snps": mods["snps"]}, tmp_path / "run", epochs=6, batch_size=16,
                      split=(0.6, 0.4, 0.0), lr=2e-3)
    train(cfg)
    metrics = pl.read_csv(tmp_path / "run" / "metrics.tsv", separator="\t")
    print(metrics.select("epoch", "train_loss", "val_loss", "val_top1", "val_top5", "chance_top1"))
    last = metrics.row(-1, named=True)
    assert last["chance_top1"] == pytest.approx(1 / 40)
    assert last["val_top1"] >= 5 * last["chance_top1"]
    assert last["val_top5"] >= 0.4
    assert last["val_loss"] < metrics["val_loss"][0]
