"""Exact per-variant OLS association of many phenotypes at once (GWAS step 2), and the joint
test of each variant against all phenotypes together.

Model, for every variant g and phenotype y: ``y = b0 + C·b + β·g + e`` fitted by ordinary least
squares over the people used (:mod:`contig.gwas.inputs`). The numbers are those of statsmodels
``OLS(y, [1, C, g])``: β, its SE with ``df = n − c − 1`` (c columns of ``[1, C]``), the t
statistic and ``LOG10P = −log10(2·P(T_df > |t|))``, exact far beyond where p underflows a double
(:mod:`contig.gwas.stats`).

Joint test (``F_JOINT``, ``LOG10P_JOINT``): the multivariate test of ``β = 0`` for all k
phenotypes at once, ``Y = [1, C]·B + g·βᵀ + E`` (MANOVA). Its hypothesis has 1 df, so Wilks' Λ
gives an exact F: with ``g_r``, ``Y_r`` residualized on ``[1, C]``,
``Λ = 1 − R²``, ``R² = g_rᵀY_r (Y_rᵀY_r)⁻¹ Y_rᵀg_r / g_rᵀg_r`` (the R² of regressing g_r on the k
residualized phenotypes), ``F = (R²/k) / ((1 − R²)/(n − c − k))`` on ``(k, n − c − k)`` df. It is
NA when ``n − c − k < 1`` or the phenotypes are (nearly) linearly dependent among the people used.
With one phenotype it equals the t test. The min-p × k combination (``LOG10P`` of the combined
table) is kept alongside it.

Missing genotype calls are mean-imputed (regenie's convention), in both tests: the call is
replaced by the mean ALT count of the observed calls of that variant among the people used.
``N`` reports how many people have an observed call; everyone enters the regression.

Arithmetic (Frisch–Waugh–Lovell). With ``Q = orth([1, C])`` (QR) and ``Y_r = Y − Q·Qᵀ·Y``, a
chunk of genotypes centred by its observed mean with missing calls set to 0 (= mean
imputation), ``G_c (m, n)``, gives

    GY = G_c·Y_r,  ‖g_r‖² = ‖g_c‖² − ‖G_c·Q_cov‖²,  β = GY/‖g_r‖²,
    RSS = ‖y_r‖² − GY²/‖g_r‖²,  SE = sqrt(RSS/df/‖g_r‖²),  R² = ‖GY·W‖²/‖g_r‖²,

where ‖g_c‖² comes exactly from the genotype counts (integers), ``Q_cov`` drops Q's intercept
column (G_c is centred, so it is orthogonal to it) and ``W (k, k)`` whitens the phenotypes
(``W·Wᵀ = (Y_rᵀY_r)⁻¹``, from a Cholesky factor). One matrix product per chunk serves all
phenotypes and both tests. The CPU scan never forms G_c: pgenlib decodes the calls straight to
floats ``G`` (missing calls set to the mean), and ``G_c·R = G·R − mean·(1ᵀR)`` for ``R =
[Y_r, Q_cov]`` (whose column sums are ~0 anyway) corrects the small product instead
(:class:`contig.gwas.backends.NumpyBackend`). The t test's p-values come from the piecewise
polynomial of :class:`contig.gwas.stats.TTestTable` for the scan's df. A variant that is
monomorphic among the people used, or that the covariates explain completely, gets NA, as
plink2 reports.

Parallel scan: the tested variants are cut into chunks (never across filesets) of a few hundred
variants (:func:`contig.gwas.backends.auto_chunk_size`). ``threads`` workers each take the next
chunk and carry it through genotype counting (unless the MAF filter needed the counts up front),
decoding, the product (single-threaded BLAS) and the p-values, filling its own rows of the results: the numbers do not depend on which
worker took which chunk.

LOCO (``loco=``): for the variants of chromosome c, phenotype j is replaced by ``y_j − L_jc``
(the leave-one-chromosome-out prediction of ``contig gwas-step1``) before residualizing; the
joint test then uses these LOCO-adjusted phenotypes (and their own W), with the same df (the
predictions are taken as fixed offsets, as in the single-phenotype test).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.errors import InputError
from contig.genotypes.plinkio import FilesetReaders, Genotypes, VariantChunk, count_genotypes, read_genotypes
from contig.gwas.backends import PreparedRhs, auto_chunk_size, make_backend, single_threaded_blas
from contig.gwas.inputs import (
    MISSING_PHENOTYPE,
    AssociationData,
    covariate_basis,
    load_association_data,
)
from contig.gwas.stats import TTestTable, f_test_log10p, preload_scipy_special, t_test_table

log = logging.getLogger("contig.gwas.association")

DTYPES = ("float64", "float32")
# A phenotype whose share of variance not explained by the phenotypes before it falls below this
# makes Y_rᵀY_r numerically singular: the joint test is then NA.
DEPENDENT_PHENOTYPES = 1e-10


@dataclass(frozen=True)
class ScanSettings:
    """Settings of the scan (and the defaults of ``contig gwas``)."""

    threads: int = 2  # scan workers, and output writers
    chunk_size: int = 0  # variants per chunk and worker; 0 = auto_chunk_size
    device: str = "cpu"  # cpu (NumPy), cpu-torch or cuda[:N] (torch)
    dtype: str = "float64"  # precision of the genotype products
    maf: float = 0.0  # skip variants with a minor allele frequency below this

    def validate(self) -> None:
        """Refuse out-of-range values (InputError naming the option)."""
        if self.threads < 1:
            raise InputError(f"must be at least 1, got {self.threads}", "--threads")
        if self.chunk_size < 0:
            raise InputError(f"must be 0 (auto) or positive, got {self.chunk_size}", "--chunk-size")
        if self.dtype not in DTYPES:
            raise InputError(f"must be one of {', '.join(DTYPES)}, got {self.dtype!r}", "--dtype")
        if not 0.0 <= self.maf <= 0.5:
            raise InputError(f"must be in [0, 0.5], got {self.maf:g}", "--maf")


SCAN_DEFAULTS = ScanSettings()


@dataclass
class VariantCounts:
    """Genotype counts among the people used, per variant: ``counts (n_variants, 4)`` = ALT count
    0, 1, 2, missing."""

    counts: np.ndarray

    def __post_init__(self) -> None:
        self.counts = np.asarray(self.counts, dtype=np.int64)  # products below overflow uint32

    @property
    def n_observed(self) -> np.ndarray:
        return self.counts[:, :3].sum(axis=1)

    @property
    def alt_sum(self) -> np.ndarray:
        return self.counts[:, 1] + 2 * self.counts[:, 2]

    @property
    def mean(self) -> np.ndarray:
        """Mean ALT count of the observed calls (NaN when none is observed)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.alt_sum / self.n_observed

    @property
    def centred_sum_of_squares(self) -> np.ndarray:
        """``Σ_observed (g − mean)²``, from integers: exact up to one division."""
        n_obs = self.n_observed
        sumsq = self.counts[:, 1] + 4 * self.counts[:, 2]
        numerator = n_obs * sumsq - self.alt_sum**2
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n_obs > 0, numerator / np.maximum(n_obs, 1), 0.0)

    @property
    def polymorphic(self) -> np.ndarray:
        return self.counts[:, :3].max(axis=1) < self.n_observed


@dataclass
class GwasResult:
    """Per tested variant (rows) and phenotype (columns) results plus per-variant descriptors."""

    variants: pl.DataFrame  # CHROM GENPOS ID ALLELE0 ALLELE1 A1FREQ N, one row per tested variant
    pheno_names: list[str]
    beta: np.ndarray  # (n_variants, n_pheno)
    se: np.ndarray  # (n_variants, n_pheno)
    log10p: np.ndarray  # (n_variants, n_pheno)
    f_joint: np.ndarray  # (n_variants,) joint F over the phenotypes
    log10p_joint: np.ndarray  # (n_variants,)
    n_samples: int
    df: int  # residual df of each single-phenotype test: n − c − 1
    counts: dict[str, int] = field(default_factory=dict)
    # Tables derived from the arrays above, computed once (writing and logging both need them).
    derived: dict[str, pl.DataFrame] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Column-major (a no-op for the scan's own arrays): every phenotype's column contiguous,
        # as the writers take them one by one.
        self.beta, self.se, self.log10p = (np.asfortranarray(a) for a in (self.beta, self.se, self.log10p))

    @property
    def df_joint(self) -> int:
        """Denominator df of the joint F test, ``n − c − k`` (its numerator df is k)."""
        return self.df + 1 - len(self.pheno_names)


# ---------------------------------------------------------------------------------------------
# per-phenotype right-hand sides


@dataclass
class _ResidualizedPhenotypes:
    """Residualized phenotypes and what the statistics need from them (one per LOCO chromosome)."""

    rhs: np.ndarray  # (n, p + c): [Y_r, Q_cov]
    yy: np.ndarray  # (p,) ‖y_r‖²
    whitener: np.ndarray | None  # (p, p) W with W·Wᵀ = (Y_rᵀY_r)⁻¹; None: joint test NA


def phenotype_whitener(y_r: np.ndarray, yy: np.ndarray) -> np.ndarray | None:
    """``W (p, p)`` with ``W·Wᵀ = (Y_rᵀY_r)⁻¹`` for residualized phenotypes ``y_r (n, p)``, from
    the Cholesky factor of their correlation matrix; None when they are (nearly) linearly
    dependent."""
    scale = np.sqrt(yy)
    correlation = (y_r.T @ y_r) / np.outer(scale, scale)
    try:
        factor = np.linalg.cholesky(correlation)
    except np.linalg.LinAlgError:
        return None
    if np.min(np.diag(factor)) ** 2 < DEPENDENT_PHENOTYPES:
        return None
    return np.linalg.inv(factor).T / scale[:, None]


def _residualize_phenotypes(y: np.ndarray, q: np.ndarray, names: Sequence[str], path,
                            joint: bool) -> _ResidualizedPhenotypes:
    """``y (n, p)`` residualized on the covariate basis ``q (n, c)``; a phenotype left with no
    variation is an InputError."""
    y_r = y - q @ (q.T @ y)
    yy = np.einsum("ij,ij->j", y_r, y_r)
    flat = yy <= 1e-12 * np.maximum(np.einsum("ij,ij->j", y, y), 1e-300)
    if flat.any():
        name = names[int(np.flatnonzero(flat)[0])]
        raise InputError("phenotype is constant (or fully explained by the covariates) among the "
                         f"{y.shape[0]} people used", path, None, name)
    whitener = phenotype_whitener(y_r, yy) if joint else None
    return _ResidualizedPhenotypes(np.column_stack([y_r, q[:, 1:]]), yy, whitener)


def _residualize_per_chromosome(data: AssociationData, q: np.ndarray, chroms: np.ndarray, df_joint: int,
                                pheno: str | Path) -> dict[str | None, _ResidualizedPhenotypes]:
    """The residualized phenotypes: once without LOCO (key None), else per tested chromosome
    (LOCO predictions subtracted); logs why the joint test is NA where it is."""
    joint = df_joint >= 1
    if not joint:
        log.warning("joint test NA: %d phenotypes and %d covariate columns leave %d df among %d people",
                    data.phenotypes.shape[1], q.shape[1], df_joint, len(data.iid))
    names = data.pheno_names
    if data.loco is None:
        residualized = {None: _residualize_phenotypes(data.phenotypes, q, names, pheno, joint)}
    else:
        residualized = {chrom: _residualize_phenotypes(data.phenotypes - data.loco[chrom], q, names, pheno,
                                                       joint)
                        for chrom in dict.fromkeys(chroms)}
    if joint and any(r.whitener is None for r in residualized.values()):
        log.warning("joint test NA: the phenotypes are (nearly) linearly dependent among the people used")
        for phenotypes in residualized.values():
            phenotypes.whitener = None
    return residualized


# ---------------------------------------------------------------------------------------------
# the statistics of one chunk, from its products


def _residual_genotype_ss(gq: np.ndarray, ssc: np.ndarray, polymorphic: np.ndarray) -> np.ndarray:
    """``‖g_r‖² (m,)`` from ``gq = Q_covᵀ·G_cᵀ (c, m)`` and ``ssc = ‖g_c‖²``; NaN where the variant
    is monomorphic or (almost) in the span of the covariates: no residual variation is left."""
    gg = ssc - np.einsum("ji,ji->i", gq, gq)
    usable = polymorphic & (gg > 1e-9 * ssc)
    return np.where(usable, gg, np.nan)


def _t_tests(gy: np.ndarray, gg: np.ndarray, yy: np.ndarray, df: int, table: TTestTable,
             beta: np.ndarray, se: np.ndarray, log10p: np.ndarray) -> None:
    """β, SE and −log10 p ``(k, m)``, written into the given views, from ``gy = Y_rᵀ·G_cᵀ (k, m)``,
    ``gg = ‖g_r‖² (m,)`` and ``yy = ‖y_r‖² (k,)`` (module docstring)."""
    np.divide(gy, gg, out=beta)
    rss = np.maximum(yy[:, None] - gy * beta, 0.0)
    np.sqrt(rss / df / gg, out=se)
    with np.errstate(invalid="ignore", divide="ignore"):
        log10p[...] = table.log10p(beta / se)


def _joint_from_products(gy: np.ndarray, gg: np.ndarray, whitener: np.ndarray,
                         df_joint: int) -> tuple[np.ndarray, np.ndarray]:
    """Joint F ``(m,)`` and ``1 − R² (m,)`` of each variant against the k phenotypes, from
    ``gy = Y_rᵀ·g_r (k, m)`` and ``gg = ‖g_r‖² (m,)``."""
    k = gy.shape[0]
    whitened = whitener.T @ gy
    explained = np.einsum("ji,ji->i", whitened, whitened)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.minimum(explained / gg, 1.0)
        unexplained = np.maximum(gg - explained, 0.0) / gg
        f = (r2 / k) / (unexplained / df_joint)
    return f, unexplained


# ---------------------------------------------------------------------------------------------
# the scan


class _ChunkQueue:
    """Hands out chunks to workers in order (thread-safe); stops everyone after an error."""

    def __init__(self, chunks: Sequence[VariantChunk]) -> None:
        self._chunks = iter(chunks)
        self._lock = threading.Lock()
        self.failed = False

    def next(self) -> VariantChunk | None:
        with self._lock:
            return None if self.failed else next(self._chunks, None)


@dataclass
class _ScanInputs:
    """What the scan workers share: inputs, and the arrays each fills in its own chunks' rows
    (the results, and the counts when they were not counted up front)."""

    genotypes: Genotypes
    sample_idx: np.ndarray  # (n,)
    counts: np.ndarray  # (m, 4) uint32 genotype counts per tested variant (see VariantCounts)
    counted: bool  # counts filled up front; otherwise each worker counts its own chunks
    chrom: np.ndarray  # (m,) str
    residualized: dict[str | None, _ResidualizedPhenotypes]  # by chromosome; None = no LOCO
    df: int
    df_joint: int
    beta: np.ndarray  # (m, p) output, column-major (results_array)
    se: np.ndarray  # (m, p) output
    log10p: np.ndarray  # (m, p) output
    f_joint: np.ndarray  # (m,) output (NaN where the joint test is NA)
    log10p_joint: np.ndarray  # (m,) output
    t_table: TTestTable  # p-values of the t test with df degrees of freedom


def results_array(m: int, p: int) -> np.ndarray:
    """An uninitialised ``(m, p)`` float64 result array in column-major order: each phenotype's
    column is contiguous, as the scan writes it and the writers hand it to polars (a strided
    column costs a copy per column)."""
    return np.empty((p, m)).T


def _scan_worker(inputs: _ScanInputs, queue: _ChunkQueue, device: str, chunk_size: int,
                 dtype: str) -> None:
    """Take chunks from the queue until it is empty: read → centre → multiply → statistics.

    Each worker has its own reader and buffers (chunks come in fileset order, so one reader is
    open at a time); the rows it writes belong to its chunks only, so the results do not depend
    on which worker took which chunk.
    """
    n = len(inputs.sample_idx)
    backend = make_backend(device, n, chunk_size, dtype)
    rhs = {chrom: backend.prepare(r.rhs) for chrom, r in inputs.residualized.items()}
    raw = np.empty((chunk_size, n), dtype=np.int8) if backend.centres_calls else None
    try:
        with FilesetReaders(inputs.genotypes, inputs.sample_idx) as readers:
            while (chunk := queue.next()) is not None:
                _scan_chunk(inputs, chunk, readers.get(chunk.part), backend, rhs, raw)
    except BaseException:
        queue.failed = True
        raise


def _scan_chunk(inputs: _ScanInputs, chunk: VariantChunk, reader, backend,
                rhs: dict[str | None, PreparedRhs], raw: np.ndarray | None) -> None:
    """One chunk: counts (unless counted up front), decode (and centre, on torch), multiply,
    both tests."""
    rows = chunk.rows
    if not inputs.counted:
        count_genotypes(reader, chunk.local, inputs.counts[rows])
    vc = VariantCounts(inputs.counts[rows])
    has_missing = bool(vc.counts[:, 3].any())
    if backend.centres_calls:
        genotypes = backend.centre(read_genotypes(reader, chunk.local, raw), vc.mean, has_missing)
        offsets = None
    else:
        calls = read_genotypes(reader, chunk.local, backend.buffer)
        genotypes, offsets = backend.impute_calls(calls, vc.mean, has_missing)
    chunk_statistics(inputs, rows, genotypes, vc.centred_sum_of_squares, vc.polymorphic, backend, rhs,
                     offsets)


def chunk_statistics(inputs: _ScanInputs, rows: slice, genotypes, ssc: np.ndarray, polymorphic: np.ndarray,
                     backend, rhs: dict[str | None, PreparedRhs],
                     offsets: np.ndarray | None = None) -> None:
    """Both tests for the variants ``rows`` from their genotypes ``(m, n)``: centred (missing at
    0), or uncentred with ``offsets (m,)`` their means (the backend centres the products);
    ``ssc = ‖g_c‖² (m,)`` and which are polymorphic. Fills the result rows of ``inputs``."""
    # One product per run of one chromosome (LOCO changes the phenotypes per chromosome).
    m = rows.stop - rows.start
    runs = [(0, m, None)] if None in inputs.residualized else _chromosome_runs(inputs.chrom[rows])
    for start, stop, chrom in runs:
        sub = slice(rows.start + start, rows.start + stop)
        phenotypes = inputs.residualized[chrom]
        products = backend.multiply(genotypes[start:stop], rhs[chrom],
                                    None if offsets is None else offsets[start:stop])  # (p + c, m)
        p = phenotypes.yy.shape[0]
        gy = products[:p]
        gg = _residual_genotype_ss(products[p:], ssc[start:stop], polymorphic[start:stop])
        _t_tests(gy, gg, phenotypes.yy, inputs.df, inputs.t_table, inputs.beta[sub].T,
                 inputs.se[sub].T, inputs.log10p[sub].T)
        if phenotypes.whitener is not None:
            f, unexplained = _joint_from_products(gy, gg, phenotypes.whitener, inputs.df_joint)
            inputs.f_joint[sub] = f
            inputs.log10p_joint[sub] = f_test_log10p(unexplained, p, inputs.df_joint)


def _chromosome_runs(chrom: np.ndarray) -> list[tuple[int, int, str]]:
    """Maximal runs of equal chromosome: ``[(start, stop, chrom), ...]``."""
    breaks = np.flatnonzero(chrom[1:] != chrom[:-1]) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(chrom)]])
    return [(int(a), int(b), str(chrom[a])) for a, b in zip(starts, stops)]


def _select_variants(genotypes: Genotypes, sample_idx: np.ndarray, chroms: Sequence[str] | None,
                     maf: float, counts: dict[str, int]) -> tuple[np.ndarray, np.ndarray, bool]:
    """Indices of the variants to test (chromosome and MAF filters, counted in ``counts``), their
    genotype counts ``(m, 4)`` and whether those were filled here (the MAF filter needs them up
    front; otherwise the workers count their own chunks while the others multiply)."""
    chrom_all = genotypes.bim["CHROM"].to_numpy().astype(str)
    selected = np.ones(len(chrom_all), dtype=bool)
    if chroms is not None:
        selected &= np.isin(chrom_all, list(chroms))
        counts["variants_other_chrom"] = int((~selected).sum())
    tested = np.flatnonzero(selected)
    if maf <= 0:
        return tested, np.empty((len(tested), 4), dtype=np.uint32), False
    raw = genotypes.genotype_counts(sample_idx, tested)
    freq = VariantCounts(raw).mean / 2.0
    keep = np.minimum(freq, 1 - freq) >= maf
    counts["variants_below_maf"] = int((~keep).sum())
    return tested[keep], raw[keep], True


def _variant_table(bim: pl.DataFrame, tested: np.ndarray, counts: np.ndarray) -> pl.DataFrame:
    """CHROM GENPOS ID ALLELE0 (REF) ALLELE1 (ALT) A1FREQ N of the tested variants."""
    vc = VariantCounts(counts)
    # tested is increasing: all of it is every variant in order, and needs no gather.
    return (bim if len(tested) == bim.height else bim[tested]).select(
        pl.col("CHROM").cast(pl.Utf8), pl.col("POS").cast(pl.Int64).alias("GENPOS"),
        pl.col("ID").cast(pl.Utf8), pl.col("REF").cast(pl.Utf8).alias("ALLELE0"),
        pl.col("ALT").cast(pl.Utf8).alias("ALLELE1"),
    ).with_columns(
        pl.Series("A1FREQ", vc.mean / 2.0, dtype=pl.Float64).fill_nan(None),
        pl.Series("N", vc.n_observed, dtype=pl.Int64),
    )


def _run_workers(inputs: _ScanInputs, tested: np.ndarray, settings: ScanSettings, n: int) -> None:
    """``threads`` workers over the chunks of ``tested``; re-raises the first worker's error."""
    chunk_size = settings.chunk_size or auto_chunk_size(n, settings.dtype)
    queue = _ChunkQueue(inputs.genotypes.plan_chunks(chunk_size, tested))
    workers = max(1, min(settings.threads, -(-len(tested) // chunk_size)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_scan_worker, inputs, queue, settings.device, chunk_size, settings.dtype)
                   for _ in range(workers)]
        for future in futures:
            future.result()


def run_gwas(bfile: str | Path | Sequence[str | Path] | Genotypes, pheno: str | Path, covar: str | Path,
             loco: str | Path | None = None, chunk_size: int | None = SCAN_DEFAULTS.chunk_size,
             device: str = SCAN_DEFAULTS.device, dtype: str = SCAN_DEFAULTS.dtype,
             maf: float = SCAN_DEFAULTS.maf, chroms: Sequence[str] | None = None,
             pheno_cols: Sequence[str] | None = None, covar_cols: Sequence[str] | None = None,
             threads: int = SCAN_DEFAULTS.threads, allow_empty: bool = False,
             missing_phenotype: float | None = MISSING_PHENOTYPE) -> GwasResult:
    """Association of every phenotype with every variant, and the joint test (module docstring).

    ``threads`` workers each take the next chunk of variants and carry it from decoding to
    p-values (BLAS single-threaded inside them); ``chunk_size`` 0 or None sizes chunks by the
    number of people. ``allow_empty``: when no variant is left to test (e.g. a chromosome that
    QC emptied) return an empty result instead of raising.
    """
    settings = ScanSettings(threads, chunk_size or 0, device, dtype, maf)
    settings.validate()
    preload_scipy_special()
    # Single-threaded BLAS from the start, not only in the workers: the few small products
    # before the scan would otherwise wake OpenBLAS threads that then spin (~0.2 s of CPU here).
    with single_threaded_blas(device):
        return _run_gwas(bfile, pheno, covar, loco, settings, chroms, pheno_cols, covar_cols, allow_empty,
                         missing_phenotype)


def _run_gwas(bfile: str | Path | Sequence[str | Path] | Genotypes, pheno: str | Path, covar: str | Path,
              loco: str | Path | None, settings: ScanSettings, chroms: Sequence[str] | None,
              pheno_cols: Sequence[str] | None, covar_cols: Sequence[str] | None, allow_empty: bool,
              missing_phenotype: float | None) -> GwasResult:
    """:func:`run_gwas` after its settings are checked."""
    genotypes = bfile if isinstance(bfile, Genotypes) else Genotypes.open(bfile)
    data = load_association_data(genotypes, pheno, covar, loco, pheno_cols, covar_cols,
                                 missing_phenotype)
    n, p = data.phenotypes.shape
    q = covariate_basis(data.covariates, data.covar_names, covar)
    df = n - q.shape[1] - 1
    counts = dict(data.counts)
    tested, tested_counts, counted = _select_variants(genotypes, data.sample_idx, chroms, settings.maf, counts)
    counts["variants_tested"] = len(tested)
    if len(tested) == 0 and not allow_empty:
        raise InputError("no variant left to test", genotypes.parts[0].prefix)
    chrom_tested = genotypes.bim["CHROM"].to_numpy().astype(str)[tested]
    if loco is not None:
        absent = sorted(set(chrom_tested) - set(data.loco))
        if absent:
            raise InputError(f"no LOCO predictions for chromosome(s) {', '.join(absent)}", loco)
    if len(tested) == 0:
        log.warning("no variant left to test: writing empty results")
    m = len(tested)
    inputs = _ScanInputs(
        genotypes, data.sample_idx, tested_counts, counted, chrom_tested,
        _residualize_per_chromosome(data, q, chrom_tested, df + 1 - p, pheno), df, df + 1 - p,
        # Every row belongs to exactly one chunk and is written by the worker that takes it.
        beta=results_array(m, p), se=results_array(m, p), log10p=results_array(m, p),
        f_joint=np.full(m, np.nan), log10p_joint=np.full(m, np.nan), t_table=t_test_table(df))
    _run_workers(inputs, tested, settings, n)
    counts["variants_na"] = int(np.isnan(inputs.beta[:, 0]).sum()) if p else 0
    return GwasResult(_variant_table(genotypes.bim, tested, inputs.counts), data.pheno_names,
                      inputs.beta, inputs.se, inputs.log10p, inputs.f_joint, inputs.log10p_joint,
                      n, df, counts)

