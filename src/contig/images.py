"""Fundus image preprocessing: validate the manifest, crop the fundus field, resize, cache as uint8.

Public API (names are stable; other stages call them):

- :func:`build_image_cache` ``(manifest, out, size, ...) -> ImageCacheResult``: the whole stage
  behind ``contig images``. Writes, all or nothing (temporary names renamed on success):

  - ``OUT.npy``: ``(n_images, size, size, 3)`` uint8 RGB, a plain ``.npy`` to open memory-mapped;
  - ``OUT.index.tsv``: ``row IID eye path crop source`` -- ``row`` is the index into ``OUT.npy``,
    ``eye`` is ``left``/``right`` (``NA`` without an eye column), ``path`` as written in the
    manifest, ``crop`` is ``field`` or ``centre`` (no fundus field found: centre crop),
    ``source`` what the file held when it was not 8-bit RGB (``16bit``, ``grayscale``,
    ``16bit+grayscale``; ``NA`` otherwise);
  - ``OUT.excluded.tsv``: ``row IID eye path reason``, one line per dropped manifest row
    (``row`` = manifest line, header = 1); header only when nothing was dropped;
  - ``OUT.qc.tsv``: ``check removed changed remaining``, one line per check in the order run;
  - ``OUT.preview.png``: the first 16 cached images in a 4-column grid.

- :func:`load_image_cache` ``(prefix) -> (images, index)``: ``images`` is the read-only
  ``np.memmap`` ``(n_images, S, S, 3)`` uint8 and ``index`` the polars table of ``OUT.index.tsv``
  (``row`` Int64, one line per image, in the array's order).

- :func:`find_field` ``(rgb) -> ((top, left, bottom, right), brightness) | None``,
  :func:`square_crop_box` ``(box, height, width)`` and :func:`preprocess_image`
  ``(path, size, convert) -> (pixels | None, info)``: the per-image steps.

Input problems and what happens to them (``on_error``):

- *header problems* (no ``IID`` or ``path`` column, unreadable manifest): always an
  :class:`~contig.errors.InputError`, whatever ``on_error`` says;
- *row problems*: an empty IID/path, an ``eye`` that is not left/right, a path escaping the
  manifest's folder as written or through a symbolic link (unless ``allow_outside_root``),
  a duplicate row (same IID and eye, or the
  same file; the first one is kept), a missing or zero-byte file, a file that is not a decodable
  PNG/JPEG, and a grayscale or 16-bit image that ``convert`` does not allow: with
  ``on_error="fail"`` the first one (checks run in the order of ``OUT.qc.tsv``, rows in file
  order within a check) raises an InputError naming the manifest, row and column, and nothing is
  written; with ``on_error="exclude"`` the row is dropped and listed in ``OUT.excluded.tsv``;
- *filters* (never errors, always listed in ``OUT.excluded.tsv``): people absent from ``keep``
  (e.g. the QC'd .fam: genotype QC removing someone is not an input error) and brightness
  outliers (mean brightness of the field more than ``brightness_z`` robust z-scores from the
  median).

Grayscale and 16-bit images are not converted by default: a grayscale photograph among colour
fundus images is usually a red-free image from another protocol, and silently mixing it in
changes what the encoder learns. ``convert={"16bit"}`` keeps the high byte of 16-bit images,
``convert={"grayscale"}`` repeats the gray channel three times; converted images are counted in
``OUT.qc.tsv`` and marked in the index's ``source`` column.

Speed: JPEGs are decoded at reduced scale (``Image.draft``) when the image is at least twice the
target size; images are processed by a pool of worker processes that write their rows straight
into the memory-mapped output, in manifest order whatever the number of workers.
"""

from __future__ import annotations

import io
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from contig.atomic import atomic_path, atomic_paths
from contig.errors import InputError
from contig.tables import read_tsv

log = logging.getLogger("contig.images")

EYES = ("left", "right")
CONVERSIONS = ("16bit", "grayscale")
INDEX_COLUMNS = ["row", "IID", "eye", "path", "crop", "source"]
EXCLUDED_COLUMNS = ["row", "IID", "eye", "path", "reason"]
QC_COLUMNS = ["check", "removed", "changed", "remaining"]

# Field detection: a pixel is in the field when its brightest channel exceeds
# max(FIELD_MIN_LEVEL, FIELD_RELATIVE_LEVEL * 99th percentile); JPEG noise in the black surround
# stays below ~10. The largest 8-connected bright region must cover MIN_FIELD_FRACTION of the image.
FIELD_MIN_LEVEL = 16
FIELD_RELATIVE_LEVEL = 0.1
MIN_FIELD_FRACTION = 0.05
DETECTION_MAX_SIDE = 512  # detection runs on a strided thumbnail no larger than this
PREVIEW_TILES = 16
PREVIEW_TILE_MAX = 128


@dataclass
class ManifestRow:
    """One manifest line: ``line`` is its 1-based line number (header = 1)."""

    line: int
    iid: str | None
    eye: str | None
    path: str | None
    file: Path | None = None  # resolved file path


@dataclass
class Exclusion:
    """A manifest row dropped by a check, with the reason (and the column it concerns)."""

    row: ManifestRow
    reason: str
    column: str | None = None


@dataclass
class ImageCacheResult:
    """What :func:`build_image_cache` wrote and what each check did."""

    index: pl.DataFrame
    excluded: pl.DataFrame
    qc: pl.DataFrame
    paths: dict[str, Path]
    seconds: float
    images_per_second: float


@dataclass
class _Checks:
    """Bookkeeping for the checks: fails fast or collects exclusions, and fills the QC table."""

    manifest: Path
    on_error: str
    excluded: list[Exclusion] = field(default_factory=list)
    qc_rows: list[tuple[str, int, int, int]] = field(default_factory=list)

    def problems(self, name: str, rows: list[ManifestRow], bad: dict[int, tuple[str, str]],
                 changed: int = 0) -> list[ManifestRow]:
        """Apply a row check: ``bad`` maps positions in ``rows`` to (column, reason).

        With on_error="fail" the first bad row raises; otherwise bad rows are dropped and recorded.
        """
        if bad and self.on_error == "fail":
            position = min(bad)
            column, reason = bad[position]
            raise InputError(reason, self.manifest, rows[position].line, column)
        return self.drop(name, rows, bad, changed)

    def drop(self, name: str, rows: list[ManifestRow], bad: dict[int, tuple[str, str]],
             changed: int = 0) -> list[ManifestRow]:
        """Apply a filter: drop ``bad`` rows (reported, never an error)."""
        for position in sorted(bad):
            column, reason = bad[position]
            self.excluded.append(Exclusion(rows[position], reason, column))
        kept = [row for i, row in enumerate(rows) if i not in bad]
        self.qc_rows.append((name, len(bad), changed, len(kept)))
        if bad:
            log.info("%s: removed %d row(s), e.g. %s", name, len(bad), "; ".join(
                f"row {rows[i].line}: {bad[i][1]}" for i in sorted(bad)[:5]))
        return kept


# ----------------------------------------------------------------------------- manifest checks

def read_manifest(manifest: str | Path) -> tuple[list[ManifestRow], bool]:
    """Read the manifest TSV (``IID path [eye]``): its rows, and whether it has an eye column.

    A missing ``IID`` or ``path`` column, or a header without rows, raises :class:`InputError`.
    """
    table = read_tsv(manifest, required=["IID", "path"])
    if table.height == 0:
        raise InputError("the manifest has a header but no rows", manifest)
    has_eye = "eye" in table.columns
    eyes = table["eye"].to_list() if has_eye else [None] * table.height
    rows = [ManifestRow(i + 2, iid, eye, path)
            for i, (iid, path, eye) in enumerate(zip(table["IID"], table["path"], eyes))]
    return rows, has_eye


def empty_or_invalid_values(rows: Sequence[ManifestRow], has_eye: bool) -> dict[int, tuple[str, str]]:
    """Rows with an empty IID or path, or (with an eye column) an eye other than left/right."""
    bad: dict[int, tuple[str, str]] = {}
    for i, row in enumerate(rows):
        if row.iid is None or not row.iid.strip():
            bad[i] = ("IID", "empty IID")
        elif row.path is None or not row.path.strip():
            bad[i] = ("path", "empty path")
        elif has_eye and (row.eye is None or row.eye.strip().lower() not in EYES):
            bad[i] = ("eye", f"eye {row.eye!r} is not left or right")
        elif has_eye:
            row.eye = row.eye.strip().lower()
    return bad


def resolve_paths(rows: Sequence[ManifestRow], root: Path,
                  allow_outside_root: bool) -> dict[int, tuple[str, str]]:
    """Resolve each path against ``root``; unless ``allow_outside_root``, return the rows whose
    file is outside ``root``.

    A path leaves ``root`` as written (``..``, or an absolute path elsewhere), or through a
    symbolic link: the manifest and its folder may come from someone else, and a link planted
    there (``x.png -> /home/me/.ssh/id_rsa``) would otherwise be read. Links whose target stays
    inside the folder, and a folder that is itself reached through a link, are fine.
    """
    root = Path(os.path.normpath(os.path.abspath(root)))
    real_root = Path(os.path.realpath(root))
    bad: dict[int, tuple[str, str]] = {}
    for i, row in enumerate(rows):
        row.file = Path(os.path.normpath(root / row.path))
        if allow_outside_root:
            continue
        if not row.file.is_relative_to(root):
            bad[i] = ("path", f"path {row.path!r} is outside the manifest's folder {root} "
                              "(use --allow-outside-root to allow it)")
            continue
        real = Path(os.path.realpath(row.file))
        if not real.is_relative_to(real_root):
            bad[i] = ("path", f"path {row.path!r} leads through a symbolic link to {real}, outside "
                              f"the manifest's folder {root} (use --allow-outside-root to allow it)")
    return bad


def duplicate_rows(rows: Sequence[ManifestRow]) -> dict[int, tuple[str, str]]:
    """Rows repeating an earlier (IID, eye) pair or an earlier file; the first occurrence is kept.

    Without an eye column (eye is None), a repeated IID is a duplicate.
    """
    first_person: dict[tuple[str, str | None], int] = {}
    first_file: dict[Path, int] = {}
    bad: dict[int, tuple[str, str]] = {}
    for i, row in enumerate(rows):
        person = (row.iid, row.eye)
        if person in first_person:
            what = f"IID {row.iid!r}" + (f" and eye {row.eye!r}" if row.eye else "")
            bad[i] = ("IID", f"duplicate {what} (first at row {first_person[person]})")
        elif row.file in first_file:
            bad[i] = ("path", f"duplicate file {row.path!r} (first at row {first_file[row.file]})")
        else:
            first_person[person] = row.line
            first_file[row.file] = row.line
    return bad


def read_keep_ids(path: str | Path) -> set[str]:
    """IIDs to keep: from a PLINK .fam (column 2) or a TSV with an ``IID`` column."""
    path = Path(path)
    if path.suffix == ".fam":
        from contig.plinkio import read_fam

        return set(read_fam(path)["IID"].to_list())
    return set(read_tsv(path, required=["IID"])["IID"].drop_nulls().to_list())


def missing_or_empty_files(rows: Sequence[ManifestRow]) -> dict[int, tuple[str, str]]:
    """Rows whose file does not exist, is not a regular file, or has zero bytes."""
    bad: dict[int, tuple[str, str]] = {}
    for i, row in enumerate(rows):
        assert row.file is not None
        if not row.file.exists():
            bad[i] = ("path", f"file not found: {row.file}")
        elif not row.file.is_file():
            bad[i] = ("path", f"not a regular file: {row.file}")
        elif row.file.stat().st_size == 0:
            bad[i] = ("path", f"zero-byte file: {row.file}")
    return bad


# ----------------------------------------------------------------------------- one image

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


# ----------------------------------------------------------------------------- worker pool

_worker_cache: np.ndarray | None = None


def _open_worker_cache(path: str) -> None:
    global _worker_cache
    _worker_cache = np.load(path, mmap_mode="r+")


def _process_into_cache(task: tuple[int, str, int, tuple[str, ...]]) -> tuple[int, dict]:
    """Worker: preprocess one image and write it to row ``slot`` of the shared memmap."""
    slot, path, size, convert = task
    pixels, info = preprocess_image(path, size, convert)
    if pixels is not None:
        assert _worker_cache is not None
        _worker_cache[slot] = pixels
    return slot, info


def process_images(files: Sequence[Path], size: int, cache_path: Path, convert: Collection[str],
                   workers: int) -> Iterable[tuple[int, dict]]:
    """Preprocess ``files`` into rows ``0..n-1`` of the .npy at ``cache_path``, yielding in order."""
    tasks = [(slot, str(f), size, tuple(sorted(convert))) for slot, f in enumerate(files)]
    if workers <= 1 or len(tasks) < 2 * workers:
        _open_worker_cache(str(cache_path))
        try:
            yield from map(_process_into_cache, tasks)
        finally:
            _close_worker_cache()
        return
    # spawn, not fork: the parent has polars' thread pool running, which fork can deadlock.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_open_worker_cache, initargs=(str(cache_path),)) as pool:
        chunk = max(1, min(64, len(tasks) // (8 * workers)))
        yield from pool.imap(_process_into_cache, tasks, chunksize=chunk)


def _close_worker_cache() -> None:
    global _worker_cache
    if _worker_cache is not None:
        _worker_cache.flush()
    _worker_cache = None


# ----------------------------------------------------------------------------- brightness

def robust_z(values: np.ndarray) -> np.ndarray:
    """(x − median) / (1.4826 · MAD) of ``values`` ``(n,)``; falls back to 1.2533 · mean absolute
    deviation when the MAD is 0, and to zeros when every value is equal."""
    values = np.asarray(values, dtype=np.float64)
    deviation = values - np.median(values)
    scale = 1.4826 * np.median(np.abs(deviation))
    if scale == 0:
        scale = 1.2533 * np.mean(np.abs(deviation))
    if scale == 0:
        return np.zeros_like(values)
    return deviation / scale


# ----------------------------------------------------------------------------- cache file

def shrink_npy_rows(path: Path, keep: np.ndarray) -> None:
    """Keep only rows ``keep`` (increasing indices) of the .npy at ``path``, in place.

    Rows move forward (row ``keep[j]`` to ``j`` ≤ ``keep[j]``), then the header's first axis is
    rewritten (numpy pads headers so the first axis can change without moving the data) and the
    file is truncated.
    """
    array = np.load(path, mmap_mode="r+")
    shape, dtype = array.shape, array.dtype
    for target, source in enumerate(keep):
        if target != source:
            array[target] = array[source]
    array.flush()
    offset = array.offset
    del array
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {
        "descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
        "shape": (len(keep), *shape[1:])})
    row_bytes = int(np.prod(shape[1:])) * dtype.itemsize
    if len(header.getvalue()) != offset:  # a header of another length: copy instead
        old = np.load(path, mmap_mode="r")
        with atomic_path(path) as copy_path:
            new = np.lib.format.open_memmap(copy_path, mode="w+", dtype=dtype,
                                            shape=(len(keep), *shape[1:]))
            new[:] = old[: len(keep)]
            new.flush()
            del new
        return
    with open(path, "r+b") as handle:
        handle.write(header.getvalue())
        handle.truncate(offset + len(keep) * row_bytes)


def preview_grid(images: np.ndarray) -> Image.Image:
    """A grid (4 columns) of the first 16 images of ``images`` ``(n, S, S, 3)``, tiles ≤ 128 px."""
    count = min(PREVIEW_TILES, len(images))
    side = images.shape[1]
    tile = min(side, PREVIEW_TILE_MAX)
    columns = min(4, max(count, 1))
    grid = Image.new("RGB", (columns * tile, max(1, math.ceil(count / 4)) * tile))
    for k in range(count):
        thumb = Image.fromarray(np.asarray(images[k])).resize((tile, tile), Image.Resampling.LANCZOS)
        grid.paste(thumb, ((k % 4) * tile, (k // 4) * tile))
    return grid


def output_paths(out: str | Path) -> dict[str, Path]:
    """The files written for output prefix ``out``."""
    prefix = str(out)
    return {name: Path(f"{prefix}.{suffix}") for name, suffix in (
        ("npy", "npy"), ("index", "index.tsv"), ("excluded", "excluded.tsv"),
        ("qc", "qc.tsv"), ("preview", "preview.png"))}


def load_image_cache(prefix: str | Path) -> tuple[np.ndarray, pl.DataFrame]:
    """Open a cache written by :func:`build_image_cache`.

    Returns ``(images, index)``: ``images`` is a read-only memmap ``(n_images, S, S, 3)`` uint8,
    ``index`` the table ``row IID eye path crop source`` with ``row`` = position in ``images``.
    """
    paths = output_paths(prefix)
    if not paths["npy"].exists():
        raise InputError("image cache not found (run `contig images`)", paths["npy"])
    try:
        images = np.load(paths["npy"], mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f"not a .npy array ({str(error).splitlines()[0]})", paths["npy"]) from None
    index = read_tsv(paths["index"], required=["row", "IID", "eye", "path"], dtypes={"row": pl.Int64})
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise InputError(f"expected a (n, S, S, 3) uint8 array, found {images.shape} {images.dtype}",
                         paths["npy"])
    if index.height != images.shape[0] or not (index["row"] == pl.int_range(index.height, eager=True)).all():
        raise InputError(f"index rows do not match the {images.shape[0]} images of {paths['npy']}",
                         paths["index"])
    return images, index


# ----------------------------------------------------------------------------- the stage

def build_image_cache(
    manifest: str | Path,
    out: str | Path,
    size: int,
    on_error: str = "fail",
    keep: str | Path | None = None,
    allow_outside_root: bool = False,
    brightness_z: float = 4.0,
    convert: Collection[str] = (),
    workers: int = 2,
) -> ImageCacheResult:
    """Validate ``manifest``, crop, resize and cache its images under prefix ``out`` (see module doc).

    ``brightness_z`` ≤ 0 or infinite disables the brightness filter. Raises :class:`InputError`
    for header problems, for the first row problem when ``on_error == "fail"``, and when no
    image is left. With ``workers`` > 1 the pool uses the "spawn" start method, so a script
    calling this must guard its entry point with ``if __name__ == "__main__":``.
    """
    if on_error not in ("fail", "exclude"):
        raise ValueError(f"on_error must be 'fail' or 'exclude', not {on_error!r}")
    unknown = set(convert) - set(CONVERSIONS)
    if unknown:
        raise ValueError(f"unknown conversion(s) {sorted(unknown)}; choose from {CONVERSIONS}")
    if size < 8:
        raise ValueError(f"image size {size} is too small (minimum 8)")
    manifest = Path(manifest)
    started = time.perf_counter()
    checks = _Checks(manifest, on_error)
    rows, has_eye = read_manifest(manifest)
    keep_ids = read_keep_ids(keep) if keep is not None else None
    checks.qc_rows.append(("manifest rows", 0, 0, len(rows)))

    rows = checks.problems("IID, path and eye values", rows, empty_or_invalid_values(rows, has_eye))
    rows = checks.problems("path inside the manifest's folder", rows,
                           resolve_paths(rows, manifest.parent, allow_outside_root))
    rows = checks.problems("duplicate rows", rows, duplicate_rows(rows))
    if keep_ids is not None:
        n_rows = len(rows)
        rows = checks.drop(f"IID in --keep {keep}", rows, {
            i: ("IID", f"IID not in {keep}") for i, r in enumerate(rows) if r.iid not in keep_ids})
        if n_rows and not rows:
            raise InputError(f"none of the {n_rows} rows has an IID in --keep {keep}", manifest)
    rows = checks.problems("file exists and is not empty", rows, missing_or_empty_files(rows))
    if not rows:
        raise InputError("no images left after the manifest checks", manifest)

    paths = output_paths(out)
    with atomic_paths(list(paths.values())) as temps:
        temp = dict(zip(paths, temps))
        cache = np.lib.format.open_memmap(temp["npy"], mode="w+", dtype=np.uint8,
                                          shape=(len(rows), size, size, 3))
        del cache  # the workers write through their own mappings
        decoded = time.perf_counter()
        infos: list[dict] = []
        for slot, info in process_images([r.file for r in rows], size, temp["npy"], convert, workers):
            if "problem" in info and on_error == "fail":
                raise InputError(info["problem"], manifest, rows[slot].line, "path")
            infos.append(info)
        decode_seconds = time.perf_counter() - decoded

        bad = {i: ("path", info["problem"]) for i, info in enumerate(infos) if "problem" in info}
        n_converted = sum(1 for info in infos if info.get("source"))
        slots = list(range(len(rows)))
        good = [i for i in slots if i not in bad]
        rows = checks.drop("decodable 8-bit RGB PNG/JPEG (or converted)", rows, bad, n_converted)
        infos = [infos[i] for i in good]

        centre = [r for r, info in zip(rows, infos) if info["crop"] == "centre"]
        checks.qc_rows.append(("fundus field found (else centre crop)", 0, len(centre), len(rows)))
        if centre:
            log.warning("no fundus field found in %d image(s), centre-cropped instead: %s", len(centre),
                        ", ".join(f"row {r.line} ({r.path})" for r in centre[:10])
                        + (" ..." if len(centre) > 10 else ""))

        brightness = np.array([info["brightness"] for info in infos])
        outliers: dict[int, tuple[str, str]] = {}
        if 0 < brightness_z < math.inf and len(rows) >= 3:
            z = robust_z(brightness)
            median = float(np.median(brightness))
            outliers = {i: ("path", f"brightness outlier: mean field brightness {brightness[i]:.1f} "
                                    f"is {z[i]:+.1f} robust z from the median {median:.1f}")
                        for i in np.flatnonzero(np.abs(z) > brightness_z).tolist()}
        kept_positions = [i for i in range(len(rows)) if i not in outliers]
        rows = checks.drop(f"brightness within {brightness_z:g} robust z", rows, outliers)
        infos = [infos[i] for i in kept_positions]
        if not rows:
            raise InputError("no images left after the checks (see the log)", manifest)

        kept_slots = np.array([good[i] for i in kept_positions], dtype=np.int64)
        if len(kept_slots) < len(slots):
            shrink_npy_rows(temp["npy"], kept_slots)
        checks.qc_rows.append(("written", 0, 0, len(rows)))

        index = pl.DataFrame({
            "row": np.arange(len(rows), dtype=np.int64),
            "IID": [r.iid for r in rows],
            "eye": [r.eye for r in rows],
            "path": [r.path for r in rows],
            "crop": [info["crop"] for info in infos],
            "source": [info["source"] for info in infos],
        }, schema={"row": pl.Int64, "IID": pl.String, "eye": pl.String, "path": pl.String,
                   "crop": pl.String, "source": pl.String})
        excluded = pl.DataFrame({
            "row": [e.row.line for e in checks.excluded],
            "IID": [e.row.iid for e in checks.excluded],
            "eye": [e.row.eye for e in checks.excluded],
            "path": [e.row.path for e in checks.excluded],
            "reason": [e.reason for e in checks.excluded],
        }, schema={"row": pl.Int64, "IID": pl.String, "eye": pl.String, "path": pl.String,
                   "reason": pl.String}).sort("row")
        qc = pl.DataFrame(checks.qc_rows, schema=QC_COLUMNS, orient="row")
        for name, table in (("index", index), ("excluded", excluded), ("qc", qc)):
            table.write_csv(temp[name], separator="\t", null_value="NA")
        preview_grid(np.load(temp["npy"], mmap_mode="r")).save(temp["preview"], format="PNG")

    seconds = time.perf_counter() - started
    rate = len(slots) / decode_seconds if decode_seconds > 0 else float("inf")
    return ImageCacheResult(index, excluded, qc, paths, seconds, rate)
