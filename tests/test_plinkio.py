"""PLINK I/O: packing, counting and writing against brute force; malformed inputs via the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contig.cli import main
from helpers.plink import make_cohort, run_plink2
from contig.genotypes.plinkio import Genotypes, pack_bed_rows, plan_variant_chunks, read_bim, write_bfile

def test_pack_bed_rows_matches_bit_layout():
    rng = np.random.default_rng(1)
    g = rng.choice(np.array([0, 1, 2, -9], dtype=np.int8), size=(9, 13))
    packed = pack_bed_rows(g)
    code = {2: 0b00, -9: 0b01, 1: 0b10, 0: 0b11}
    for v in range(9):
        for s in range(13):
            assert (packed[v, s // 4] >> (2 * (s % 4))) & 3 == code[int(g[v, s])]
    with pytest.raises(ValueError):
        pack_bed_rows(np.array([[3]], dtype=np.int8))


def test_write_read_roundtrip_counts_and_packed_copy(tmp_path):
    g = make_cohort(tmp_path / "a", n=37, m=50)
    geno = Genotypes.open(tmp_path / "a")
    assert np.array_equal(geno.read(np.arange(50)), g)
    counts = geno.genotype_counts()
    for k, value in enumerate((0, 1, 2, -9)):
        assert np.array_equal(counts[:, k], (g == value).sum(axis=1))
    subset = np.array([0, 3, 4, 30])
    counts = geno.genotype_counts(sample_idx=subset, variant_idx=np.array([2, 7]))
    assert np.array_equal(counts[:, 1], (g[[2, 7]][:, subset] == 1).sum(axis=1))
    # raw-byte copy of a variant subset reproduces the same genotypes
    keep = np.array([1, 2, 3, 10, 49])
    rows = [r for _, r in geno.iter_packed_chunks(2, keep)]
    write_bfile(tmp_path / "b", geno.fam, geno.bim[keep], rows, packed=True)
    assert np.array_equal(Genotypes.open(tmp_path / "b").read(np.arange(5)), g[keep])


@pytest.mark.plink2
def test_written_files_are_byte_identical_to_plink2_make_bed(tmp_path):
    make_cohort(tmp_path / "a", n=41, m=30)
    run_plink2("--bfile", str(tmp_path / "a"), "--make-bed", "--out", str(tmp_path / "p"))
    for ext in (".bed", ".bim"):
        assert (tmp_path / f"a{ext}").read_bytes() == (tmp_path / f"p{ext}").read_bytes()


def test_bim_with_spaces_and_decimal_cm(tmp_path):
    (tmp_path / "x.bim").write_text("1 rs1 0.5 100 A G\n1  rs2\t0 200 C T\n")
    bim = read_bim(tmp_path / "x.bim")
    assert bim["CM"].to_list() == [0.5, 0.0] and bim["POS"].to_list() == [100, 200]


# ---- malformed inputs: one error line naming the file, exit 2, no outputs --------------------------

def _corrupt(prefix: Path, kind: str) -> Path:
    """Apply one corruption to the fileset at ``prefix``; returns the file the error must name."""
    bed, bim, fam = (prefix.with_name(prefix.name + e) for e in (".bed", ".bim", ".fam"))
    if kind == "truncated":
        bed.write_bytes(bed.read_bytes()[:-7])
        return bed
    if kind == "magic":
        data = bytearray(bed.read_bytes())
        data[0] = 0x00
        bed.write_bytes(bytes(data))
        return bed
    if kind == "bim_count":
        bim.write_text("".join(bim.read_text().splitlines(keepends=True)[:-1]))
        return bed
    if kind == "fam_count":
        fam.write_text(fam.read_text() + "F99\tS99\t0\t0\t1\t-9\n")
        return bed
    if kind == "bim_fields":
        lines = bim.read_text().splitlines(keepends=True)
        lines[3] = "\t".join(lines[3].split("\t")[:5]) + "\n"
        bim.write_text("".join(lines))
        return bim
    if kind == "fam_duplicate":
        lines = fam.read_text().splitlines(keepends=True)
        lines[5] = lines[2]
        fam.write_text("".join(lines))
        return fam
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["truncated", "magic", "bim_count", "fam_count", "bim_fields",
                                  "fam_duplicate"])
@pytest.mark.parametrize("command", ["qc", "pca", "snps"])
def test_malformed_input_one_line_error_no_outputs(tmp_path, capsys, kind, command):
    make_cohort(tmp_path / "in", n=40, m=60)
    bad_file = _corrupt(tmp_path / "in", kind)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    extra = {"qc": ["--maf", "0.01"], "pca": ["--n-pcs", "2"], "snps": ["--maf", "0.01"]}[command]
    code = main([command, "--bfile", str(tmp_path / "in"), "--out", str(out_dir / "res"), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error:" in line]
    assert code == 2
    assert len(errors) == 1 and str(bad_file) in errors[0], err
    assert list(out_dir.iterdir()) == []


def test_space_separated_fam_as_plink1_writes_it(tmp_path):
    from contig.genotypes.plinkio import read_fam

    path = tmp_path / "spaces.fam"
    path.write_text("F0 P0 0 0 1 -9\nF1 P1 0 0 2 -9\n")
    fam = read_fam(path)
    assert fam["IID"].to_list() == ["P0", "P1"]
    assert fam["SEX"].to_list() == [1, 2]


def test_plan_variant_chunks_cover_the_selection_within_filesets():
    offsets = np.array([0, 10, 10, 25])  # three filesets, the middle one empty
    tested = np.array([0, 1, 2, 5, 9, 12, 13, 14, 20, 24])
    chunks = plan_variant_chunks(offsets, tested, 3)
    assert [c.part for c in chunks] == [0, 0, 2, 2]
    rows = np.concatenate([np.arange(c.rows.start, c.rows.stop) for c in chunks])
    assert rows.tolist() == list(range(len(tested)))
    for c in chunks:
        assert 0 < len(c.local) <= 3
        global_idx = c.local + offsets[c.part]
        assert (global_idx == tested[c.rows]).all()
        assert offsets[c.part] <= global_idx.min() and global_idx.max() < offsets[c.part + 1]
    with pytest.raises(ValueError, match="increasing"):
        plan_variant_chunks(offsets, np.array([3, 2]), 3)


def test_chrom_pattern_matches_chromosome_names_only(tmp_path):
    """UK Biobank names its filesets ukb_cal_chrN_v2: the pattern with _v2 finds all 22 in
    chromosome order; one without it matches nothing (an error) rather than chromosome "1_v2"."""
    from contig.core.errors import InputError
    from contig.genotypes.plinkio import expand_prefix_pattern

    for name in [*(str(c) for c in range(1, 23)), "X", "MT"]:
        (tmp_path / f"ukb_cal_chr{name}_v2.bed").write_bytes(b"")
    (tmp_path / "ukb_cal_chrnotes_v2.bed").write_bytes(b"")
    found = expand_prefix_pattern(str(tmp_path / "ukb_cal_chr{chrom}_v2"))
    assert [Path(p).name for p in found] == [f"ukb_cal_chr{c}_v2" for c in [*range(1, 23), "X", "MT"]]
    with pytest.raises(InputError, match="no .bed file matches"):
        expand_prefix_pattern(str(tmp_path / "ukb_cal_chr{chrom}"))


# ---- write_bfile_variants: .bed rows copied run by run ---------------------------------------------

def _expected_bed(prefixes: list[Path], n_samples: int, variant_idx: np.ndarray) -> bytes:
    """Brute force: the magic bytes, then row ``i`` of the concatenated input .bed files for each
    ``i`` of ``variant_idx``, sliced straight out of the files' bytes."""
    n_bytes = (n_samples + 3) // 4
    rows = b"".join(p.with_name(p.name + ".bed").read_bytes()[3:] for p in prefixes)
    return bytes([0x6C, 0x1B, 0x01]) + b"".join(rows[i * n_bytes:(i + 1) * n_bytes] for i in variant_idx)


# gaps, the first and the last variant, one-variant runs, and a long run
SELECTION = np.array([0, 1, 2, 5, 9, 10, 11, 12, 13, 14, 15, 16, 30, 47, 48, 49])


def _force_copy_runs(monkeypatch) -> None:
    """Copy run by run even for this tiny fileset's short runs."""
    monkeypatch.setattr("contig.genotypes.bedcopy.MIN_COPY_RUN_BYTES", 1)


@pytest.mark.parametrize("mode", ["copy_file_range", "no_copy_file_range", "raises_at_once",
                                  "raises_midway", "gather"])
def test_write_bfile_variants_copies_the_selected_rows(tmp_path, monkeypatch, mode):
    """Every path gives the brute-force bytes: the kernel copy, the read-and-write fallback (no
    os.copy_file_range; one that fails at once; one that fails after two runs) and the in-memory
    gather of short runs."""
    import os

    from contig.genotypes import bedcopy

    make_cohort(tmp_path / "in", n=37, m=50)  # 10 bytes a row, not a multiple of 8
    geno = Genotypes.open(tmp_path / "in")
    _force_copy_runs(monkeypatch)
    real = getattr(os, "copy_file_range", None)
    calls = []

    def failing(*args):
        calls.append(args)
        if mode == "raises_at_once" or len(calls) > 2:
            raise OSError(38, "Function not implemented")
        return real(*args)

    if mode == "no_copy_file_range":
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    elif mode in ("raises_at_once", "raises_midway"):
        monkeypatch.setattr(os, "copy_file_range", failing)
    elif mode == "gather":
        monkeypatch.setattr(bedcopy, "MIN_COPY_RUN_BYTES", 10**9)
    bedcopy.write_bfile_variants(tmp_path / "out", geno, SELECTION, chunk_size=4)
    assert (tmp_path / "out.bed").read_bytes() == _expected_bed([tmp_path / "in"], 37, SELECTION)
    out = Genotypes.open(tmp_path / "out")
    assert out.bim["ID"].to_list() == [f"rs{i}" for i in SELECTION]
    assert out.fam.equals(geno.fam)
    if mode == "raises_midway":
        assert len(calls) == 3  # two runs by the kernel, then the fallback for the rest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.bed", "in.bim", "in.fam", "out.bed",
                                                         "out.bim", "out.fam"]


def test_write_bfile_variants_across_per_chromosome_files(tmp_path, monkeypatch):
    from contig.genotypes.bedcopy import write_bfile_variants

    g = make_cohort(tmp_path / "all", n=41, m=50, n_chrom=2)
    geno = Genotypes.open(tmp_path / "all")
    chrom = geno.bim["CHROM"].to_numpy()
    for c in ("1", "2"):
        rows = np.flatnonzero(chrom == c)
        write_bfile(tmp_path / f"chr{c}", geno.fam, geno.bim[rows], [g[rows]])
    parts = Genotypes.open(str(tmp_path / "chr{chrom}"))
    _force_copy_runs(monkeypatch)
    write_bfile_variants(tmp_path / "out", parts, SELECTION)
    assert (tmp_path / "out.bed").read_bytes() == _expected_bed(
        [tmp_path / "chr1", tmp_path / "chr2"], 41, SELECTION)
    assert np.array_equal(Genotypes.open(tmp_path / "out").read(np.arange(len(SELECTION))), g[SELECTION])


def test_write_bfile_variants_is_atomic(tmp_path, monkeypatch):
    """A failure while copying (here: the .bed shrank after it was opened) leaves neither the
    outputs nor temporary files, and an earlier output stays as it was."""
    from contig.genotypes.bedcopy import write_bfile_variants

    make_cohort(tmp_path / "in", n=37, m=50)
    geno = Genotypes.open(tmp_path / "in")
    _force_copy_runs(monkeypatch)
    write_bfile_variants(tmp_path / "out", geno, np.arange(10))
    before = (tmp_path / "out.bed").read_bytes()
    bed = tmp_path / "in.bed"
    bed.write_bytes(bed.read_bytes()[:-25])
    with pytest.raises(ValueError, match="ended"):
        write_bfile_variants(tmp_path / "out", geno, SELECTION)
    assert (tmp_path / "out.bed").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.bed", "in.bim", "in.fam", "out.bed",
                                                         "out.bim", "out.fam"]


@pytest.mark.plink2
def test_write_bfile_variants_equals_plink2_extract(tmp_path, monkeypatch):
    from contig.genotypes.bedcopy import write_bfile_variants

    make_cohort(tmp_path / "in", n=41, m=50)
    (tmp_path / "ids.txt").write_text("".join(f"rs{i}\n" for i in SELECTION))
    run_plink2("--bfile", str(tmp_path / "in"), "--extract", str(tmp_path / "ids.txt"), "--make-bed",
               "--out", str(tmp_path / "plink"))
    _force_copy_runs(monkeypatch)
    write_bfile_variants(tmp_path / "ours", Genotypes.open(tmp_path / "in"), SELECTION)
    for ext in (".bed", ".bim", ".fam"):
        assert (tmp_path / f"ours{ext}").read_bytes() == (tmp_path / f"plink{ext}").read_bytes(), ext


def test_variant_runs():
    from contig.genotypes.bedcopy import variant_runs

    starts, ends = variant_runs(SELECTION)
    assert starts.tolist() == [0, 5, 9, 30, 47] and ends.tolist() == [3, 6, 17, 31, 50]
    assert [len(x) for x in variant_runs(np.zeros(0, dtype=np.int64))] == [0, 0]


def test_is_autosome_same_for_series_and_arrays():
    import polars as pl

    from contig.genotypes.plinkio import is_autosome

    chrom = pl.Series(["1", "chr22", "22", "X", "23", "chrX", "MT", "0", "chr1"])
    assert is_autosome(chrom).tolist() == [True, True, True, False, False, False, False, False, True]
    assert is_autosome(chrom).tolist() == is_autosome(chrom.to_numpy()).tolist()
