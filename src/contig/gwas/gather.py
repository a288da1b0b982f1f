"""Gather the parts of a scattered scan (``contig gwas --part-out``) into its outputs, streaming.

The parts are never joined into genome-wide (n_variants, n_phenotypes) matrices: the phenotypes
are read from every part in batches of a few columns (parquet column projection), each batch's
per-phenotype files are written, and the combined table keeps only a running maximum of −log10 p
and its phenotype per variant. Memory is the variant columns plus one batch, whatever the number
of phenotypes; the files are byte-identical to those of ``write_gwas_outputs`` on the
concatenated parts (same tables, same writers). The wide layout (:mod:`contig.gwas.wide`) is
copied from the parts by polars' streaming engine, row group by row group.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_directory, atomic_paths
from contig.core.compression import gzip_compress
from contig.core.errors import InputError
from contig.gwas.association import SCAN_DEFAULTS
from contig.gwas.ssf import write_ssf
from contig.gwas.stats import lambda_gc
from contig.gwas.sumstats import (JOINT_P_COLUMN, PART_METADATA_KEY, PER_PHENO_FORMATS, SCAN_METADATA_KEY,
                                  _gathered_counts, _write_parquet, _write_tsv_gz, check_part_matches,
                                  combined_from_top, output_paths, phenotype_table,
                                  variant_columns, variant_text)

# Statistics held in memory per batch of phenotypes: 3 float64 columns per phenotype and variant.
GATHER_BATCH_BYTES = 256 * 2**20


@dataclass
class GatheredScan:
    """What the parts describe (phenotypes, people, df, counts) and, after writing, each
    phenotype's tested variants and λGC (for the log)."""

    paths: list[Path]
    variant_columns: list[str]  # VARIANT_COLUMNS, with INFO when the scan ran on dosages
    pheno_names: list[str]
    n_samples: int
    df: int
    counts: dict[str, int]
    n_variants: int = 0
    tested: dict[str, int] = field(default_factory=dict)
    lambdas: dict[str, float] = field(default_factory=dict)
    joint_tested: int = 0
    joint_lambda: float = float("nan")
    ssf_dropped: dict[str, int] = field(default_factory=dict)

    @property
    def df_joint(self) -> int:
        return self.df + 1 - len(self.pheno_names)


def _part_metadata(path: Path) -> tuple[dict, pl.DataFrame]:
    """The part's metadata and an empty frame of its schema."""
    if not path.exists():
        raise InputError("file not found", path)
    try:
        meta = json.loads(pl.read_parquet_metadata(path)[PART_METADATA_KEY])
        empty = pl.DataFrame(schema=pl.read_parquet_schema(path))
        columns = empty.columns
    except Exception as error:  # noqa: BLE001 - any unreadable part is a bad input
        raise InputError(f"not a part written by `contig gwas --part-out` ({error})", path) from None
    absent = [c for c in ("F_JOINT", JOINT_P_COLUMN) if c not in columns]
    if absent:
        raise InputError(f"part has no {', '.join(absent)} column (written by an older `contig gwas`; "
                         "rerun it)", path)
    return meta, empty


def open_parts(paths: Sequence[str | Path]) -> GatheredScan:
    """Check that every part comes from the same phenotypes, people and covariates (metadata
    only, nothing else is read)."""
    if not paths:
        raise InputError("no parts to gather", "--parts")
    paths = [Path(p) for p in paths]
    metas, schemas = [], []
    for path in paths:
        meta, empty = _part_metadata(path)
        schemas.append(empty)
        check_part_matches(meta, metas[0] if metas else meta, paths[0], path)
        metas.append(meta)
    return GatheredScan(paths, variant_columns(schemas[0]), list(metas[0]["pheno_names"]), int(metas[0]["n_samples"]),
                        int(metas[0]["df"]), _gathered_counts(metas))


def read_part_columns(paths: Sequence[Path], columns: Sequence[str]) -> pl.DataFrame:
    """``columns`` of every part, concatenated in the order of ``paths``."""
    return pl.concat([pl.read_parquet(p, columns=list(columns)) for p in paths], how="vertical")


def batch_size(n_variants: int, n_pheno: int, batch_bytes: int = GATHER_BATCH_BYTES) -> int:
    """Phenotypes per batch so that their BETA, SE and LOG10P columns fit in ``batch_bytes``."""
    return int(min(max(1, n_pheno), max(1, batch_bytes // max(1, 24 * n_variants))))


class _RunningTop:
    """Each variant's largest finite −log10 p over the phenotypes seen so far and the index of its
    phenotype (the first one on ties, as ``np.argmax`` over all phenotypes at once)."""

    def __init__(self, n_variants: int) -> None:
        self.top = np.full(n_variants, -np.inf)
        self.best = np.zeros(n_variants, dtype=np.int64)

    def update(self, log10p: np.ndarray, first: int) -> None:
        """Fold in ``log10p (n_variants, b)`` of phenotypes ``first … first + b − 1``."""
        lp = np.where(np.isfinite(log10p), log10p, -np.inf)
        column = np.argmax(lp, axis=1)
        value = lp[np.arange(len(lp)), column]
        better = value > self.top
        self.top[better] = value[better]
        self.best[better] = column[better] + first

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``top`` (NaN where no phenotype was tested) and ``best``."""
        return np.where(np.isfinite(self.top), self.top, np.nan), self.best


def _phenotype_targets(paths: dict[str, Path], name: str) -> dict[str, Path]:
    return {fmt: paths[key] for fmt, key in (("parquet", f"{name}.parquet"), ("tsv.gz", f"{name}.tsv"),
                                             ("ssf", f"{name}.ssf"), ("ssf.meta", f"{name}.ssf.meta"))
            if key in paths}


def write_phenotype_files(table: pl.DataFrame, targets: dict[str, Path], prefix: pl.Series | None,
                          ssf_meta: dict | None = None) -> int | None:
    """Write one phenotype's summary statistics ``table`` in each format of ``targets``
    (``ssf_meta``: the keyword arguments of :func:`write_ssf` beyond the table and paths); returns
    the variants the GWAS-SSF file leaves out (None without it)."""
    if "parquet" in targets:
        _write_parquet(table, targets["parquet"])
    if "tsv.gz" in targets:
        _write_tsv_gz(table, targets["tsv.gz"], prefix)
    if "ssf" in targets:
        return write_ssf(table, targets["ssf"], targets["ssf.meta"], compress=gzip_compress,
                         **(ssf_meta or {}))
    return None


def _write_batch(scan: GatheredScan, names: Sequence[str], paths: dict[str, Path], final: dict[str, Path],
                 variants: pl.DataFrame, prefix: pl.Series | None, top: _RunningTop, first: int,
                 threads: int, ssf_meta: dict | None) -> None:
    stats = read_part_columns(scan.paths, [f"{s}:{n}" for n in names for s in ("BETA", "SE", "LOG10P")])
    log10p = np.column_stack([stats[f"LOG10P:{n}"].to_numpy() for n in names]) if len(stats) else \
        np.empty((0, len(names)))
    top.update(log10p, first)

    def write_one(i: int) -> None:
        name = names[i]
        table = phenotype_table(variants, stats[f"BETA:{name}"].to_numpy(), stats[f"SE:{name}"].to_numpy(),
                                log10p[:, i])
        dropped = write_phenotype_files(table, _phenotype_targets(paths, name), prefix,
                              {**(ssf_meta or {}), "pheno": name, "n_samples": scan.n_samples,
                               "file_name": final[f"{name}.ssf"].name if f"{name}.ssf" in final else None})
        if dropped is not None:
            scan.ssf_dropped[name] = dropped
        scan.tested[name] = int(np.isfinite(log10p[:, i]).sum())
        scan.lambdas[name] = lambda_gc(log10p[:, i])

    # Formatting and compression release the GIL: threads keep every core busy.
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(write_one, range(len(names))))


def gather_gwas_parts(parts: Sequence[str | Path], out: str | Path, per_pheno_dir: str | Path | None = None,
                      threads: int = SCAN_DEFAULTS.threads, formats: Sequence[str] = PER_PHENO_FORMATS,
                      batch_bytes: int = GATHER_BATCH_BYTES, ssf_meta: dict | None = None
                      ) -> tuple[dict[str, Path], GatheredScan]:
    """Write what ``write_gwas_outputs`` writes for the concatenated ``parts`` (and the wide
    layout with ``wide`` in ``formats``), all or none, holding at most ``batch_bytes`` of
    statistics at a time; returns the final paths and the gathered scan."""
    scan = open_parts(parts)
    final = output_paths(out, scan.pheno_names, per_pheno_dir, formats)
    variants = read_part_columns(scan.paths, scan.variant_columns)
    scan.n_variants = len(variants)
    joint = read_part_columns(scan.paths, ["F_JOINT", JOINT_P_COLUMN])
    f_joint, lp_joint = joint["F_JOINT"].to_numpy(), joint[JOINT_P_COLUMN].to_numpy()
    scan.joint_tested, scan.joint_lambda = int(np.isfinite(lp_joint).sum()), lambda_gc(lp_joint)
    per_pheno = {k for k in final if not k.startswith("combined.")}
    with contextlib.ExitStack() as stack:
        folder = None if per_pheno_dir is None else stack.enter_context(atomic_directory(per_pheno_dir))
        paths = output_paths(out, scan.pheno_names, folder, formats)
        shared = [k for k in paths if k not in per_pheno or folder is None]
        tmp = dict(zip(shared, stack.enter_context(atomic_paths([paths[k] for k in shared]))))
        tmp |= {k: paths[k] for k in paths if k not in tmp}
        prefix = variant_text(variants) if "tsv.gz" in formats else None
        top = _RunningTop(len(variants))
        size = batch_size(len(variants), len(scan.pheno_names), batch_bytes)
        for first in range(0, len(scan.pheno_names), size):
            names = scan.pheno_names[first:first + size]
            _write_batch(scan, names, tmp, final, variants, prefix, top, first, threads, ssf_meta)
        best_log10p, best = top.result()
        combined = combined_from_top(variants, scan.pheno_names, best_log10p, best, f_joint, lp_joint)
        metadata = {SCAN_METADATA_KEY: json.dumps(
            {"pheno_names": scan.pheno_names, "n_samples": scan.n_samples, "df": scan.df,
             "df_joint": scan.df_joint}, sort_keys=True)}
        _write_parquet(combined, tmp["combined.parquet"], metadata)
        _write_tsv_gz(combined, tmp["combined.tsv"])
        if "wide" in tmp:
            from contig.gwas.wide import sink_wide
            sink_wide(scan.paths, tmp["wide"], metadata)
    return final, scan
