"""Embedding extraction: out-of-fold assignment, one feature space over the folds (generalized
Procrustes), eye choice and the EYE column, the CLI's parquet and alignment table."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
import torch

from contig.cli import main
from contig.core.errors import InputError
from contig.pretrain.align import (
    alignment_quality,
    generalized_procrustes,
    orthogonal_procrustes,
    pool_out_of_fold,
)
from contig.pretrain.checkpoint import load_checkpoint, load_trained_model, save_torch_atomic
from contig.pretrain.augment import eval_images
from contig.pretrain.data import read_image_cache
from contig.pretrain.embed import EmbedSettings, embed_people
from contig.pretrain.train import train
from helpers.toy_training import tiny_config, write_toy_cohort

_MODELS: dict = {}
RAW = EmbedSettings(align="none")


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


def dims(table: pl.DataFrame, iid: str) -> np.ndarray:
    """The embedding of ``iid``, ``(D,)``."""
    return np.asarray(table.filter(pl.col("IID") == iid).select(pl.col("^dim_.*$")).row(0))


def held_out_by(models) -> dict[str, int]:
    return {iid: k for k, m in enumerate(models)
            for iid in m.split.filter(pl.col("set") == "test")["IID"]}


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


# --- one feature space: the toy of issue #15 ---------------------------------------------------

def toy_encoders(n_people: int = 1200, n_traits: int = 10, dim: int = 256, noise: float = 0.3,
                 seed: int = 0) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Four "encoders" of the same 10 latent traits into ``dim`` features: one linear map, then
    per encoder identity / a random rotation / a permutation of dimensions / sign flips and a
    2.5-fold scale, each with its own noise and offset; people in 4 folds.

    Returns traits (P, 10), features (4 × (P, dim)), the transforms, fold of each person (P,).
    """
    rng = np.random.default_rng(seed)
    traits = rng.standard_normal((n_people, n_traits)) * np.linspace(1.0, 2.0, n_traits)
    loading = np.linalg.qr(rng.standard_normal((dim, n_traits)))[0].T  # (10, dim)
    rotation = np.linalg.qr(rng.standard_normal((dim, dim)))[0]
    permutation = np.eye(dim)[rng.permutation(dim)]
    flips = np.diag(np.where(np.arange(dim) % 2 == 0, -1.0, 1.0)) * 2.5
    transforms = [np.eye(dim), rotation, permutation, flips]
    features = [(traits @ loading + noise * rng.standard_normal((n_people, dim))) @ t + 3.0 * k
                for k, t in enumerate(transforms)]
    return traits, features, transforms, np.arange(n_people) % 4


def decoding_r2(embedding: np.ndarray, traits: np.ndarray, n_pcs: int = 10) -> np.ndarray:
    """R² of each trait regressed (OLS with intercept) on the embedding's top PCs, ``(T,)``."""
    centred = embedding - embedding.mean(0)
    scores = np.linalg.svd(centred, full_matrices=False)[0][:, :n_pcs]
    design = np.column_stack([np.ones(len(scores)), scores])
    residual = traits - design @ np.linalg.lstsq(design, traits, rcond=None)[0]
    return 1 - (residual ** 2).sum(0) / ((traits - traits.mean(0)) ** 2).sum(0)


def test_aligned_pool_decodes_every_trait_like_each_folds_own_space():
    traits, features, _, fold = toy_encoders()
    own = np.array([decoding_r2(f, traits) for f in features])  # (4, 10): everyone, one encoder
    assert own.min() > 0.85
    fit = generalized_procrustes(features)
    aligned = decoding_r2(pool_out_of_fold(features, fit.maps, fold), traits)
    assert np.abs(aligned[None, :] - own).max() < 0.02
    unaligned_pool = np.empty_like(features[0])
    for k, f in enumerate(features):
        unaligned_pool[fold == k] = f[fold == k]
    unaligned = decoding_r2(unaligned_pool, traits)
    assert np.abs(unaligned[None, :] - own).max() > 0.5  # the failure alignment exists to fix
    quality = alignment_quality(features, fit.maps, [np.flatnonzero(fold == k) for k in range(4)])
    assert (quality.r2_all > quality.r2_unaligned_all + 0.5).all()
    assert np.isfinite(quality.r2_heldout).all()


def test_scaled_rotated_copies_align_exactly():
    """Folds that are exact rotated, rescaled, shifted copies of one another land on one matrix."""
    traits, features, transforms, _ = toy_encoders(n_people=400, dim=24, noise=0.5)
    copies = [features[0] @ t + 1.5 for t in transforms]  # same noise in every copy
    fit = generalized_procrustes(copies)
    mapped = [m.apply(c) for m, c in zip(fit.maps, copies)]
    for m in mapped[1:]:
        np.testing.assert_allclose(m, mapped[0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(fit.maps[3].scale / fit.maps[0].scale, 1 / 2.5, rtol=1e-12)
    quality = alignment_quality(copies, fit.maps, [np.arange(100)] * 4)
    np.testing.assert_allclose(quality.r2_all, 1.0, atol=1e-12)


def test_procrustes_recovers_a_known_rotation():
    rng = np.random.default_rng(4)
    source = rng.standard_normal((300, 40))
    rotation = np.linalg.qr(rng.standard_normal((40, 40)))[0]
    got = orthogonal_procrustes(source, source @ rotation)
    np.testing.assert_allclose(got, rotation, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got @ got.T, np.eye(40), rtol=0, atol=1e-12)


def test_alignment_takes_image_features_only():
    """No genotype can enter the fit: its only data argument is the folds' image features."""
    assert list(inspect.signature(generalized_procrustes).parameters) == \
        ["features", "max_iterations", "tolerance"]
    assert "modalit" not in inspect.getsource(embed_people)


# --- on fold models ----------------------------------------------------------------------------

def test_cross_fitting_embeds_everyone_once_by_their_fold_model(folds):
    cache, paths = folds
    models = [load_trained_model(p) for p in paths]
    raw = embed_people(models, cache, EmbedSettings(eye="mean", align="none"))
    aligned = embed_people(models, cache, EmbedSettings(eye="mean"))
    _, index = read_image_cache(cache)
    for result in (raw, aligned):
        table = result.table
        assert table["IID"].to_list() == sorted(index["IID"].unique().to_list())
        assert table.columns[:4] == ["IID", "EYE", "dim_0000", "dim_0001"]
        assert table.width == 2 + 512 and table.schema["dim_0000"] == pl.Float32
        assert "0 people of the image cache were not embedded" in result.report[-1]
    fold_of = held_out_by(models)
    maps = aligned.fit.maps
    for iid in raw.table["IID"].to_list()[::4]:
        rows = index.filter(pl.col("IID") == iid)["row"].to_list()
        own = direct_features(paths[fold_of[iid]], cache, rows)
        assert_features_equal(dims(raw.table, iid), own)
        assert_features_equal(dims(aligned.table, iid), maps[fold_of[iid]].apply(own[None])[0])
        other = direct_features(paths[(fold_of[iid] + 1) % 3], cache, rows)
        assert np.abs(dims(raw.table, iid) - other).max() > 1e-3 * np.abs(other).max()
    table = aligned.alignment
    assert table["align"].to_list() == ["procrustes"] * 3 and table["fold"].to_list() == [0, 1, 2]
    assert table["n_heldout"].sum() == table["n_people"][0] == 18
    assert (table["r2_all"] > table["r2_unaligned_all"]).all()
    assert raw.alignment["r2_all"].null_count() == 3 and raw.fit is None


def test_two_models_holding_out_the_same_person_is_an_error(folds):
    cache, paths = folds
    with pytest.raises(InputError, match="held out by both"):
        embed_people([load_trained_model(paths[0]), load_trained_model(paths[0])], cache)


def test_eye_choice_left_right_mean_fallback_and_eye_column(folds):
    cache, paths = folds
    model = load_trained_model(paths[1])
    _, index = read_image_cache(cache)
    held = set(model.split.filter(pl.col("set") == "test")["IID"].to_list())
    eyes = index.filter(pl.col("IID").is_in(held)).group_by("IID").agg("eye", "row")
    both = [r for r in eyes.iter_rows(named=True) if len(r["eye"]) == 2]
    one = [r for r in eyes.iter_rows(named=True) if len(r["eye"]) == 1]
    assert both and one
    results = {eye: embed_people([model], cache, EmbedSettings(eye=eye))
               for eye in ("left", "right", "mean")}
    tables = {eye: r.table for eye, r in results.items()}
    for person in both[:2] + one[:2]:
        rows = dict(zip(person["eye"], person["row"]))
        for eye in ("left", "right"):
            use = eye if eye in rows else next(iter(rows))  # fallback: the other eye
            assert_features_equal(dims(tables[eye], person["IID"]),
                                  direct_features(paths[1], cache, [rows[use]]))
            assert tables[eye].filter(pl.col("IID") == person["IID"])["EYE"].item() == use
        assert_features_equal(dims(tables["mean"], person["IID"]),
                              direct_features(paths[1], cache, list(rows.values())))
        shown = "mean" if len(rows) == 2 else next(iter(rows))
        assert tables["mean"].filter(pl.col("IID") == person["IID"])["EYE"].item() == shown
    fallbacks = 0
    for eye, other in (("left", "right"), ("right", "left")):
        n_other = int((tables[eye]["EYE"] == other).sum())
        assert n_other == sum(1 for r in one if r["eye"] == [other])
        assert f"{n_other} {other}, " in "\n".join(results[eye].report)
        fallbacks += n_other
    assert fallbacks == len(one) > 0
    # one model: nothing mapped, the alignment table says so
    assert results["left"].alignment["align"].to_list() == ["none"] and results["left"].fit is None


def test_cli_gathers_folds_into_one_parquet_and_alignment_table(folds, tmp_path):
    cache, paths = folds
    out = tmp_path / "emb.parquet"
    args = [sys.executable, "-m", "contig", "embed", "--images", str(cache), "--out", str(out),
            "--eye", "left", "--threads", "1"]
    for p in paths:
        args += ["--checkpoint", str(p)]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    table = pl.read_parquet(out)
    assert table.height == 18 and table.columns[:2] == ["IID", "EYE"]
    assert set(table["EYE"]) <= {"left", "right"}
    assert "lacked the left eye" in done.stderr and "generalized Procrustes" in done.stderr
    alignment = pl.read_csv(tmp_path / "emb.alignment.tsv", separator="\t", null_values="NA")
    assert alignment.columns == ["align", "model", "checkpoint", "fold", "n_people", "n_heldout",
                                 "scale", "r2_all", "r2_heldout", "r2_unaligned_all"]
    assert alignment.height == 3 and alignment["checkpoint"].to_list() == [str(p) for p in paths]
    bad = subprocess.run(args[:-2] + ["--checkpoint", str(paths[0])], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "held out by both" in bad.stderr
    refused = subprocess.run(args + ["--batch-size", "0"], capture_output=True, text=True)
    assert refused.returncode == 2 and "--batch-size" in refused.stderr


def test_both_eyes_only_keeps_people_with_both_eyes_and_embeds_the_asked_eye(folds, tmp_path, caplog):
    cache, paths = folds
    models = [load_trained_model(p) for p in paths]
    _, index = read_image_cache(cache)
    eyes = index.group_by("IID").agg("eye", "row")
    both = sorted(r["IID"] for r in eyes.iter_rows(named=True) if set(r["eye"]) == {"left", "right"})
    assert 0 < len(both) < eyes.height  # the toy cohort has one-eyed people to drop
    results = {eye: embed_people(models, cache, EmbedSettings(eye=eye, both_eyes_only=True))
               for eye in ("left", "right")}
    fold_of = held_out_by(models)
    for eye, result in results.items():
        table = result.table
        assert table["IID"].to_list() == both and set(table["EYE"]) == {eye}
        assert f"{eyes.height - len(both)} more lacked an image of one eye" in result.report[-1]
        assert result.alignment["n_people"][0] == len(both)
        for iid in both[:3]:
            person = eyes.filter(pl.col("IID") == iid).row(0, named=True)
            row = dict(zip(person["eye"], person["row"]))[eye]
            own = direct_features(paths[fold_of[iid]], cache, [row])
            assert_features_equal(dims(table, iid), result.fit.maps[fold_of[iid]].apply(own[None])[0])
    # left and right embeddings of one person differ (different images)
    left, right = (dims(results[e].table, both[0]) for e in ("left", "right"))
    assert np.abs(left - right).max() > 0
    # the CLI flag (in-process: a subprocess would spend seconds importing torch)
    out = tmp_path / "right.parquet"
    args = ["embed", "--images", str(cache), "--out", str(out), "--eye", "right", "--both-eyes-only"]
    for p in paths:
        args += ["--checkpoint", str(p)]
    with caplog.at_level("INFO", logger="contig.pretrain.embed"):
        assert main(args) == 0
    assert pl.read_parquet(out)["IID"].to_list() == both
    assert "without images of both eyes" in caplog.text
    assert (tmp_path / "right.alignment.tsv").exists()


def test_both_eyes_only_without_eye_labels_is_an_error(folds, tmp_path):
    cache, paths = folds
    npy, index = read_image_cache(cache)
    prefix = tmp_path / "noeye"
    np.save(f"{prefix}.npy", npy)
    index.with_columns(pl.lit(None, dtype=pl.Utf8).alias("eye")).write_csv(
        f"{prefix}.index.tsv", separator="\t")
    with pytest.raises(InputError, match="both eyes"):
        embed_people([load_trained_model(paths[0])], prefix, EmbedSettings(both_eyes_only=True))
    unlabeled = embed_people([load_trained_model(paths[0])], prefix, RAW)
    assert unlabeled.table.columns[:2] == ["IID", "dim_0000"]  # no eye to record
    assert "no EYE column" in "\n".join(unlabeled.report)


def test_cli_defaults_come_from_the_settings_and_out_of_range_is_refused():
    import argparse

    from contig.cli import embed as cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--images", "x", "--checkpoint", "m.pt", "--out", "o.parquet"])
    assert EmbedSettings(eye=args.eye, people=args.people, both_eyes_only=args.both_eyes_only,
                         align=args.align, batch_size=args.batch_size) == EmbedSettings()
    assert EmbedSettings().align == "procrustes"
    for bad in (["--batch-size", "0"], ["--align", "cca"], ["--eye", "both"], ["--threads", "0"]):
        with pytest.raises(SystemExit) as stop:
            parser.parse_args(["--images", "x", "--checkpoint", "m.pt", "--out", "o", *bad])
        assert stop.value.code == 2, bad
    with pytest.raises(ValueError, match="align"):
        EmbedSettings(align="cca").validate()
