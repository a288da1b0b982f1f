"""Encoders: backbone sizes and local weights, genetic MLP depth, statistics over present rows."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from contig.core.errors import InputError
from contig.pretrain.models import GeneticEncoder, ModelConfig, build_backbone, build_model


def test_backbone_feature_sizes_and_local_weights(tmp_path):
    net, dim = build_backbone("resnet18")
    assert dim == 512 and net(torch.rand(2, 3, 32, 32)).shape == (2, 512)
    torch.manual_seed(1)
    source = torchvision.models.resnet18(weights=None).eval()
    torch.save(source.state_dict(), tmp_path / "r18.pt")
    loaded, _ = build_backbone("resnet18", tmp_path / "r18.pt")
    loaded.eval()
    x = torch.rand(2, 3, 32, 32)
    source.fc = nn.Identity()
    torch.testing.assert_close(loaded(x), source(x))
    with pytest.raises(InputError, match="not a ResNet state dict"):
        build_backbone("resnet50", tmp_path / "r18.pt")
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(InputError, match="weights-only"):
        build_backbone("resnet18", tmp_path / "junk.pt")


@pytest.mark.parametrize("hidden_layers", [0, 1, 2])
def test_genetic_mlp_depth(hidden_layers):
    enc = GeneticEncoder(10, hidden_layers, hidden=8, proj_hidden=6, out_dim=4)
    linears = [m for m in enc.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == hidden_layers + 2  # hidden layers + projection head's two
    assert linears[0].in_features == 10 and linears[-1].out_features == 4
    assert sum(isinstance(m, nn.BatchNorm1d) for m in enc.modules()) == hidden_layers
    assert enc(torch.rand(5, 10)).shape == (5, 4)


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_absent_rows_do_not_touch_statistics_or_outputs(norm):
    torch.manual_seed(0)
    enc = GeneticEncoder(6, 2, hidden=8, proj_hidden=8, out_dim=3, norm=norm).train()
    reference = GeneticEncoder(6, 2, hidden=8, proj_hidden=8, out_dim=3, norm=norm).train()
    reference.load_state_dict(enc.state_dict())
    x = torch.randn(7, 6)
    present = torch.tensor([1, 0, 1, 1, 0, 1, 1], dtype=torch.bool)
    garbage = x.clone()
    garbage[~present] = 1e3  # whatever absent rows hold must not matter
    out = enc(garbage, present)
    expected = reference(x[present])  # an encoder that only ever saw the present rows
    torch.testing.assert_close(out[present], expected)
    assert torch.equal(out[~present], torch.zeros(2, 3))
    for (name, a), b in zip(enc.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)  # running mean/var identical
    # no gradient reaches absent rows
    xg = garbage.clone().requires_grad_(True)
    enc(xg, present).sum().backward()
    assert torch.equal(xg.grad[~present], torch.zeros(2, 6))


def test_single_present_row_uses_running_statistics():
    enc = GeneticEncoder(4, 1, hidden=8, proj_hidden=8, out_dim=3).train()
    present = torch.tensor([False, True, False])
    out = enc(torch.randn(3, 4), present)
    assert torch.isfinite(out).all() and out[1].abs().sum() > 0
    bn = [m for m in enc.modules() if isinstance(m, nn.BatchNorm1d)][0]
    assert torch.equal(bn.running_mean, torch.zeros(8))  # not updated from one row
    assert torch.equal(enc(torch.randn(3, 4), torch.zeros(3, dtype=torch.bool)), torch.zeros(3, 3))


def test_contig_model_shapes_and_config_round_trip():
    cfg = ModelConfig(arch="resnet18", proj_hidden=32, proj_dim=16,
                      genetic_features={"snps": 12, "prs": 5}, genetic_hidden=24,
                      learnable_temperature=True, temperature=0.2)
    model = build_model(cfg.to_dict())
    images = torch.rand(5, 3, 32, 32)
    genetics = {"snps": torch.rand(3, 12), "prs": torch.rand(3, 5)}
    present = {"snps": torch.ones(3, dtype=torch.bool), "prs": torch.tensor([True, False, True])}
    img, gen, tau = model(images, genetics, present)
    assert img.shape == (5, 16) and gen["snps"].shape == gen["prs"].shape == (3, 16)
    assert float(tau.detach()) == pytest.approx(0.2) and tau.requires_grad
    assert model.features(images).shape == (5, 512)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_input_and_hidden_dropout_where_they_belong():
    """Train mode: the same draws as F.dropout on the inputs, then on the normalized hidden
    units; eval mode: no dropout at all."""
    torch.manual_seed(0)
    enc = GeneticEncoder(12, 1, hidden=10, proj_hidden=8, out_dim=4, norm="layer", dropout=0.5,
                         input_dropout=0.2).train()
    linear, _, norm = [m for m in enc.body if not isinstance(m, nn.Dropout)]
    x = torch.randn(6, 12)
    torch.manual_seed(7)
    got = enc(x)
    torch.manual_seed(7)
    h = nn.functional.dropout(x, 0.2, training=True)
    h = nn.functional.dropout(norm(torch.relu(linear(h))), 0.5, training=True)
    torch.testing.assert_close(got, enc.head(h))
    enc.eval()
    torch.testing.assert_close(enc(x), enc.head(norm(torch.relu(linear(x)))))
    assert not any(isinstance(m, nn.Dropout) for m in GeneticEncoder(12, 2, hidden=10).modules())
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        GeneticEncoder(12, 1, dropout=1.0)


def test_image_heads_shared_or_one_per_modality():
    base = dict(arch="resnet18", proj_hidden=32, proj_dim=16, genetic_hidden=24,
                genetic_features={"snps": 12, "prs": 5})
    images = torch.rand(5, 3, 32, 32)
    genetics = {"snps": torch.rand(3, 12), "prs": torch.rand(3, 5)}
    present = {n: torch.ones(3, dtype=torch.bool) for n in genetics}
    shared = build_model(ModelConfig(**base)).eval()
    img, _, _ = shared(images, genetics, present)
    assert img.shape == (5, 16) and shared.image_head_for("prs") is shared.image_head
    torch.manual_seed(1)
    per = build_model(ModelConfig(**base, image_heads="per_modality")).eval()
    img, _, _ = per(images, genetics, present)
    assert set(img) == {"snps", "prs"} and img["snps"].shape == (5, 16)
    features = per.features(images)
    for name in ("snps", "prs"):  # each modality's projections come from its own head
        torch.testing.assert_close(img[name], per.image_heads[name](features))
        assert per.image_head_for(name) is per.image_heads[name]
    assert not torch.allclose(img["snps"], img["prs"])
    assert not any(k.startswith("image_head.") for k in per.state_dict())
    with pytest.raises(ValueError, match="per_modality needs"):
        build_model(ModelConfig(arch="resnet18", image_heads="per_modality"))


def test_model_config_of_older_files_takes_new_defaults():
    old = ModelConfig(arch="resnet18").to_dict()
    for key in ("genetic_dropout", "input_dropout", "image_heads"):
        old.pop(key)
    assert ModelConfig.from_dict(old) == ModelConfig(arch="resnet18")
