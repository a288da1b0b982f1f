"""contig.images (manifest, fundus, cache) and ``contig images``: validation, field crop, brightness.

Oracles: images drawn here with PIL (a bright disc on black with known position), the crop box
read back from the drawn pixels with numpy, and PIL's own crop + LANCZOS resize.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from contig.cli import main
from contig.images.cache import build_image_cache, load_image_cache, robust_z
from contig.images.fundus import find_field
from helpers.images import fundus, png16, write_manifest

SIZE = 32
GOOD = 6  # good images in the base cohort, manifest rows 2..7


@pytest.fixture
def cohort(tmp_path: Path) -> tuple[Path, list[tuple[str, str, str]]]:
    """A data folder with GOOD good PNGs (discs at varying places); returns (folder, rows)."""
    data = tmp_path / "data"
    data.mkdir()
    rows = []
    for i in range(GOOD):
        left, top = 5 + 7 * i, 3 + 4 * i
        fundus(100, 80, (left, top, left + 50, top + 50), seed=i).save(data / f"img{i}.png")
        rows.append((f"P{i // 2}", f"img{i}.png", ("left", "right")[i % 2]))
    return data, rows


def cache_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def contig_images(args: list[str], capsys) -> tuple[int, str]:
    """Run ``contig images`` in-process; returns (exit status, stderr)."""
    status = main(["images", *args])
    return status, capsys.readouterr().err


# --------------------------------------------------------------------------- bad inputs

def _missing(data: Path) -> tuple[str, str, str]:
    return ("P9", "absent.png", "left"), "path", "file not found"


def _zero_byte(data: Path):
    (data / "empty.png").write_bytes(b"")
    return ("P9", "empty.png", "left"), "path", "zero-byte"


def _garbage(data: Path):
    (data / "garbage.png").write_bytes(np.random.default_rng(1).bytes(500))
    return ("P9", "garbage.png", "left"), "path", "not a readable image"


def _truncated(data: Path):
    buffer = io.BytesIO()
    fundus(100, 80, (10, 10, 60, 60)).save(buffer, format="PNG")
    (data / "truncated.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return ("P9", "truncated.png", "left"), "path", "corrupt image data"


def _grayscale(data: Path):
    fundus(100, 80, (10, 10, 60, 60)).convert("L").save(data / "gray.png")
    return ("P9", "gray.png", "left"), "path", "grayscale image"


def _gray16(data: Path):
    gray = np.asarray(fundus(100, 80, (10, 10, 60, 60)).convert("L")).astype(np.uint16) * 257
    Image.fromarray(gray).save(data / "gray16.png")
    return ("P9", "gray16.png", "left"), "path", "16bit grayscale image"


def _rgb16(data: Path):
    rgb = np.asarray(fundus(100, 80, (10, 10, 60, 60))).astype(np.uint16) * 257
    (data / "rgb16.png").write_bytes(png16(rgb))
    return ("P9", "rgb16.png", "left"), "path", "16bit image"


def _duplicate_person(data: Path):
    fundus(100, 80, (10, 10, 60, 60)).save(data / "again.png")
    return ("P0", "again.png", "left"), "IID", "duplicate IID 'P0' and eye 'left' (first at row 2)"


def _duplicate_file(data: Path):
    return ("P9", "img0.png", "left"), "path", "duplicate file 'img0.png' (first at row 2)"


def _dotdot(data: Path):
    fundus(100, 80, (10, 10, 60, 60)).save(data.parent / "outside.png")
    return ("P9", "../outside.png", "left"), "path", "outside the manifest's folder"


def _absolute_outside(data: Path):
    fundus(100, 80, (10, 10, 60, 60)).save(data.parent / "outside.png")
    return ("P9", str(data.parent / "outside.png"), "left"), "path", "outside the manifest's folder"


def _bad_eye(data: Path):
    fundus(100, 80, (10, 10, 60, 60)).save(data / "x.png")
    return ("P9", "x.png", "both"), "eye", "eye 'both' is not left or right"


def _not_png_or_jpeg(data: Path):
    fundus(100, 80, (10, 10, 60, 60)).save(data / "x.bmp")
    return ("P9", "x.bmp", "left"), "path", "not a PNG or JPEG"


BAD_CASES = {f.__name__[1:]: f for f in (
    _missing, _zero_byte, _garbage, _truncated, _grayscale, _gray16, _rgb16, _duplicate_person,
    _duplicate_file, _dotdot, _absolute_outside, _bad_eye, _not_png_or_jpeg)}


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_row_fails_with_one_line_and_writes_nothing(case, cohort, tmp_path, capsys):
    data, rows = cohort
    bad_row, column, reason = BAD_CASES[case](data)
    # The bad row goes in the middle, so rows after it are not reached.
    manifest = write_manifest(data / "manifest.tsv", [*rows[:3], bad_row, *rows[3:]])
    out = tmp_path / "out"
    status, err = contig_images(["--manifest", str(manifest), "--out", str(out / "cache"),
                                 "--size", str(SIZE), "--workers", "1"], capsys)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"contig images: error: {manifest}, row 5, column {column!r}: "), lines[0]
    assert reason in lines[0]
    assert cache_files(out) == []


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_row_is_excluded_and_listed(case, cohort, tmp_path, capsys):
    data, rows = cohort
    bad_row, column, reason = BAD_CASES[case](data)
    manifest = write_manifest(data / "manifest.tsv", [*rows[:3], bad_row, *rows[3:]])
    out = tmp_path / "out" / "cache"
    status, err = contig_images(["--manifest", str(manifest), "--out", str(out), "--size", str(SIZE),
                                 "--on-error", "exclude", "--workers", "1"], capsys)
    assert status == 0, err
    excluded = pl.read_csv(f"{out}.excluded.tsv", separator="\t")
    assert excluded["row"].to_list() == [5]
    assert excluded["IID"].to_list() == [bad_row[0]]
    assert excluded["path"].to_list() == [bad_row[1]]
    assert reason in excluded["reason"][0]
    images, index = load_image_cache(out)
    assert images.shape == (GOOD, SIZE, SIZE, 3)
    assert index["path"].to_list() == [r[1] for r in rows]
    qc = pl.read_csv(f"{out}.qc.tsv", separator="\t")
    assert qc["removed"].sum() == 1
    assert qc["remaining"][-1] == GOOD


@pytest.mark.parametrize("on_error", ["fail", "exclude"])
def test_missing_column_is_an_error_in_both_modes(on_error, cohort, tmp_path, capsys):
    data, rows = cohort
    manifest = write_manifest(data / "manifest.tsv", rows, header=("IID", "file", "eye"))
    out = tmp_path / "out"
    status, err = contig_images(["--manifest", str(manifest), "--out", str(out / "cache"),
                                 "--size", str(SIZE), "--on-error", on_error, "--workers", "1"], capsys)
    assert status == 2
    assert err.strip() == (f"contig images: error: {manifest}: missing required column(s) path; "
                           "found IID, file, eye")
    assert cache_files(out) == []


@pytest.mark.parametrize("on_error", ["fail", "exclude"])
def test_empty_value_is_a_row_problem(on_error, cohort, tmp_path, capsys):
    data, rows = cohort
    manifest = write_manifest(data / "manifest.tsv", [*rows, ("", "img0.png", "right")])
    out = tmp_path / "out" / "cache"
    status, err = contig_images(["--manifest", str(manifest), "--out", str(out), "--size", str(SIZE),
                                 "--on-error", on_error, "--workers", "1"], capsys)
    if on_error == "fail":
        assert status == 2 and f"{manifest}, row 8, column 'IID': empty IID" in err
    else:
        assert status == 0
        assert pl.read_csv(f"{out}.excluded.tsv", separator="\t")["reason"].to_list() == ["empty IID"]


@pytest.mark.parametrize("on_error", ["fail", "exclude"])
@pytest.mark.parametrize("keep_format", ["fam", "tsv"])
def test_iids_outside_keep_are_a_reported_exclusion_in_both_modes(on_error, keep_format, cohort,
                                                                  tmp_path, capsys):
    data, rows = cohort  # people P0, P1, P2
    if keep_format == "fam":
        keep = tmp_path / "qc.fam"
        keep.write_text("F0\tP0\t0\t0\t1\t-9\nF2\tP2\t0\t0\t2\t-9\nF7\tP7\t0\t0\t1\t-9\n")
    else:
        keep = tmp_path / "keep.tsv"
        keep.write_text("IID\tx\nP0\t1\nP2\t2\n")
    manifest = write_manifest(data / "manifest.tsv", rows)
    out = tmp_path / "out" / "cache"
    status, err = contig_images(["--manifest", str(manifest), "--out", str(out), "--size", str(SIZE),
                                 "--keep", str(keep), "--on-error", on_error, "--workers", "1"], capsys)
    assert status == 0, err
    excluded = pl.read_csv(f"{out}.excluded.tsv", separator="\t")
    assert excluded["IID"].to_list() == ["P1", "P1"]
    assert excluded["row"].to_list() == [4, 5]
    assert all("not in" in r for r in excluded["reason"])
    _, index = load_image_cache(out)
    assert index["IID"].to_list() == ["P0", "P0", "P2", "P2"]


def test_outside_root_allowed_with_flag(cohort, tmp_path, capsys):
    data, rows = cohort
    bad_row, _, _ = _dotdot(data)
    manifest = write_manifest(data / "manifest.tsv", [*rows, bad_row])
    out = tmp_path / "out" / "cache"
    status, err = contig_images(["--manifest", str(manifest), "--out", str(out), "--size", str(SIZE),
                                 "--allow-outside-root", "--workers", "1"], capsys)
    assert status == 0, err
    assert load_image_cache(out)[0].shape[0] == GOOD + 1


def test_conversions_keep_high_byte_and_repeat_gray(cohort, tmp_path):
    data, rows = cohort
    gray8 = np.asarray(fundus(100, 80, (20, 10, 70, 60), seed=9).convert("L"))
    Image.fromarray(gray8.astype(np.uint16) * 257 + 100).save(data / "gray16.png")  # low byte noise
    rgb8 = np.asarray(fundus(100, 80, (20, 10, 70, 60), seed=10))
    (data / "rgb16.png").write_bytes(png16(rgb8.astype(np.uint16) * 257 + 7))
    manifest = write_manifest(data / "manifest.tsv",
                              [*rows, ("P8", "gray16.png", "left"), ("P8", "rgb16.png", "right")])
    out = tmp_path / "out" / "cache"
    result = build_image_cache(manifest, out, SIZE, convert={"16bit", "grayscale"}, workers=1)
    images, index = load_image_cache(out)
    assert index["source"].to_list()[-2:] == ["16bit+grayscale", "16bit"]
    assert result.qc.filter(pl.col("check").str.starts_with("decodable"))["changed"].item() == 2
    crop = (20, 10, 71, 61)
    expected_gray = Image.fromarray(gray8).convert("RGB").crop(crop).resize((SIZE, SIZE), Image.LANCZOS)
    expected_rgb = Image.fromarray(rgb8).crop(crop).resize((SIZE, SIZE), Image.LANCZOS)
    np.testing.assert_array_equal(images[-2], np.asarray(expected_gray))
    np.testing.assert_array_equal(images[-1], np.asarray(expected_rgb))


# --------------------------------------------------------------------------- crop

def test_find_field_returns_the_disc_bounding_box():
    image = np.asarray(fundus(300, 200, (180, 30, 259, 109)))
    (top, left, bottom, right), brightness = find_field(image)
    ys, xs = np.nonzero(image.max(axis=2))
    assert (top, left, bottom, right) == (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
    inside = image[image.max(axis=2) > 0].astype(float)
    assert brightness == pytest.approx((inside @ [0.299, 0.587, 0.114]).mean())
    # A large image is searched on a thumbnail: the box is right to within the stride.
    big = np.asarray(fundus(1600, 1200, (700, 150, 1499, 949)))
    box, _ = find_field(big)
    assert np.abs(np.subtract(box, (150, 700, 950, 1500))).max() <= 4
    assert find_field(np.zeros((50, 60, 3), np.uint8)) is None


def test_off_centre_field_is_cropped_to_the_field(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    fundus(400, 300, (250, 20, 369, 139)).save(data / "off.png")  # small disc near a corner
    fundus(240, 120, (60, -30, 179, 89), seed=3).save(data / "clipped.png")  # clipped top and bottom
    manifest = write_manifest(data / "m.tsv", [("A", "off.png", "left"), ("B", "clipped.png", "left")])
    build_image_cache(manifest, tmp_path / "c", 64, workers=1)
    images, index = load_image_cache(tmp_path / "c")
    assert index["crop"].to_list() == ["field", "field"]
    black = images.max(axis=3) < 16  # (2, 64, 64)
    # A disc inscribed in the square leaves 1 - pi/4 = 21.5% black; the uncropped image had 90%.
    assert black[0].mean() == pytest.approx(1 - np.pi / 4, abs=0.03)
    ys, xs = np.nonzero(~black[0])
    assert abs(ys.mean() - 31.5) < 1 and abs(xs.mean() - 31.5) < 1
    # The disc clipped at the top (30 of its 120 px) fills the square as if whole: its missing
    # top is black padding (16 of 64 rows), its sides and bottom touch the square's edges.
    assert black[1][:15].all() and not black[1][17].all()
    ys, xs = np.nonzero(~black[1])
    assert abs(xs.mean() - 31.5) < 1
    assert xs.min() <= 1 and xs.max() >= 62 and ys.max() >= 62


def test_no_field_falls_back_to_centre_crop_and_reports_it(cohort, tmp_path, caplog):
    data, rows = cohort
    dark = np.random.default_rng(0).integers(0, 10, size=(60, 90, 3)).astype(np.uint8)
    Image.fromarray(dark).save(data / "dark.png")
    manifest = write_manifest(data / "manifest.tsv", [*rows, ("P7", "dark.png", "left")])
    out = tmp_path / "cache"
    result = build_image_cache(manifest, out, SIZE, brightness_z=0, workers=1)
    images, index = load_image_cache(out)
    assert index["crop"].to_list() == ["field"] * GOOD + ["centre"]
    fallback = result.qc.filter(pl.col("check").str.starts_with("fundus field"))
    assert fallback["changed"].item() == 1 and fallback["removed"].item() == 0
    assert "centre-cropped" in caplog.text and "dark.png" in caplog.text
    expected = Image.fromarray(dark).crop((15, 0, 75, 60)).resize((SIZE, SIZE), Image.LANCZOS)
    np.testing.assert_array_equal(images[-1], np.asarray(expected))


# --------------------------------------------------------------------------- brightness

def test_brightness_outliers_are_excluded_with_reason(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    colours = [(150 + 3 * i, 70 + 2 * i, 40) for i in range(12)] + [(40, 20, 10), (250, 250, 240)]
    rows = []
    for i, colour in enumerate(colours):
        fundus(80, 80, (10, 10, 69, 69), colour=colour, seed=i).save(data / f"{i}.png")
        rows.append((f"P{i}", f"{i}.png", "left"))
    manifest = write_manifest(data / "m.tsv", rows)
    result = build_image_cache(manifest, tmp_path / "c", SIZE, brightness_z=4.0, workers=1)
    # Oracle: robust z of the fill colours' luminance (the texture noise averages out).
    luma = np.array(colours) @ [0.299, 0.587, 0.114]
    z = (luma - np.median(luma)) / (1.4826 * np.median(np.abs(luma - np.median(luma))))
    assert set(np.flatnonzero(np.abs(z) > 4)) == {12, 13}
    assert result.excluded["IID"].to_list() == ["P12", "P13"]
    assert all(r.startswith("brightness outlier") for r in result.excluded["reason"])
    assert result.index.height == 12
    np.testing.assert_allclose(robust_z(luma), z)


def test_robust_z_without_spread():
    np.testing.assert_array_equal(robust_z(np.array([5.0, 5, 5])), [0, 0, 0])
    z = robust_z(np.array([5.0, 5, 5, 5, 5, 5, 9]))  # MAD 0: mean absolute deviation takes over
    np.testing.assert_allclose(z, [0, 0, 0, 0, 0, 0, 4 / (1.2533 * 4 / 7)])


# --------------------------------------------------------------------------- cache and CLI

def test_cache_round_trip_equals_pil_crop_and_resize(cohort, tmp_path):
    data, rows = cohort
    manifest = write_manifest(data / "manifest.tsv", rows)
    build_image_cache(manifest, tmp_path / "c", SIZE, workers=1)
    images, index = load_image_cache(tmp_path / "c")
    assert isinstance(images, np.memmap) and images.dtype == np.uint8
    assert images.shape == (GOOD, SIZE, SIZE, 3)
    assert index.columns[:4] == ["row", "IID", "eye", "path"]
    assert index["row"].to_list() == list(range(GOOD))
    for k, path in enumerate(index["path"]):
        source = Image.open(data / path)
        ys, xs = np.nonzero(np.asarray(source).max(axis=2))
        assert ys.max() - ys.min() == xs.max() - xs.min()  # a disc: its bounding box is square
        expected = source.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)).resize(
            (SIZE, SIZE), Image.LANCZOS)
        np.testing.assert_array_equal(images[k], np.asarray(expected))


def test_jpeg_is_decoded_at_reduced_scale_close_to_png(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    image = fundus(640, 480, (100, 40, 499, 439))
    image.save(data / "a.png")
    image.save(data / "a.jpg", quality=95)
    manifest = write_manifest(data / "m.tsv", [("A", "a.png", "left"), ("A", "a.jpg", "right")])
    build_image_cache(manifest, tmp_path / "c", 64, workers=1)
    images, _ = load_image_cache(tmp_path / "c")
    difference = np.abs(images[0].astype(int) - images[1].astype(int))
    assert difference.mean() < 6


def test_manifest_without_eye_column(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        fundus(60, 60, (5, 5, 54, 54), seed=i).save(data / f"{i}.png")
    manifest = write_manifest(data / "m.tsv", [("A", "0.png"), ("B", "1.png"), ("A", "2.png")],
                              header=("IID", "path"))
    status, err = contig_images(["--manifest", str(manifest), "--out", str(tmp_path / "c"),
                                 "--size", "16", "--on-error", "exclude", "--workers", "1"], capsys)
    assert status == 0, err
    images, index = load_image_cache(tmp_path / "c")
    assert index["IID"].to_list() == ["A", "B"] and index["eye"].null_count() == 2
    assert "duplicate IID 'A' (first at row 2)" in pl.read_csv(
        tmp_path / "c.excluded.tsv", separator="\t")["reason"][0]


def test_cli_with_worker_pool_matches_one_process(cohort, tmp_path):
    data, rows = cohort
    (data / "empty.png").write_bytes(b"")
    manifest = write_manifest(data / "manifest.tsv", [*rows, ("P9", "empty.png", "left")])
    result = build_image_cache(manifest, tmp_path / "one", SIZE, on_error="exclude", workers=1)
    command = [sys.executable, "-m", "contig", "images", "--manifest", str(manifest),
               "--out", str(tmp_path / "pool"), "--size", str(SIZE), "--on-error", "exclude",
               "--workers", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "zero-byte" in done.stderr and "images/s" in done.stderr
    pool_images, pool_index = load_image_cache(tmp_path / "pool")
    one_images, one_index = load_image_cache(tmp_path / "one")
    np.testing.assert_array_equal(pool_images, one_images)
    assert pool_index.equals(one_index) and one_index.equals(result.index)
    for suffix in ("qc.tsv", "excluded.tsv"):
        assert (tmp_path / f"pool.{suffix}").read_text() == (tmp_path / f"one.{suffix}").read_text()
    preview = Image.open(tmp_path / "pool.preview.png")
    assert preview.size == (4 * SIZE, 2 * SIZE)  # 6 images: two rows of four tiles


def test_shrink_npy_rows_equals_saving_the_subset(tmp_path):
    from contig.images.cache import shrink_npy_rows

    array = np.random.default_rng(0).integers(0, 256, size=(9, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "a.npy", array)
    keep = np.array([1, 2, 5, 8])
    shrink_npy_rows(tmp_path / "a.npy", keep)
    np.save(tmp_path / "b.npy", array[keep])
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()


@pytest.mark.parametrize("flag, value", [("--size", "7"), ("--brightness-z", "-1"), ("--workers", "0"),
                                         ("--brightness-z", "nan")])
def test_out_of_range_options_are_refused(cohort, tmp_path, capsys, flag, value):
    data, rows = cohort
    manifest = write_manifest(data / "manifest.tsv", rows)
    args = {"--size": str(SIZE), "--workers": "1", flag: value}
    with pytest.raises(SystemExit) as stop:
        main(["images", "--manifest", str(manifest), "--out", str(tmp_path / "c"),
              *[item for pair in args.items() for item in pair]])
    assert stop.value.code == 2
    assert f"argument {flag}: " in capsys.readouterr().err
    assert cache_files(tmp_path) == ["data"]
