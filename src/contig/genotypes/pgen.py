"""Reading PLINK 2 filesets (.pgen/.pvar/.psam): hard calls and dosages, through pgenlib.

pgenlib returns ALT dosages (``allele_idx=1``, the first ALT of .pvar) as float32 with -9 for a
missing call; hard-call-only variants come back as 0/1/2. ``.pvar`` may start with ``##`` lines
and must then have a ``#CHROM`` header (POS ID REF ALT columns by name); without a header it is
read as a .bim. ``.psam`` has a ``#FID`` or ``#IID`` header; without one it is read as a .fam.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.errors import InputError
from contig.genotypes.plinkio import read_bim, read_fam

PVAR_COLUMNS = ["CHROM", "POS", "ID", "REF", "ALT"]


def _header_line(path: Path, marker: str) -> tuple[int, list[str] | None]:
    """(number of lines before the header, header fields without '#'); (0, None) without one."""
    with open(path) as handle:
        for skipped, line in enumerate(handle):
            if line.startswith("##"):
                continue
            if line.startswith(marker):
                return skipped, line[1:].split()
            return 0, None
    return 0, None


def read_pvar(path: str | Path) -> pl.DataFrame:
    """A .pvar as CHROM POS ID REF ALT (POS int64, the rest str)."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    skipped, names = _header_line(path, "#CHROM")
    if names is None:
        return read_bim(path).select(PVAR_COLUMNS)
    absent = [c for c in PVAR_COLUMNS if c not in names]
    if absent:
        raise InputError(f"header lacks column(s) {', '.join(absent)}", path, skipped + 1)
    table = pl.read_csv(path, separator="\t", skip_rows=skipped + 1, has_header=False,
                        new_columns=names, infer_schema=False, quote_char=None, comment_prefix=None)
    table = table.select(PVAR_COLUMNS)
    pos = table["POS"].cast(pl.Int64, strict=False)
    if pos.is_null().any():
        row = int(pos.is_null().arg_true()[0])
        raise InputError(f"POS {table['POS'][row]!r} is not a number", path, skipped + row + 2, "POS")
    return table.with_columns(pos)


def read_psam(path: str | Path) -> pl.DataFrame:
    """A .psam as FID IID (FID '0' when the file has none)."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    skipped, names = _header_line(path, "#")
    if names is None:
        return read_fam(path).select("FID", "IID")
    if "IID" not in names:
        raise InputError("header lacks column IID", path, skipped + 1)
    table = pl.read_csv(path, separator="\t", skip_rows=skipped + 1, has_header=False, new_columns=names,
                        infer_schema=False, quote_char=None)
    if "FID" not in names:
        table = table.with_columns(pl.lit("0").alias("FID"))
    duplicated = table["IID"].is_duplicated()
    if duplicated.any():
        row = int(duplicated.arg_true()[1])
        raise InputError(f"duplicate sample ID {table['IID'][row]!r}", path, skipped + row + 2, "IID")
    return table.select("FID", "IID")


@dataclass
class Pfile:
    """One PLINK 2 fileset: samples (FID IID), variants (CHROM POS ID REF ALT), dosages on demand."""

    prefix: Path
    fam: pl.DataFrame
    variants: pl.DataFrame

    @classmethod
    def open(cls, prefix: str | Path) -> Pfile:
        prefix = Path(str(prefix).removesuffix(".pgen"))
        path = prefix.with_name(prefix.name + ".pgen")
        fam = read_psam(prefix.with_name(prefix.name + ".psam"))
        variants = read_pvar(prefix.with_name(prefix.name + ".pvar"))
        pfile = cls(prefix, fam, variants)
        if not path.exists():
            raise InputError("file not found", path)
        reader = pfile._open_reader(None)
        try:
            n_variants, n_samples = reader.get_variant_ct(), reader.get_raw_sample_ct()
        finally:
            reader.close()
        if n_variants != variants.height or n_samples != fam.height:
            raise InputError(f"holds {n_variants} variants x {n_samples} samples; the .pvar lists "
                             f"{variants.height} variants and the .psam {fam.height} samples", path)
        return pfile

    @property
    def pgen_path(self) -> Path:
        return self.prefix.with_name(self.prefix.name + ".pgen")

    @property
    def n_samples(self) -> int:
        return self.fam.height

    @property
    def n_variants(self) -> int:
        return self.variants.height

    def _open_reader(self, subset: np.ndarray | None):
        import pgenlib

        try:
            return pgenlib.PgenReader(str(self.pgen_path).encode(), sample_subset=subset)
        except RuntimeError as error:  # pgenlib's message for a truncated or foreign file
            raise InputError(f"not a readable .pgen file ({str(error).strip()})", self.pgen_path) from None

    def reader(self, sample_idx: np.ndarray | None = None) -> PgenDosageReader:
        subset = None if sample_idx is None else np.ascontiguousarray(sample_idx, dtype=np.uint32)
        return PgenDosageReader(self._open_reader(subset))


class PgenDosageReader:
    """float32 ALT dosages with NaN for missing, from a pgenlib reader."""

    def __init__(self, reader) -> None:
        self.reader = reader

    def read_dosages(self, local: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Dosages ``(len(local), n_selected)`` of the variants ``local`` (increasing) into ``out``."""
        m = len(local)
        target = out[:m]
        if m and local[-1] - local[0] + 1 == m:
            self.reader.read_dosages_range(int(local[0]), int(local[-1]) + 1, target, allele_idx=1)
        elif m:
            self.reader.read_dosages_list(np.ascontiguousarray(local, dtype=np.uint32), target, allele_idx=1)
        target[target < 0] = np.nan
        return target

    def close(self) -> None:
        self.reader.close()
