"""Embedding extraction: out-of-fold assignment, eye choice, the CLI's parquet."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import polars as pl
import pytest
import torch

from contig.cli import main
from contig.data import eval_images, read_image_cache
from contig.embed import embed_people, load_trained_model
from contig.errors import InputError
from contig.train import load_checkpoint, save_torch_atomic, train
from test_train import tiny_config, write_toy_cohort


_MODELS: dict = {}


def direct_features(model_path, cache_prefix, rows) -> np.ndarray:
    """Oracle: the backbone on the given cache rows one by one, averaged, ``(D,)``."""
    if model_path not in _MODELS:
        _MODELS[model_path] = load_trained_model(model_path)
    tm = _MODELS[model_path]
    cache, _ = read_image_cache(cache_prefix)
    with torch.no_grad():
        feats = [tm.model.features(eval_images(torch.from_numpy(cache[r][None].copy()),
                                               tm.image_size)) for r in rows]
    return torch.cat(feats).mean(0).numpy()


def assert_features_equal(got, expected) -> None:
    """Equal up to float32 summation order (batched vs one-by-one convolutions)."""
    expected = np.asarray(expected)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max() + 1e-7)


@pytest.fixture(scope="module")
def folds(tmp_path_factory):
    """Three fold models (random init, perturbed per fold so they differ) on a toy cohort."""
    root = tmp_path_factory.mktemp("embed")
    cache, mods, _ = write_toy_cohort(root / "data", n_people=18, seed=2)
    paths = []
    for k in range(3):
        path = train(tiny_config(cache, mods, root / f"fold{k}", method="random", n_folds=3,
                                 fold=k))
        saved = load_checkpoint(path)
        saved["model"]["backbone.conv1.weight"] += 0.05 * (k + 1)
        save_torch_atomic(saved, path)
        paths.append(path)
    return cache, paths


def test_cross_fitting_embeds_everyone_once_by_their_fold_model(folds):
    cache, paths = folds
    models = [load_trained_model(p) for p in paths]
    table, report = embed_people(models, cache, eye="mean")
    _, index = read_image_cache(cache)
    assert sorted(table["IID"].to_list()) == sorted(index["IID"].unique().to_list())
    assert table["IID"].is_unique().all()
    assert table.columns[0] == "IID" and table.columns[1:3] == ["dim_0000", "dim_0001"]
    assert table.width == 1 + 512 and table.schema["dim_0000"] == pl.Float32
    fold_of = {}
    for k, m in enumerate(models):
        for iid in m.split.filter(pl.col("set") == "test")["IID"]:
            fold_of[iid] = k
    for iid in table["IID"].to_list()[::4]:
        rows = index.filter(pl.col("IID") == iid)["row"].to_list()
        got = table.filter(pl.col("IID") == iid).row(0)[1:]
        own = direct_features(paths[fold_of[iid]], cache, rows)
        assert_features_equal(got, own)
        other = direct_features(paths[(fold_of[iid] + 1) % 3], cache, rows)
        assert np.abs(np.asarray(got) - other).max() > 1e-3 * np.abs(other).max()
    assert "0 people of the image cache were not embedded" in report[-1]


def test_two_models_holding_out_the_same_person_is_an_error(folds):
    cache, paths = folds
    with pytest.raises(InputError, match="held out by both"):
        embed_people([load_trained_model(paths[0]), load_trained_model(paths[0])], cache)


def test_eye_choice_left_right_mean_and_fallback(folds):
    cache, paths = folds
    model = load_trained_model(paths[1])
    _, index = read_image_cache(cache)
    held = set(model.split.filter(pl.col("set") == "test")["IID"].to_list())
    eyes = index.filter(pl.col("IID").is_in(held)).group_by("IID").agg("eye", "row")
    both = [r for r in eyes.iter_rows(named=True) if len(r["eye"]) == 2]
    one = [r for r in eyes.iter_rows(named=True) if len(r["eye"]) == 1]
    assert both and one
    tables = {eye: embed_people([model], cache, eye=eye)[0] for eye in ("left", "right", "mean")}
    for person in both[:2] + one[:2]:
        rows = dict(zip(person["eye"], person["row"]))
        for eye in ("left", "right"):
            use = rows.get(eye, next(iter(rows.values())))  # fallback: the other eye
            got = tables[eye].filter(pl.col("IID") == person["IID"]).row(0)[1:]
            assert_features_equal(got, direct_features(paths[1], cache, [use]))
        got = tables["mean"].filter(pl.col("IID") == person["IID"]).row(0)[1:]
        assert_features_equal(got, direct_features(paths[1], cache, list(rows.values())))


def test_cli_gathers_folds_into_one_parquet(folds, tmp_path):
    cache, paths = folds
    out = tmp_path / "emb.parquet"
    args = [sys.executable, "-m", "contig", "embed", "--images", str(cache), "--out", str(out),
            "--eye", "left", "--threads", "1"]
    for p in paths:
        args += ["--checkpoint", str(p)]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    table = pl.read_parquet(out)
    assert table.height == 18 and table.columns[0] == "IID"
    assert "lacked the left eye" in done.stderr
    bad = subprocess.run(args[:-2] + ["--checkpoint", str(paths[0])], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "held out by both" in bad.stderr


def test_both_eyes_only_keeps_people_with_both_eyes_and_embeds_the_asked_eye(folds, tmp_path, caplog):
    cache, paths = folds
    models = [load_trained_model(p) for p in paths]
    _, index = read_image_cache(cache)
    eyes = index.group_by("IID").agg("eye", "row")
    both = sorted(r["IID"] for r in eyes.iter_rows(named=True) if set(r["eye"]) == {"left", "right"})
    assert 0 < len(both) < eyes.height  # the toy cohort has one-eyed people to drop
    tables = {eye: embed_people(models, cache, eye=eye, both_eyes_only=True)
              for eye in ("left", "right")}
    fold_of = {iid: k for k, m in enumerate(models)
               for iid in m.split.filter(pl.col("set") == "test")["IID"]}
    for eye, (table, report) in tables.items():
        assert table["IID"].to_list() == both
        assert f"{eyes.height - len(both)} more lacked an image of one eye" in report[-1]
        for iid in both[:3]:
            person = eyes.filter(pl.col("IID") == iid).row(0, named=True)
            row = dict(zip(person["eye"], person["row"]))[eye]
            got = table.filter(pl.col("IID") == iid).row(0)[1:]
            assert_features_equal(got, direct_features(paths[fold_of[iid]], cache, [row]))
    # left and right embeddings of one person differ (different images)
    left, right = (tables[e][0].filter(pl.col("IID") == both[0]).row(0)[1:] for e in ("left", "right"))
    assert np.abs(np.asarray(left) - np.asarray(right)).max() > 0
    # the CLI flag (in-process: a subprocess would spend seconds importing torch)
    out = tmp_path / "right.parquet"
    args = ["embed", "--images", str(cache), "--out", str(out), "--eye", "right", "--both-eyes-only"]
    for p in paths:
        args += ["--checkpoint", str(p)]
    with caplog.at_level("INFO", logger="contig.embed"):
        assert main(args) == 0
    assert pl.read_parquet(out)["IID"].to_list() == both
    assert "without images of both eyes" in caplog.text


def test_both_eyes_only_without_eye_labels_is_an_error(folds, tmp_path):
    cache, paths = folds
    npy, index = read_image_cache(cache)
    prefix = tmp_path / "noeye"
    np.save(f"{prefix}.npy", npy)
    index.with_columns(pl.lit(None, dtype=pl.Utf8).alias("eye")).write_csv(
        f"{prefix}.index.tsv", separator="\t")
    with pytest.raises(InputError, match="both eyes"):
        embed_people([load_trained_model(paths[0])], prefix, both_eyes_only=True)
