"""Imputed-dosage test files made by plink2: a VCF with DS dosages imported to .pgen, then
exported as BGEN v1.2 (zlib, 8 or 16 bits) and v1.3 (zstd blocks)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.plink import run_plink2


@dataclass
class DosageCohort:
    pfile: Path  # prefix of .pgen/.pvar/.psam
    iid: np.ndarray  # (n,)
    dosages: np.ndarray  # (m, n) float, NaN missing: what the VCF holds


def simulated_dosages(n: int, m: int, seed: int, missing: float) -> tuple[np.ndarray, np.ndarray]:
    """Dosages ``(m, n)`` rounded to 3 decimals (NaN missing) of imperfectly imputed genotypes:
    each variant keeps a share r ~ U(0.2, 1) of the true genotype, the rest is its expectation
    plus noise, so INFO varies across variants; and the chromosome of each variant."""
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.01, 0.5, m)
    truth = rng.binomial(2, freq[:, None], (m, n)).astype(float)
    r = rng.uniform(0.2, 1.0, m)[:, None]
    noisy = r * truth + (1 - r) * 2 * freq[:, None] + rng.normal(0, 0.15, (m, n)) * (1 - r)
    dosages = np.round(np.clip(noisy, 0.0, 2.0), 3)
    dosages[rng.uniform(size=(m, n)) < missing] = np.nan
    chrom = np.sort(rng.integers(1, 3, m))
    return dosages, chrom


def write_vcf(path: Path, iid, dosages: np.ndarray, chrom: np.ndarray, pos: np.ndarray | None = None,
              ids: list[str] | None = None, ref: list[str] | None = None, alt: list[str] | None = None) -> None:
    """A VCF with FORMAT DS (dosage of ALT) for every call, '.' when missing (positions, IDs and
    alleles default to 1000 + 100·j, rs<j>, A and G)."""
    m = len(dosages)
    pos = 1000 + 100 * np.arange(m) if pos is None else pos
    ids = [f"rs{j}" for j in range(m)] if ids is None else ids
    ref, alt = ref or ["A"] * m, alt or ["G"] * m
    lines = ["##fileformat=VCFv4.2",
             '##FORMAT=<ID=DS,Number=1,Type=Float,Description="ALT dosage">',
             *(f"##contig=<ID={c}>" for c in sorted(set(chrom.tolist()))),
             "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *iid])]
    for j, row in enumerate(dosages):
        calls = ["." if np.isnan(d) else f"{d:.3f}" for d in row]
        lines.append("\t".join([str(chrom[j]), str(pos[j]), ids[j], ref[j], alt[j], ".", ".", ".",
                                "DS", *calls]))
    path.write_text("\n".join(lines) + "\n")


def make_dosage_cohort(directory: Path, n: int = 300, m: int = 120, seed: int = 0,
                       missing: float = 0.0) -> DosageCohort:
    """Write ``directory/imp.pgen/.pvar/.psam`` (plink2 import of a DS VCF) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    iid = np.array([f"s{i:04d}" for i in range(n)])
    dosages, chrom = simulated_dosages(n, m, seed, missing)
    write_vcf(directory / "imp.vcf", iid, dosages, chrom)
    run_plink2("--vcf", str(directory / "imp.vcf"), "dosage=DS", "--double-id", "--make-pgen",
               "--out", str(directory / "imp"))
    return DosageCohort(directory / "imp", iid, dosages)


def export_bgen(pfile: Path, out: Path, version: str = "1.2", bits: int = 8) -> Path:
    """plink2 ``--export bgen-<version> bits=<bits> ref-first``: 1.2 writes zlib blocks, 1.3 zstd.
    Returns the .bgen path (the .sample lies next to it)."""
    run_plink2("--pfile", str(pfile), "--export", f"bgen-{version}", f"bits={bits}", "ref-first",
               "--out", str(out))
    return out.with_suffix(".bgen")


def bgen_compression(path: Path) -> int:
    """The compression code in a BGEN header's flags (1 zlib, 2 zstd)."""
    data = path.read_bytes()
    length = int.from_bytes(data[4:8], "little")
    return int.from_bytes(data[length: length + 4], "little") & 3
