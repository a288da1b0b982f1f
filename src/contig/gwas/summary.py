"""The per-phenotype summary of a scan (``contig gwas-summary``): people, variants tested,
variants at the genome-wide threshold, λGC.

Read from the written summary statistics, one phenotype at a time (memory flat in the number
of phenotypes), so that changing the threshold rewrites this table only. Rows: one per phenotype
in the scan's order; ``combined`` (the min-p × k LOG10P of the combined table; no λGC, its p is
not uniform under the null); ``joint`` (LOG10P_JOINT of the joint test, with λGC).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.errors import InputError
from contig.core.tables import write_tsv
from contig.gwas.stats import GENOME_WIDE, lambda_gc
from contig.gwas.sumstats import DEFAULT_P_COLUMN, JOINT_P_COLUMN, read_scan_metadata
from contig.gwas.wide import wide_file

SUMMARY_SCHEMA = {"PHENO": pl.Utf8, "N_SAMPLES": pl.Int64, "N_TESTED": pl.Int64, "N_SIG": pl.Int64,
                  "LAMBDA_GC": pl.Float64}


@dataclass(frozen=True)
class SummarySettings:
    """The settings of ``contig gwas-summary``."""

    threshold: float = GENOME_WIDE  # genome-wide significance: p at or below it counts in N_SIG

    def validate(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise InputError(f"must be in (0, 1], got {self.threshold:g}", "--threshold")


SUMMARY_DEFAULTS = SummarySettings()


def summary_row(name: str, log10p: np.ndarray, n_samples: int, threshold: float,
                with_lambda: bool = True) -> dict:
    """One summary row from ``log10p (m,)`` (NaN = not tested): N_SIG counts p ≤ ``threshold``."""
    with np.errstate(invalid="ignore"):
        significant = int((log10p >= -np.log10(threshold)).sum())
    return {"PHENO": name, "N_SAMPLES": n_samples, "N_TESTED": int(np.isfinite(log10p).sum()),
            "N_SIG": significant, "LAMBDA_GC": lambda_gc(log10p) if with_lambda else None}


def phenotype_file(name: str, sumstats_dir: str | Path | None, prefix: str | Path | None
                   ) -> tuple[Path, str]:
    """``DIR/<pheno>.parquet`` (or ``.tsv.gz`` when there is no parquet), or the same after
    ``PREFIX.``, with its column LOG10P; else the wide layout there (``all.wide.parquet``) with
    column ``LOG10P:<pheno>``; InputError when none exists."""
    stem = Path(sumstats_dir) / name if sumstats_dir is not None else Path(f"{prefix}.{name}")
    for path in (Path(f"{stem}.parquet"), Path(f"{stem}.tsv.gz")):
        if path.exists():
            return path, DEFAULT_P_COLUMN
    wide = wide_file(sumstats_dir if sumstats_dir is not None else prefix)
    if wide is not None:
        return wide, f"{DEFAULT_P_COLUMN}:{name}"
    raise InputError(f"no summary statistics for phenotype {name!r} ({stem.name}.parquet, "
                     f"{stem.name}.tsv.gz or the wide layout's all.wide.parquet)", stem.parent)


def read_log10p(path: Path, column: str = DEFAULT_P_COLUMN) -> np.ndarray:
    """One −log10 p column of a parquet or tab-separated (gzipped) table as float64 (NaN = NA)."""
    try:
        if path.suffix == ".parquet":
            series = pl.read_parquet(path, columns=[column])[column]
        else:
            series = pl.read_csv(path, separator="\t", columns=[column], null_values=["NA", ""],
                                 schema_overrides={column: pl.Float64})[column]
    except Exception as error:  # noqa: BLE001 - polars raises several types for a bad table
        raise InputError(f"cannot read column {column} ({str(error).splitlines()[0]})", path) from None
    return series.cast(pl.Float64).fill_null(np.nan).to_numpy()


def summarize_scan(combined: str | Path, sumstats_dir: str | Path | None = None,
                   prefix: str | Path | None = None,
                   threshold: float = SUMMARY_DEFAULTS.threshold) -> pl.DataFrame:
    """The summary table (module docstring) of the scan whose combined parquet is ``combined``,
    its per-phenotype files in ``sumstats_dir`` (or at ``prefix``)."""
    SummarySettings(threshold).validate()
    if (sumstats_dir is None) == (prefix is None):
        raise InputError("give either a folder or a prefix of per-phenotype summary statistics")
    meta = read_scan_metadata(combined)
    n = int(meta["n_samples"])
    rows = [summary_row(name, read_log10p(*phenotype_file(name, sumstats_dir, prefix)), n, threshold)
            for name in meta["pheno_names"]]
    combined = Path(combined)
    rows.append(summary_row("combined", read_log10p(combined), n, threshold, with_lambda=False))
    rows.append(summary_row("joint", read_log10p(combined, JOINT_P_COLUMN), n, threshold))
    return pl.DataFrame(rows, schema=SUMMARY_SCHEMA, orient="row").with_columns(
        pl.col("LAMBDA_GC").fill_nan(None))


def write_summary(table: pl.DataFrame, out: str | Path) -> None:
    """Write the summary table as TSV (NA for null), atomically."""
    write_tsv(table, out)
