"""A small simulated cohort written in the layout of UK Biobank data, for workflow tests.

What differs from the simulator's own files (and what config/examples/ukb_like.yaml expects):

- genotypes: one PLINK 1 fileset per chromosome, ``genotypes/ukb_cal_chr{N}_v2.bed/.bim/.fam``,
  for the simulated chromosomes only (a subset of the autosomes); the .fam's FID differs from the
  IID (pairs of people share an FID), the IID is the ID every other sheet uses;
- photographs: ``fundus/{IID}_21015_0_0.jpg`` (left) and ``_21016_0_0.jpg`` (right), JPEGs of
  a few different 4:3 sizes with black camera borders around the circular field, listed in
  ``fundus/manifest.tsv`` (IID path eye, paths relative to the manifest); one of them is
  truncated (unreadable);
- ``covariates.tsv``: IID age sex batch centre (assessment-centre codes, categorical);
- ``labels.tsv``: IID dr_grade (ordinal, some missing) smoker (binary);
- ``pgs_catalog/GRCh37/``: the simulator's PGS Catalog scoring files; ``genes_grch37.tsv``;
- imputed genotypes: ``imputed/ukb_imp_chr{N}_v3.bgen`` (BGEN v1.2, 8 bits, zlib, written by
  plink2 from a DS VCF) with one ``imputed/ukb_imp_v3.sample`` (ID_1 = ID_2 = IID): every
  simulated variant, while the array leaves out every fifth (the imputed set is a superset),
  dosages pulled towards the mean by a per-variant imputation quality, three array people absent
  and two people present only here.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from contig.genotypes.plinkio import Genotypes, write_bfile
from contig.simulate import SimulationConfig, simulate_cohort

LEFT_FIELD, RIGHT_FIELD = "21015", "21016"  # UK Biobank data fields of the fundus photographs
PHOTO_SIZES = ((64, 48), (96, 72), (80, 60))  # (width, height), all 4:3
CENTRES = ("11010", "11016", "11021")  # assessment-centre codes
ARRAY_SKIPS = 5  # the array leaves out every 5th simulated variant; the imputed files have all


@dataclass(frozen=True)
class UkbCohort:
    """Paths of a cohort written by :func:`write_ukb_cohort` (the config's ``inputs``)."""

    root: Path
    genotypes: str  # pattern with {chrom}
    images: Path
    covariates: Path
    pgs: Path
    genes: Path
    labels: Path
    chromosomes: list[str]
    unreadable: str  # manifest path of the truncated JPEG
    imputed: str  # .bgen pattern with {chrom}
    imputed_sample: Path
    array_only: list[str]  # IIDs in the array and not the imputed files
    imputed_only: list[str]  # IIDs in the imputed files and not the array

    def inputs(self) -> dict:
        """The config's ``inputs`` section for this cohort."""
        return {"simulate": False, "genotypes": self.genotypes, "images": str(self.images),
                "covariates": str(self.covariates), "pgs": str(self.pgs),
                "genes": str(self.genes), "labels": str(self.labels), "imputed": self.imputed,
                "imputed_sample": str(self.imputed_sample)}


def family_ids(iids: list[str]) -> list[str]:
    """FIDs unlike the IIDs: consecutive pairs of people share one."""
    return [f"F{i // 2 + 1:05d}" for i in range(len(iids))]


def write_per_chromosome_genotypes(prefix: Path, pattern: str) -> list[str]:
    """Split fileset ``prefix`` into one fileset per chromosome at ``pattern`` ({chrom} replaced),
    with FIDs from :func:`family_ids`. Returns the chromosomes, in file order."""
    genotypes = Genotypes.open(prefix)
    fam = genotypes.fam.with_columns(pl.Series("FID", family_ids(genotypes.fam["IID"].to_list())))
    bim = genotypes.bim.with_row_index("index")
    chromosomes = list(dict.fromkeys(bim["CHROM"].to_list()))
    for chrom in chromosomes:
        part = bim.filter((pl.col("CHROM") == chrom) & (pl.col("index") % ARRAY_SKIPS != ARRAY_SKIPS - 1))
        chunks = (rows for _, rows in genotypes.iter_packed_chunks(
            variant_idx=part["index"].to_numpy().astype(np.int64)))
        write_bfile(pattern.replace("{chrom}", chrom), fam, part.drop("index"), chunks, packed=True)
    return chromosomes


def imputed_dosages(genotypes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dosages ``(m, n)`` from hard calls ``(m, n)`` (-9 missing): each variant keeps a share
    r ~ U(0.3, 1) of the call and takes the rest from its mean (missing calls get the mean),
    rounded to 3 decimals as imputation servers write them."""
    calls = np.where(genotypes < 0, np.nan, genotypes.astype(float))
    mean = np.nan_to_num(np.nanmean(calls, axis=1, keepdims=True))
    calls = np.where(np.isnan(calls), mean, calls)
    r = rng.uniform(0.3, 1.0, (len(calls), 1))
    return np.round(r * calls + (1 - r) * mean, 3)


def write_imputed_bgen(prefix: Path, out: Path, chromosomes: list[str],
                       seed: int) -> tuple[str, Path, list[str], list[str]]:
    """Per-chromosome BGEN files of every variant of fileset ``prefix`` (module doc), through a DS
    VCF imported and exported by plink2. Returns the .bgen pattern, the .sample, the IIDs left
    out and the IIDs added."""
    from helpers.dosages import write_vcf
    from helpers.plink import run_plink2

    rng = np.random.default_rng(seed)
    genotypes = Genotypes.open(prefix)
    iid = np.array(genotypes.fam["IID"].to_list())
    array_only = iid[[0, 5, 9]].tolist()
    kept = np.flatnonzero(~np.isin(iid, array_only))
    imputed_only = ["imp_only_1", "imp_only_2"]
    out.mkdir(parents=True)
    bim = genotypes.bim
    for chrom in chromosomes:
        index = np.flatnonzero(bim["CHROM"].to_numpy().astype(str) == chrom)
        dosages = imputed_dosages(genotypes.read(index, kept), rng)
        extra = np.round(rng.uniform(0, 2, (len(index), len(imputed_only))), 3)
        part = bim[index]
        vcf = out / f"chr{chrom}.vcf"
        write_vcf(vcf, np.concatenate([iid[kept], imputed_only]), np.hstack([dosages, extra]),
                  np.full(len(index), chrom), part["POS"].to_numpy(), part["ID"].to_list(),
                  part["REF"].to_list(), part["ALT"].to_list())
        run_plink2("--vcf", str(vcf), "dosage=DS", "--double-id", "--export", "bgen-1.2", "bits=8",
                   "ref-first", "--out", str(out / f"ukb_imp_chr{chrom}_v3"))
        vcf.unlink()
        (out / f"ukb_imp_chr{chrom}_v3.log").unlink()
    sample = out / "ukb_imp_v3.sample"
    (out / f"ukb_imp_chr{chromosomes[0]}_v3.sample").rename(sample)
    for chrom in chromosomes[1:]:
        (out / f"ukb_imp_chr{chrom}_v3.sample").unlink()
    return str(out / "ukb_imp_chr{chrom}_v3.bgen"), sample, array_only, imputed_only


def camera_photograph(png: Path, size: tuple[int, int]) -> Image.Image:
    """The square simulated fundus image padded with black to 4:3 and resized to ``size``."""
    square = Image.open(png).convert("RGB")
    side = square.height
    framed = Image.new("RGB", (round(side * 4 / 3), side))
    framed.paste(square, ((framed.width - side) // 2, 0))
    return framed.resize(size, Image.Resampling.BICUBIC)


def write_photographs(sim: Path, out: Path) -> tuple[Path, str]:
    """JPEGs of the simulator's images plus their manifest under ``out``; the second photograph
    is truncated to 200 bytes. Returns the manifest and the truncated photograph's path."""
    manifest = pl.read_csv(sim / "images.tsv", separator="\t")
    out.mkdir(parents=True)
    paths = []
    for k, (iid, png, eye) in enumerate(manifest.select("IID", "path", "eye").iter_rows()):
        name = f"{iid}_{LEFT_FIELD if eye == 'left' else RIGHT_FIELD}_0_0.jpg"
        camera_photograph(sim / png, PHOTO_SIZES[k % len(PHOTO_SIZES)]).save(
            out / name, quality=90)
        paths.append(name)
    unreadable = paths[1]
    (out / unreadable).write_bytes((out / unreadable).read_bytes()[:200])
    path = out / "manifest.tsv"
    manifest.with_columns(pl.Series("path", paths)).select("IID", "path", "eye").write_csv(
        path, separator="\t")
    return path, unreadable


def write_covariates(sim: Path, path: Path, seed: int) -> None:
    """The simulator's covariates (IID age sex batch) plus an assessment ``centre`` column."""
    covariates = pl.read_csv(sim / "covariates.tsv", separator="\t", infer_schema_length=0)
    rng = np.random.default_rng(seed)
    centre = [CENTRES[i] for i in rng.integers(len(CENTRES), size=covariates.height)]
    covariates.with_columns(pl.Series("centre", centre)).write_csv(path, separator="\t")


def write_labels(sim: Path, path: Path, seed: int) -> None:
    """Labels ``dr_grade`` (the simulated severity, 5% missing as NA) and ``smoker`` (the
    simulated binary label)."""
    labels = pl.read_csv(sim / "labels.tsv", separator="\t")
    missing = np.random.default_rng(seed).random(labels.height) < 0.05
    grade = [None if gone else int(v) for v, gone in zip(labels["severity"], missing)]
    labels.select("IID", pl.Series("dr_grade", grade, dtype=pl.Int64),
                  pl.col("disease").alias("smoker")).write_csv(
        path, separator="\t", null_value="NA")


def write_ukb_cohort(root: Path, n_samples: int = 300, n_snps: int = 3000,
                     n_chromosomes: int = 4, image_size: int = 32, seed: int = 5) -> UkbCohort:
    """Simulate a cohort and write it under ``root`` in the UK Biobank layout (module doc)."""
    sim = root / "simulated"
    simulate_cohort(sim, SimulationConfig(
        n_samples=n_samples, n_snps=n_snps, n_chromosomes=n_chromosomes, image_size=image_size,
        seed=seed, n_workers=1, causal_chromosomes=tuple(range(1, n_chromosomes))))
    (root / "genotypes").mkdir()
    pattern = str(root / "genotypes" / "ukb_cal_chr{chrom}_v2")
    chromosomes = write_per_chromosome_genotypes(sim / "genotypes", pattern)
    manifest, unreadable = write_photographs(sim, root / "fundus")
    write_covariates(sim, root / "covariates.tsv", seed)
    write_labels(sim, root / "labels.tsv", seed)
    pgs = root / "pgs_catalog" / "GRCh37"
    shutil.copytree(sim / "pgs", pgs)
    shutil.copy(sim / "genes.tsv", root / "genes_grch37.tsv")
    imputed = write_imputed_bgen(sim / "genotypes", root / "imputed", chromosomes, seed)
    return UkbCohort(root, pattern, manifest, root / "covariates.tsv", pgs,
                     root / "genes_grch37.tsv", root / "labels.tsv", chromosomes, unreadable, *imputed)
