"""One fundus image: decode, find the bright fundus field, crop it square and resize.

:func:`preprocess_image` ``(path, size, convert) -> (pixels | None, info)`` never raises for a bad
file; :func:`find_field` ``(rgb) -> ((top, left, bottom, right), brightness) | None`` and
:func:`square_crop_box` ``(box, height, width)`` are its steps.

Grayscale and 16-bit images are not converted by default: a grayscale photograph among colour
fundus images is usually a red-free image from another protocol, and silently mixing it in
changes what the encoder learns. ``convert={"16bit"}`` keeps the high byte of 16-bit images,
``convert={"grayscale"}`` repeats the gray channel three times.

JPEGs are decoded at reduced scale (``Image.draft``) when the image is at least twice the target
size.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

CONVERSIONS = ("16bit", "grayscale")

# Field detection: a pixel is in the field when its brightest channel exceeds
# max(FIELD_MIN_LEVEL, FIELD_RELATIVE_LEVEL * 99th percentile); JPEG noise in the black surround
# stays below ~10. The largest 8-connected bright region must cover MIN_FIELD_FRACTION of the image.
FIELD_MIN_LEVEL = 16
FIELD_RELATIVE_LEVEL = 0.1
MIN_FIELD_FRACTION = 0.05
DETECTION_MAX_SIDE = 512  # detection runs on a strided thumbnail no larger than this


def find_field(rgb: np.ndarray) -> tuple[tuple[int, int, int, int], float] | None:
    """Locate the bright fundus field in ``rgb`` ``(height, width, 3)`` uint8.

    Returns ``((top, left, bottom, right), brightness)`` -- the bounding box (bottom/right
    exclusive) of the largest bright 8-connected region and the mean luminance of that region --
    or None when no region covers :data:`MIN_FIELD_FRACTION` of the image.
    """
    height, width = rgb.shape[:2]
    step = max(1, math.ceil(max(height, width) / DETECTION_MAX_SIDE))
    small = rgb[::step, ::step]
    level = np.maximum(np.maximum(small[..., 0], small[..., 1]), small[..., 2])
    counts = np.bincount(level.ravel(), minlength=256)
    p99 = int(np.searchsorted(np.cumsum(counts), 0.99 * level.size))  # 99th percentile of uint8
    threshold = max(FIELD_MIN_LEVEL, FIELD_RELATIVE_LEVEL * p99)
    labels, n_regions = ndimage.label(level > threshold, structure=np.ones((3, 3), dtype=bool))
    if n_regions == 0:
        return None
    flat = labels.ravel()
    sizes = np.bincount(flat)
    sizes[0] = 0
    largest = int(sizes.argmax())
    if sizes[largest] < MIN_FIELD_FRACTION * labels.size:
        return None
    rows, cols = ndimage.find_objects(labels, max_label=largest)[largest - 1]
    box = (rows.start * step, cols.start * step,
           min(height, rows.stop * step), min(width, cols.stop * step))
    luma_sums = np.bincount(flat, weights=luminance(small).ravel(), minlength=largest + 1)
    return box, float(luma_sums[largest] / sizes[largest])


def luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of ``(..., 3)`` RGB values, as float64 of shape ``(...)``."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def square_crop_box(box: tuple[int, int, int, int], height: int,
                    width: int) -> tuple[int, int, int, int]:
    """The square ``(left, upper, right, lower)`` (PIL order) around ``box`` (top, left, bottom,
    right) found in a ``height`` × ``width`` image.

    Its side is the box's longer side, so a field clipped by the image's edges (common in fundus
    cameras: top and bottom) keeps its full extent; PIL pads the part outside the image with
    black. Along the shorter side the box is centred, except when it touches one image edge only:
    then the far edge of the field is the real one and the square is anchored to it.
    """
    top, left, bottom, right = box
    side = max(bottom - top, right - left)

    def place(start: int, stop: int, extent: int) -> int:
        if start == 0 and stop < extent:  # clipped at the low edge only
            return stop - side
        if stop == extent and start > 0:  # clipped at the high edge only
            return start
        return start - (side - (stop - start)) // 2

    upper, left_edge = place(top, bottom, height), place(left, right, width)
    return left_edge, upper, left_edge + side, upper + side


def centre_crop_box(height: int, width: int) -> tuple[int, int, int, int]:
    """The largest centred square ``(left, upper, right, lower)`` in a ``height`` × ``width`` image."""
    side = min(height, width)
    upper, left = (height - side) // 2, (width - side) // 2
    return left, upper, left + side, upper + side


def image_depth_and_colour(image: Image.Image) -> tuple[bool, bool]:
    """(is 16-bit or deeper, is grayscale) of an opened, not yet decoded image."""
    high_depth = image.mode.startswith("I") or any(
        isinstance(tile.args, str) and ";16" in tile.args for tile in (image.tile or []))
    grayscale = image.mode in ("1", "L", "LA", "La") or image.mode.startswith("I")
    if image.mode == "P":
        palette = image.getpalette() or []
        triples = np.asarray(palette[: len(palette) // 3 * 3]).reshape(-1, 3)
        grayscale = bool(len(triples)) and bool((triples == triples[:, :1]).all())
    return high_depth, grayscale


def to_rgb8(image: Image.Image) -> np.ndarray:
    """Decode ``image`` to ``(height, width, 3)`` uint8 RGB; 16-bit values keep their high byte."""
    if image.mode.startswith("I"):
        values = np.asarray(image).astype(np.int64)
        gray = np.clip(values >> 8, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    # 16-bit RGB PNGs are already reduced to their high byte by PIL's decoder.
    return np.asarray(image.convert("RGB"))


def preprocess_image(path: str | Path, size: int,
                     convert: Collection[str] = ()) -> tuple[np.ndarray | None, dict]:
    """Decode, crop to the fundus field and resize one image.

    Never raises for a bad file: returns ``(pixels, info)``, ``pixels`` ``(size, size, 3)`` uint8 RGB,
    or None when the file
    is unusable, then ``info["problem"]`` says why. Otherwise ``info`` has ``crop`` ("field" or
    "centre"), ``source`` (None, "16bit", "grayscale" or "16bit+grayscale") and ``brightness``
    (mean luminance of the field, or of the whole image after a centre crop).
    """
    try:
        image = Image.open(path)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        return None, {"problem": f"not a readable image ({type(error).__name__}: {error})"}
    with image:
        if image.format not in ("PNG", "JPEG"):
            return None, {"problem": f"not a PNG or JPEG (format {image.format})"}
        high_depth, grayscale = image_depth_and_colour(image)
        source = "+".join(name for name, flag in (("16bit", high_depth), ("grayscale", grayscale))
                          if flag) or None
        refused = [name for name, flag in (("16bit", high_depth), ("grayscale", grayscale))
                   if flag and name not in convert]
        if refused:
            return None, {"problem": f"{' '.join(refused)} image (mode {image.mode}); "
                                     f"allow with --convert {' '.join(refused)}"}
        if image.format == "JPEG":
            # Decode at 1/2, 1/4 or 1/8 scale when that still leaves >= size pixels per side.
            image.draft(image.mode, (size, size))
        try:
            rgb = to_rgb8(image)
        except (OSError, ValueError, SyntaxError) as error:
            return None, {"problem": f"corrupt image data ({type(error).__name__}: {error})"}
    found = find_field(rgb)
    if found is None:
        crop, box = "centre", centre_crop_box(*rgb.shape[:2])
        step = max(1, math.ceil(max(rgb.shape[:2]) / DETECTION_MAX_SIDE))
        brightness = float(luminance(rgb[::step, ::step]).mean())
    else:
        (field_box, brightness), crop = found, "field"
        box = square_crop_box(field_box, *rgb.shape[:2])
    resized = Image.fromarray(rgb).crop(box).resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(resized), {"crop": crop, "source": source, "brightness": brightness}
