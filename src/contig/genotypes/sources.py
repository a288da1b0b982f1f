"""Imputed genotype sources behind one streaming interface: PLINK 2 (.pgen) or BGEN (+ .sample),
one file or a ``{chrom}`` pattern of per-chromosome files.

:class:`DosageSource` mirrors :class:`contig.genotypes.plinkio.Genotypes`: ``fam`` (FID IID,
matched to other files by IID), ``bim`` (CHROM POS ID REF ALT of all files in order) and
:meth:`DosageSource.iter_dosages`, blocks of float32 ALT dosages ``(n_block_variants,
n_selected_samples)`` with NaN for missing. One file is open at a time and one block buffer is
reused, so memory does not grow with the number of variants read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.errors import InputError
from contig.genotypes.bgen import BgenFile, read_bgen_header, read_oxford_sample
from contig.genotypes.pgen import Pfile, read_psam
from contig.genotypes.plinkio import CHROMOSOME_NAME, FilesetReaders, MultiFileSource, chromosome_sort_key

log = logging.getLogger("contig.genotypes.sources")


def expand_file_pattern(pattern: str, suffix: str) -> list[tuple[str, str]]:
    """``(chrom, path without suffix)`` of the files ``pattern + suffix`` with ``{chrom}`` matching
    a chromosome name, in chromosome order; ``[("", pattern)]`` without ``{chrom}``."""
    pattern = pattern.removesuffix(suffix)
    if "{chrom}" not in pattern:
        return [("", pattern)]
    directory = Path(pattern).parent
    regex = re.compile(re.escape(Path(pattern).name).replace(re.escape("{chrom}"), CHROMOSOME_NAME)
                       + re.escape(suffix))
    found = sorted((chromosome_sort_key(match.group(1)), match.group(1), str(path)[: -len(suffix)])
                   for path in directory.glob("*" + suffix) if (match := regex.fullmatch(path.name)))
    if not found:
        raise InputError(f"no {suffix} file matches the pattern {pattern}{suffix}", directory)
    return [(chrom, prefix) for _, chrom, prefix in found]


def _chosen(pattern: str, suffix: str, chroms: Sequence[str] | None) -> list[tuple[str, str]]:
    """The files of ``pattern`` on ``chroms`` (all without a {chrom} pattern or without chroms)."""
    files = expand_file_pattern(pattern, suffix)
    if chroms is None or "{chrom}" not in pattern:
        return files
    wanted = [(chrom, prefix) for chrom, prefix in files if chrom in set(chroms)]
    if not wanted:
        raise InputError(f"no file of the pattern {pattern} is on chromosome(s) {', '.join(chroms)}",
                         Path(pattern).parent)
    return wanted


def read_source_samples(pfile: str | None = None, bgen: str | None = None,
                        sample: str | None = None) -> pl.DataFrame:
    """FID IID of a dosage source from its first file's sample list alone (no variant index)."""
    if pfile is not None:
        return read_psam(expand_file_pattern(pfile, ".pgen")[0][1] + ".psam")
    chrom, prefix = expand_file_pattern(bgen, ".bgen")[0]
    if sample:
        return read_oxford_sample(sample.replace("{chrom}", chrom))
    ids = read_bgen_header(Path(prefix + ".bgen")).sample_ids
    if ids is None:
        raise InputError("has no sample identifiers: give its .sample file", prefix + ".bgen")
    return pl.DataFrame({"FID": ["0"] * len(ids), "IID": ids})


@dataclass
class DosageSource(MultiFileSource):
    """Dosage files (PGEN or BGEN) with identical samples, e.g. one per chromosome."""

    parts: list[Pfile | BgenFile]

    @staticmethod
    def sample_file(part: Pfile | BgenFile) -> Path:
        if isinstance(part, BgenFile):
            return part.path  # its .sample file, when given, was checked against it on opening
        return part.prefix.with_name(part.prefix.name + ".psam")

    @classmethod
    def open(cls, pfile: str | Path | None = None, bgen: str | Path | None = None,
             sample: str | Path | None = None, chroms: Sequence[str] | None = None) -> DosageSource:
        """A PGEN prefix or a .bgen path (with its .sample; both may contain ``{chrom}``).

        ``chroms``: of a ``{chrom}`` pattern open only these chromosomes' files (a BGEN is indexed
        when opened: a job testing chromosome 1 need not index the other 21)."""
        if (pfile is None) == (bgen is None):
            raise ValueError("give exactly one of pfile and bgen")
        if pfile is not None:
            return cls([Pfile.open(prefix) for _, prefix in _chosen(str(pfile), ".pgen", chroms)])
        parts = []
        for chrom, prefix in _chosen(str(bgen), ".bgen", chroms):
            sample_path = None if sample is None else str(sample).replace("{chrom}", chrom)
            parts.append(BgenFile.open(prefix + ".bgen", sample_path))
        return cls(parts)

    @property
    def kind(self) -> str:
        return "bgen" if isinstance(self.parts[0], BgenFile) else "pgen"

    @property
    def bim(self) -> pl.DataFrame:
        """CHROM POS ID REF ALT of every variant, files in order."""
        return pl.concat([p.variants for p in self.parts]) if len(self.parts) > 1 else self.parts[0].variants

    def iter_dosages(self, chunk_size: int = 1024, sample_idx: np.ndarray | None = None,
                     variant_idx: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(variant_indices, dosages)``: float32 ``(n_block_variants, n_selected_samples)``,
        NaN missing, in one buffer reused for every block (copy it to keep it)."""
        n_out = self.n_samples if sample_idx is None else len(sample_idx)
        buffer = np.empty((chunk_size, n_out), dtype=np.float32)
        idx = None if sample_idx is None else np.asarray(sample_idx, dtype=np.int64)
        with FilesetReaders(self, idx) as readers:
            for chunk in self.plan_chunks(chunk_size, variant_idx):
                block = readers.get(chunk.part).read_dosages(chunk.local, buffer)
                yield chunk.local + self.offsets[chunk.part], block


def match_samples(array_iid: Sequence[str], imputed_iid: Sequence[str]) -> dict[str, int]:
    """Counts of people by IID across the array and the imputed source (both, array only,
    imputed only), logged as one line."""
    array_set, imputed_set = set(array_iid), set(imputed_iid)
    counts = {"both": len(array_set & imputed_set), "array_only": len(array_set - imputed_set),
              "imputed_only": len(imputed_set - array_set)}
    log.info("samples matched by IID: %d in both the array and the imputed genotypes, %d only in "
             "the array, %d only in the imputed", counts["both"], counts["array_only"],
             counts["imputed_only"])
    return counts


def sample_match_table(counts: dict[str, int]) -> pl.DataFrame:
    """The counts of :func:`match_samples` as a two-column table (SOURCE, N)."""
    return pl.DataFrame({"SOURCE": list(counts), "N": list(counts.values())},
                        schema={"SOURCE": pl.Utf8, "N": pl.Int64})


def source_files(imputed: str, sample: str = "") -> list[str]:
    """The files behind config ``inputs.imputed`` (a .bgen path/pattern, with ``sample`` its
    .sample path/pattern or empty; otherwise a PGEN prefix/pattern), in chromosome order."""
    if imputed.endswith(".bgen"):
        files = []
        for chrom, prefix in expand_file_pattern(imputed, ".bgen"):
            files.append(prefix + ".bgen")
            if sample:
                files.append(sample.replace("{chrom}", chrom))
        return list(dict.fromkeys(files))
    return [prefix + ext for _, prefix in expand_file_pattern(imputed, ".pgen")
            for ext in (".pgen", ".pvar", ".psam")]


def source_arguments(imputed: str, sample: str = "") -> list[str]:
    """The command-line arguments naming the imputed source: ``--bgen F [--sample S]`` or ``--pfile P``."""
    if imputed.endswith(".bgen"):
        return ["--bgen", imputed] + (["--sample", sample] if sample else [])
    return ["--pfile", imputed.removesuffix(".pgen")]
