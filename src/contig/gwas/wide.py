"""The wide layout of a scan's summary statistics: one parquet for all phenotypes
(``<dir>/all.wide.parquet`` or ``OUT.all.wide.parquet``), each variant's columns written once.

Columns: CHROM GENPOS ID ALLELE0 ALLELE1 A1FREQ N, then ``BETA:<pheno>``, ``SE:<pheno>``,
``LOG10P:<pheno>`` per phenotype, F_JOINT and LOG10P_JOINT (the layout of the scatter parts);
the file metadata holds the scan's phenotypes, people and df (``SCAN_METADATA_KEY``). CHISQ is
not stored: it is (BETA/SE)². Readers take one phenotype's columns by parquet column
projection; ``contig sumstats-export`` writes any phenotype's regenie-layout or GWAS-SSF files
from it on demand.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from contig.core.atomic import atomic_paths
from contig.core.compression import gzip_compress
from contig.core.errors import InputError
from contig.gwas.ssf import write_ssf
from contig.gwas.sumstats import (PER_PHENO_FORMATS, WIDE_STEM, _write_parquet, _write_tsv_gz,
                                  phenotype_table, read_scan_metadata,
                                  read_sumstats, variant_columns)

WIDE_SUFFIX = ".wide.parquet"
EXPORT_FORMATS = (*PER_PHENO_FORMATS, "ssf")


def sink_wide(parts: Sequence[Path], path: Path, metadata: dict[str, str]) -> None:
    """Concatenate scatter parts into the wide layout at ``path``, streamed by polars row group by
    row group (never all parts in memory)."""
    frames = [pl.scan_parquet(p) for p in parts]
    pl.concat(frames, how="vertical").sink_parquet(path, compression="zstd", compression_level=1,
                                                   metadata=metadata)


def wide_file(location: str | Path) -> Path | None:
    """The wide file of a per-phenotype folder (``DIR/all.wide.parquet``) or ``--out`` prefix
    (``OUT.all.wide.parquet``); None when there is none."""
    location = Path(location)
    path = location / f"{WIDE_STEM}{WIDE_SUFFIX}" if location.is_dir() else \
        Path(f"{location}.{WIDE_STEM}{WIDE_SUFFIX}")
    return path if path.exists() else None


def is_wide(path: str | Path) -> bool:
    return str(path).endswith(WIDE_SUFFIX)


def wide_phenotypes(path: str | Path) -> list[str]:
    """The phenotypes of a wide file, in the scan's order."""
    return list(read_scan_metadata(path)["pheno_names"])


def _check_phenotype(path: Path, pheno: str, columns: Sequence[str]) -> None:
    if f"LOG10P:{pheno}" not in columns:
        raise InputError(f"no phenotype {pheno!r} in the wide summary statistics (columns "
                         f"LOG10P:<pheno>)", path)


def read_wide_phenotype(path: str | Path, pheno: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """One phenotype of a wide file as its per-phenotype table (SUMSTATS_COLUMNS, NA where
    untested), or only ``columns`` of it (variant columns and/or BETA, SE, LOG10P; no CHISQ)."""
    path = Path(path)
    try:
        names = pl.read_parquet_schema(path).names()
    except Exception as error:  # noqa: BLE001 - any unreadable file is a bad input
        raise InputError(f"cannot read as parquet ({str(error).splitlines()[0]})", path) from None
    _check_phenotype(path, pheno, names)
    stats = ("BETA", "SE", "LOG10P")
    leading = variant_columns(pl.DataFrame(schema={name: pl.Null for name in names}))
    wanted = list(columns) if columns is not None else [*leading, *stats]
    table = pl.read_parquet(path, columns=[f"{c}:{pheno}" if c in stats else c for c in wanted])
    table = table.rename({f"{c}:{pheno}": c for c in stats if c in wanted})
    if columns is not None:
        return table.with_columns(pl.col(c).fill_nan(None) for c in stats if c in wanted)
    return phenotype_table(table.select(leading), *(table[c].to_numpy() for c in stats))


def read_phenotype_sumstats(path: str | Path, pheno: str) -> pl.DataFrame:
    """One phenotype's summary statistics from either layout: ``path`` as
    :func:`contig.evaluate.truth.phenotype_sumstats_paths` maps it (a per-phenotype file, read by
    :func:`read_sumstats`, or the wide file, whose columns of ``pheno`` are read)."""
    return read_wide_phenotype(path, pheno) if is_wide(path) else read_sumstats(path)


def export_paths(out_dir: str | Path, phenos: Sequence[str], formats: Sequence[str]) -> dict[str, Path]:
    """``DIR/<pheno>.parquet``, ``.tsv.gz``, ``.ssf.tsv.gz`` (+ ``-meta.yaml``) per phenotype."""
    unknown = sorted(set(formats) - set(EXPORT_FORMATS))
    if unknown or not formats:
        raise InputError(f"unknown format(s) {', '.join(unknown) or '(none given)'}; choose from "
                         f"{', '.join(EXPORT_FORMATS)}", "--formats")
    suffixes = {"parquet": ".parquet", "tsv.gz": ".tsv.gz", "ssf": ".ssf.tsv.gz"}
    paths = {}
    for pheno in phenos:
        for fmt in formats:
            paths[f"{pheno}|{fmt}"] = Path(out_dir) / f"{pheno}{suffixes[fmt]}"
        if "ssf" in formats:
            paths[f"{pheno}|ssf.meta"] = Path(out_dir) / f"{pheno}.ssf.tsv.gz-meta.yaml"
    return paths


def export_phenotypes(wide: str | Path, phenos: Sequence[str] | None, out_dir: str | Path,
                      formats: Sequence[str] = ("tsv.gz",), threads: int = 1,
                      genome_assembly: str = "NR") -> dict[str, Path]:
    """Write per-phenotype files of ``phenos`` (None: all) from a wide file into ``out_dir``,
    all or none; the files equal those ``contig gwas --formats`` writes."""
    wide = Path(wide)
    if not wide.exists():
        raise InputError("file not found", wide)
    meta = read_scan_metadata(wide)
    phenos = list(meta["pheno_names"]) if phenos is None else list(phenos)
    for pheno in phenos:
        if pheno not in meta["pheno_names"]:
            raise InputError(f"no phenotype {pheno!r} (the file has {', '.join(meta['pheno_names'])})",
                             wide)
    final = export_paths(out_dir, phenos, formats)
    with atomic_paths(list(final.values())) as temps:
        tmp = dict(zip(final, temps))

        def export_one(pheno: str) -> None:
            table = read_wide_phenotype(wide, pheno)
            if f"{pheno}|parquet" in tmp:
                _write_parquet(table, tmp[f"{pheno}|parquet"])
            if f"{pheno}|tsv.gz" in tmp:
                _write_tsv_gz(table, tmp[f"{pheno}|tsv.gz"])
            if f"{pheno}|ssf" in tmp:
                write_ssf(table, tmp[f"{pheno}|ssf"], tmp[f"{pheno}|ssf.meta"], pheno, int(meta["n_samples"]),
                          final[f"{pheno}|ssf"].name, genome_assembly, gzip_compress)

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            list(pool.map(export_one, phenos))
    return final
