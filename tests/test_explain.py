"""Integrated Gradients of the contrastive loss: the loss against image_genetics_loss, completeness,
a brute-force Riemann-sum oracle, a planted feature, precision@k, and the CLI end to end."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import polars as pl
import pytest
import torch

from contig.cli import main
from contig.core.errors import InputError
from contig.pretrain.attribution import (
    Attributions,
    ExplainSettings,
    PersonLoss,
    choose_people,
    explain_models,
    integrated_gradients,
    load_explain_model,
    person_contrastive_loss,
)
from contig.pretrain.explain_tables import (
    feature_table,
    modality_table,
    precision_at_k,
    read_truth,
    snp_positions,
)
from contig.pretrain.losses import image_genetics_loss
from contig.scores.modality import load_modality
from contig.pretrain.models import ModelConfig, build_model
from contig.genotypes.plinkio import read_bim
from contig.pretrain.checkpoint import load_checkpoint, save_torch_atomic
from contig.pretrain.train import train
from helpers.toy_training import tiny_config, write_toy_cohort

CONTIG = [sys.executable, "-m", "contig"]


# --- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_loss():
    """A PersonLoss on a random tiny model (two modalities of 6 and 3 features), fixed reference
    embeddings, and a batch of 4 people: (loss, inputs, baselines, image embeddings). Image
    embeddings are ``(people, modalities, d)``: one image projection per modality."""
    torch.manual_seed(0)
    config = ModelConfig(arch="resnet18", proj_hidden=16, proj_dim=8,
                         genetic_features={"a": 6, "b": 3}, genetic_hidden=16)
    model = build_model(config).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    ref_img = torch.randn(5, 2, 8, generator=g)
    ref_gen = {"a": torch.randn(5, 8, generator=g), "b": torch.randn(5, 8, generator=g)}
    loss = PersonLoss(model, ["a", "b"], ref_img, ref_gen, temperature=0.2, alpha=0.75)
    x = (2 * torch.randn(4, 6, generator=g), 2 * torch.randn(4, 3, generator=g))
    base = (torch.randn(1, 6, generator=g) * 0.1, torch.randn(1, 3, generator=g) * 0.1)
    img = torch.randn(4, 2, 8, generator=g)
    return loss, x, base, img


@pytest.fixture(scope="module")
def folds(tmp_path_factory):
    """Two contig fold models (1 epoch) on a 40-person toy cohort, and a SimCLR model."""
    root = tmp_path_factory.mktemp("explain")
    cache, mods, _ = write_toy_cohort(root / "data", n_people=40, seed=5)
    paths = [train(tiny_config(cache, mods, root / f"fold{k}", epochs=1, n_folds=2, fold=k))
             for k in range(2)]
    simclr = train(tiny_config(cache, {}, root / "simclr", method="simclr", epochs=1))
    return cache, mods, paths, simclr


def _settings(**overrides) -> ExplainSettings:
    values = dict(n_people=12, n_reference=8, steps=16, batch_size=5, seed=3)
    values.update(overrides)
    return ExplainSettings(**values)


# --- the explained loss -----------------------------------------------------------------------

def test_person_losses_average_to_the_batch_contig_loss():
    """Averaging each person's loss against all other batch members gives image_genetics_loss."""
    g = torch.Generator().manual_seed(0)
    img, gen = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    per_person = []
    for j in range(7):
        others = torch.tensor([i for i in range(7) if i != j])
        per_person.append(person_contrastive_loss(img[j:j + 1], gen[j:j + 1], img[others],
                                                  gen[others], 0.3, 0.75))
    expected = image_genetics_loss(img, gen, torch.arange(7), temperature=0.3, alpha=0.75)
    torch.testing.assert_close(torch.cat(per_person).mean(), expected, rtol=1e-5, atol=1e-6)


def test_completeness_sum_of_attributions_is_the_loss_difference(tiny_loss):
    loss, x, base, img = tiny_loss
    # ReLU kinks make any quadrature's error fall slowly: 2,048 midpoints for ~0.05%
    attr, delta = integrated_gradients(loss, x, base, img, steps=2048, method="riemann_middle")
    with torch.no_grad():
        gap = loss(*x, img) - loss(*(b.expand_as(t) for b, t in zip(base, x)), img)
    total = sum(a.sum(1) for a in attr)
    assert gap.abs().min() > 0.05  # a non-trivial difference to split
    torch.testing.assert_close(total, gap, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(delta, total - gap, rtol=0, atol=1e-5)
    # with few steps the discretization error shows up in captum's delta
    _, coarse = integrated_gradients(loss, x, base, img, steps=8, method="riemann_middle")
    assert coarse.abs().max() > 10 * delta.abs().max()


def test_integrated_gradients_match_a_brute_force_riemann_sum(tiny_loss):
    """Oracle: (x − b) · mean of autograd gradients at 4,000 midpoints of the straight path
    (captum on other nodes: the trapezoid rule; its default Gauss-Legendre rule at this many
    nodes spends seconds in an eigendecomposition)."""
    loss, x, base, img = tiny_loss
    person = 2
    xs = tuple(t[person:person + 1] for t in x)
    n = 4000
    alphas = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    path = tuple((b + alphas[:, None] * (t - b)).requires_grad_(True) for t, b in zip(xs, base))
    out = loss(*path, img[person:person + 1].expand(n, -1, -1))
    grads = torch.autograd.grad(out.sum(), path)
    oracle = [(t - b) * g.mean(0, keepdim=True) for t, b, g in zip(xs, base, grads)]
    attr, _ = integrated_gradients(loss, xs, base, img[person:person + 1], steps=2048,
                                   method="riemann_trapezoid")
    scale = max(float(o.abs().max()) for o in oracle)
    for got, want in zip(attr, oracle):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=2e-3 * scale)


def test_noise_tunnel_is_seeded_and_differs_from_plain_ig(tiny_loss):
    loss, x, base, img = tiny_loss
    plain, _ = integrated_gradients(loss, x, base, img, steps=16)
    runs = []
    for _ in range(2):
        torch.manual_seed(11)
        runs.append(integrated_gradients(loss, x, base, img, steps=16, noise_samples=4,
                                         noise_sd=0.5))
    for a, b, p in zip(runs[0][0], runs[1][0], plain):
        assert torch.equal(a, b)
        assert not torch.allclose(a, p)
    assert runs[0][1].shape == (4 * 4,)


# --- people -----------------------------------------------------------------------------------

def test_choose_people_disjoint_seeded_and_order_independent():
    iids = [np.array([f"A{i:03d}" for i in range(30)]), np.array([f"B{i:03d}" for i in range(10)])]
    explained, reference = choose_people(iids, n_people=20, n_reference=4, seed=1)
    assert [len(r) for r in reference] == [4, 4]
    assert [len(e) for e in explained] == [16, 4]  # 20 × 26/32, 20 × 6/32 = 16.25, 3.75
    for e, r in zip(explained, reference):
        assert not set(e) & set(r)
    shuffled = [iids[0][::-1], iids[1]]
    e2, r2 = choose_people(shuffled, 20, 4, seed=1)
    assert set(shuffled[0][e2[0]]) == set(iids[0][explained[0]])
    assert set(shuffled[0][r2[0]]) == set(iids[0][reference[0]])
    e3, _ = choose_people(iids, 20, 4, seed=2)
    assert set(e3[0]) != set(explained[0])
    # a tiny fold keeps one person to explain; asking for too many takes everyone left
    e4, r4 = choose_people([np.array(["x", "y"])], n_people=50, n_reference=10, seed=0)
    assert len(r4[0]) == 1 and len(e4[0]) == 1


# --- on trained fold models -------------------------------------------------------------------

def _explain(cache, mods, paths, **overrides):
    models = [load_explain_model(p) for p in paths]
    modalities = {n: load_modality(p) for n, p in mods.items()}
    return models, modalities, explain_models(models, cache, modalities, _settings(**overrides))


def test_explains_held_out_people_only_and_deterministically(folds):
    cache, mods, paths, _ = folds
    models, modalities, (attr, report, _) = _explain(cache, mods, paths)
    assert len(attr.iid) == 12 and len(set(attr.iid)) == 12
    for k, m in enumerate(models):
        held = set(m.trained.split.filter(pl.col("set") == "test")["IID"].to_list())
        assert set(attr.iid[attr.model_index == k]) <= held
    assert attr.values["snps"].shape == (12, 16) and attr.values["prs"].shape == (12, 3)
    assert any("as the reference set" in line for line in report)
    assert "completeness" in report[-1]
    again = _explain(cache, mods, paths)[2][0]
    assert np.array_equal(attr.iid, again.iid)
    assert np.array_equal(attr.values["snps"], again.values["snps"])
    # completeness holds per person for the real (batched, two-modality) loss
    total = attr.values["snps"].sum(1) + attr.values["prs"].sum(1)
    np.testing.assert_allclose(total - (attr.loss - attr.baseline_loss), attr.delta, atol=1e-4)


def test_per_modality_image_heads_are_explained_with_their_own_head(tmp_path):
    """Models with one image head per modality (the reference code's layout) are explained with
    the head paired with each modality: completeness holds per person, and the reference
    projections differ between the two heads."""
    cache, mods, _ = write_toy_cohort(tmp_path / "data", n_people=40, seed=5)
    paths = [train(tiny_config(cache, mods, tmp_path / f"fold{k}", epochs=1, n_folds=2, fold=k,
                               image_heads="per_modality")) for k in range(2)]
    models, _, (attr, _, context) = _explain(cache, mods, paths)
    total = attr.values["snps"].sum(1) + attr.values["prs"].sum(1)
    np.testing.assert_allclose(total - (attr.loss - attr.baseline_loss), attr.delta, atol=1e-4)
    ref_img, ref_gen = context.reference[0]
    model = models[0].model
    assert not torch.allclose(ref_img[:, 0], ref_img[:, 1])  # two heads, two projections
    names = list(models[0].modalities)
    for name in names:
        assert model.image_head_for(name) is model.image_heads[name]
    assert ref_img.shape[1] == len(names) and set(ref_gen) == set(names)


def test_planted_feature_ranks_first(folds, tmp_path):
    """Only SNP feature j reaches the genetic embedding (other weights ~0): j ranks first."""
    cache, mods, paths, _ = folds
    j = 11
    planted = []
    for k, path in enumerate(paths):
        saved = load_checkpoint(path)
        w = saved["model"]["genetic.snps.body.0.weight"]  # (hidden, 16)
        scale = torch.full((w.shape[1],), 1e-3)
        scale[j] = 1.0
        saved["model"]["genetic.snps.body.0.weight"] = w * scale
        saved["model"]["genetic.prs.body.0.weight"] *= 1e-3
        save_torch_atomic(saved, tmp_path / f"fold{k}.pt")
        planted.append(tmp_path / f"fold{k}.pt")
    _, _, (attr, _, _) = _explain(cache, mods, planted)
    table = feature_table(attr)
    assert table.row(0, named=True)["feature"] == f"s{j}"
    assert table.row(0, named=True)["modality"] == "snps"
    assert table["mean_abs_attribution"][0] > 20 * table["mean_abs_attribution"][1]
    shares = dict(modality_table(table).select("modality", "share").iter_rows())
    assert shares["snps"] > 0.9


def test_modalities_must_match_the_models_encoders(folds):
    cache, mods, paths, _ = folds
    models = [load_explain_model(p) for p in paths]
    with pytest.raises(InputError, match="pass exactly the model's ones"):
        explain_models(models, cache, {"snps": load_modality(mods["snps"])}, _settings())
    wrong = {"snps": load_modality(mods["prs"]), "prs": load_modality(mods["prs"])}
    with pytest.raises(InputError, match="has 3 features but the model's encoder takes 16"):
        explain_models(models, cache, wrong, _settings())
    with pytest.raises(InputError, match="held out by both"):
        explain_models([models[0], models[0]], cache,
                       {n: load_modality(p) for n, p in mods.items()}, _settings())


def test_simclr_model_is_refused(folds):
    _, _, _, simclr = folds
    with pytest.raises(InputError, match="simclr"):
        load_explain_model(simclr)


# --- tables and truth -------------------------------------------------------------------------

def _write(path, text):
    path.write_text(text)
    return path


def test_precision_at_k_against_a_crafted_truth(tmp_path):
    bim = read_bim(_write(tmp_path / "x.bim", "".join(
        f"{c}\t{i}\t0\t{p}\tA\tG\n" for c, i, p in [
            ("1", "r1", 1_000_000), ("1", "r2", 1_200_000), ("1", "r3", 5_000_000),
            ("2", "r4", 1_000_000), ("2", "r5", 9_000_000), ("3", "r6", 100)])))
    ids = np.array(["r1", "r2", "r3", "r4", "r5", "r6", "rX"])
    chrom, pos, missing = snp_positions(bim, ids)
    assert missing == 1 and chrom[-1] == "" and pos[-1] == -1 and pos[1] == 1_200_000
    truth = read_truth(_write(tmp_path / "truth.tsv", "kind\tid\tchrom\tstart\trole\n"
                              "snp\tm1\t1\t1100000\tmajor\n"     # r1 and r2 within 150 kb
                              "snp\tm2\t2\t9100000\tmajor\n"     # r5
                              "snp\tp1\t3\t200\tpolygenic\n"     # r6 (any only)
                              "snp\tp2\t1\t5000000\tpolygenic\n"  # r3 (any only)
                              "gene\tG2\t1\t1\tburden\n"))
    # ranking: r3, r1, rX, r5, r2, r4, r6 ; genes: G1, G2, G3
    snp_order = np.array([1, 4, 0, 5, 3, 6, 2])  # 0-based rank of each of `ids`
    attr = Attributions(np.array(["P"]), np.array([0]),
                        {"snps": (10.0 - snp_order)[None, :].astype(float),
                         "burden": np.array([[3.0, 2.0, 1.0]])},
                        np.zeros(1), np.zeros(1), np.zeros(1),
                        {"snps": ids, "burden": np.array(["G1", "G2", "G3"])})
    table = feature_table(attr, {"snps": chrom}, {"snps": pos})
    assert table.filter(pl.col("modality") == "snps")["feature"].to_list() == \
        ["r3", "r1", "rX", "r5", "r2", "r4", "r6"]
    got = precision_at_k(table, truth, window_kb=150, ks=[1, 2, 4, 10])
    rows = {(r["modality"], r["target"], r["k"]): r for r in got.iter_rows(named=True)}
    # major hits: r1 (m1), r5 (m2), r2 (m1); r3 is 3.9 Mb from m1
    assert [rows[("snps", "major", k)]["hits"] for k in (1, 2, 4, 10)] == [0, 1, 2, 3]
    assert rows[("snps", "major", 4)]["planted_found"] == 2
    assert rows[("snps", "major", 10)]["precision"] == pytest.approx(3 / 7)
    assert rows[("snps", "major", 1)]["chance"] == pytest.approx(3 / 7)
    assert [rows[("snps", "any", k)]["hits"] for k in (1, 2, 4, 10)] == [1, 2, 3, 5]
    assert rows[("snps", "any", 10)]["n_planted"] == 4
    assert rows[("snps", "any", 10)]["planted_found"] == 4
    assert [rows[("burden", "burden", k)]["hits"] for k in (1, 2, 4)] == [0, 1, 1]
    assert rows[("burden", "burden", 2)]["precision"] == 0.5
    assert rows[("burden", "burden", 1)]["n_planted"] == 1
    # a window of 0 keeps only exact positions (r3 sits on p2)
    exact = precision_at_k(table, truth, window_kb=0, ks=[10])
    assert exact.filter(pl.col("target") == "any")["hits"].item() == 1
    assert exact.filter(pl.col("target") == "major")["hits"].item() == 0


def test_truth_with_bad_kind_names_row(tmp_path):
    path = _write(tmp_path / "t.tsv", "kind\tid\tchrom\tstart\trole\nsnp\ta\t1\t5\tmajor\n"
                  "indel\tb\t1\t7\tmajor\n")
    with pytest.raises(InputError, match="row 3"):
        read_truth(path)


# --- CLI --------------------------------------------------------------------------------------

def test_cli_writes_every_output_and_refuses_simclr(folds, tmp_path, capsys):
    cache, mods, paths, simclr = folds
    bim = _write(tmp_path / "toy.bim", "".join(f"1\ts{j}\t0\t{(j + 1) * 100_000}\tA\tG\n"
                                               for j in range(16)))
    truth = _write(tmp_path / "truth.tsv", "kind\tid\tchrom\tstart\trole\n"
                   "snp\tq\t1\t310000\tmajor\n")
    out = tmp_path / "out" / "contig"
    args = CONTIG + ["explain", "--images", str(cache), "--out", str(out), "--bim", str(bim),
                     "--truth", str(truth), "--window-kb", "50", "--top-k", "2", "5",
                     "--n-people", "10", "--n-reference", "6", "--steps", "8", "--saliency", "2",
                     "--threads", "1", "--device", "cpu"]
    for p in paths:
        args += ["--checkpoint", str(p)]
    for name, path in mods.items():
        args += ["--modality", f"{name}={path}"]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for suffix in ("features.tsv", "modalities.tsv", "summary.tsv", "precision.tsv",
                   "top_features.png", "modalities.png", "saliency.png"):
        assert (tmp_path / "out" / f"contig.{suffix}").stat().st_size > 0, suffix
    features = pl.read_csv(f"{out}.features.tsv", separator="\t", null_values="NA")
    assert features.columns == ["modality", "feature", "chrom", "pos", "mean_abs_attribution",
                                "mean_attribution", "rank_in_modality", "rank"]
    assert features.height == 19 and features["rank"].to_list() == list(range(1, 20))
    snps = features.filter(pl.col("modality") == "snps")
    assert (snps["pos"] == (snps["feature"].str.slice(1).cast(pl.Int64) + 1) * 100_000).all()
    precision = pl.read_csv(f"{out}.precision.tsv", separator="\t")
    # hits within 50 kb of 310 kb: s2 (300 kb) only
    top5 = snps.sort("rank_in_modality")["feature"].head(5).to_list()
    major5 = precision.filter((pl.col("target") == "major") & (pl.col("k") == 5))
    assert major5["hits"].item() == int("s2" in top5)
    summary = dict(pl.read_csv(f"{out}.summary.tsv", separator="\t").iter_rows())
    assert summary["n_people"] == "10" and summary["steps"] == "8"
    assert "completeness" in done.stderr and "as the reference set" in done.stderr
    # Individual-level output switched off: the earlier run's saliency figure goes away.
    args[args.index("--saliency") + 1] = "0"
    again = subprocess.run(args, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert not (tmp_path / "out" / "contig.saliency.png").exists()
    assert (tmp_path / "out" / "contig.precision.tsv").exists()

    refused = tmp_path / "refused" / "simclr"
    capsys.readouterr()
    status = main(["explain", "--images", str(cache), "--checkpoint", str(simclr),
                   "--modality", f"snps={mods['snps']}", "--out", str(refused)])
    assert status == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "simclr" in lines[0] and lines[0].startswith("contig explain: error")
    assert not refused.parent.exists() or not any(refused.parent.iterdir())


def test_cli_defaults_come_from_the_settings_and_out_of_range_is_refused(capsys):
    import argparse

    from contig.cli import explain as cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--images", "x", "--checkpoint", "m.pt", "--modality", "snps=s.npz",
                              "--out", "o"])
    assert cli.settings_from_args(args) == ExplainSettings()
    for bad in (["--steps", "1"], ["--n-people", "0"], ["--window-kb", "-1"], ["--top-k", "0"],
                ["--saliency", "-1"], ["--noise-sd", "-0.5"]):
        with pytest.raises(SystemExit) as stop:
            main(["explain", "--images", "x", "--checkpoint", "m.pt", "--modality", "snps=s.npz",
                  "--out", "o", *bad])
        assert stop.value.code == 2, bad
    assert "steps >= 2" in capsys.readouterr().err
