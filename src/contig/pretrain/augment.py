"""Image augmentations, applied batch-wise on the training device.

Shapes: ``B`` images, ``S`` the cached image side, ``size`` the training side.

Loaders hand over uint8 ``(B, S, S, 3)`` pixels; :class:`BatchAugment` turns them into normalized
float ``(B, 3, size, size)`` with parameters drawn from a CPU generator seeded per
(seed, epoch, batch), so results do not depend on the device, the number of loader workers or
the number of ranks, and a run resumed mid-epoch draws exactly what it would have drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

def default_min_crop_scale(image_size: int) -> float:
    """SimCLR's RandomResizedCrop keeps 8–100% of the area at 224 px; on tiny images an 8% crop is
    a few pixels of one colour, so below 96 px we keep at least 25%."""
    return 0.08 if image_size >= 96 else 0.25


def to_float_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(B, S, S, 3)`` → float ``(B, 3, size, size)`` in [0, 1] (antialiased resize)."""
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False).clamp_(0, 1)
    return x


def normalize(x: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalization of ``(B, 3, H, W)`` in [0, 1] (so local ImageNet weights fit)."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype)[None, :, None, None]
    return (x - mean) / std


def eval_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """No augmentation: uint8 ``(B, S, S, 3)`` → normalized float ``(B, 3, size, size)``."""
    return normalize(to_float_images(images, size))


@dataclass
class BatchAugment:
    """Per-image random augmentations applied to a whole batch at once.

    ``method="contig"`` (the reference's): ±``rotation`` degrees rotation, horizontal flip (p 0.5).
    ``method="simclr"``: RandomResizedCrop(area ``min_scale``–1, aspect 3/4–4/3), horizontal flip,
    colour jitter (brightness 0.7, contrast 0.7, saturation 0.7, hue 0.2; p 0.8; applied in that
    fixed order, hue as a rotation about the grey axis of RGB), grayscale (p 0.2), Gaussian blur
    (p 0.5, σ ∈ [0.1, 2.0] · size/224, kernel ≈ 10% of the side).
    Geometry is one ``affine_grid``/``grid_sample`` per batch (out-of-image pixels are black, like
    a fundus background). Random parameters come from a CPU generator, so results are the same on
    any device for a seed.
    """

    method: str
    size: int
    rotation: float = 20.0
    min_scale: float | None = None

    def __call__(self, images: torch.Tensor, generator: torch.Generator, offset: int = 0,
                 total: int | None = None) -> torch.Tensor:
        """uint8 ``(B, S, S, 3)`` on any device → normalized float ``(B, 3, size, size)``.

        Parameters are drawn for ``total`` images (default B) and rows ``offset:offset + B`` are
        used, so a rank's share of a global batch is augmented as in a single process.
        """
        x = to_float_images(images, self.size)
        B, device = x.shape[0], x.device
        total = B if total is None else total
        rand = _sliced_rand(generator, offset, B, total)

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * rand()

        flip = torch.where(rand() < 0.5, -1.0, 1.0)
        theta = torch.zeros(B, 2, 3)
        if self.method == "contig":
            angle = torch.deg2rad(uniform(-self.rotation, self.rotation))
            cos, sin = torch.cos(angle), torch.sin(angle)
            theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
            theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
        elif self.method == "simclr":
            min_scale = self.min_scale if self.min_scale is not None else \
                default_min_crop_scale(self.size)
            area = uniform(min_scale, 1.0)
            aspect = torch.exp(uniform(math.log(3 / 4), math.log(4 / 3)))
            w = torch.sqrt(area * aspect).clamp(max=1.0)
            h = torch.sqrt(area / aspect).clamp(max=1.0)
            theta[:, 0, 0], theta[:, 1, 1] = w * flip, h
            theta[:, 0, 2] = (rand() * 2 - 1) * (1 - w)
            theta[:, 1, 2] = (rand() * 2 - 1) * (1 - h)
        else:
            raise ValueError(f"no augmentation for method {self.method!r}")
        grid = F.affine_grid(theta.to(device, x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.method == "simclr":
            x = self._colour(x, rand)
        return normalize(x)

    def _colour(self, x: torch.Tensor, rand) -> torch.Tensor:  # noqa: ANN001
        device = x.device

        def col(values: torch.Tensor) -> torch.Tensor:
            return values.to(device, x.dtype)[:, None, None, None]

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * rand()

        jitter = col(rand() < 0.8)
        brightness, contrast = col(uniform(0.3, 1.7)), col(uniform(0.3, 1.7))
        saturation, hue = col(uniform(0.3, 1.7)), uniform(-0.2, 0.2)
        grey = col(rand() < 0.2)
        blur = rand() < 0.5
        sigma = uniform(0.1, 2.0) * (x.shape[-1] / 224.0)

        y = (x * brightness).clamp(0, 1)
        mean = _luma(y).mean(dim=(1, 2, 3), keepdim=True)
        y = ((y - mean) * contrast + mean).clamp(0, 1)
        luma = _luma(y)
        y = ((y - luma) * saturation + luma).clamp(0, 1)
        y = _rotate_hue(y, hue.to(device, x.dtype))
        x = torch.where(jitter > 0, y, x)
        x = torch.where(grey > 0, _luma(x).expand_as(x), x)
        if bool(blur.any()):
            x = torch.where(col(blur) > 0, _gaussian_blur(x, sigma.to(device, x.dtype)), x)
        return x


def _sliced_rand(generator: torch.Generator, offset: int, n: int, total: int):  # noqa: ANN202
    """A function drawing ``total`` uniforms per call and returning rows ``offset:offset + n``."""
    def rand() -> torch.Tensor:
        return torch.rand(total, generator=generator)[offset:offset + n]
    return rand


def _luma(x: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` grey level of RGB ``(B, 3, H, W)`` (ITU-R 601 weights)."""
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def _rotate_hue(x: torch.Tensor, hue: torch.Tensor) -> torch.Tensor:
    """Rotate colours about the grey axis by ``hue`` turns ``(B,)`` (Rodrigues' rotation)."""
    angle = hue * 2 * math.pi
    cos, sin = torch.cos(angle), torch.sin(angle)
    k = 1 / math.sqrt(3)
    one_third = (1 - cos) / 3
    # rotation matrix about (1,1,1)/√3: cos·I + sin·[k]× + (1−cos)·kkᵀ
    a = cos + one_third
    b = one_third - k * sin
    c = one_third + k * sin
    m = torch.stack([torch.stack([a, b, c], -1), torch.stack([c, a, b], -1),
                     torch.stack([b, c, a], -1)], -2)  # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", m, x).clamp(0, 1)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a per-image σ ``(B,)``; kernel ≈ 10% of the side, odd."""
    B, C, H, W = x.shape
    k = max(3, int(0.1 * H) // 2 * 2 + 1)
    offsets = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
    kernel = torch.exp(-0.5 * (offsets[None, :] / sigma[:, None].clamp(min=1e-3)) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(C, 0)  # (B·C, k)
    y = x.reshape(1, B * C, H, W)
    pad = k // 2
    y = F.conv2d(F.pad(y, (0, 0, pad, pad), mode="reflect"), kernel[:, None, :, None],
                 groups=B * C)
    y = F.conv2d(F.pad(y, (pad, pad, 0, 0), mode="reflect"), kernel[:, None, None, :],
                 groups=B * C)
    return y.reshape(B, C, H, W)
