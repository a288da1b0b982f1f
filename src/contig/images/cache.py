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
  ``(path, size, convert) -> (pixels | None, info)``: the per-image steps, defined in
  :mod:`contig.images.fundus` and importable from here too.

The manifest checks live in :mod:`contig.images.manifest`, the per-image steps in
:mod:`contig.images.fundus`; this module writes the cache.

Input problems and what happens to them (``on_error``):

- *header problems* (no ``IID`` or ``path`` column, unreadable manifest): always an
  :class:`~contig.core.errors.InputError`, whatever ``on_error`` says;
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

Grayscale and 16-bit images are converted only when ``convert`` says so (why: see
:mod:`contig.images.fundus`); converted images are counted in ``OUT.qc.tsv`` and marked in the
index's ``source`` column.

Speed: images are processed by a pool of worker processes that write their rows straight into the
memory-mapped output, in manifest order whatever the number of workers.
"""

from __future__ import annotations

import io
import logging
import math
import multiprocessing
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from contig.core.atomic import atomic_path, atomic_paths
from contig.core.errors import InputError
from contig.core.tables import read_tsv
from contig.images.fundus import (CONVERSIONS, find_field, preprocess_image,  # noqa: F401 (re-exported)
                                  square_crop_box)
from contig.images.manifest import ON_ERROR, ManifestRow, Problems, RowChecks, checked_manifest_rows

log = logging.getLogger("contig.images.cache")

__all__ = ["CONVERSIONS", "ImageCacheResult", "ImageCacheSettings", "build_image_cache", "find_field",
           "load_image_cache", "preprocess_image", "robust_z", "shrink_npy_rows", "square_crop_box"]

QC_COLUMNS = ["check", "removed", "changed", "remaining"]
INDEX_SCHEMA = {"row": pl.Int64, "IID": pl.String, "eye": pl.String, "path": pl.String,
                "crop": pl.String, "source": pl.String}
EXCLUDED_SCHEMA = {"row": pl.Int64, "IID": pl.String, "eye": pl.String, "path": pl.String,
                   "reason": pl.String}
MIN_SIZE = 8  # smallest output side in pixels
PREVIEW_TILES = 16
PREVIEW_TILE_MAX = 128


@dataclass(frozen=True)
class ImageCacheSettings:
    """The options of :func:`build_image_cache` (and ``contig images``) with their defaults."""

    on_error: str = "fail"  # "fail" on the first bad row, or "exclude" it
    brightness_z: float = 4.0  # robust z beyond which a field's brightness is an outlier; 0/inf: off
    workers: int = 2  # decoding processes

    def validate(self) -> None:
        if self.on_error not in ON_ERROR:
            raise ValueError(f"on_error must be 'fail' or 'exclude', not {self.on_error!r}")
        if not self.brightness_z >= 0:
            raise ValueError(f"brightness_z must be >= 0, not {self.brightness_z}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, not {self.workers}")


DEFAULTS = ImageCacheSettings()


@dataclass
class ImageCacheResult:
    """What :func:`build_image_cache` wrote and what each check did."""

    index: pl.DataFrame
    excluded: pl.DataFrame
    qc: pl.DataFrame
    paths: dict[str, Path]
    seconds: float
    images_per_second: float


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

def check_options(size: int, convert: Collection[str], settings: ImageCacheSettings) -> None:
    """Raise ValueError for an unknown conversion, a size below :data:`MIN_SIZE` or bad settings."""
    settings.validate()
    unknown = set(convert) - set(CONVERSIONS)
    if unknown:
        raise ValueError(f"unknown conversion(s) {sorted(unknown)}; choose from {CONVERSIONS}")
    if size < MIN_SIZE:
        raise ValueError(f"image size {size} is too small (minimum {MIN_SIZE})")


def decode_into_cache(rows: Sequence[ManifestRow], npy: Path, size: int, convert: Collection[str],
                      settings: ImageCacheSettings, manifest: Path) -> tuple[list[dict], float]:
    """Decode every row's image into row ``slot`` of a new ``(len(rows), size, size, 3)`` .npy.

    Returns the per-image infos (see :func:`preprocess_image`) in row order and the decoding time
    in seconds. With on_error="fail" the first undecodable image raises :class:`InputError`.
    """
    cache = np.lib.format.open_memmap(npy, mode="w+", dtype=np.uint8, shape=(len(rows), size, size, 3))
    del cache  # the workers write through their own mappings
    started = time.perf_counter()
    infos: list[dict] = []
    for slot, info in process_images([r.file for r in rows], size, npy, convert, settings.workers):
        if "problem" in info and settings.on_error == "fail":
            raise InputError(info["problem"], manifest, rows[slot].line, "path")
        infos.append(info)
    return infos, time.perf_counter() - started


def log_centre_crops(rows: Sequence[ManifestRow], infos: Sequence[dict]) -> int:
    """Warn about images without a detected fundus field; returns how many there are."""
    centre = [r for r, info in zip(rows, infos) if info["crop"] == "centre"]
    if centre:
        log.warning("no fundus field found in %d image(s), centre-cropped instead: %s", len(centre),
                    ", ".join(f"row {r.line} ({r.path})" for r in centre[:10])
                    + (" ..." if len(centre) > 10 else ""))
    return len(centre)


def brightness_outliers(brightness: np.ndarray, brightness_z: float) -> Problems:
    """Images whose brightness ``(n_images,)`` is more than ``brightness_z`` robust z from the
    median; none when ``brightness_z`` is 0 or infinite, or with fewer than 3 images."""
    if not (0 < brightness_z < math.inf and len(brightness) >= 3):
        return {}
    z = robust_z(brightness)
    median = float(np.median(brightness))
    return {i: ("path", f"brightness outlier: mean field brightness {brightness[i]:.1f} "
                        f"is {z[i]:+.1f} robust z from the median {median:.1f}")
            for i in np.flatnonzero(np.abs(z) > brightness_z).tolist()}


def filter_decoded(checks: RowChecks, rows: list[ManifestRow], infos: list[dict],
                   brightness_z: float) -> tuple[list[ManifestRow], list[dict], np.ndarray]:
    """Drop undecodable images and brightness outliers (each a QC line).

    Returns the kept rows, their infos and their slots in the cache ``(n_kept,)`` int64.
    """
    bad = {i: ("path", info["problem"]) for i, info in enumerate(infos) if "problem" in info}
    n_converted = sum(1 for info in infos if info.get("source"))
    good = [i for i in range(len(rows)) if i not in bad]
    rows = checks.drop("decodable 8-bit RGB PNG/JPEG (or converted)", rows, bad, n_converted)
    infos = [infos[i] for i in good]
    checks.note("fundus field found (else centre crop)", log_centre_crops(rows, infos), len(rows))
    outliers = brightness_outliers(np.array([info["brightness"] for info in infos]), brightness_z)
    kept = [i for i in range(len(rows)) if i not in outliers]
    rows = checks.drop(f"brightness within {brightness_z:g} robust z", rows, outliers)
    return rows, [infos[i] for i in kept], np.array([good[i] for i in kept], dtype=np.int64)


def index_table(rows: Sequence[ManifestRow], infos: Sequence[dict]) -> pl.DataFrame:
    """``OUT.index.tsv``: ``row IID eye path crop source``, one line per cached image."""
    return pl.DataFrame({
        "row": np.arange(len(rows), dtype=np.int64),
        "IID": [r.iid for r in rows],
        "eye": [r.eye for r in rows],
        "path": [r.path for r in rows],
        "crop": [info["crop"] for info in infos],
        "source": [info["source"] for info in infos],
    }, schema=INDEX_SCHEMA)


def excluded_table(checks: RowChecks) -> pl.DataFrame:
    """``OUT.excluded.tsv``: ``row IID eye path reason``, one line per dropped row, by row."""
    return pl.DataFrame({
        "row": [e.row.line for e in checks.excluded],
        "IID": [e.row.iid for e in checks.excluded],
        "eye": [e.row.eye for e in checks.excluded],
        "path": [e.row.path for e in checks.excluded],
        "reason": [e.reason for e in checks.excluded],
    }, schema=EXCLUDED_SCHEMA).sort("row")


def build_image_cache(
    manifest: str | Path,
    out: str | Path,
    size: int,
    on_error: str = DEFAULTS.on_error,
    keep: str | Path | None = None,
    allow_outside_root: bool = False,
    brightness_z: float = DEFAULTS.brightness_z,
    convert: Collection[str] = (),
    workers: int = DEFAULTS.workers,
) -> ImageCacheResult:
    """Validate ``manifest``, crop, resize and cache its images under prefix ``out`` (see module doc).

    ``brightness_z`` 0 or infinite disables the brightness filter. Raises :class:`InputError`
    for header problems, for the first row problem when ``on_error == "fail"``, and when no
    image is left. With ``workers`` > 1 the pool uses the "spawn" start method, so a script
    calling this must guard its entry point with ``if __name__ == "__main__":``.
    """
    settings = ImageCacheSettings(on_error, brightness_z, workers)
    check_options(size, convert, settings)
    manifest = Path(manifest)
    started = time.perf_counter()
    checks = RowChecks(manifest, on_error)
    rows = checked_manifest_rows(manifest, checks, keep, allow_outside_root)
    n_decoded = len(rows)
    paths = output_paths(out)
    with atomic_paths(list(paths.values())) as temps:
        temp = dict(zip(paths, temps))
        infos, decode_seconds = decode_into_cache(rows, temp["npy"], size, convert, settings, manifest)
        rows, infos, kept_slots = filter_decoded(checks, rows, infos, brightness_z)
        if not rows:
            raise InputError("no images left after the checks (see the log)", manifest)
        if len(kept_slots) < n_decoded:
            shrink_npy_rows(temp["npy"], kept_slots)
        checks.note("written", 0, len(rows))
        index, excluded = index_table(rows, infos), excluded_table(checks)
        qc = pl.DataFrame(checks.qc_rows, schema=QC_COLUMNS, orient="row")
        for name, table in (("index", index), ("excluded", excluded), ("qc", qc)):
            table.write_csv(temp[name], separator="\t", null_value="NA")
        preview_grid(np.load(temp["npy"], mmap_mode="r")).save(temp["preview"], format="PNG")
    rate = n_decoded / decode_seconds if decode_seconds > 0 else float("inf")
    return ImageCacheResult(index, excluded, qc, paths, time.perf_counter() - started, rate)
