"""Fundus-like images drawn from latent traits, with nuisance variation.

An image is rendered at twice its size, then reduced: a circular field on black, fundus colour set
by pigmentation with vignetting and an illumination gradient, a dark macula, a yellow optic disc
(radius from disc_size) on the nasal side (right of the image for a right eye), a vessel tree from
the disc (number of branches and small vessels from vessel_density, calibre from vessel_width,
waviness from vessel_tortuosity), exudates and haemorrhages (number from lesion_count); then
rotation, blur and pixel noise. Every trait is drawn large enough to be seen once the field is
resized to 64 px (the field radius R is then ~32 px, so 0.03 R is one pixel): main vessels are
~2 px wide there, the waves of tortuous vessels ~1-3 px deep and ~9 px long, lesions ~3-5 px
across. Counts (branches, small vessels, lesions) follow their trait up to a rounding, not a
Poisson draw, so an eye shows its traits with little noise of its own.
Everything random about one eye comes from its own seed, so rendering order and worker count do
not change a single byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from contig.simulate.config import TRAITS

FIELD_RADIUS = 0.46
"""Radius of the circular field as a fraction of the image side."""
SUPERSAMPLE = 2
LIGHT_FUNDUS = np.array([235.0, 125.0, 65.0])
DARK_FUNDUS = np.array([110.0, 45.0, 25.0])
DISC_COLOUR = np.array([250.0, 228.0, 150.0])
VESSEL_COLOUR = np.array([105.0, 18.0, 12.0])
VESSEL_OPACITY = 0.9
EXUDATE_COLOUR = (252, 236, 120)
HAEMORRHAGE_COLOUR = (95, 10, 6)
EXUDATE_RADIUS = (0.045, 0.065)
HAEMORRHAGE_RADIUS = (0.06, 0.08)
"""Lesion radii, R fraction (blot haemorrhages are the larger)."""
BRANCH_WIDTH_RATIO = 0.7
"""Calibre of a branch relative to its parent vessel."""
MIN_VESSEL_WIDTH = 0.03
"""Thinnest vessel drawn, R fraction (one pixel at 64 px)."""
MAX_BRANCH_DEPTH = 2
"""Main vessels are depth 0; their branches 1; branches of branches 2 (which do not branch)."""
WAVELENGTH = (0.26, 0.34)
"""Range of the wavelength of a vessel's waviness, R fraction."""
VESSEL_STEP = 0.03
"""Distance between the points of a vessel's path, R fraction."""


@dataclass
class EyeParams:
    """Everything needed to render one eye; lengths are fractions of the field radius R."""

    size: int
    right: bool
    disc_radius: float  # R fraction
    branch_rate: float  # side branches per R of vessel length (depths 0 and 1)
    n_small_vessels: int  # extra thin vessels leaving the disc
    vessel_width: float  # calibre of the main vessels, R fraction
    tortuosity: float  # amplitude of the vessels' waviness, R fraction
    pigmentation: float  # 0 = light orange fundus .. 1 = dark brown
    n_lesions: int
    rotation_deg: float
    brightness: float  # overall gain
    gradient: tuple[float, float]  # illumination slope across the field (x, y)
    blur: float  # Gaussian blur radius in output pixels
    noise_sd: float  # pixel noise SD (0-255 scale)
    seed: int  # vessel paths, lesion positions, pixel noise


def _rounded(x: float, rng: np.random.Generator) -> int:
    """``x`` rounded down or up at random, with mean ``x`` (a count that follows its trait closely)."""
    return int(math.floor(x + rng.random()))


def eye_params(trait_values: np.ndarray, right: bool, size: int, rng: np.random.Generator) -> EyeParams:
    """Map one person's latent traits ``(n_traits,)`` (+ per-eye jitter and nuisances) to parameters."""
    t = dict(zip(TRAITS, trait_values + rng.normal(0, 0.1, len(TRAITS))))
    return EyeParams(
        size=size,
        right=right,
        disc_radius=0.15 * math.exp(0.15 * t["disc_size"]),
        branch_rate=max(0.1, 1.4 + 0.65 * t["vessel_density"]),
        n_small_vessels=_rounded(max(0.0, 6 + 3 * t["vessel_density"]), rng),
        vessel_width=max(0.025, 0.065 + 0.013 * t["vessel_width"]),
        tortuosity=max(0.004, 0.045 + 0.024 * t["vessel_tortuosity"]),
        pigmentation=1 / (1 + math.exp(-1.4 * t["pigmentation"])),
        n_lesions=_rounded(max(0.0, 4 + 2.6 * t["lesion_count"]), rng),
        rotation_deg=float(rng.uniform(-12, 12)),
        brightness=float(rng.uniform(0.85, 1.15)),
        gradient=(float(rng.normal(0, 0.08)), float(rng.normal(0, 0.08))),
        blur=float(rng.uniform(0.0, 0.7)),
        noise_sd=float(rng.uniform(1.5, 5.0)),
        seed=int(rng.integers(0, 2**63 - 1)),
    )


@lru_cache(maxsize=8)
def _grid(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(width, width)`` relative to the image centre, in R units."""
    radius = FIELD_RADIUS * width
    coords = (np.arange(width, dtype=np.float32) + 0.5 - width / 2) / radius
    return coords[None, :].repeat(width, 0), coords[:, None].repeat(width, 1)


@lru_cache(maxsize=8)
def _shading(width: int, right: bool) -> np.ndarray:
    """Vignetting times the dark macula (temporal of the centre): ``(width, width)`` float32."""
    x, y = _grid(width)
    temporal = -1.0 if right else 1.0
    macula = 1 - 0.4 * np.exp(-((x - 0.06 * temporal) ** 2 + y * y) / (2 * 0.13**2))
    return ((1 - 0.35 * (x * x + y * y)) * macula).astype(np.float32)


@lru_cache(maxsize=8)
def _field_edge(size: int) -> np.ndarray:
    """Anti-aliased circular field mask ``(size, size, 1)`` float32: 1 inside, 0 in the corners."""
    x, y = _grid(size)
    edge = np.clip((1 - np.sqrt(x * x + y * y)) * FIELD_RADIUS * size + 0.5, 0, 1)
    return edge[:, :, None].astype(np.float32)


def _background(p: EyeParams, width: int,
                disc_xy: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Fundus colour with vignetting, illumination gradient, macula and optic disc.

    Returns the image ``(w, w, 3)`` float32 and the disc's coverage ``(w, w)`` in [0, 1].
    """
    x, y = _grid(width)
    colour = ((1 - p.pigmentation) * LIGHT_FUNDUS + p.pigmentation * DARK_FUNDUS).astype(np.float32)
    light = _shading(width, p.right) * (1 + p.gradient[0] * x + p.gradient[1] * y)
    dist = np.sqrt((x - disc_xy[0]) ** 2 + (y - disc_xy[1]) ** 2)
    alpha = np.clip((p.disc_radius - dist) / (0.2 * p.disc_radius) + 0.5, 0, 1)
    disc = (DISC_COLOUR * (1 + 0.5 * p.gradient[0] * disc_xy[0])).astype(np.float32)
    return (light * (1 - alpha))[:, :, None] * colour + alpha[:, :, None] * disc, alpha


def _vessel_path(start: tuple[float, float], heading: float, length: float, turn_to: float,
                 p: EyeParams, rng: np.random.Generator) -> np.ndarray:
    """Points ``(n, 2)`` of one vessel in R units: a heading that bends towards ``turn_to``, plus waves.

    The waves (amplitude ``p.tortuosity``) grow in over the first 0.15 R so vessels leave the disc
    smoothly.
    """
    step = VESSEL_STEP
    n = max(2, int(length / step))
    # heading relaxes exponentially towards turn_to, plus a random walk
    diff = math.atan2(math.sin(turn_to - heading), math.cos(turn_to - heading))
    k = np.arange(1, n + 1)
    headings = heading + diff * (1 - np.exp(-0.12 * k)) + np.cumsum(rng.normal(0, 0.04, n))
    cos, sin = np.cos(headings), np.sin(headings)
    arc = step * np.arange(n)
    wave = (p.tortuosity * np.minimum(1.0, arc / 0.15)
            * np.sin(2 * math.pi * arc / rng.uniform(*WAVELENGTH) + rng.uniform(0, 2 * math.pi)))
    path = np.empty((n + 1, 2))
    path[0] = start
    path[1:, 0] = start[0] + np.cumsum(step * cos) - wave * sin
    path[1:, 1] = start[1] + np.cumsum(step * sin) + wave * cos
    return path


def _branch_points(n_points: int, p: EyeParams, rng: np.random.Generator) -> np.ndarray:
    """Indices into a path of ``n_points`` where branches leave: ``branch_rate`` per R, evenly spread.

    One branch per equal stretch of the path (at a random place inside it), so the number of
    branches follows vessel_density closely while their places vary.
    """
    usable = n_points - 5
    if usable < 1:
        return np.zeros(0, dtype=np.int64)
    n_branches = _rounded(p.branch_rate * VESSEL_STEP * (n_points - 1), rng)
    slots = (np.arange(n_branches) + rng.uniform(0.1, 0.9, n_branches)) / max(n_branches, 1)
    return 3 + (slots * usable).astype(np.int64)


def _draw_vessel(draw: ImageDraw.ImageDraw, start: tuple[float, float], heading: float,
                 length: float, turn_to: float, width: float, depth: int, p: EyeParams,
                 rng: np.random.Generator, to_px: _ToPixels) -> None:
    """Draw a vessel and, recursively, its branches (depth <= MAX_BRANCH_DEPTH) onto the mask."""
    path = _vessel_path(start, heading, length, turn_to, p, rng)
    outside = np.flatnonzero(np.hypot(path[:, 0], path[:, 1]) > 1.02)
    if len(outside):
        path = path[: max(2, outside[0] + 1)]
    # random rounding keeps the mean drawn width proportional to vessel_width
    width_px = max(1, _rounded(max(width, MIN_VESSEL_WIDTH) * to_px.scale, rng))
    draw.line((path * to_px.scale + to_px.centre).ravel().tolist(), fill=255, width=width_px,
              joint="curve")
    if depth >= MAX_BRANCH_DEPTH:
        return
    for k in _branch_points(len(path), p, rng):
        side = rng.choice([-1.0, 1.0])
        angle = math.atan2(path[k + 1, 1] - path[k, 1], path[k + 1, 0] - path[k, 0])
        new_heading = angle + side * rng.uniform(0.5, 1.0)
        _draw_vessel(draw, tuple(path[k]), new_heading, length * rng.uniform(0.35, 0.6),
                     new_heading, width * BRANCH_WIDTH_RATIO, depth + 1, p, rng, to_px)


class _ToPixels:
    """Converts R-unit coordinates (origin at the image centre) to (supersampled) pixels."""

    def __init__(self, width: int) -> None:
        self.scale = FIELD_RADIUS * width
        self.centre = width / 2

    def __call__(self, pt) -> tuple[float, float]:
        return (self.centre + pt[0] * self.scale, self.centre + pt[1] * self.scale)


def _vessel_mask(p: EyeParams, disc_xy: tuple[float, float],
                 rng: np.random.Generator) -> np.ndarray:
    """Vessel coverage ``(size, size, 1)`` float32 in [0, 1], drawn supersampled then reduced.

    Four arcade vessels (a vein and an artery above and below) arch from the disc around the
    macula, two shorter ones run nasally, and ``n_small_vessels`` thin ones leave the disc.
    """
    nasal = 1.0 if p.right else -1.0
    width = p.size * SUPERSAMPLE
    mask = Image.new("L", (width, width), 0)
    draw = ImageDraw.Draw(mask)
    to_px = _ToPixels(width)
    temporal_heading = 0.0 if nasal < 0 else math.pi  # towards the macula
    for vertical in (-1.0, 1.0):  # superior and inferior arcades, vein and artery each
        for scale in (1.0, 0.75):
            start_angle = math.atan2(vertical * 0.95, -nasal * 0.3) + rng.normal(0, 0.1)
            _draw_vessel(draw, disc_xy, start_angle, 1.9, temporal_heading, p.vessel_width * scale,
                         0, p, rng, to_px)
        nasal_heading = math.atan2(vertical * 0.6, nasal) + rng.normal(0, 0.15)
        _draw_vessel(draw, disc_xy, nasal_heading, 0.8, nasal_heading,
                     p.vessel_width * BRANCH_WIDTH_RATIO, 1, p, rng, to_px)
    for _ in range(p.n_small_vessels):
        heading = rng.uniform(0, 2 * math.pi)
        _draw_vessel(draw, disc_xy, heading, rng.uniform(0.3, 0.7), heading,
                     p.vessel_width * BRANCH_WIDTH_RATIO**2, MAX_BRANCH_DEPTH, p, rng, to_px)
    return np.asarray(mask.reduce(SUPERSAMPLE), dtype=np.float32)[:, :, None] * (1 / 255)


def render_eye(p: EyeParams) -> np.ndarray:
    """Render one eye: uint8 ``(size, size, 3)``."""
    rng = np.random.default_rng(p.seed)
    nasal = 1.0 if p.right else -1.0
    disc_xy = (0.52 * nasal, float(rng.normal(0, 0.03)))
    image, disc = _background(p, p.size, disc_xy)
    # vessels run over the disc paler, so that its outline stays visible
    alpha = _vessel_mask(p, disc_xy, rng) * (VESSEL_OPACITY * (1 - 0.5 * disc))[:, :, None]
    vessel = (VESSEL_COLOUR * (1 - 0.4 * p.pigmentation)).astype(np.float32)
    image = (image * (1 - alpha) + alpha * vessel) * p.brightness

    picture = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    _draw_lesions(ImageDraw.Draw(picture), p, disc_xy, rng, _ToPixels(p.size))
    picture = picture.rotate(p.rotation_deg, resample=Image.Resampling.BILINEAR,
                             center=(p.size / 2, p.size / 2), fillcolor=(0, 0, 0))
    if p.blur > 0.05:
        picture = picture.filter(ImageFilter.GaussianBlur(p.blur))
    out = np.asarray(picture, dtype=np.float32)
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(p.noise_sd)
    out *= _field_edge(p.size)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _draw_lesions(draw: ImageDraw.ImageDraw, p: EyeParams, disc_xy: tuple[float, float],
                  rng: np.random.Generator, to_px: _ToPixels) -> None:
    """Yellow exudates and dark red blot haemorrhages (~0.1-0.16 R across), away from the disc.

    The two kinds alternate (the first one at random), so each is about half of ``n_lesions``.
    """
    placed, first = 0, int(rng.integers(0, 2))
    while placed < p.n_lesions:
        radius, angle = 0.85 * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        centre = (radius * math.cos(angle), radius * math.sin(angle))
        if math.dist(centre, disc_xy) < p.disc_radius + 0.1:
            continue
        exudate = (placed + first) % 2 == 0
        size = rng.uniform(*(EXUDATE_RADIUS if exudate else HAEMORRHAGE_RADIUS)) * to_px.scale
        cx, cy = to_px(centre)
        colour = EXUDATE_COLOUR if exudate else HAEMORRHAGE_COLOUR
        draw.ellipse([cx - size, cy - size * rng.uniform(0.7, 1.0), cx + size,
                      cy + size * rng.uniform(0.7, 1.0)], fill=colour)
        placed += 1


def write_eye_png(path: str | Path, params: EyeParams) -> None:
    """Render ``params`` and save it as PNG at ``path`` (deterministic bytes)."""
    Image.fromarray(render_eye(params)).save(path, format="PNG", optimize=False, compress_level=1)


def write_eye_pngs(jobs: list[tuple[str, EyeParams]]) -> int:
    """Render a batch of ``(path, params)``; returns how many were written (a worker entry point)."""
    for path, params in jobs:
        write_eye_png(path, params)
    return len(jobs)
