"""Encoders: a torchvision ResNet image backbone with a projection head, and one MLP per modality.

Shapes: ``B`` images, ``P`` people, ``m`` features of a modality, ``D`` backbone features
(512 for ResNet-18, 2048 for ResNet-50), ``d`` the shared embedding size (``proj_dim``).

Genetic encoders normalize hidden activations over **present rows only**: the encoder runs on
``x[present]`` and writes zeros for absent people, so a person lacking a modality never enters
that encoder's BatchNorm statistics (the reference fed zero rows through BatchNorm). With a
single present row in a training batch the batch statistics are undefined; that call uses the
running statistics instead. ``norm="layer"`` (per-row LayerNorm) avoids batch statistics
altogether. Against overfitting, a genetic encoder can drop input features (``input_dropout``)
and hidden units (``dropout``, after each hidden layer's normalization); both are off in eval mode.

The image side has one projection head shared by every modality (``image_heads="shared"``) or
one per modality (``"per_modality"``, as the reference implementation); the embeddings used
downstream are the backbone features either way.

Activation checkpointing (``ContIGModel.activation_checkpointing``, a run-time switch that is not
part of the weights or the model file) keeps only the inputs of the backbone's five stages (stem,
layer1..layer4) and recomputes each stage's activations during the backward pass. The recompute
sees the same input and the same random state, and its BatchNorm running-statistics update is
undone (:func:`frozen_norm_statistics`), so weights, gradients and running statistics equal those
of a plain pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from contig.core.errors import InputError
from contig.pretrain.losses import ContrastiveTemperature

BACKBONE_DIMS = {"resnet18": 512, "resnet50": 2048}
IMAGE_HEADS = ("shared", "per_modality")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model (stored in checkpoints as a plain dict)."""

    arch: str = "resnet50"
    proj_hidden: int | None = None  # default: the backbone's feature size (2048 for ResNet-50)
    proj_dim: int = 128
    genetic_features: dict[str, int] = field(default_factory=dict)  # modality -> m
    hidden_layers: int = 1
    genetic_hidden: int = 2048
    genetic_norm: str = "batch"
    temperature: float = 0.1
    learnable_temperature: bool = False
    genetic_dropout: float = 0.0
    input_dropout: float = 0.0
    image_heads: str = "shared"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping) -> ModelConfig:
        """From :meth:`to_dict`'s output; fields missing in older model files take their defaults."""
        return cls(**dict(values))


def build_backbone(arch: str, weights: str | Path | None = None) -> tuple[nn.Module, int]:
    """A torchvision ResNet without its classifier: ``(B, 3, H, W)`` → ``(B, D)``.

    Random init unless ``weights`` names a local file holding a torchvision state dict (``fc.*``
    keys are ignored); it is loaded with ``torch.load(weights_only=True)``. Nothing is downloaded.
    """
    if arch not in BACKBONE_DIMS:
        raise ValueError(f"arch must be one of {sorted(BACKBONE_DIMS)}, got {arch!r}")
    net = getattr(torchvision.models, arch)(weights=None)
    if weights is not None:
        load_backbone_weights(net, weights)
    net.fc = nn.Identity()
    return net, BACKBONE_DIMS[arch]


def load_weights_only(path: str | Path, what: str) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU; any failure is an :class:`InputError`.

    ``weights_only`` unpickles tensors, plain containers and numbers only, so a file that would run
    code when loaded is refused instead. torch's own message for that suggests loading with
    ``weights_only=False``; ours does not, and says which object was refused.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure is a bad input file
        text = str(error)
        lines = [line.strip() for line in text.split("WeightsUnpickler error:", 1)[-1].splitlines()]
        detail = next((line for line in lines if line and "Weights only load failed" not in line),
                      type(error).__name__).split(" was not an allowed")[0][:200]
        if "GLOBAL" in detail:  # a class or function to call: what code-running pickles hold
            raise InputError(f"refusing to load: the {what} holds Python objects other than tensors "
                             f"and plain containers ({detail}); only weights-only torch files are "
                             "read", path) from None
        raise InputError(f"cannot read the {what} as a weights-only torch file "
                         f"({type(error).__name__}: {detail})", path) from None


def load_backbone_weights(net: nn.Module, path: str | Path) -> None:
    """Load a local torchvision ResNet state dict into ``net`` (``fc`` keys skipped, rest strict)."""
    state = load_weights_only(path, "weights file")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError("expected a state dict", path)
    state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()
             if not k.removeprefix("module.").removeprefix("backbone.").startswith("fc.")}
    expected = {k for k in net.state_dict() if not k.startswith("fc.")}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise InputError(f"not a {type(net).__name__} state dict: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}", path)
    try:
        net.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise InputError(f"weights do not fit the architecture ({str(error).splitlines()[-1]})",
                         path) from None


class ProjectionHead(nn.Sequential):
    """``in → hidden → out``: Linear, ReLU, Linear (no normalization, as the reference)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))


class PresentRowsBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d that falls back to running statistics when a training batch has < 2 rows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] < 2:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        return super().forward(x)


class GeneticEncoder(nn.Module):
    """MLP for one modality: input dropout, ``hidden_layers`` × [Linear, ReLU, Norm, Dropout],
    then a projection head.

    ``(P, m)`` features and ``(P,)`` presence → ``(P, d)``; absent rows are zero and never pass
    through the network (see the module docstring).
    """

    def __init__(self, n_features: int, hidden_layers: int = 1, hidden: int = 2048,
                 proj_hidden: int = 2048, out_dim: int = 128, norm: str = "batch",
                 dropout: float = 0.0, input_dropout: float = 0.0) -> None:
        super().__init__()
        if hidden_layers not in (0, 1, 2):
            raise ValueError(f"hidden_layers must be 0, 1 or 2, got {hidden_layers}")
        if norm not in ("batch", "layer"):
            raise ValueError(f"genetic norm must be batch or layer, got {norm!r}")
        for name, p in (("dropout", dropout), ("input dropout", input_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p:g}")
        layers: list[nn.Module] = [nn.Dropout(input_dropout)] if input_dropout else []
        width = n_features
        for _ in range(hidden_layers):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True),
                       PresentRowsBatchNorm(hidden) if norm == "batch" else nn.LayerNorm(hidden)]
            layers += [nn.Dropout(dropout)] if dropout else []
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = ProjectionHead(width, proj_hidden, out_dim)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        if present is None:
            return self.head(self.body(x))
        out = x.new_zeros(x.shape[0], self.out_dim)
        if bool(present.any()):
            rows = self.head(self.body(x[present]))
            out = out.index_put((present.nonzero().squeeze(1),), rows.to(out.dtype))
        return out


@contextlib.contextmanager
def frozen_norm_statistics(module: nn.Module) -> Iterator[None]:
    """Leave the running statistics of every BatchNorm inside ``module`` unchanged by the passes
    run inside (a repeat of an earlier pass must not update them again).

    Momentum 0 keeps mean and variance as they are (new = 1·old + 0·batch) without writing to
    tensors a graph may have saved; the batch count is put back afterwards.
    """
    norms = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.detach().clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        with torch.no_grad():
            for m, (momentum, count) in zip(norms, saved):
                m.momentum = momentum
                m.num_batches_tracked.copy_(count)


def checkpointed(stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``stage(x)`` keeping only ``x`` for the backward pass, which recomputes the stage's
    activations (torch.utils.checkpoint, non-reentrant, random state preserved). The recompute
    leaves BatchNorm running statistics as the first call left them."""
    calls = 0

    def run(inputs: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 1:
            return stage(inputs)
        with frozen_norm_statistics(stage):
            return stage(inputs)

    return checkpoint(run, x, use_reentrant=False, preserve_rng_state=True)


def resnet_stages(net: nn.Module) -> list[nn.Module]:
    """A torchvision ResNet's stem (conv, norm, ReLU, max-pool) and its four residual stages."""
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    return [stem, net.layer1, net.layer2, net.layer3, net.layer4]


def checkpointed_resnet(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` → ``(B, D)`` like ``net(images)`` (its ``fc`` is the identity), each stage
    under :func:`checkpointed`."""
    x = images
    for stage in resnet_stages(net):
        x = checkpointed(stage, x)
    return torch.flatten(net.avgpool(x), 1)


class ContIGModel(nn.Module):
    """Image backbone + projection head(s), genetic encoders (none for image-only methods), and τ.

    ``forward(images (B,3,H,W), genetics {name: (P,m)}, present {name: (P,)})`` returns the image
    projections, genetic projections ``{name: (P, d)}`` and τ (a scalar tensor), so that
    DistributedDataParallel sees every parameter used inside its forward. Image projections are
    ``(B, d)`` with a shared head (``image_head``) and ``{name: (B, d)}`` with one head per
    modality (``image_heads[name]``).
    """

    def __init__(self, config: ModelConfig, weights: str | Path | None = None) -> None:
        super().__init__()
        if config.image_heads not in IMAGE_HEADS:
            raise ValueError(f"image_heads must be one of {IMAGE_HEADS}, got {config.image_heads!r}")
        if config.image_heads == "per_modality" and not config.genetic_features:
            raise ValueError("image_heads per_modality needs at least one genetic modality")
        self.config = config
        self.backbone, self.feature_dim = build_backbone(config.arch, weights)
        hidden = config.proj_hidden or self.feature_dim
        if config.image_heads == "shared":
            self.image_head = ProjectionHead(self.feature_dim, hidden, config.proj_dim)
        else:
            self.image_heads = nn.ModuleDict({
                name: ProjectionHead(self.feature_dim, hidden, config.proj_dim)
                for name in config.genetic_features})
        self.genetic = nn.ModuleDict({
            name: GeneticEncoder(m, config.hidden_layers, config.genetic_hidden, hidden,
                                 config.proj_dim, config.genetic_norm, config.genetic_dropout,
                                 config.input_dropout)
            for name, m in config.genetic_features.items()
        })
        self.temperature = ContrastiveTemperature(config.temperature, config.learnable_temperature)
        self.activation_checkpointing = False  # run-time switch, see the module docstring

    @property
    def per_modality_heads(self) -> bool:
        return self.config.image_heads == "per_modality"

    def image_head_for(self, modality: str) -> nn.Module:
        """The projection head that pairs images with ``modality``'s genetic embeddings."""
        return self.image_heads[modality] if self.per_modality_heads else self.image_head

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(B, D)`` (the embeddings used downstream); stage by stage under
        activation checkpointing when it is on and a training graph is being built."""
        if self.activation_checkpointing and self.training and torch.is_grad_enabled():
            return checkpointed_resnet(self.backbone, images)
        return self.backbone(images)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """Images ``(B, 3, H, W)`` → projections ``(B, d)`` or ``{name: (B, d)}``."""
        return self.project_images(self.features(images))

    def embed_genetics(self, genetics: Mapping[str, torch.Tensor] | None,
                       present: Mapping[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
        """Genetic projections ``{name: (P, d)}`` of ``genetics`` ``{name: (P, m)}``."""
        return {name: self.genetic[name](x, None if present is None else present[name])
                for name, x in (genetics or {}).items()}

    def project_images(self, features: torch.Tensor
                       ) -> torch.Tensor | dict[str, torch.Tensor]:
        """Backbone features ``(B, D)`` → ``(B, d)`` (shared head) or ``{name: (B, d)}``."""
        if self.per_modality_heads:
            return {name: head(features) for name, head in self.image_heads.items()}
        return self.image_head(features)

    def forward(self, images: torch.Tensor, genetics: Mapping[str, torch.Tensor] | None = None,
                present: Mapping[str, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor | dict[str, torch.Tensor], dict[str, torch.Tensor],
                           torch.Tensor]:
        image_proj = self.embed_images(images)
        return image_proj, self.embed_genetics(genetics, present), self.temperature()


def build_model(config: ModelConfig | Mapping, weights: str | Path | None = None) -> ContIGModel:
    """Construct a :class:`ContIGModel` (random init from the current torch seed)."""
    if not isinstance(config, ModelConfig):
        config = ModelConfig.from_dict(config)
    return ContIGModel(config, weights)
