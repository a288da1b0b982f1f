"""Contrastive losses against brute-force loops written from the definitions."""

from __future__ import annotations

import math

import pytest
import torch

from contig.pretrain.losses import (
    TAU_MAX,
    TAU_MIN,
    ContrastiveTemperature,
    image_genetics_loss,
    multimodal_loss,
    nt_xent_loss,
)


def _cos(a, b):
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def brute_force_loss(img, gen, person, present, tau, alpha):
    """Loop form of the ContIG loss for one modality (see image_genetics_loss's docstring)."""
    B, P = img.shape[0], gen.shape[0]
    ig, gi = [], []
    for i in range(B):
        p = int(person[i])
        if not present[p]:
            continue
        # image -> genetics: candidates are all present people
        num = math.exp(_cos(img[i], gen[p]) / tau)
        den = sum(math.exp(_cos(img[i], gen[q]) / tau) for q in range(P) if present[q])
        ig.append(-math.log(num / den))
        # genetics -> image: candidates are image i and images of other present people
        den = num + sum(
            math.exp(_cos(img[k], gen[p]) / tau)
            for k in range(B)
            if int(person[k]) != p and present[int(person[k])]
        )
        gi.append(-math.log(num / den))
    return alpha * sum(ig) / len(ig) + (1 - alpha) * sum(gi) / len(gi)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tau,alpha", [(0.1, 0.75), (0.5, 0.5), (1.0, 0.0), (0.07, 1.0)])
def test_loss_equals_brute_force(seed, tau, alpha):
    g = torch.Generator().manual_seed(seed)
    P, d = 7, 5
    person = torch.tensor([0, 0, 1, 2, 3, 3, 4, 5, 6, 6])  # some people have both eyes
    img = torch.randn(len(person), d, generator=g, dtype=torch.float64)
    gen = torch.randn(P, d, generator=g, dtype=torch.float64)
    present = torch.rand(P, generator=g) > 0.3
    present[0] = True
    ours = image_genetics_loss(img, gen, person, present, tau, alpha)
    assert float(ours) == pytest.approx(brute_force_loss(img, gen, person, present, tau, alpha),
                                        rel=1e-10)


def test_one_image_per_person_all_present_is_clip_loss():
    g = torch.Generator().manual_seed(3)
    img, gen = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    logits = torch.nn.functional.normalize(img, dim=1) @ torch.nn.functional.normalize(gen, dim=1).T / 0.1
    target = torch.arange(6)
    clip = 0.75 * torch.nn.functional.cross_entropy(logits, target) + 0.25 * torch.nn.functional.cross_entropy(logits.T, target)
    assert float(image_genetics_loss(img, gen, target, None, 0.1, 0.75)) == pytest.approx(float(clip), rel=1e-6)


def test_absent_person_gets_zero_gradient_from_that_modality():
    g = torch.Generator().manual_seed(4)
    person = torch.tensor([0, 1, 1, 2, 3])
    img = torch.randn(5, 3, generator=g, requires_grad=True)
    gen = torch.randn(4, 3, generator=g, requires_grad=True)
    present = torch.tensor([True, False, True, True])
    image_genetics_loss(img, gen, person, present).backward()
    assert torch.all(gen.grad[1] == 0)
    assert torch.all(img.grad[1:3] == 0)  # the absent person's images
    assert torch.any(gen.grad[0] != 0) and torch.any(img.grad[0] != 0)


def test_other_eye_is_not_a_negative():
    """Person 0's second image, aligned with person 0's genetics, must not count against image 0."""
    g = torch.Generator().manual_seed(5)
    img = torch.randn(4, 3, generator=g, dtype=torch.float64)
    gen = torch.randn(3, 3, generator=g, dtype=torch.float64)
    img[1] = gen[0] * 10
    without_second_eye = image_genetics_loss(img[[0, 2, 3]], gen, torch.tensor([0, 1, 2]), alpha=0.0)
    # the same four images, with image 1 declared a different person (a copy of person 0's genetics)
    as_stranger = image_genetics_loss(img, torch.cat([gen, gen[:1]]), torch.tensor([0, 3, 1, 2]),
                                      alpha=0.0)
    as_same_person = image_genetics_loss(img, gen, torch.tensor([0, 0, 1, 2]), alpha=0.0)
    assert float(as_same_person) < float(as_stranger)
    assert float(without_second_eye) == pytest.approx(
        brute_force_loss(img[[0, 2, 3]], gen, torch.tensor([0, 1, 2]), torch.ones(3, dtype=torch.bool), 0.1, 0.0))


def test_multimodal_loss_averages_modalities_with_present_people():
    g = torch.Generator().manual_seed(6)
    person = torch.tensor([0, 1, 2])
    img = torch.randn(3, 4, generator=g)
    embs = {"snps": torch.randn(3, 4, generator=g), "prs": torch.randn(3, 4, generator=g),
            "burden": torch.randn(3, 4, generator=g)}
    present = {"snps": torch.tensor([True, True, True]), "prs": torch.tensor([True, False, True]),
               "burden": torch.tensor([False, False, False])}
    expected = (image_genetics_loss(img, embs["snps"], person, present["snps"])
                + image_genetics_loss(img, embs["prs"], person, present["prs"])) / 2
    assert float(multimodal_loss(img, embs, person, present)) == pytest.approx(float(expected))


def test_nt_xent_equals_brute_force():
    g = torch.Generator().manual_seed(7)
    z1, z2 = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    z = torch.cat([z1, z2])
    terms = []
    for a in range(8):
        b = (a + 4) % 8
        den = sum(math.exp(_cos(z[a], z[k]) / 0.2) for k in range(8) if k != a)
        terms.append(-math.log(math.exp(_cos(z[a], z[b]) / 0.2) / den))
    assert float(nt_xent_loss(z1, z2, 0.2)) == pytest.approx(sum(terms) / 8, rel=1e-10)


def test_temperature_fixed_or_learnable():
    fixed = ContrastiveTemperature(0.1, learnable=False)
    assert float(fixed()) == pytest.approx(0.1)
    assert not list(fixed.parameters())
    learnable = ContrastiveTemperature(0.1, learnable=True)
    assert len(list(learnable.parameters())) == 1


def brute_force_nt_xent(z1, z2, tau, person=None):
    """Loop form of NT-Xent: view a of image i, positive = the other view of i, negatives = both
    views of every image of another person (every other image when ``person`` is None)."""
    n = z1.shape[0]
    views = [(z1[i], i) for i in range(n)] + [(z2[i], i) for i in range(n)]
    owner = list(range(n)) if person is None else [int(p) for p in person]
    terms = []
    for a, (za, i) in enumerate(views):
        b = (a + n) % (2 * n)
        pos = math.exp(_cos(za, views[b][0]) / tau)
        neg = sum(math.exp(_cos(za, zk) / tau) for zk, k in views if owner[k] != owner[i])
        terms.append(-math.log(pos / (pos + neg)))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("person", [
    [0, 1, 2, 3, 4, 5],           # one image per person: every other image is a negative
    [0, 0, 1, 2, 2, 3],           # two people with both eyes
    [0, 0, 0, 1, 1, 2],           # a person with three images
    [4, 1, 4, 1, 0, 0],           # unsorted, everybody with two
])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_leaves_out_same_person_views(person, tau):
    g = torch.Generator().manual_seed(sum(person) + int(10 * tau))
    z1 = torch.randn(6, 4, generator=g, dtype=torch.float64)
    z2 = torch.randn(6, 4, generator=g, dtype=torch.float64)
    ours = nt_xent_loss(z1, z2, tau, torch.tensor(person))
    assert float(ours) == pytest.approx(brute_force_nt_xent(z1, z2, tau, person), rel=1e-10)
    if len(set(person)) == len(person):  # nobody twice: the original NT-Xent
        assert float(ours) == pytest.approx(float(nt_xent_loss(z1, z2, tau)), rel=1e-12)
    else:  # the other eye was a negative before: the masked loss differs
        assert float(ours) != pytest.approx(float(nt_xent_loss(z1, z2, tau)), rel=1e-6)


def test_multimodal_loss_with_one_image_head_per_modality():
    g = torch.Generator().manual_seed(8)
    person = torch.tensor([0, 0, 1, 2])
    img = {"snps": torch.randn(4, 5, generator=g), "prs": torch.randn(4, 5, generator=g)}
    gen = {"snps": torch.randn(3, 5, generator=g), "prs": torch.randn(3, 5, generator=g)}
    present = {"snps": torch.ones(3, dtype=torch.bool), "prs": torch.tensor([True, False, True])}
    expected = (image_genetics_loss(img["snps"], gen["snps"], person, present["snps"])
                + image_genetics_loss(img["prs"], gen["prs"], person, present["prs"])) / 2
    assert float(multimodal_loss(img, gen, person, present)) == pytest.approx(float(expected))


@pytest.mark.parametrize("tau", [0.0, 0.005, 1.5, 2.0])
def test_temperature_outside_bounds_is_refused_not_clamped(tau):
    with pytest.raises(ValueError, match="temperature must be in"):
        ContrastiveTemperature(tau)
    for edge in (TAU_MIN, TAU_MAX):
        assert float(ContrastiveTemperature(edge)()) == pytest.approx(edge)
