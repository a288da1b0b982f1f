"""The bad-input catalogue: one row per broken input, across every stage's inputs.

Each case builds one broken input from a small simulated cohort, runs the real command line
(``contig CMD ...`` in-process, a few also as ``python -m contig`` in a subprocess; config cases
through ``snakemake -n``), and checks what the issue asks of every bad input: a non-zero exit
(2 for an input error), a last line of stderr that names the file and, where it makes sense, the
row and column, no traceback, and nothing left in the output folder (not even a temporary file).
One test also runs the workflow on a broken .bed and checks that the failed rule left no output.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from contig.cli import main
from helpers.images import fundus, png16, write_manifest
from helpers.workflow import TINY, real_data_inputs, rejected_dry_run, run_snakemake, write_config

N_PEOPLE = 80
N_SNPS = 1500


# --------------------------------------------------------------------------- the shared cohort

@dataclass
class Base:
    """Valid inputs of every stage (read-only: cases copy what they break)."""

    cohort: Path  # simulated cohort folder: genotypes.*, images.tsv, images/, pgs/, genes.tsv, ...
    iids: list[str]
    eigenvec: Path  # plink2-layout PCs of everyone
    covar: Path  # numeric covariate file (IID age sex)
    pheno: Path  # IID P1 P2
    embeddings: Path  # parquet IID dim_0000..dim_0007
    cache: Path  # image cache prefix (contig images)

    @property
    def geno(self) -> Path:
        return self.cohort / "genotypes"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    from contig.images.cache import build_image_cache
    from contig.simulate import SimulationConfig, simulate_cohort

    root = tmp_path_factory.mktemp("bad_inputs_base")
    cohort = root / "cohort"
    simulate_cohort(cohort, SimulationConfig(n_samples=N_PEOPLE, n_snps=N_SNPS, n_chromosomes=3,
                                             image_size=32, seed=5, n_workers=1,
                                             causal_chromosomes=(1, 2)))
    iids = pl.read_csv(cohort / "genotypes.fam", separator="\t", has_header=False)[:, 1].to_list()
    rng = np.random.default_rng(0)
    eigenvec = root / "pca.eigenvec"
    pcs = rng.normal(size=(N_PEOPLE, 3))
    eigenvec.write_text("#FID\tIID\tPC1\tPC2\tPC3\n" + "".join(
        f"{i}\t{i}\t" + "\t".join(f"{v:.6g}" for v in row) + "\n" for i, row in zip(iids, pcs)))
    sheet = pl.read_csv(cohort / "covariates.tsv", separator="\t")
    covar = root / "covar.tsv"
    sheet.select("IID", "age", "sex").write_csv(covar, separator="\t")
    pheno = root / "pheno.tsv"
    pl.DataFrame({"IID": iids, "P1": rng.normal(size=N_PEOPLE),
                  "P2": rng.normal(size=N_PEOPLE)}).write_csv(pheno, separator="\t")
    embeddings = root / "embeddings.parquet"
    pl.DataFrame({"IID": iids, **{f"dim_{j:04d}": rng.normal(size=N_PEOPLE).astype(np.float32)
                                  for j in range(8)}}).write_parquet(embeddings)
    build_image_cache(cohort / "images.tsv", root / "cache", 32, workers=1)
    return Base(cohort, iids, eigenvec, covar, pheno, embeddings, root / "cache")


# --------------------------------------------------------------------------- case helpers

@dataclass
class Expect:
    """A ``contig`` run that must fail: its arguments and the one line it must end in."""

    argv: list[str]
    file: Path | str
    message: str
    row: int | None = None
    column: str | None = None

    def prefix(self) -> str:
        """``contig CMD: error: FILE[, row R][, column 'C']: `` (the start of the last line)."""
        where = [str(self.file)]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"contig {self.argv[0]}: error: {', '.join(where)}: "


@dataclass
class DryRun:
    """A workflow config that ``snakemake -n`` must refuse, and what its error must say."""

    overrides: dict
    messages: list[str] = field(default_factory=list)


def inputs(work: Path) -> Path:
    folder = work / "in"
    folder.mkdir(exist_ok=True)
    return folder


def out(work: Path, name: str) -> str:
    return str(work / "out" / name)


def copy_bfile(base: Base, work: Path, name: str = "g") -> Path:
    prefix = inputs(work) / name
    for ext in (".bed", ".bim", ".fam"):
        shutil.copy(base.geno.with_suffix(ext), prefix.with_suffix(ext))
    return prefix


def edit_lines(path: Path, edit: Callable[[list[str]], list[str]]) -> None:
    """Rewrite a text file (gzip-aware) through ``edit`` on its lines (newlines stripped)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        lines = handle.read().splitlines()
    with opener(path, "wt") as handle:
        handle.write("\n".join(edit(lines)) + "\n")


def set_field(line: str, column: int, value: str, sep: str = "\t") -> str:
    fields = line.split(sep)
    fields[column] = value
    return sep.join(fields)


def copy_to(src: Path, work: Path, name: str | None = None) -> Path:
    dst = inputs(work) / (name or src.name)
    shutil.copy(src, dst)
    return dst


# --------------------------------------------------------------------------- genotypes

def qc_argv(prefix, work) -> list[str]:
    return ["qc", "--bfile", str(prefix), "--out", out(work, "cohort"), "--mind", "0.1"]


def bed_truncated(base, work):
    prefix = copy_bfile(base, work)
    bed = prefix.with_suffix(".bed")
    bed.write_bytes(bed.read_bytes()[:-7])
    return Expect(qc_argv(prefix, work), bed,
                  f"does not match {N_PEOPLE} samples (.fam) x {N_SNPS} variants (.bim)")


def bed_wrong_magic(base, work):
    prefix = copy_bfile(base, work)
    bed = prefix.with_suffix(".bed")
    bed.write_bytes(b"PK" + bed.read_bytes()[2:])
    return Expect(["pca", "--bfile", str(prefix), "--out", out(work, "pca"), "--n-pcs", "2"], bed,
                  "not a PLINK .bed file (wrong magic bytes)")


def bed_sample_major(base, work):
    prefix = copy_bfile(base, work)
    bed = prefix.with_suffix(".bed")
    data = bytearray(bed.read_bytes())
    data[2] = 0
    bed.write_bytes(bytes(data))
    return Expect(["snps", "--bfile", str(prefix), "--out", out(work, "snps"), "--every-kth", "10"],
                  bed, "sample-major .bed files are not supported")


def bim_more_variants_than_bed(base, work):
    prefix = copy_bfile(base, work)
    edit_lines(prefix.with_suffix(".bim"),
               lambda lines: lines + [set_field(lines[-1], 1, "rs_extra")])
    return Expect(["prs", "--bfile", str(prefix), "--scores",
                   str(base.cohort / "pgs" / "PGS900001.txt.gz"), "--out", out(work, "prs")],
                  prefix.with_suffix(".bed"), f"x {N_SNPS + 1} variants (.bim)")


def fam_fewer_samples_than_bed(base, work):
    prefix = copy_bfile(base, work)
    # 4 rows: one .bed byte holds 4 samples, so fewer rows could leave the size unchanged.
    edit_lines(prefix.with_suffix(".fam"), lambda lines: lines[:-4])
    return Expect(["burden", "--bfile", str(prefix), "--genes", str(base.cohort / "genes.tsv"),
                   "--out", out(work, "burden")], prefix.with_suffix(".bed"),
                  f"{N_PEOPLE - 4} samples (.fam)")


def fam_duplicate_iid(base, work):
    prefix = copy_bfile(base, work)
    edit_lines(prefix.with_suffix(".fam"),
               lambda lines: lines[:4] + [set_field(set_field(lines[4], 1, base.iids[1]), 0,
                                                    base.iids[1])] + lines[5:])
    return Expect(["gwas", "--bfile", str(prefix), "--pheno", str(base.pheno), "--covar",
                   str(base.covar), "--out", out(work, "assoc")], prefix.with_suffix(".fam"),
                  f"duplicate sample ID {base.iids[1]!r}", row=5, column="IID")


def fam_wrong_field_count(base, work):
    prefix = copy_bfile(base, work)
    edit_lines(prefix.with_suffix(".fam"),
               lambda lines: lines[:2] + ["\t".join(lines[2].split("\t")[:5])] + lines[3:])
    return Expect(qc_argv(prefix, work), prefix.with_suffix(".fam"), "expected 6 fields, found 5",
                  row=3)


def fam_bad_sex_code(base, work):
    prefix = copy_bfile(base, work)
    edit_lines(prefix.with_suffix(".fam"),
               lambda lines: lines[:3] + [set_field(lines[3], 4, "M")] + lines[4:])
    return Expect(["pca", "--bfile", str(prefix), "--out", out(work, "pca"), "--n-pcs", "2"],
                  prefix.with_suffix(".fam"), "sex code 'M' is not 0, 1 or 2", row=4, column="SEX")


def bim_text_position(base, work):
    prefix = copy_bfile(base, work)
    edit_lines(prefix.with_suffix(".bim"),
               lambda lines: lines[:6] + [set_field(lines[6], 3, "abc")] + lines[7:])
    return Expect(["snps", "--bfile", str(prefix), "--out", out(work, "snps"), "--every-kth", "10"],
                  prefix.with_suffix(".bim"), "POS 'abc' is not a number", row=7, column="POS")


def bim_missing(base, work):
    prefix = copy_bfile(base, work)
    prefix.with_suffix(".bim").unlink()
    return Expect(qc_argv(prefix, work), prefix.with_suffix(".bim"), "file not found")


def bfile_pattern_matches_nothing(base, work):
    copy_bfile(base, work)
    pattern = inputs(work) / "chr{chrom}"
    return Expect(qc_argv(pattern, work), inputs(work),
                  f"no .bed file matches the pattern {pattern}.bed")


def per_chromosome_samples_differ(base, work):
    from contig.genotypes.plinkio import Genotypes, write_bfile

    genotypes = Genotypes.open(base.geno)
    chrom = genotypes.bim["CHROM"].to_numpy()
    for name in ("1", "2"):
        idx = np.flatnonzero(chrom == name)
        fam = genotypes.fam
        if name == "2":  # same people, another order
            fam = pl.concat([fam[1:2], fam[0:1], fam[2:]])
        write_bfile(inputs(work) / f"chr{name}", fam, genotypes.bim[idx], [genotypes.read(idx)])
    return Expect(qc_argv(inputs(work) / "chr{chrom}", work), inputs(work) / "chr2.fam",
                  f"samples differ from {inputs(work) / 'chr1'}.fam")


def keep_matches_no_genotyped_person(base, work):
    prefix = copy_bfile(base, work)
    keep = inputs(work) / "imaged.tsv"
    keep.write_text("IID\tpath\n" + "".join(f"X{i}\timg{i}.png\n" for i in range(5)))
    return Expect(qc_argv(prefix, work) + ["--keep", str(keep)], keep,
                  f"none of the 5 IDs is a sample of {prefix}")


# --------------------------------------------------------------------------- images

GOOD_ROWS = 6


def manifest_case(base, work, bad_row: tuple[str, ...] | None, header=("IID", "path", "eye"),
                  rows: list[tuple[str, ...]] | None = None, extra: list[str] | None = None,
                  ) -> tuple[list[str], Path]:
    """A manifest of GOOD_ROWS good images (copied) with ``bad_row`` as row 5; (argv, manifest)."""
    folder = inputs(work)
    (folder / "images").mkdir(exist_ok=True)
    manifest = pl.read_csv(base.cohort / "images.tsv", separator="\t").head(GOOD_ROWS)
    for path in manifest["path"]:
        shutil.copy(base.cohort / path, folder / path)
    good = rows if rows is not None else [tuple(r) for r in manifest.iter_rows()]
    lines = [*good[:3], bad_row, *good[3:]] if bad_row is not None else good
    path = write_manifest(folder / "images.tsv", lines, header=header)
    return ["images", "--manifest", str(path), "--out", out(work, "cache"), "--size", "32",
            "--workers", "1", *(extra or [])], path


def image_row_case(base, work, name: str, column: str, message: str, make=None, eye="left"):
    """Row 5 of the manifest points at ``name`` (made by ``make(path)`` if given)."""
    (inputs(work) / "images").mkdir(exist_ok=True)
    if make is not None:
        make(inputs(work) / name)
    argv, manifest = manifest_case(base, work, ("X9", name, eye))
    return Expect(argv, manifest, message, row=5, column=column)


def _fundus(path: Path, mode: str = "RGB") -> None:
    fundus(64, 64, (8, 8, 56, 56)).convert(mode).save(path)


def image_missing_file(base, work):
    return image_row_case(base, work, "images/absent.png", "path", "file not found")


def image_zero_bytes(base, work):
    return image_row_case(base, work, "images/empty.png", "path", "zero-byte file",
                          lambda p: p.write_bytes(b""))


def image_not_an_image(base, work):
    return image_row_case(base, work, "images/noise.png", "path", "not a readable image",
                          lambda p: p.write_bytes(np.random.default_rng(2).bytes(700)))


def image_truncated_png(base, work):
    def make(path):
        buffer = io.BytesIO()
        fundus(64, 64, (8, 8, 56, 56)).save(buffer, format="PNG")
        path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])

    return image_row_case(base, work, "images/half.png", "path", "corrupt image data", make)


def image_grayscale(base, work):
    return image_row_case(base, work, "images/gray.png", "path",
                          "grayscale image (mode L); allow with --convert grayscale",
                          lambda p: _fundus(p, "L"))


def image_16bit_rgb(base, work):
    def make(path):
        rgb = np.asarray(fundus(64, 64, (8, 8, 56, 56))).astype(np.uint16) * 257
        path.write_bytes(png16(rgb))

    return image_row_case(base, work, "images/deep.png", "path",
                          "16bit image (mode RGB); allow with --convert 16bit", make)


def image_same_person_and_eye_twice(base, work):
    iid, _, eye = pl.read_csv(base.cohort / "images.tsv", separator="\t").row(0)
    _fundus(inputs(work) / "again.png")
    argv, manifest = manifest_case(base, work, (iid, "again.png", eye))
    return Expect(argv, manifest, f"duplicate IID {iid!r} and eye {eye!r} (first at row 2)",
                  row=5, column="IID")


def image_path_escapes_with_dotdot(base, work):
    _fundus(work / "outside.png")
    return image_row_case(base, work, "../outside.png", "path", "is outside the manifest's folder")


def image_absolute_path_outside(base, work):
    _fundus(work / "outside.png")
    return image_row_case(base, work, str(work / "outside.png"), "path",
                          "is outside the manifest's folder")


def image_symlink_escapes(base, work):
    _fundus(work / "outside.png")

    def make(path):
        path.symlink_to(work / "outside.png")

    return image_row_case(base, work, "images/link.png", "path",
                          "leads through a symbolic link to", make)


def image_bad_eye(base, work):
    return image_row_case(base, work, "images/x.png", "eye", "eye 'middle' is not left or right",
                          _fundus, eye="middle")


def manifest_without_path_column(base, work):
    argv, manifest = manifest_case(base, work, None, header=("IID", "file", "eye"))
    return Expect(argv, manifest, "missing required column(s) path; found IID, file, eye")


def manifest_people_not_genotyped(base, work):
    """The manifest and the QC'd .fam share nobody: an empty intersection of people."""
    prefix = copy_bfile(base, work)
    edit_lines(prefix.with_suffix(".fam"),
               lambda lines: [set_field(set_field(l, 1, f"G{i}"), 0, f"G{i}")
                              for i, l in enumerate(lines)])
    argv, manifest = manifest_case(base, work, None, extra=["--keep", str(prefix.with_suffix(".fam"))])
    return Expect(argv, manifest,
                  f"none of the {GOOD_ROWS} rows has an IID in --keep {prefix.with_suffix('.fam')}")


# --------------------------------------------------------------------------- covariates

def covariates_case(base, work, edit=None, quantitative=("age",), categorical=("sex", "batch"),
                    eigenvec: Path | None = None):
    sheet = copy_to(base.cohort / "covariates.tsv", work)
    if edit is not None:
        edit_lines(sheet, edit)
    argv = ["covariates", "--covariates", str(sheet), "--quantitative", *quantitative,
            "--categorical", *categorical, "--eigenvec", str(eigenvec or base.eigenvec),
            "--out", out(work, "covariates.tsv")]
    return argv, sheet


def _set_row(row: int, column: int, value: str):
    """An edit setting field ``column`` of file row ``row`` (1-based, header = 1)."""
    def edit(lines):
        return lines[: row - 1] + [set_field(lines[row - 1], column, value)] + lines[row:]
    return edit


def covariates_nan(base, work):
    argv, sheet = covariates_case(base, work, _set_row(4, 1, "NaN"))
    return Expect(argv, sheet, "value 'NaN' is not a number", row=4, column="age")


def covariates_missing_value(base, work):
    argv, sheet = covariates_case(base, work, _set_row(6, 1, "NA"))
    return Expect(argv, sheet, "missing value", row=6, column="age")


def covariates_text_in_numeric_column(base, work):
    argv, sheet = covariates_case(base, work, _set_row(3, 1, "fifty"))
    return Expect(argv, sheet, "value 'fifty' is not a number", row=3, column="age")


def covariates_constant_column(base, work):
    argv, sheet = covariates_case(
        base, work, lambda lines: lines[:1] + [set_field(l, 1, "50") for l in lines[1:]])
    return Expect(argv, sheet, f"covariate is constant among the {N_PEOPLE} people kept",
                  column="age")


def covariates_single_level_category(base, work):
    argv, sheet = covariates_case(
        base, work, lambda lines: lines[:1] + [set_field(l, 3, "b1") for l in lines[1:]])
    return Expect(argv, sheet, "categorical covariate has a single level", column="batch")


def covariates_without_iid_column(base, work):
    argv, sheet = covariates_case(base, work, lambda lines: [set_field(lines[0], 0, "ID")] + lines[1:])
    return Expect(argv, sheet, "missing required column(s) IID")


def covariates_duplicate_iid(base, work):
    argv, sheet = covariates_case(base, work, _set_row(4, 0, base.iids[1]))
    return Expect(argv, sheet, f"duplicate IID {base.iids[1]!r}", row=4, column="IID")


def covariates_unknown_column(base, work):
    argv, sheet = covariates_case(base, work, quantitative=("age", "height"))
    return Expect(argv, sheet, "missing required column(s) height")


def covariates_share_nobody_with_pcs(base, work):
    eigenvec = copy_to(base.eigenvec, work)
    edit_lines(eigenvec, lambda lines: lines[:1] + ["X" + l.replace("\t", "\tX", 1) for l in lines[1:]])
    argv, sheet = covariates_case(base, work, eigenvec=eigenvec)
    return Expect(argv, sheet, "no person is in both the covariate sheet and the eigenvec file")


def eigenvec_text_value(base, work):
    eigenvec = copy_to(base.eigenvec, work)
    edit_lines(eigenvec, _set_row(3, 3, "high"))
    argv, _ = covariates_case(base, work, eigenvec=eigenvec)
    return Expect(argv, eigenvec, "value 'high' is not a number", row=3, column="PC2")


# --------------------------------------------------------------------------- phenotypes

def phenotypes_argv(work, embeddings, covar) -> list[str]:
    return ["phenotypes", "--embeddings", str(embeddings), "--covar", str(covar),
            "--out", out(work, "phenotypes"), "--n-pcs", "3"]


def embeddings_with_nan(base, work):
    table = pl.read_parquet(base.embeddings)
    values = table["dim_0002"].to_numpy().copy()
    values[3] = np.nan
    path = inputs(work) / "embeddings.parquet"
    table.with_columns(pl.Series("dim_0002", values)).write_parquet(path)
    return Expect(phenotypes_argv(work, path, base.covar), path,
                  "missing or infinite embedding value", row=5, column="dim_0002")


def embeddings_not_parquet(base, work):
    path = inputs(work) / "embeddings.parquet"
    path.write_text("IID\tdim_0000\nS1\t0.5\n")
    return Expect(phenotypes_argv(work, path, base.covar), path, "cannot read as parquet")


def embeddings_share_nobody_with_covariates(base, work):
    covar = copy_to(base.covar, work)
    edit_lines(covar, lambda lines: lines[:1] + ["X" + l for l in lines[1:]])
    return Expect(phenotypes_argv(work, base.embeddings, covar), covar,
                  "only 0 people have embeddings and all covariates")


def phenotype_covariate_text(base, work):
    covar = copy_to(base.covar, work)
    edit_lines(covar, _set_row(5, 1, "old"))
    return Expect(phenotypes_argv(work, base.embeddings, covar), covar,
                  "value 'old' is not a number", row=5, column="age")


# --------------------------------------------------------------------------- gwas

def gwas_argv(base, work, pheno=None, covar=None) -> list[str]:
    return ["gwas", "--bfile", str(base.geno), "--pheno", str(pheno or base.pheno),
            "--covar", str(covar or base.covar), "--out", out(work, "assoc")]


def gwas_phenotype_all_missing(base, work):
    pheno = copy_to(base.pheno, work)
    edit_lines(pheno, lambda lines: lines[:1] + [set_field(l, 2, "NA") for l in lines[1:]])
    return Expect(gwas_argv(base, work, pheno=pheno), pheno, "phenotype is missing for all",
                  column="P2")


def gwas_people_not_genotyped(base, work):
    pheno = copy_to(base.pheno, work)
    edit_lines(pheno, lambda lines: lines[:1] + ["X" + l for l in lines[1:]])
    return Expect(gwas_argv(base, work, pheno=pheno), pheno, "no person is in the .fam")


def gwas_text_in_phenotype(base, work):
    pheno = copy_to(base.pheno, work)
    edit_lines(pheno, _set_row(6, 1, "high"))
    return Expect(gwas_argv(base, work, pheno=pheno), pheno, "value 'high' is not a number",
                  row=6, column="P1")


def gwas_constant_covariate(base, work):
    covar = copy_to(base.covar, work)
    edit_lines(covar, lambda lines: lines[:1] + [set_field(l, 2, "1") for l in lines[1:]])
    return Expect(gwas_argv(base, work, covar=covar), covar, "covariate is constant",
                  column="sex")


def sumstats_without_p_values(base, work):
    path = inputs(work) / "assoc.tsv"
    path.write_text("CHROM\tGENPOS\tID\tBETA\n1\t100\trs1\t0.1\n")
    return Expect(["gwas-plots", "--sumstats", str(path), "--out", out(work, "plots")], path,
                  "summary statistics need columns CHROM GENPOS ID and LOG10P or P")


# --------------------------------------------------------------------------- polygenic scores

PGS = "PGS900001.txt.gz"


def pgs_case(base, work, edit=None, name: str = PGS, extra: list[str] | None = None):
    path = copy_to(base.cohort / "pgs" / name, work)
    if edit is not None:
        edit_lines(path, edit)
    argv = ["prs", "--bfile", str(base.geno), "--scores", str(path), "--out", out(work, "prs"),
            *(extra or [])]
    return argv, path


def _header_row(path: Path) -> int:
    with gzip.open(path, "rt") as handle:
        return 1 + sum(1 for line in handle if line.startswith("#"))


def _edit_table(edit_header=None, edit_rows=None):
    """Edit a scoring file's column header line and/or its data rows."""
    def edit(lines):
        meta = [l for l in lines if l.startswith("#")]
        header, rows = lines[len(meta)], lines[len(meta) + 1:]
        if edit_header is not None:
            header = edit_header(header)
        if edit_rows is not None:
            rows = edit_rows(rows)
        return meta + ([header] if header is not None else []) + rows
    return edit


def pgs_without_header_line(base, work):
    argv, path = pgs_case(base, work, _edit_table(edit_header=lambda h: None))
    return Expect(argv, path, "no PGS Catalog columns in the header line", row=_header_row(path))


def pgs_unknown_columns(base, work):
    argv, path = pgs_case(base, work, _edit_table(
        edit_header=lambda h: "\t".join(f"col{j}" for j in range(len(h.split("\t"))))))
    return Expect(argv, path, "no PGS Catalog columns in the header line (col0, col1",
                  row=_header_row(path))


def pgs_other_genome_build(base, work):
    argv, path = pgs_case(base, work, lambda lines: [
        "#genome_build=GRCh38" if l.startswith("#genome_build=") else l for l in lines],
        extra=["--genome-build", "GRCh37"])
    return Expect(argv, path, "genome build GRCh38 (#genome_build) differs from --genome-build GRCh37")


def pgs_builds_disagree(base, work):
    argv, first = pgs_case(base, work)
    other = copy_to(base.cohort / "pgs" / "PGS900003.txt.gz", work)
    edit_lines(other, lambda lines: [
        "#genome_build=GRCh38" if l.startswith("#genome_build=") else l for l in lines])
    argv[argv.index("--scores") + 1:argv.index("--scores") + 2] = [str(first), str(other)]
    return Expect(argv, other, f"genome build GRCh38 (#genome_build) differs from GRCh37 of {first}")


def pgs_zero_overlap(base, work):
    def shift(rows):
        return [set_field(r, 2, str(int(r.split("\t")[2]) + 1)) for r in rows]

    argv, path = pgs_case(base, work, _edit_table(edit_rows=shift))
    return Expect(argv, path, "score PGS900001: only 0 of ")


def pgs_text_weight(base, work):
    def edit(rows):
        return rows[:2] + [set_field(rows[2], 5, "big")] + rows[3:]

    argv, path = pgs_case(base, work, _edit_table(edit_rows=edit))
    return Expect(argv, path, "value 'big' is not a number", row=_header_row(path) + 3,
                  column="effect_weight")


def pgs_without_effect_weight(base, work):
    def drop(line):
        return "\t".join(line.split("\t")[:5] + line.split("\t")[6:])

    argv, path = pgs_case(base, work, _edit_table(edit_header=drop,
                                                  edit_rows=lambda rows: [drop(r) for r in rows]))
    return Expect(argv, path, "missing required column effect_weight", row=_header_row(path))


def pgs_corrupt_gzip(base, work):
    path = inputs(work) / PGS
    path.write_bytes((base.cohort / "pgs" / PGS).read_bytes()[:200])
    argv = ["prs", "--bfile", str(base.geno), "--scores", str(path), "--out", out(work, "prs")]
    return Expect(argv, path, "corrupt gzip file")


# --------------------------------------------------------------------------- burden

def genes_case(base, work, edit):
    genes = copy_to(base.cohort / "genes.tsv", work)
    edit_lines(genes, edit)
    return ["burden", "--bfile", str(base.geno), "--genes", str(genes), "--out",
            out(work, "burden")], genes


def genes_end_before_start(base, work):
    def edit(lines):
        start = int(lines[2].split("\t")[1])
        return lines[:2] + [set_field(lines[2], 2, str(start - 10))] + lines[3:]

    argv, genes = genes_case(base, work, edit)
    return Expect(argv, genes, "is before start", row=3, column="end")


def genes_duplicate_name(base, work):
    name = None

    def edit(lines):
        nonlocal name
        name = lines[1].split("\t")[3]
        return lines[:3] + [set_field(lines[3], 3, name)] + lines[4:]

    argv, genes = genes_case(base, work, edit)
    return Expect(argv, genes, f"gene {name!r} appears more than once", row=4, column="gene")


def genes_text_in_start(base, work):
    argv, genes = genes_case(base, work, _set_row(5, 1, "one"))
    return Expect(argv, genes, "value 'one' is not Int64", row=5, column="start")


# --------------------------------------------------------------------------- training, embedding

def train_argv(base, work, modality: Path, images: Path | None = None) -> list[str]:
    return ["train", "--images", str(images or base.cache), "--modality", f"snps={modality}",
            "--out", out(work, "train"), "--arch", "resnet18", "--epochs", "1",
            "--batch-size", "8", "--proj-hidden", "16", "--proj-dim", "8",
            "--genetic-hidden", "16", "--workers", "0", "--threads", "1", "--progress", "off"]


def train_nobody_with_images_and_genetics(base, work):
    from contig.scores.modality import Modality, save_modality

    path = inputs(work) / "snps.npz"
    save_modality(path, Modality(np.array([f"X{i}" for i in range(N_PEOPLE)]),
                                 np.array(["s1", "s2"]), np.ones((N_PEOPLE, 2), np.float32)))
    return Expect(train_argv(base, work, path), f"{base.cache}.index.tsv",
                  "only 0 people with images and genetics: too few to train")


def train_modality_not_npz(base, work):
    path = inputs(work) / "snps.npz"
    path.write_bytes(b"IID\tx\nS1\t1\n")
    return Expect(train_argv(base, work, path), path, "not a modality file (not an .npz archive)")


def train_image_cache_missing(base, work):
    from contig.scores.modality import Modality, save_modality

    path = inputs(work) / "snps.npz"
    save_modality(path, Modality(np.array(base.iids), np.array(["s1"]),
                                 np.ones((N_PEOPLE, 1), np.float32)))
    prefix = inputs(work) / "no_cache"
    return Expect(train_argv(base, work, path, images=prefix), f"{prefix}.npy",
                  "image cache not found")


def embed_argv(base, work, checkpoint: Path) -> list[str]:
    return ["embed", "--images", str(base.cache), "--checkpoint", str(checkpoint),
            "--out", out(work, "embeddings.parquet"), "--device", "cpu"]


def embed_checkpoint_corrupt(base, work):
    path = inputs(work) / "model.pt"
    path.write_bytes(b"\x80\x02not really a checkpoint" * 20)
    return Expect(embed_argv(base, work, path), path,
                  "cannot read the contig checkpoint as a weights-only torch file")


class _RunsCode:
    """Unpickling this runs a shell command: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def embed_checkpoint_with_code(base, work):
    import torch

    path = inputs(work) / "model.pt"
    torch.save({"format": "contig-model", "payload": _RunsCode(work / "pwned")}, path)
    return Expect(embed_argv(base, work, path), path,
                  "holds Python objects other than tensors and plain containers")


# --------------------------------------------------------------------------- workflow config

def config_unknown_key(base, work):
    return DryRun({"images": {"sizes": 64}}, ["'sizes' was unexpected"])


def config_wrong_type(base, work):
    return DryRun({"pretrain": {"epochs": "many"}}, ["'many' is not of type 'integer'", "epochs"])


def labels_sheet_without_iid(base, work):
    inputs_ = real_data_inputs(inputs(work))
    labels = inputs(work) / "labels.tsv"
    labels.write_text("ID\tdisease\nA\t1\n")
    inputs_["labels"] = str(labels)
    return DryRun({"inputs": inputs_},
                  [f"config inputs.labels: {labels}: missing required column(s) IID"])


def covariates_sheet_age_out_of_range(base, work):
    inputs_ = real_data_inputs(inputs(work))
    sheet = Path(inputs_["covariates"])
    sheet.write_text("IID\tage\tsex\tbatch\nA\t50\t1\tb1\nB\t250\t2\tb1\n")
    return DryRun({"inputs": inputs_},
                  [f"config inputs.covariates: {sheet}, row 3, column 'age': 250.0 is greater "
                   "than the maximum of 130"])


# --------------------------------------------------------------------------- the catalogue

CASES: dict[str, Callable[[Base, Path], Expect | DryRun]] = {
    f.__name__.replace("_", "-"): f for f in (
        # genotypes (qc, pca, snps, prs, burden, gwas)
        bed_truncated, bed_wrong_magic, bed_sample_major, bim_more_variants_than_bed,
        fam_fewer_samples_than_bed, fam_duplicate_iid, fam_wrong_field_count, fam_bad_sex_code,
        bim_text_position, bim_missing, bfile_pattern_matches_nothing,
        per_chromosome_samples_differ, keep_matches_no_genotyped_person,
        # image manifest and image files
        image_missing_file, image_zero_bytes, image_not_an_image, image_truncated_png,
        image_grayscale, image_16bit_rgb, image_same_person_and_eye_twice,
        image_path_escapes_with_dotdot, image_absolute_path_outside, image_symlink_escapes,
        image_bad_eye, manifest_without_path_column, manifest_people_not_genotyped,
        # covariates
        covariates_nan, covariates_missing_value, covariates_text_in_numeric_column,
        covariates_constant_column, covariates_single_level_category,
        covariates_without_iid_column, covariates_duplicate_iid, covariates_unknown_column,
        covariates_share_nobody_with_pcs, eigenvec_text_value,
        # phenotypes
        embeddings_with_nan, embeddings_not_parquet, embeddings_share_nobody_with_covariates,
        phenotype_covariate_text,
        # association
        gwas_phenotype_all_missing, gwas_people_not_genotyped, gwas_text_in_phenotype,
        gwas_constant_covariate, sumstats_without_p_values,
        # polygenic scores
        pgs_without_header_line, pgs_unknown_columns, pgs_other_genome_build,
        pgs_builds_disagree, pgs_zero_overlap, pgs_text_weight, pgs_without_effect_weight,
        pgs_corrupt_gzip,
        # gene table
        genes_end_before_start, genes_duplicate_name, genes_text_in_start,
        # training and embedding
        train_nobody_with_images_and_genetics, train_modality_not_npz, train_image_cache_missing,
        embed_checkpoint_corrupt, embed_checkpoint_with_code,
        # workflow config and sheets (snakemake -n)
        config_unknown_key, config_wrong_type, labels_sheet_without_iid,
        covariates_sheet_age_out_of_range,
    )
}


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """``contig ARGV`` in-process, as the console script would end: (exit status, stderr)."""
    try:
        status = main(argv)
    except SystemExit as stop:  # argparse, or a message string
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
            status = 1
        else:
            status = stop.code or 0
    return status, capsys.readouterr().err


def leftovers(folder: Path) -> list[str]:
    """Every file under ``folder`` (outputs and temporary files alike)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


def test_catalogue_covers_enough_cases():
    assert len(CASES) >= 35


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_ends_in_one_line_and_leaves_nothing(case, base, tmp_path, capsys):
    work = tmp_path
    (work / "out").mkdir()
    expect = CASES[case](base, work)
    if isinstance(expect, DryRun):
        text = rejected_dry_run(work, expect.overrides)
        assert "Traceback" not in text, text
        for message in expect.messages:
            assert message in text, text
        assert not (work / "results").exists()
        return
    status, err = run_cli(expect.argv, capsys)
    lines = err.strip().splitlines()
    assert status == 2, err
    assert "Traceback" not in err, err
    assert lines and lines[-1].startswith(expect.prefix()), lines[-1:]
    assert expect.message in lines[-1], lines[-1]
    assert leftovers(work / "out") == []
    assert not (work / "pwned").exists()  # the malicious checkpoint ran nothing


SUBPROCESS_CASES = ["bed-truncated", "image-grayscale", "pgs-zero-overlap", "covariates-constant-column"]


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_console_command_ends_the_same_way(case, base, tmp_path):
    """The same cases through ``python -m contig``: exit 2, the same last line, no traceback."""
    (tmp_path / "out").mkdir()
    expect = CASES[case](base, tmp_path)
    result = subprocess.run([sys.executable, "-m", "contig", *expect.argv], capture_output=True,
                            text=True, timeout=120, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(expect.prefix()) and expect.message in last, last
    assert leftovers(tmp_path / "out") == []
    assert not (tmp_path / "pwned").exists()


def test_failed_workflow_rule_leaves_no_output(base, tmp_path):
    """Real data whose .bed is truncated passes the up-front checks (they read no genotypes), so
    the qc rule itself fails: it exits 2 with one line in its log, and none of its four outputs
    (nor a temporary file) exists afterwards, so a rerun cannot mistake them for finished."""
    data = tmp_path / "data"
    data.mkdir()
    prefix = copy_bfile(base, data)
    bed = prefix.with_suffix(".bed")
    bed.write_bytes(bed.read_bytes()[:-5])
    shutil.copytree(base.cohort / "images", data / "images")
    for name in ("images.tsv", "covariates.tsv", "genes.tsv"):
        shutil.copy(base.cohort / name, data / name)
    shutil.copytree(base.cohort / "pgs", data / "pgs")
    config = write_config(tmp_path, {**TINY, "inputs": {
        "simulate": False, "genotypes": str(prefix), "images": str(data / "images.tsv"),
        "covariates": str(data / "covariates.tsv"), "pgs": str(data / "pgs"),
        "genes": str(data / "genes.tsv"), "labels": ""}, "pca": {"color_by": ""}})
    result = run_snakemake(tmp_path, config, "results/genotypes/cohort.qc.tsv", timeout=300)
    assert result.returncode != 0
    assert "Error in rule qc" in result.stdout + result.stderr, result.stderr[-3000:]
    log = (tmp_path / "logs" / "genotypes" / "qc.log").read_text().strip().splitlines()
    assert log[-1].startswith(f"contig qc: error: {bed}: size "), log[-1:]
    assert "Traceback" not in "\n".join(log)
    assert leftovers(tmp_path / "results") == []


# --------------------------------------------------------------------------- untrusted files

SRC = Path(__file__).resolve().parents[1] / "src" / "contig"


def unsafe_loads(source: str) -> list[str]:
    """Calls in ``source`` that could unpickle code: ``torch.load`` without ``weights_only=True``,
    ``pickle.load(s)``, and ``np.load(..., allow_pickle=True)``."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner, name = getattr(node.func.value, "id", ""), node.func.attr
        keywords = {k.arg: k.value for k in node.keywords}

        def is_true(key: str) -> bool:
            value = keywords.get(key)
            return isinstance(value, ast.Constant) and value.value is True

        if (owner == "torch" and name == "load" and not is_true("weights_only")) \
                or (owner in ("pickle", "cPickle", "dill", "joblib") and name in ("load", "loads")) \
                or (name == "load" and is_true("allow_pickle")):
            found.append(f"line {node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_no_source_file_unpickles_untrusted_data():
    found = {path.relative_to(SRC).as_posix(): unsafe
             for path in sorted(SRC.rglob("*.py")) if (unsafe := unsafe_loads(path.read_text()))}
    assert found == {}
    assert unsafe_loads("import torch\ntorch.load(p)\ntorch.load(p, weights_only=False)\n"
                        "torch.load(p, weights_only=True)\npickle.loads(b)\n"
                        "np.load(p, allow_pickle=True)\n") == [
        "line 2: torch.load(p)", "line 3: torch.load(p, weights_only=False)",
        "line 5: pickle.loads(b)", "line 6: np.load(p, allow_pickle=True)"]


def test_backbone_weights_that_run_code_are_refused(tmp_path):
    import torch

    from contig.core.errors import InputError
    from contig.pretrain.models import build_backbone

    torch.save({"conv1.weight": _RunsCode(tmp_path / "pwned")}, tmp_path / "weights.pt")
    with pytest.raises(InputError, match="refusing to load: the weights file holds Python objects"):
        build_backbone("resnet18", tmp_path / "weights.pt")
    assert not (tmp_path / "pwned").exists()


@pytest.fixture
def escaping_manifest(base, tmp_path) -> tuple[Path, list[str]]:
    """A manifest with good rows plus one file reached by ``..``, one by an absolute path and one
    through a symbolic link leaving the folder; returns (manifest, the escaping paths)."""
    folder = tmp_path / "in"
    (folder / "images").mkdir(parents=True)
    manifest = pl.read_csv(base.cohort / "images.tsv", separator="\t").head(GOOD_ROWS)
    for path in manifest["path"]:
        shutil.copy(base.cohort / path, folder / path)
    for name in ("a.png", "b.png", "c.png"):
        _fundus(tmp_path / name)
    (folder / "images" / "link.png").symlink_to(tmp_path / "c.png")
    escaping = ["../a.png", str(tmp_path / "b.png"), "images/link.png"]
    rows = [tuple(r) for r in manifest.iter_rows()] + [
        (f"E{k}", path, "left") for k, path in enumerate(escaping)]
    return write_manifest(folder / "images.tsv", rows), escaping


def test_escaping_paths_are_refused_unless_allowed(escaping_manifest, tmp_path):
    from contig.images.cache import build_image_cache

    manifest, escaping = escaping_manifest
    result = build_image_cache(manifest, tmp_path / "out" / "cache", 32, on_error="exclude",
                               workers=1)
    assert result.excluded["path"].to_list() == escaping
    reasons = result.excluded["reason"].to_list()
    assert all("outside the manifest's folder" in r and "--allow-outside-root" in r for r in reasons)
    assert f"symbolic link to {tmp_path / 'c.png'}" in reasons[2]
    allowed = build_image_cache(manifest, tmp_path / "out" / "allowed", 32, allow_outside_root=True,
                                workers=1)
    assert allowed.index["path"].to_list()[-3:] == escaping
    assert allowed.excluded.height == 0


def test_links_inside_the_folder_and_a_linked_folder_are_fine(base, tmp_path):
    from contig.images.cache import build_image_cache

    real = tmp_path / "real"
    (real / "images").mkdir(parents=True)
    manifest = pl.read_csv(base.cohort / "images.tsv", separator="\t").head(GOOD_ROWS)
    for path in manifest["path"]:
        shutil.copy(base.cohort / path, real / path)
    _fundus(real / "stored.png")
    (real / "images" / "alias.png").symlink_to(real / "stored.png")
    rows = [tuple(r) for r in manifest.iter_rows()] + [("E1", "images/alias.png", "left")]
    write_manifest(real / "images.tsv", rows)
    (tmp_path / "linked").symlink_to(real, target_is_directory=True)
    result = build_image_cache(tmp_path / "linked" / "images.tsv", tmp_path / "out" / "cache", 32,
                               workers=1)
    assert result.excluded.height == 0
    assert result.index["path"].to_list()[-1] == "images/alias.png"
