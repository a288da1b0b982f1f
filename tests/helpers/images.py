"""Test images: a textured fundus disc on black, a hand-written 16-bit PNG, a manifest."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def fundus(width: int, height: int, box: tuple[int, int, int, int], colour=(170, 80, 40),
           seed: int = 0) -> Image.Image:
    """A disc inscribed in ``box`` (left, top, right, bottom; inclusive) on black, with texture."""
    image = Image.new("RGB", (width, height))
    ImageDraw.Draw(image).ellipse(box, fill=colour)
    pixels = np.asarray(image).astype(np.int16)
    inside = pixels.max(axis=2) > 0
    noise = np.random.default_rng(seed).integers(-12, 13, size=pixels.shape)
    pixels = np.where(inside[:, :, None], np.clip(pixels + noise, 30, 255), 0)
    return Image.fromarray(pixels.astype(np.uint8))


def png16(values: np.ndarray) -> bytes:
    """A 16-bit PNG (colour type 0 for ``(h, w)``, 2 for ``(h, w, 3)``) written by hand: PIL
    cannot write 16-bit RGB."""
    height, width = values.shape[:2]
    colour_type = 2 if values.ndim == 3 else 0
    raw = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def write_manifest(path: Path, rows: list[tuple[str, ...]], header=("IID", "path", "eye")) -> Path:
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n")
    return path
