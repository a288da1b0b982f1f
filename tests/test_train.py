"""Training loop: schedule, retrieval metric, DDP equivalence, determinism, resume after kill -9
and SIGTERM, learning on a toy cohort whose genetics determine the image colours."""

from __future__ import annotations

import logging
import math
import os
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

from helpers.toy_training import tiny_config, write_toy_cohort
from contig.cli.train import add_arguments, config_from_args
from contig.pretrain.checkpoint import load_checkpoint
from contig.pretrain.config import TrainConfig
from contig.pretrain.loop import build_optimizer, lr_at
from contig.pretrain.metrics import METRIC_COLUMNS, evaluate, retrieval_accuracy, selection_score
from contig.pretrain.models import ModelConfig, build_model
from contig.pretrain.train import EXIT_PREEMPTED, prepare_data, train

CONTIG = [sys.executable, "-m", "contig"]


def cli_args(cfg: TrainConfig) -> list[str]:
    args = ["train", "--images", cfg.images, "--out", cfg.out, "--method", cfg.method,
            "--arch", cfg.arch, "--epochs", str(cfg.epochs), "--batch-size", str(cfg.batch_size),
            "--proj-hidden", str(cfg.proj_hidden), "--proj-dim", str(cfg.proj_dim),
            "--genetic-hidden", str(cfg.genetic_hidden), "--lr", str(cfg.lr),
            "--warmup-epochs", str(cfg.warmup_epochs), "--split", *map(str, cfg.split),
            "--workers", str(cfg.workers), "--seed", str(cfg.seed), "--progress", "off",
            "--threads", str(cfg.threads), "--input-dropout", str(cfg.input_dropout),
            "--genetic-dropout", str(cfg.genetic_dropout), "--select-epoch", cfg.select_epoch]
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
        from contig.pretrain.augment import BatchAugment
        from contig.pretrain.data import Cohort, GeneticRows, PersonBatchDataset, PersonImages
        from contig.pretrain.distributed import init_distributed
        from contig.pretrain.loop import batch_loss
        from contig.pretrain.models import ModelConfig, build_model

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
            genetics = {"snps": GeneticRows(X, present, np.arange(6).astype(str)),
                        "prs": GeneticRows(X[:, ::-1].copy(), np.ones(7, bool),
                                           np.arange(6).astype(str))}
            return Cohort(people, genetics), cache

        def main(out, prefix, method):
            method, _, heads = method.partition(":")
            d = init_distributed("cpu")
            c, cache = cohort()
            if out == "--write-cache":
                np.save(prefix + ".npy", cache)
                return
            torch.manual_seed(0)
            model = build_model(ModelConfig(
                arch="resnet18", proj_hidden=16, proj_dim=8, genetic_hidden=16,
                genetic_features={} if method == "simclr" else {"snps": 6, "prs": 6},
                genetic_norm="layer", image_heads=heads or "shared"))
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
@pytest.mark.parametrize("method", ["contig", "contig:per_modality", "simclr"])
def test_ddp_two_processes_equal_one_process(tmp_path, method):
    """2 gloo ranks each load half of the global batch; the all-gathered loss and the DDP-averaged
    gradients equal one process on the whole batch (augmentations included; SimCLR's
    same-person mask and per-modality image heads across the gather too)."""
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

DROPOUT = {"input_dropout": 0.2, "genetic_dropout": 0.5}


def test_same_seed_same_weights_and_metrics(toy, tmp_path):
    """Same seed, same weights, whatever the loader workers (dropout draws included)."""
    cache, mods, _ = toy
    a = train(tiny_config(cache, mods, tmp_path / "a", epochs=1, **DROPOUT))
    b = train(tiny_config(cache, mods, tmp_path / "b", epochs=1, workers=2, **DROPOUT))
    assert_same_weights(a, b)
    plain = train(tiny_config(cache, mods, tmp_path / "plain", epochs=1))
    assert not torch.equal(state(a)["genetic.snps.body.1.weight"],
                           state(plain)["genetic.snps.body.0.weight"])  # dropout was on
    ma, mb = (pl.read_csv(p.parent / "metrics.tsv", separator="\t") for p in (a, b))
    assert ma.columns == METRIC_COLUMNS
    for column in ("train_loss", "val_loss", "val_top1", "val_top5", "lr"):
        assert ma[column].to_list() == mb[column].to_list()
    assert (tmp_path / "a" / "curves.png").stat().st_size > 1000
    split = pl.read_csv(tmp_path / "a" / "split.tsv", separator="\t")
    assert dict(split["set"].value_counts().iter_rows()) == {"train": 24, "val": 8, "test": 8}
    c = train(tiny_config(cache, mods, tmp_path / "c", epochs=1, seed=4, **DROPOUT))
    assert not torch.equal(state(a)["image_head.0.weight"], state(c)["image_head.0.weight"])


def test_random_method_saves_untrained_encoder(toy, tmp_path):
    cache, mods, _ = toy
    path = train(tiny_config(cache, mods, tmp_path / "r", method="random"))
    saved = load_checkpoint(path)
    assert saved["epochs"] == 0 and not (tmp_path / "r" / "checkpoint.pt").exists()
    from contig.pretrain.models import build_model

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
    caplog.set_level(logging.WARNING, logger="contig.pretrain.train")
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
    caplog.set_level(logging.INFO, logger="contig.pretrain.train")
    train(tiny_config(cache, mods, tmp_path / "x", epochs=1))
    assert "resumed from epoch 1" in caplog.text
    assert (tmp_path / "x" / "metrics.tsv").read_text() == metrics
    assert (tmp_path / "x" / "curves.png").exists()
    assert _same_weights(_weights(model), weights)


def test_resumed_finished_run_restores_an_earlier_best_epoch(toy, tmp_path):
    """The best epoch's weights travel in checkpoint.pt when they are not the last ones, so a
    finished run whose outputs were removed writes the same model.pt again."""
    cache, mods, _ = toy
    cfg = tiny_config(cache, mods, tmp_path / "x", method="simclr", epochs=4, lr=3e-3)
    first = load_checkpoint(train(cfg))
    assert first["selected_epoch"] < 4  # this toy's SimCLR validation loss is lowest earlier
    assert load_checkpoint(tmp_path / "x" / "checkpoint.pt")["best"]["model"] is not None
    (tmp_path / "x" / "model.pt").unlink()
    again = load_checkpoint(train(cfg))
    assert again["selected_epoch"] == first["selected_epoch"]
    assert _same_weights(again["model"], first["model"])


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, "training ended before the test could interrupt it"
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_kill9_and_sigterm_resume_to_the_same_weights(toy, tmp_path):
    """Uninterrupted run vs (a) kill -9 after the first epoch's checkpoint + rerun, and (b) SIGTERM
    mid-epoch (checkpoint, exit 75) + rerun: all end with bit-identical weights (dropout draws
    and the best epoch's weights included)."""
    cache, mods, _ = toy
    ref = train(tiny_config(cache, mods, tmp_path / "ref", epochs=3, **DROPOUT))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tiny_config(cache, mods, tmp_path / "killed", epochs=3, **DROPOUT)
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

    termed = tiny_config(cache, mods, tmp_path / "termed", epochs=3, **DROPOUT)
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
    assert_same_weights(ref.parent / "checkpoint.pt", Path(termed.out) / "checkpoint.pt")
    assert load_checkpoint(Path(termed.out) / "model.pt")["selected_epoch"] == \
        load_checkpoint(ref)["selected_epoch"]
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


# --- settings ------------------------------------------------------------------------------------

def _parse(*argv: str):
    import argparse

    parser = argparse.ArgumentParser(prog="contig train")
    add_arguments(parser)
    return parser.parse_args(["--images", "cache", "--out", "out", *argv])


def test_cli_defaults_are_train_config_defaults():
    assert config_from_args(_parse()) == TrainConfig(images="cache", out="out")
    assert config_from_args(_parse("--temperature", "0.5", "--input-dropout", "0",
                                   "--image-heads", "per_modality", "--select-epoch", "last")) == \
        TrainConfig(images="cache", out="out", temperature=0.5, input_dropout=0.0,
                    image_heads="per_modality", select_epoch="last")


@pytest.mark.parametrize("argv", [
    ("--temperature", "2"), ("--temperature", "0"), ("--temperature", "0.001"),
    ("--input-dropout", "1"), ("--genetic-dropout", "-0.1"), ("--genetic-weight-decay", "-1"),
    ("--alpha", "1.5"), ("--lr", "0"), ("--epochs", "0"), ("--workers", "-1"),
    ("--rotation", "181"), ("--min-crop-scale", "0"),
])
def test_out_of_range_flags_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse(*argv)
    assert exit_info.value.code == 2
    assert f"argument {argv[0]}" in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    ({"temperature": 2.0}, "temperature must be in"), ({"temperature": 0.0}, "temperature"),
    ({"genetic_dropout": 1.0}, "dropout"), ({"split": (0.5, 0.2, 0.2)}, "summing to 1"),
    ({"image_heads": "both"}, "image heads"), ({"select_epoch": "first"}, "select epoch"),
    ({"batch_size": 1}, "batch size"), ({"n_folds": 2, "fold": 2}, "fold must be in"),
])
def test_train_config_refuses_out_of_range_values(change, message):
    cfg = TrainConfig(images="cache", out="out", modalities={"snps": "x"}, **change)
    with pytest.raises(ValueError, match=message):
        cfg.validate()


def test_genetic_encoders_get_their_own_weight_decay():
    model = build_model(ModelConfig(arch="resnet18", proj_hidden=8, proj_dim=4, genetic_hidden=8,
                                    genetic_features={"snps": 6}))
    genetic = {id(p) for p in model.genetic.parameters()}
    for genetic_decay, expected in ((None, 1e-4), (0.05, 0.05)):
        optimizer = build_optimizer(model, 1e-3, 1e-4, genetic_decay)
        decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
        assert len(decay) == len(list(model.parameters()))
        for name, p in model.named_parameters():
            want = 0.0 if p.ndim < 2 else expected if id(p) in genetic else 1e-4
            assert decay[id(p)] == want, name


def test_fold_seeds_differ_between_folds_and_repeat():
    seeds = [TrainConfig(images="c", out="o", n_folds=10, fold=k).run_seed for k in range(10)]
    assert len(set(seeds)) == 10 and 42 not in seeds
    assert seeds == [TrainConfig(images="c", out="o", n_folds=10, fold=k).run_seed for k in range(10)]
    assert TrainConfig(images="c", out="o", n_folds=5, fold=0, seed=7).run_seed != seeds[0]
    assert TrainConfig(images="c", out="o").run_seed == 42  # no folds: the seed itself


def test_each_fold_model_starts_from_its_own_draw(toy, tmp_path):
    """The random baseline's fold models are different untrained encoders (before, every fold
    shared one), each reproducible; the folds themselves still come from the shared seed."""
    cache, mods, _ = toy
    paths = [train(tiny_config(cache, mods, tmp_path / f"fold{k}", method="random", n_folds=2,
                               fold=k)) for k in (0, 1)]
    again = train(tiny_config(cache, mods, tmp_path / "again0", method="random", n_folds=2, fold=0))
    assert _same_weights(_weights(paths[0]), _weights(again))
    assert not torch.equal(state(paths[0])["backbone.conv1.weight"],
                           state(paths[1])["backbone.conv1.weight"])
    folds = [pl.read_csv(p.parent / "split.tsv", separator="\t").sort("IID") for p in paths]
    assert folds[0]["fold"].to_list() == folds[1]["fold"].to_list()
    assert folds[0]["set"].to_list() != folds[1]["set"].to_list()


# --- which epoch model.pt keeps -------------------------------------------------------------------

def test_selection_score_order():
    row = {"val_top1": 0.2, "val_top5": 0.5, "val_loss": 3.0}
    assert selection_score({**row, "val_top5": 0.6}) > selection_score(row)
    assert selection_score({**row, "val_top1": 0.3}) > selection_score(row)
    assert selection_score({**row, "val_loss": 2.0}) > selection_score(row)
    nan = float("nan")
    simclr = {"val_top1": nan, "val_top5": nan}
    assert selection_score({**simclr, "val_loss": 1.0}) > selection_score({**simclr, "val_loss": 2.0})
    assert selection_score({**simclr, "val_loss": nan}) is None


def _reevaluate(model_pt: Path, cfg: TrainConfig) -> dict[str, float]:
    """Validation metrics of the weights stored in model.pt, recomputed from scratch."""
    saved = load_checkpoint(model_pt)
    model = build_model(saved["model_config"])
    model.load_state_dict(saved["model"])
    data = prepare_data(cfg)
    return evaluate(model, data.val, cfg.images, cfg, saved["image_size"], torch.device("cpu"),
                    cfg.run_seed)


@pytest.mark.parametrize("method", ["contig", "simclr"])
def test_model_keeps_the_best_validation_epoch(toy, tmp_path, method):
    cache, mods, _ = toy
    cfg = tiny_config(cache, mods, tmp_path / "best", epochs=4, lr=3e-3, method=method)
    saved = load_checkpoint(train(cfg))
    metrics = pl.read_csv(tmp_path / "best" / "metrics.tsv", separator="\t")
    rows = saved["metrics"]
    best = max(rows, key=lambda r: (selection_score(r), -r["epoch"]))["epoch"]
    assert saved["selected_epoch"] == best and saved["select_epoch"] == "best"
    assert metrics["selected"].to_list() == [int(r["epoch"] == best) for r in rows]
    again = _reevaluate(tmp_path / "best" / "model.pt", cfg)
    row = rows[best - 1]
    for column in ("val_loss", "val_top1", "val_top5"):
        assert again[column] == pytest.approx(row[column], rel=1e-5, nan_ok=True), column
    # the checkpoint keeps the last epoch (for resuming); select last stores exactly that
    last_cfg = tiny_config(cache, mods, tmp_path / "last", epochs=4, lr=3e-3, method=method,
                           select_epoch="last")
    last = load_checkpoint(train(last_cfg))
    assert last["selected_epoch"] == 4
    assert _same_weights(last["model"], load_checkpoint(tmp_path / "best" / "checkpoint.pt")["model"])
    assert _same_weights(saved["model"], last["model"]) == (best == 4)


def test_image_heads_per_modality_train(tmp_path):
    cache, mods, _ = write_toy_cohort(tmp_path / "data", n_people=30, prs_missing=0.3)
    for heads in ("shared", "per_modality"):
        path = train(tiny_config(cache, mods, tmp_path / heads, epochs=1, join="outer",
                                 image_heads=heads))
        saved = load_checkpoint(path)
        keys = {k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("image_heads.") else "")
                for k in saved["model"]}
        expected = {"image_head"} if heads == "shared" else {"image_heads.snps", "image_heads.prs"}
        assert {k for k in keys if k.startswith("image_head")} == expected
        assert np.isfinite(saved["metrics"][0]["train_loss"])
        assert 0 <= saved["metrics"][0]["val_top1"] <= 1
    simclr = load_checkpoint(train(tiny_config(cache, {}, tmp_path / "s", method="simclr",
                                               epochs=1, image_heads="per_modality")))
    assert any(k.startswith("image_head.") for k in simclr["model"])  # image-only: one head


def test_cli_refuses_settings_that_only_validate_can_check(tmp_path, capsys):
    from contig.cli import main

    argv = ["train", "--images", str(tmp_path / "none"), "--out", str(tmp_path / "out"),
            "--modality", "snps=x.npz"]
    assert main([*argv, "--split", "0.5", "0.2", "0.2"]) == 2
    assert "split must be three non-negative fractions summing to 1" in capsys.readouterr().err
    assert main([*argv, "--batch-size", "1"]) == 2
    assert "batch size >= 2" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _write_empty_modality(path: Path, iid: np.ndarray) -> str:
    """A modality with every person and zero features (burden on common-variant data)."""
    import scipy.sparse as sp
    from contig.scores.modality import Modality, save_modality
    save_modality(path, Modality(iid, np.array([], dtype=str), sp.csr_matrix((len(iid), 0), dtype=np.float32)))
    return str(path)


def test_modality_without_features_is_left_out(toy, tmp_path, caplog):
    """Training with an empty burden modality equals training without it, and says so; with only
    empty modalities there is nothing to align with: a one-line InputError."""
    from contig.core.errors import InputError
    from contig.scores.modality import load_modality
    cache, mods, _ = toy
    iid = load_modality(mods["snps"]).iid
    burden = _write_empty_modality(tmp_path / "burden.npz", iid)
    caplog.set_level(logging.WARNING)
    with_empty = train(tiny_config(cache, mods | {"burden": burden}, tmp_path / "e", epochs=1))
    assert "modality burden has no features: left out of the loss" in caplog.text
    without = train(tiny_config(cache, mods, tmp_path / "w", epochs=1))
    keys = list(_weights(with_empty))
    assert any("snps" in k for k in keys) and not any("burden" in k for k in keys)
    assert _same_weights(_weights(with_empty), _weights(without))
    with pytest.raises(InputError, match="no modality has any feature \\(burden\\): method contig"):
        prepare_data(tiny_config(cache, {"burden": burden}, tmp_path / "none", epochs=1))
