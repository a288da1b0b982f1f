"""GWAS step 2 on imputed dosages (PGEN or BGEN): the exact OLS of :mod:`contig.gwas.association`
with float ALT dosages in place of hard calls, plus the imputation-quality filters.

Per variant, among the people used and over the observed dosages ``d``: ``N`` = observed count,
``A1FREQ = mean(d)/2``, ``MAC = min(Σd, 2N − Σd)`` and ``INFO`` = MACH r², the observed dosage
variance over its binomial expectation, ``(Σ(d − mean)²/N) / (2·A1FREQ·(1 − A1FREQ))`` (what
plink2 prints as MACH_R2 and regenie as INFO; NA for a monomorphic variant). A missing dosage
is mean-imputed, as a missing hard call is. The statistics are those of statsmodels'
``OLS(y, [1, C, d])``.

Filters (counted): ``maf``, ``min_mac`` and ``min_info`` keep a variant with minor allele
frequency, MAC and INFO at or above them (a variant with INFO NA is kept only when
``min_info`` is 0). They need the dosages' own statistics, so every variant of the requested
chromosomes is scanned once and the filters are applied to the results: no second read.

The hard-call scan is left as it is: this module has its own worker, which reads float32
dosage blocks instead of hard calls and centres them itself, then shares the products and tests
(:func:`contig.gwas.association.chunk_statistics`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.errors import InputError
from contig.genotypes.plinkio import FilesetReaders, VariantChunk
from contig.genotypes.sources import DosageSource
from contig.gwas.association import (
    SCAN_DEFAULTS,
    GwasResult,
    ScanSettings,
    _ChunkQueue,
    _residualize_per_chromosome,
    _ScanInputs,
    chunk_statistics,
    results_array,
)
from contig.gwas.backends import auto_chunk_size, make_backend, single_threaded_blas
from contig.gwas.inputs import MISSING_PHENOTYPE, covariate_basis, load_association_data
from contig.gwas.stats import preload_scipy_special, t_test_table

log = logging.getLogger("contig.gwas.association")


@dataclass(frozen=True)
class DosageFilters:
    """Imputation filters of ``contig gwas`` on dosages (and their defaults: no filtering)."""

    min_info: float = 0.0
    min_mac: float = 0.0

    def validate(self) -> None:
        if not 0.0 <= self.min_info <= 1.0:
            raise InputError(f"must be in [0, 1], got {self.min_info:g}", "--min-info")
        if self.min_mac < 0:
            raise InputError(f"must be at least 0, got {self.min_mac:g}", "--min-mac")


DOSAGE_FILTER_DEFAULTS = DosageFilters()


@dataclass
class DosageStats:
    """Per-variant dosage statistics among the people used (module docstring); arrays ``(m,)``."""

    n_observed: np.ndarray
    mean: np.ndarray
    centred_ss: np.ndarray  # Σ_observed (d − mean)²

    @property
    def alt_freq(self) -> np.ndarray:
        return self.mean / 2.0

    @property
    def mac(self) -> np.ndarray:
        alt = self.mean * self.n_observed
        return np.minimum(alt, 2.0 * self.n_observed - alt)

    @property
    def info(self) -> np.ndarray:
        """MACH r² ``(m,)``; NaN where the variant is monomorphic or has no observed dosage."""
        p = self.alt_freq
        with np.errstate(invalid="ignore", divide="ignore"):
            r2 = (self.centred_ss / self.n_observed) / (2.0 * p * (1.0 - p))
        return np.where((p > 0) & (p < 1), r2, np.nan)


def centre_dosages(block: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, DosageStats]:
    """Centre float32 dosages ``(m, n)`` (NaN missing) by their observed means into ``out[:m]``,
    missing at 0; returns the centred block and the block's :class:`DosageStats`."""
    m = block.shape[0]
    centred = out[:m]
    observed = ~np.isnan(block)
    n_observed = observed.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(block, axis=1, dtype=np.float64) / n_observed
    np.subtract(block, mean.astype(centred.dtype)[:, None], out=centred)
    np.nan_to_num(centred, copy=False, nan=0.0)
    centred_ss = np.einsum("ij,ij->i", centred, centred, dtype=np.float64)
    return centred, DosageStats(n_observed, mean, centred_ss)


@dataclass
class _DosageScanInputs(_ScanInputs):
    """The shared scan inputs, with the per-variant dosage statistics ``(m, 3)`` (N, mean, ssc)
    that each worker fills for its own chunks."""

    stats: np.ndarray | None = None


def _scan_dosage_worker(inputs: _DosageScanInputs, queue: _ChunkQueue, device: str, chunk_size: int,
                        dtype: str) -> None:
    """Take chunks until the queue is empty: read dosages → centre → products → tests."""
    n = len(inputs.sample_idx)
    backend = make_backend(device, n, chunk_size, dtype)
    rhs = {chrom: backend.prepare(r.rhs) for chrom, r in inputs.residualized.items()}
    raw = np.empty((chunk_size, n), dtype=np.float32)
    centred_buffer = np.empty((chunk_size, n), dtype=np.dtype(dtype))
    try:
        with FilesetReaders(inputs.genotypes, np.asarray(inputs.sample_idx, dtype=np.int64)) as readers:
            while (chunk := queue.next()) is not None:
                _scan_dosage_chunk(inputs, chunk, readers.get(chunk.part), backend, rhs, raw,
                                   centred_buffer)
    except BaseException:
        queue.failed = True
        raise


def _scan_dosage_chunk(inputs: _DosageScanInputs, chunk: VariantChunk, reader, backend, rhs: dict,
                       raw: np.ndarray, centred_buffer: np.ndarray) -> None:
    block = reader.read_dosages(chunk.local, raw)
    centred, stats = centre_dosages(block, centred_buffer)
    inputs.stats[chunk.rows] = np.column_stack([stats.n_observed, stats.mean, stats.centred_ss])
    polymorphic = stats.centred_ss > 0
    chunk_statistics(inputs, chunk.rows, backend.genotypes(centred), stats.centred_ss, polymorphic,
                     backend, rhs)


def _filter_mask(stats: DosageStats, maf: float, filters: DosageFilters,
                 counts: dict[str, int]) -> np.ndarray:
    """Variants passing the MAF, MAC and INFO filters (each filter's removals counted)."""
    freq = stats.alt_freq
    with np.errstate(invalid="ignore"):
        below_maf = ~(np.minimum(freq, 1 - freq) >= maf) if maf > 0 else np.zeros(len(freq), bool)
        below_mac = ~(stats.mac >= filters.min_mac) if filters.min_mac > 0 else np.zeros(len(freq), bool)
        info = stats.info
        below_info = ~(info >= filters.min_info) if filters.min_info > 0 else np.zeros(len(freq), bool)
    counts["variants_below_maf"] = int(below_maf.sum())
    counts["variants_below_min_mac"] = int((below_mac & ~below_maf).sum())
    counts["variants_below_min_info"] = int((below_info & ~below_maf & ~below_mac).sum())
    return ~(below_maf | below_mac | below_info)


def dosage_variant_table(bim: pl.DataFrame, stats: DosageStats) -> pl.DataFrame:
    """CHROM GENPOS ID ALLELE0 (REF) ALLELE1 (ALT) A1FREQ INFO N, one row per tested variant."""
    return bim.select(
        pl.col("CHROM").cast(pl.Utf8), pl.col("POS").cast(pl.Int64).alias("GENPOS"),
        pl.col("ID").cast(pl.Utf8), pl.col("REF").cast(pl.Utf8).alias("ALLELE0"),
        pl.col("ALT").cast(pl.Utf8).alias("ALLELE1"),
    ).with_columns(
        pl.Series("A1FREQ", stats.alt_freq, dtype=pl.Float64).fill_nan(None),
        pl.Series("INFO", stats.info, dtype=pl.Float64).fill_nan(None),
        pl.Series("N", stats.n_observed, dtype=pl.Int64),
    )


def _scan(source: DosageSource, inputs: _DosageScanInputs, tested: np.ndarray, settings: ScanSettings,
          n: int) -> None:
    chunk_size = settings.chunk_size or auto_chunk_size(n, settings.dtype)
    queue = _ChunkQueue(source.plan_chunks(chunk_size, tested))
    workers = max(1, min(settings.threads, -(-len(tested) // chunk_size)))
    with single_threaded_blas(settings.device), ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_scan_dosage_worker, inputs, queue, settings.device, chunk_size,
                               settings.dtype) for _ in range(workers)]
        for future in futures:
            future.result()


def run_dosage_gwas(source: DosageSource, pheno: str | Path, covar: str | Path,
                    loco: str | Path | None = None, chunk_size: int | None = SCAN_DEFAULTS.chunk_size,
                    device: str = SCAN_DEFAULTS.device, dtype: str = SCAN_DEFAULTS.dtype,
                    maf: float = SCAN_DEFAULTS.maf, chroms: Sequence[str] | None = None,
                    pheno_cols: Sequence[str] | None = None, covar_cols: Sequence[str] | None = None,
                    threads: int = SCAN_DEFAULTS.threads, allow_empty: bool = False,
                    missing_phenotype: float | None = MISSING_PHENOTYPE,
                    filters: DosageFilters = DOSAGE_FILTER_DEFAULTS) -> GwasResult:
    """:func:`contig.gwas.association.run_gwas` on dosages, with the INFO and MAC filters."""
    settings = ScanSettings(threads, chunk_size or 0, device, dtype, maf)
    settings.validate()
    filters.validate()
    preload_scipy_special()
    data = load_association_data(source, pheno, covar, loco, pheno_cols, covar_cols, missing_phenotype)
    n, p = data.phenotypes.shape
    q = covariate_basis(data.covariates, data.covar_names, covar)
    df = n - q.shape[1] - 1
    counts = dict(data.counts)
    chrom_all = source.bim["CHROM"].to_numpy().astype(str)
    tested = np.arange(len(chrom_all))
    if chroms is not None:
        tested = np.flatnonzero(np.isin(chrom_all, list(chroms)))
        counts["variants_other_chrom"] = len(chrom_all) - len(tested)
    chrom_tested = chrom_all[tested]
    if loco is not None:
        absent = sorted(set(chrom_tested) - set(data.loco))
        if absent:
            raise InputError(f"no LOCO predictions for chromosome(s) {', '.join(absent)}", loco)
    m = len(tested)
    inputs = _DosageScanInputs(
        source, data.sample_idx, np.empty((0, 4), dtype=np.uint32), True, chrom_tested,
        _residualize_per_chromosome(data, q, chrom_tested, df + 1 - p, pheno), df, df + 1 - p,
        beta=results_array(m, p), se=results_array(m, p), log10p=results_array(m, p),
        f_joint=np.full(m, np.nan), log10p_joint=np.full(m, np.nan), t_table=t_test_table(df),
        stats=np.empty((m, 3)))
    if m:
        _scan(source, inputs, tested, settings, n)
    stats = DosageStats(inputs.stats[:, 0], inputs.stats[:, 1], inputs.stats[:, 2])
    keep = _filter_mask(stats, maf, filters, counts)
    counts["variants_tested"] = int(keep.sum())
    if not keep.any() and not allow_empty:
        raise InputError("no variant left to test", source.parts[0].prefix)
    if not keep.any():
        log.warning("no variant left to test: writing empty results")
    kept = DosageStats(stats.n_observed[keep], stats.mean[keep], stats.centred_ss[keep])
    beta = inputs.beta[keep]
    counts["variants_na"] = int(np.isnan(beta[:, 0]).sum()) if p else 0
    return GwasResult(dosage_variant_table(source.bim[tested[keep]], kept), data.pheno_names, beta,
                      inputs.se[keep], inputs.log10p[keep], inputs.f_joint[keep],
                      inputs.log10p_joint[keep], n, df, counts)
