"""Person records, joins, splits, batches and augmentations, against direct computations."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import torch

from contig.core.errors import InputError
from contig.pretrain.augment import BatchAugment, _gaussian_blur, _rotate_hue, eval_images
from contig.pretrain.data import (
    PersonBatchDataset,
    PersonImages,
    assign_folds,
    build_cohort,
    epoch_batches,
    fold_split,
    rank_share,
    read_image_cache,
    split_by_fraction,
)
from contig.scores.modality import Modality


def index_table(people_eyes: dict[str, list[str]]) -> pl.DataFrame:
    rows = []
    for iid, eyes in people_eyes.items():
        for eye in eyes:
            rows.append((len(rows), iid, eye, f"{iid}_{eye}.png"))
    return pl.DataFrame(rows, schema=["row", "IID", "eye", "path"], orient="row")


@pytest.fixture
def cohort_inputs():
    index = index_table({"c": ["left", "right"], "a": ["right"], "b": ["left", "right"],
                         "d": ["left"]})
    snps = Modality(np.array(["b", "a", "c", "z"]), np.array(["s1", "s2"]),
                    np.array([[1, 2], [3, 4], [5, 6], [7, 8]], np.float32))
    burden = Modality(np.array(["c", "d"]), np.array(["g1", "g2", "g3"]),
                      sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0]], np.float32)))
    return index, {"snps": snps, "burden": burden}


def test_inner_and_outer_join(cohort_inputs):
    index, mods = cohort_inputs
    inner, report = build_cohort(index, mods, "inner")
    assert inner.iid.tolist() == ["c"]
    assert any("dropped 3 imaged people lacking some modality" in r for r in report)
    assert any("1 people with snps but no image" in r for r in report)
    outer, _ = build_cohort(index, mods, "outer")
    assert outer.iid.tolist() == ["a", "b", "c", "d"]
    X, present = outer.genetics["snps"].rows(np.arange(4))
    assert present.tolist() == [True, True, True, False]
    assert X.tolist() == [[3, 4], [1, 2], [5, 6], [0, 0]]
    Xb, pb = outer.genetics["burden"].rows(np.arange(4))
    assert pb.tolist() == [False, False, True, True]
    assert Xb.tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 1], [0, 1, 0]]
    # both eyes of a person stay together, in cache rows
    rows, owner = outer.images.gather(np.array([2, 0]))
    assert sorted(rows[owner == 0].tolist()) == [0, 1] and rows[owner == 1].tolist() == [2]


def test_duplicate_iid_in_modality_is_an_input_error(cohort_inputs):
    index, mods = cohort_inputs
    mods["snps"] = Modality(np.array(["a", "a"]), np.array(["s"]), np.ones((2, 1), np.float32))
    with pytest.raises(InputError, match="appears 2 times"):
        build_cohort(index, mods, "outer", sources={"snps": "snps.npz"})


def test_plain_split_sizes_disjoint_and_order_free():
    iid = np.array([f"P{i}" for i in range(101)])
    sets = split_by_fraction(iid, (0.7, 0.1, 0.2), seed=1)
    assert {s: int((sets == s).sum()) for s in ("train", "val", "test")} == \
        {"train": 71, "val": 10, "test": 20}
    shuffled = np.random.default_rng(0).permutation(101)
    again = split_by_fraction(iid[shuffled], (0.7, 0.1, 0.2), seed=1)
    assert dict(zip(iid[shuffled], again)) == dict(zip(iid, sets))
    assert not np.array_equal(split_by_fraction(iid, (0.7, 0.1, 0.2), seed=2), sets)
    with pytest.raises(ValueError):
        split_by_fraction(iid, (0.7, 0.2, 0.2), seed=1)


def test_folds_partition_people_and_hold_out_fold_k():
    iid = np.array([f"P{i}" for i in range(53)])
    folds = assign_folds(iid, 5, seed=3)
    assert sorted(np.bincount(folds).tolist()) == [10, 10, 11, 11, 11]
    for k in range(5):
        sets = fold_split(iid, folds, k, 0.1, seed=3)
        assert np.array_equal(sets == "test", folds == k)
        assert int((sets == "val").sum()) == round(0.1 * int((folds != k).sum()))
    # every person is held out by exactly one fold model
    held = np.stack([fold_split(iid, folds, k, 0.1, 3) == "test" for k in range(5)])
    assert (held.sum(0) == 1).all()


def test_epoch_batches_and_rank_shares():
    a = epoch_batches(23, 5, seed=0, epoch=0)
    assert len(a) == 4 and all(len(b) == 5 for b in a)
    assert len(np.unique(np.concatenate(a))) == 20
    assert [b.tolist() for b in a] == [b.tolist() for b in epoch_batches(23, 5, 0, 0)]
    assert [b.tolist() for b in a] != [b.tolist() for b in epoch_batches(23, 5, 0, 1)]
    assert np.concatenate(epoch_batches(7, 5, 0, 0, shuffle=False)).tolist() == list(range(7))
    assert len(epoch_batches(3, 5, 0, 0)) == 1  # fewer people than a batch: one batch
    batch = np.arange(10, 17)
    assert np.concatenate([rank_share(batch, r, 3) for r in range(3)]).tolist() == batch.tolist()


def test_dataset_items_match_the_cache(tmp_path, cohort_inputs):
    index, mods = cohort_inputs
    cache = np.random.default_rng(0).integers(0, 256, (index.height, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "c.npy", cache)
    index.write_csv(tmp_path / "c.index.tsv", separator="\t")
    images, idx = read_image_cache(tmp_path / "c")
    assert images.shape == cache.shape and idx["eye"].to_list() == index["eye"].to_list()
    cohort, _ = build_cohort(idx, mods, "outer")
    people = np.array([3, 1, 2])
    ds = PersonBatchDataset(cohort, tmp_path / "c", [people])
    item = ds[0]
    B = int(cohort.images.n_images(people).sum())
    assert item["images"].shape == (B, 8, 8, 3) and item["global_images"] == B
    for k in range(B):
        p = people[int(item["image_person"][k])]
        own_rows = index.filter(pl.col("IID") == cohort.iid[p])["row"].to_list()
        assert any(np.array_equal(item["images"][k].numpy(), cache[r]) for r in own_rows)
    X, present = cohort.genetics["snps"].rows(people)
    assert torch.equal(item["genetic/snps"], torch.from_numpy(X))
    assert item["present/snps"].tolist() == present.tolist()
    # rank shares: contiguous slices of the global batch with the right image offset
    shares = [PersonBatchDataset(cohort, tmp_path / "c", [people], rank=r, world_size=2)[0]
              for r in range(2)]
    assert torch.equal(torch.cat([s["images"] for s in shares]), item["images"])
    assert int(shares[1]["image_offset"]) == len(shares[0]["images"])


def test_bad_eye_label_is_reported(tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((1, 4, 4, 3), np.uint8))
    index_table({"a": ["middle"]}).write_csv(tmp_path / "c.index.tsv", separator="\t")
    with pytest.raises(InputError, match="row 2.*eye"):
        read_image_cache(tmp_path / "c")


def test_contig_augmentation_without_rotation_is_identity_or_mirror():
    images = torch.randint(0, 256, (12, 10, 10, 3), dtype=torch.uint8)
    aug = BatchAugment("contig", 10, rotation=0.0)
    out = aug(images, torch.Generator().manual_seed(0))
    plain = eval_images(images, 10)
    flipped = torch.flip(plain, dims=[-1])
    same = [(out[i] - plain[i]).abs().max() < 1e-4 for i in range(12)]
    mirror = [(out[i] - flipped[i]).abs().max() < 1e-4 for i in range(12)]
    assert all(s or m for s, m in zip(same, mirror)) and any(same) and any(mirror)


def test_augmentations_are_seeded_and_share_draws_across_ranks():
    images = torch.randint(0, 256, (9, 24, 24, 3), dtype=torch.uint8)
    for method in ("contig", "simclr"):
        aug = BatchAugment(method, 20)
        a = aug(images, torch.Generator().manual_seed(5))
        assert a.shape == (9, 3, 20, 20) and torch.isfinite(a).all()
        assert torch.equal(a, aug(images, torch.Generator().manual_seed(5)))
        assert not torch.equal(a, aug(images, torch.Generator().manual_seed(6)))
        part = aug(images[4:], torch.Generator().manual_seed(5), offset=4, total=9)
        torch.testing.assert_close(part, a[4:])


def test_hue_rotation_and_blur_against_closed_forms():
    x = torch.rand(2, 3, 5, 5)
    torch.testing.assert_close(_rotate_hue(x, torch.zeros(2)), x.clamp(0, 1))
    # a third of a turn about the grey axis maps R → G → B → R
    torch.testing.assert_close(_rotate_hue(x, torch.full((2,), 1 / 3)), x[:, [2, 0, 1]],
                               atol=1e-5, rtol=0)
    flat = torch.full((2, 3, 30, 30), 0.4)
    torch.testing.assert_close(_gaussian_blur(flat, torch.tensor([0.5, 2.0])), flat)
    spike = torch.zeros(1, 3, 31, 31)
    spike[..., 15, 15] = 1
    blurred = _gaussian_blur(spike, torch.tensor([1.0]))
    assert float(blurred.sum()) == pytest.approx(3.0, rel=1e-5)
    # separable Gaussian: value at (15, 16) / (15, 15) = exp(-1/2σ²)
    assert float(blurred[0, 0, 15, 16] / blurred[0, 0, 15, 15]) == pytest.approx(math.exp(-0.5))


def test_person_images_from_index_groups_eyes():
    people = PersonImages.from_index(index_table({"b": ["right", "left"], "a": ["left"]}))
    assert people.iid.tolist() == ["a", "b"]
    assert people.n_images().tolist() == [1, 2]
    assert people.eye[people.offsets[1]:people.offsets[2]].tolist() == ["left", "right"]
