"""Exact per-variant OLS association of many phenotypes at once (GWAS step 2).

Model, for every variant g and phenotype y: ``y = b0 + C·b + β·g + e`` fitted by ordinary least
squares over the people in phenotype ∩ covariate ∩ .fam with no missing phenotype or covariate
(all phenotypes share one set of people: someone missing any phenotype is dropped, and counted).
The numbers are those of statsmodels ``OLS(y, [1, C, g])``: β, its SE with ``df = n − c − 2``
(c covariate columns), the t statistic, ``CHISQ = t²`` and ``LOG10P = −log10(2·P(T_df > |t|))``,
which stays exact far beyond where p underflows a double (:func:`t_test_log10p`).

Missing genotype calls are mean-imputed (regenie's convention): the call is replaced by the mean
ALT count of the observed calls of that variant among the people used. ``N`` reports how many
people have an observed call; everyone enters the regression.

Arithmetic (Frisch–Waugh–Lovell). With ``Q = orth([1, C])`` (QR) and residualized phenotypes
``Y_r = Y − Q·Qᵀ·Y``, a chunk of genotypes is centred by its observed mean with missing calls set
to 0 (= mean imputation), ``G_c (m, n)``, and then

    GY = G_c·Y_r,  ‖g_r‖² = ‖g_c‖² − ‖G_c·Q_cov‖²,  β = GY/‖g_r‖²,
    RSS = ‖y_r‖² − GY²/‖g_r‖²,  SE = sqrt(RSS/df/‖g_r‖²),

where ‖g_c‖² comes exactly from the genotype counts (integers) and ``Q_cov`` drops Q's intercept
column (G_c is centred, so it is orthogonal to it). One matrix product per chunk serves all
phenotypes. A variant that is monomorphic among the people used, or that the covariates explain
completely, gets NA, as plink2 reports.

Parallel scan: the tested variants are cut into chunks (never across filesets) small enough for
a worker's float copy to stay in cache between centring and the product (:func:`auto_chunk_size`).
``threads`` workers each take the next chunk and carry it through genotype counting (unless the
MAF filter needed the counts up front), decoding, centring, the product (single-threaded BLAS)
and the p-values, filling its own rows of β, SE and LOG10P: the numbers do not depend on which
worker took which chunk.

LOCO (``loco=``): for the variants of chromosome c, phenotype j is replaced by ``y_j − L_jc``
(the leave-one-chromosome-out prediction of ``contig gwas-step1``) before residualizing.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import importlib
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from contig.atomic import atomic_directory, atomic_path, atomic_paths
from contig.errors import InputError
from contig.phenotypes import read_numeric_table
from contig.plinkio import FilesetReaders, Genotypes, VariantChunk, count_genotypes, read_genotypes

log = logging.getLogger("contig.gwas")

GENOME_WIDE = 5e-8
CHI2_1DF_MEDIAN = 0.4549364231195724  # median of χ²(1) = scipy.special.chdtri(1, 0.5) (tested)
SUMSTATS_COLUMNS = ["CHROM", "GENPOS", "ID", "ALLELE0", "ALLELE1", "A1FREQ", "N", "BETA", "SE",
                    "CHISQ", "LOG10P"]
LN10 = float(np.log(10.0))


# ---------------------------------------------------------------------------------------------
# p-values


def _special():
    """scipy.special, imported on first use: the import takes ~0.3 s, which :func:`run_gwas`
    hides by starting it in the background while it reads the inputs."""
    return importlib.import_module("scipy.special")


def preload_special() -> None:
    """Start importing scipy.special in a background thread (imports are thread-safe: a caller
    that needs it earlier waits for this import to finish)."""
    threading.Thread(target=_special, name="import-scipy.special", daemon=True).start()


def _log_betainc_continued_fraction(a: float, b: float, x: np.ndarray) -> np.ndarray:
    """log of the regularized incomplete beta I_x(a, b) for x < (a+1)/(a+b+2), by its continued
    fraction (modified Lentz); used where I_x underflows a double."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
    h = d.copy()
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
        c = 1.0 + aa / np.where(np.abs(c) < tiny, tiny, c)
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
        c = 1.0 + aa / np.where(np.abs(c) < tiny, tiny, c)
        delta = d * c
        h *= delta
        if np.all(np.abs(delta - 1.0) < 1e-15):
            break
    return a * np.log(x) + b * np.log1p(-x) - np.log(a) - _special().betaln(a, b) + np.log(h)


def t_test_log10p(t: np.ndarray, df: float) -> np.ndarray:
    """``−log10`` of the two-sided p-value of Student's t with ``df`` degrees of freedom.

    ``p = I_x(df/2, 1/2)`` with ``x = df/(df + t²)`` (regularized incomplete beta; faster than
    the t distribution's own survival function and two-sided by construction). Exact (to double
    precision of the logarithm) for any |t|: where p underflows, ``log I_x`` is evaluated by its
    continued fraction. NaN stays NaN.
    """
    t = np.abs(np.asarray(t, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        x = df / (df + t * t)
        p = _special().betainc(df / 2.0, 0.5, x)
        log_p = np.log(p)
    tail = np.isfinite(t) & (p < 1e-290)
    if tail.any():
        log_p[tail] = _log_betainc_continued_fraction(df / 2.0, 0.5, x[tail])
    log_p[np.isinf(t)] = -np.inf
    return -log_p / LN10


def lambda_gc(log10p: np.ndarray) -> float:
    """Genomic inflation: median 1-df χ² implied by the p-values over its null median (0.4549)."""
    values = log10p[np.isfinite(log10p)]
    if values.size == 0:
        return float("nan")
    median_p = 10.0 ** -np.median(values)
    return float(_special().chdtri(1, median_p) / CHI2_1DF_MEDIAN)


# ---------------------------------------------------------------------------------------------
# inputs


@dataclass
class AssociationData:
    """Everything per person that the scan needs, in .fam order of the people used."""

    iid: np.ndarray  # (n,) str
    sample_idx: np.ndarray  # (n,) sorted 0-based indices into the .fam
    phenotypes: np.ndarray  # (n, p)
    pheno_names: list[str]
    covariates: np.ndarray  # (n, c)
    covar_names: list[str]
    loco: dict[str, np.ndarray] | None = None  # chromosome -> (n, p) LOCO predictions
    counts: dict[str, int] = field(default_factory=dict)


LOCO_SEPARATOR = ":"


def read_loco(path: str | Path, pheno_names: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Read OUT.loco.tsv.gz of ``contig gwas-step1``: ``IID`` + columns ``<pheno>:<chrom>``.

    Returns (iid, {chrom: (n_people, n_pheno) predictions in ``pheno_names`` order}).
    """
    table = read_numeric_table(path, what="LOCO prediction file")
    by_chrom: dict[str, dict[str, int]] = {}
    for j, name in enumerate(table.columns):
        pheno, sep, chrom = name.rpartition(LOCO_SEPARATOR)
        if not sep:
            raise InputError(f"column {name!r} is not <phenotype>{LOCO_SEPARATOR}<chromosome>", path)
        by_chrom.setdefault(chrom, {})[pheno] = j
    predictions = {}
    for chrom, columns in by_chrom.items():
        missing = [p for p in pheno_names if p not in columns]
        if missing:
            raise InputError(f"no LOCO prediction for phenotype(s) {', '.join(missing)} on "
                             f"chromosome {chrom}", path)
        predictions[chrom] = table.values[:, [columns[p] for p in pheno_names]]
    return table.iid, predictions


def load_association_data(genotypes: Genotypes, pheno: str | Path, covar: str | Path,
                          loco: str | Path | None = None, pheno_cols: Sequence[str] | None = None,
                          covar_cols: Sequence[str] | None = None) -> AssociationData:
    """Join phenotypes, covariates (and LOCO predictions) with the .fam; drop incomplete people."""
    phen = read_numeric_table(pheno, pheno_cols, what="phenotype file")
    cov = read_numeric_table(covar, covar_cols, what="covariate file")
    fam_iid = genotypes.fam["IID"].to_numpy().astype(str)
    pheno_pos = {p: i for i, p in enumerate(phen.iid)}
    covar_pos = {p: i for i, p in enumerate(cov.iid)}
    loco_pos: dict[str, int] | None = None
    loco_values: dict[str, np.ndarray] | None = None
    if loco is not None:
        loco_iid, loco_values = read_loco(loco, phen.columns)
        loco_pos = {p: i for i, p in enumerate(loco_iid)}
    fam_set = set(fam_iid)
    counts = {"fam": len(fam_iid), "pheno_not_in_fam": int(sum(p not in fam_set for p in phen.iid)),
              "covar_not_in_fam": int(sum(p not in fam_set for p in cov.iid))}
    in_all = np.array([p in pheno_pos and p in covar_pos and (loco_pos is None or p in loco_pos)
                       for p in fam_iid])
    counts["fam_without_pheno"] = int(sum(p not in pheno_pos for p in fam_iid))
    counts["fam_without_covar"] = int(sum(p not in covar_pos for p in fam_iid))
    if loco_pos is not None:
        counts["fam_without_loco"] = int(sum(p not in loco_pos for p in fam_iid))
    if not in_all.any():
        raise InputError(f"no person is in the .fam ({genotypes.parts[0].prefix}.fam), the "
                         f"phenotype file and the covariate file"
                         + (" and the LOCO file" if loco is not None else ""), pheno)
    sample_idx = np.flatnonzero(in_all)
    iid = fam_iid[sample_idx]
    y = phen.values[[pheno_pos[p] for p in iid]]
    c = cov.values[[covar_pos[p] for p in iid]]
    for j, name in enumerate(phen.columns):
        if np.isnan(y[:, j]).all():
            raise InputError(f"phenotype is missing for all {len(iid)} people in the .fam and the "
                             "covariate file", pheno, None, name)
    complete_y = ~np.isnan(y).any(axis=1)
    complete_c = ~np.isnan(c).any(axis=1)
    counts["missing_pheno"] = int((~complete_y).sum())
    counts["missing_covar"] = int((complete_y & ~complete_c).sum())
    keep = complete_y & complete_c
    loco_arrays = None
    if loco_values is not None:
        rows = [loco_pos[p] for p in iid]
        loco_arrays = {chrom: v[rows] for chrom, v in loco_values.items()}
        complete_l = ~np.any([np.isnan(v).any(axis=1) for v in loco_arrays.values()], axis=0)
        counts["missing_loco"] = int((keep & ~complete_l).sum())
        keep &= complete_l
        loco_arrays = {chrom: v[keep] for chrom, v in loco_arrays.items()}
    counts["used"] = int(keep.sum())
    n_cov = c.shape[1]
    if counts["used"] < n_cov + 3:
        raise InputError(f"only {counts['used']} people have all phenotypes and covariates; need at "
                         f"least {n_cov + 3} for {n_cov} covariates", pheno)
    return AssociationData(iid[keep], sample_idx[keep], y[keep], phen.columns, c[keep], cov.columns,
                           loco_arrays, counts)


def covariate_basis(covariates: np.ndarray, names: Sequence[str], path: str | Path | None = None) -> np.ndarray:
    """Orthonormal basis ``(n, c + 1)`` of ``[1, covariates]``, intercept direction first.

    A constant covariate, or one that is a linear combination of the others, raises InputError.
    """
    n = covariates.shape[0]
    design = np.column_stack([np.ones(n), covariates])
    q, r = np.linalg.qr(design)
    diag = np.abs(np.diag(r))
    scale = np.linalg.norm(design, axis=0)
    for j in range(1, design.shape[1]):
        if diag[j] <= 1e-9 * max(scale[j], 1e-300):
            name = names[j - 1]
            what = ("constant" if np.ptp(design[:, j]) == 0
                    else "a linear combination of the intercept and earlier covariates")
            raise InputError(f"covariate is {what} among the {n} people used", path, None, name)
    return q


# ---------------------------------------------------------------------------------------------
# genotype summaries


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


# ---------------------------------------------------------------------------------------------
# the products, on numpy or torch


class NumpyBackend:
    """Centre genotype chunks into a reused float buffer and multiply them by the right-hand sides.

    One backend per scan worker: the buffer belongs to the worker's current chunk.
    """

    def __init__(self, n_samples: int, chunk_size: int, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.buffer = np.empty((chunk_size, n_samples), dtype=self.dtype)

    def prepare(self, rhs: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(rhs, dtype=self.dtype)

    def centre(self, genotypes: np.ndarray, mean: np.ndarray, has_missing: bool) -> np.ndarray:
        """``G_c (m, n)``: int8 ``genotypes (m, n)`` minus their means, missing calls (-9) at 0."""
        centred = self.buffer[: genotypes.shape[0]]
        np.subtract(genotypes, mean.astype(self.dtype)[:, None], out=centred)
        if has_missing:
            centred[genotypes < 0] = 0.0
        return centred

    def multiply(self, centred: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """``G_c · rhs`` as float64 ``(m, q)`` for ``rhs (n, q)``."""
        return np.asarray(centred @ rhs, dtype=np.float64)


class TorchBackend:
    """The same arithmetic through torch (``device`` "cuda" or "cpu"): the int8 chunk is copied to
    the device and centred there."""

    def __init__(self, n_samples: int, chunk_size: int, dtype: np.dtype, device: str) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.dtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
        self.buffer = torch.empty((chunk_size, n_samples), dtype=self.dtype, device=self.device)

    def prepare(self, rhs: np.ndarray):
        return self.torch.as_tensor(np.ascontiguousarray(rhs), device=self.device).to(self.dtype)

    def centre(self, genotypes: np.ndarray, mean: np.ndarray, has_missing: bool):
        torch = self.torch
        g = torch.from_numpy(genotypes).to(self.device)
        centred = self.buffer[: genotypes.shape[0]]
        centred.copy_(g)
        centred.sub_(torch.as_tensor(mean, device=self.device).to(self.dtype)[:, None])
        if has_missing:
            centred.masked_fill_(g < 0, 0.0)
        return centred

    def multiply(self, centred, rhs) -> np.ndarray:
        return (centred @ rhs).to(self.torch.float64).cpu().numpy()


def make_backend(device: str, n_samples: int, chunk_size: int, dtype: str):
    """``cpu`` = NumPy; ``cpu-torch`` = torch on the CPU (tests the torch path); ``cuda`` = GPU."""
    if device == "cpu":
        return NumpyBackend(n_samples, chunk_size, np.dtype(dtype))
    if device in ("cuda", "cpu-torch") or device.startswith("cuda:"):
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise InputError("--device cuda: no CUDA device is available", "torch")
        return TorchBackend(n_samples, chunk_size, np.dtype(dtype),
                            "cpu" if device == "cpu-torch" else device)
    raise InputError(f"unknown device {device!r} (cpu, cpu-torch, cuda)", "--device")


# Float buffer per worker that keeps a chunk in the last-level cache between centring and the
# product: measured here (5,000 people), 64-variant chunks scan 1.3-1.5x faster than 2,048.
CHUNK_BUFFER_BYTES = 5 << 19
MIN_AUTO_CHUNK = 64  # below this the product re-reads the right-hand sides too often per variant
MAX_AUTO_CHUNK = 2048


def auto_chunk_size(n_samples: int, dtype: str = "float64") -> int:
    """Variants per chunk so that one worker's float buffer ``(chunk, n_samples)`` is ~2.5 MiB,
    between 64 and 2,048 variants (64 from ~5,000 people up: 36 MB per worker at 70,000)."""
    per_variant = max(1, n_samples) * np.dtype(dtype).itemsize
    return int(min(MAX_AUTO_CHUNK, max(MIN_AUTO_CHUNK, CHUNK_BUFFER_BYTES // per_variant)))


class _ChunkQueue:
    """Hands out chunks to workers in order (thread-safe); stops everyone after an error."""

    def __init__(self, chunks: Sequence[VariantChunk]) -> None:
        self._chunks = iter(chunks)
        self._lock = threading.Lock()
        self.failed = False

    def next(self) -> VariantChunk | None:
        with self._lock:
            return None if self.failed else next(self._chunks, None)


@contextlib.contextmanager
def _single_threaded_blas(device: str):
    """The scan workers are the parallelism: BLAS calls inside them use one thread each (BLAS
    threads that spin between calls would otherwise compete with the other workers)."""
    if device != "cpu":
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


# ---------------------------------------------------------------------------------------------
# the scan


@dataclass
class GwasResult:
    """Per tested variant (rows) and phenotype (columns) results plus per-variant descriptors."""

    variants: pl.DataFrame  # CHROM GENPOS ID ALLELE0 ALLELE1 A1FREQ N, one row per tested variant
    pheno_names: list[str]
    beta: np.ndarray  # (n_variants, n_pheno)
    se: np.ndarray
    log10p: np.ndarray
    n_samples: int
    df: int
    counts: dict[str, int] = field(default_factory=dict)
    # Tables derived from the arrays above, computed once (writing and logging both need them).
    derived: dict[str, pl.DataFrame] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class _Target:
    """Residualized phenotypes and what the statistics need from them (one per LOCO chromosome)."""

    rhs: np.ndarray  # (n, p + c): [Y_r, Q_cov]
    yy: np.ndarray  # (p,) ‖y_r‖²


def _make_target(y: np.ndarray, q: np.ndarray, names: Sequence[str], path) -> _Target:
    y_r = y - q @ (q.T @ y)
    yy = np.einsum("ij,ij->j", y_r, y_r)
    flat = yy <= 1e-12 * np.maximum(np.einsum("ij,ij->j", y, y), 1e-300)
    if flat.any():
        name = names[int(np.flatnonzero(flat)[0])]
        raise InputError("phenotype is constant (or fully explained by the covariates) among the "
                         f"{y.shape[0]} people used", path, None, name)
    return _Target(np.column_stack([y_r, q[:, 1:]]), yy)


@dataclass
class _ScanInputs:
    """What the scan workers share: inputs, and the arrays each fills in its own chunks' rows
    (the results, and the counts when they were not counted up front)."""

    genotypes: Genotypes
    sample_idx: np.ndarray  # (n,)
    counts: np.ndarray  # (m, 4) uint32 genotype counts per tested variant (see VariantCounts)
    counted: bool  # counts filled up front; otherwise each worker counts its own chunks
    chrom: np.ndarray  # (m,) str
    targets: dict[str | None, _Target]  # None = no LOCO
    df: int
    beta: np.ndarray  # (m, p) output
    se: np.ndarray  # (m, p) output
    log10p: np.ndarray  # (m, p) output


def _scan_worker(inputs: _ScanInputs, queue: _ChunkQueue, device: str, chunk_size: int,
                 dtype: str) -> None:
    """Take chunks from the queue until it is empty: read → centre → multiply → β, SE, LOG10P.

    Each worker has its own reader and buffers (chunks come in fileset order, so one reader is
    open at a time); the rows it writes belong to its chunks only, so the results do not depend
    on which worker took which chunk.
    """
    n = len(inputs.sample_idx)
    backend = make_backend(device, n, chunk_size, dtype)
    rhs = {chrom: backend.prepare(target.rhs) for chrom, target in inputs.targets.items()}
    raw = np.empty((chunk_size, n), dtype=np.int8)
    try:
        with FilesetReaders(inputs.genotypes, inputs.sample_idx) as readers:
            while (chunk := queue.next()) is not None:
                _scan_chunk(inputs, chunk, readers.get(chunk.part), backend, rhs, raw)
    except BaseException:
        queue.failed = True
        raise


def _scan_chunk(inputs: _ScanInputs, chunk: VariantChunk, reader, backend, rhs: dict,
                raw: np.ndarray) -> None:
    """One chunk: counts (unless counted up front), decode, centre, multiply, β, SE, LOG10P."""
    rows = chunk.rows
    if not inputs.counted:
        count_genotypes(reader, chunk.local, inputs.counts[rows])
    vc = VariantCounts(inputs.counts[rows])
    genotypes = read_genotypes(reader, chunk.local, raw)
    g_c = backend.centre(genotypes, vc.mean, bool(vc.counts[:, 3].any()))
    ssc, polymorphic = vc.centred_sum_of_squares, vc.polymorphic
    # One product per run of one chromosome (LOCO changes the phenotypes per chromosome).
    m = rows.stop - rows.start
    runs = [(0, m, None)] if None in inputs.targets else _runs(inputs.chrom[rows])
    for start, stop, chrom in runs:
        sub = slice(rows.start + start, rows.start + stop)
        products = backend.multiply(g_c[start:stop], rhs[chrom])
        beta, se = _ols_from_products(products, ssc[start:stop], polymorphic[start:stop],
                                      inputs.targets[chrom].yy, inputs.df)
        inputs.beta[sub], inputs.se[sub] = beta, se
        with np.errstate(invalid="ignore", divide="ignore"):
            inputs.log10p[sub] = t_test_log10p(beta / se, inputs.df)


def run_gwas(bfile: str | Path | Sequence[str | Path] | Genotypes, pheno: str | Path, covar: str | Path,
             loco: str | Path | None = None, chunk_size: int | None = None, device: str = "cpu",
             dtype: str = "float64", maf: float = 0.0, chroms: Sequence[str] | None = None,
             pheno_cols: Sequence[str] | None = None, covar_cols: Sequence[str] | None = None,
             threads: int = 2, allow_empty: bool = False) -> GwasResult:
    """Association of every phenotype with every variant (see the module docstring).

    ``threads`` workers each take the next chunk of variants and carry it from decoding to
    p-values (BLAS single-threaded inside them); ``chunk_size`` None sizes chunks by the number of
    people (:func:`auto_chunk_size`). ``allow_empty``: when no variant is left to test (e.g. a
    chromosome that QC emptied) return an empty result instead of raising.
    """
    preload_special()
    genotypes = bfile if isinstance(bfile, Genotypes) else Genotypes.open(bfile)
    data = load_association_data(genotypes, pheno, covar, loco, pheno_cols, covar_cols)
    n, p = data.phenotypes.shape
    q = covariate_basis(data.covariates, data.covar_names, covar)
    df = n - q.shape[1] - 1
    bim = genotypes.bim
    chrom_all = bim["CHROM"].to_numpy().astype(str)
    selected = np.ones(len(chrom_all), dtype=bool)
    counts = dict(data.counts)
    if chroms is not None:
        selected &= np.isin(chrom_all, list(chroms))
        counts["variants_other_chrom"] = int((~selected).sum())
    tested = np.flatnonzero(selected)
    # The MAF filter needs the counts before the scan; without it the workers count their own
    # chunks (pgenlib's counter holds the GIL, and runs while the other workers multiply).
    if maf > 0:
        raw = genotypes.genotype_counts(data.sample_idx, tested)
        freq = VariantCounts(raw).mean / 2.0
        keep = np.minimum(freq, 1 - freq) >= maf
        counts["variants_below_maf"] = int((~keep).sum())
        tested, tested_counts = tested[keep], raw[keep]
    else:
        tested_counts = np.empty((len(tested), 4), dtype=np.uint32)
    counts["variants_tested"] = len(tested)
    if len(tested) == 0 and not allow_empty:
        raise InputError("no variant left to test", genotypes.parts[0].prefix)
    if loco is not None:
        absent = sorted(set(chrom_all[tested]) - set(data.loco))
        if absent:
            raise InputError(f"no LOCO predictions for chromosome(s) {', '.join(absent)}", loco)
    if len(tested) == 0 and allow_empty:
        log.warning("no variant left to test: writing empty results")
    chrom_tested = chrom_all[tested]
    if loco is None:
        targets = {None: _make_target(data.phenotypes, q, data.pheno_names, pheno)}
    else:
        targets = {chrom: _make_target(data.phenotypes - data.loco[chrom], q, data.pheno_names, pheno)
                   for chrom in dict.fromkeys(chrom_tested)}
    inputs = _ScanInputs(
        genotypes, data.sample_idx, tested_counts, maf > 0, chrom_tested, targets, df,
        # Every row belongs to exactly one chunk and is written by the worker that takes it.
        beta=np.empty((len(tested), p)), se=np.empty((len(tested), p)), log10p=np.empty((len(tested), p)))
    chunk_size = chunk_size or auto_chunk_size(n, dtype)
    queue = _ChunkQueue(genotypes.plan_chunks(chunk_size, tested))
    workers = max(1, min(threads, -(-len(tested) // chunk_size)))
    with _single_threaded_blas(device), ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_scan_worker, inputs, queue, device, chunk_size, dtype)
                   for _ in range(workers)]
        for future in futures:
            future.result()
    counts["variants_na"] = int(np.isnan(inputs.beta[:, 0]).sum()) if p else 0
    tested_vc = VariantCounts(inputs.counts)
    variants = bim[tested].select(
        pl.col("CHROM").cast(pl.Utf8), pl.col("POS").cast(pl.Int64).alias("GENPOS"),
        pl.col("ID").cast(pl.Utf8), pl.col("REF").cast(pl.Utf8).alias("ALLELE0"),
        pl.col("ALT").cast(pl.Utf8).alias("ALLELE1"),
    ).with_columns(
        pl.Series("A1FREQ", tested_vc.mean / 2.0, dtype=pl.Float64).fill_nan(None),
        pl.Series("N", tested_vc.n_observed, dtype=pl.Int64),
    )
    return GwasResult(variants, data.pheno_names, inputs.beta, inputs.se, inputs.log10p, n, df, counts)


def _runs(chrom: np.ndarray) -> list[tuple[int, int, str]]:
    """Maximal runs of equal chromosome: ``[(start, stop, chrom), ...]``."""
    breaks = np.flatnonzero(chrom[1:] != chrom[:-1]) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(chrom)]])
    return [(int(a), int(b), str(chrom[a])) for a, b in zip(starts, stops)]


def _ols_from_products(products: np.ndarray, ssc: np.ndarray, polymorphic: np.ndarray,
                       yy: np.ndarray, df: int) -> tuple[np.ndarray, np.ndarray]:
    """β and SE ``(m, p)`` from ``products (m, p + c) = G_c·[Y_r, Q_cov]`` (see module docstring)."""
    p = yy.shape[0]
    gy = products[:, :p]
    gq = products[:, p:]
    gg = ssc - np.einsum("ij,ij->i", gq, gq)
    # A genotype (almost) in the span of the covariates has no residual variation left: NA.
    usable = polymorphic & (gg > 1e-9 * ssc)
    gg = np.where(usable, gg, np.nan)[:, None]
    beta = gy / gg
    rss = np.maximum(yy[None, :] - gy * beta, 0.0)
    se = np.sqrt(rss / df / gg)
    return beta, se


# ---------------------------------------------------------------------------------------------
# outputs


def sumstats_table(result: GwasResult, j: int) -> pl.DataFrame:
    """The summary statistics of phenotype ``j``: SUMSTATS_COLUMNS, NA where untestable."""
    beta, se = result.beta[:, j], result.se[:, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        chisq = (beta / se) ** 2
    return result.variants.hstack([
        pl.Series("BETA", beta, nan_to_null=True),
        pl.Series("SE", se, nan_to_null=True),
        pl.Series("CHISQ", chisq, nan_to_null=True),
        pl.Series("LOG10P", result.log10p[:, j], nan_to_null=True),
    ])


def combined_table(result: GwasResult) -> pl.DataFrame:
    """Bonferroni-combined significance over the k phenotypes: ``P = min(1, k·min_j p_j)``.

    Columns: CHROM GENPOS ID ALLELE0 ALLELE1 A1FREQ N PHENO (the phenotype with the smallest p)
    LOG10P P (P underflows to 0 where LOG10P > ~308; LOG10P does not).
    """
    if "combined" not in result.derived:
        result.derived["combined"] = _combined_table(result)
    return result.derived["combined"]


def _combined_table(result: GwasResult) -> pl.DataFrame:
    k = len(result.pheno_names)
    lp = result.log10p
    finite = np.isfinite(lp).any(axis=1)
    best = np.where(finite, np.argmax(np.where(np.isfinite(lp), lp, -np.inf), axis=1), 0)
    top = np.where(finite, lp[np.arange(len(lp)), best], np.nan)
    combined = np.maximum(top - np.log10(k), 0.0)
    names = np.array(result.pheno_names, dtype=object)[best]
    return result.variants.with_columns(
        pl.Series("PHENO", np.where(finite, names, None), dtype=pl.Utf8),
        pl.Series("LOG10P", combined).fill_nan(None),
        pl.Series("P", 10.0 ** -combined).fill_nan(None),
    )


def summary_table(result: GwasResult) -> pl.DataFrame:
    """Per phenotype: people, variants tested (non-NA), genome-wide significant hits, λGC."""
    if "summary" not in result.derived:
        result.derived["summary"] = _summary_table(result)
    return result.derived["summary"]


def _summary_table(result: GwasResult) -> pl.DataFrame:
    threshold = -np.log10(GENOME_WIDE)
    combined = combined_table(result)["LOG10P"].to_numpy()
    rows = []
    for j, name in enumerate(result.pheno_names):
        lp = result.log10p[:, j]
        rows.append((name, result.n_samples, int(np.isfinite(lp).sum()), int((lp >= threshold).sum()),
                     lambda_gc(lp)))
    rows.append(("combined", result.n_samples, int(np.isfinite(combined).sum()),
                 int((np.nan_to_num(combined) >= threshold).sum()), float("nan")))
    return pl.DataFrame(rows, schema=["PHENO", "N_SAMPLES", "N_TESTED", "N_SIG_5E8", "LAMBDA_GC"],
                        orient="row").with_columns(pl.col("LAMBDA_GC").fill_nan(None))


PER_PHENO_FORMATS = ("parquet", "tsv.gz")
# Statistics written to text as float32: ~7 significant digits (regenie and plink2 print 6),
# half the text to format and compress; the parquet files keep float64. P (combined table) stays
# float64 in text too: it would underflow float32 below 1e-45.
TEXT_FLOAT32_COLUMNS = ("BETA", "SE", "CHISQ", "LOG10P")


def output_paths(out: str | Path, pheno_names: Sequence[str], per_pheno_dir: str | Path | None = None,
                 formats: Sequence[str] = PER_PHENO_FORMATS) -> dict[str, Path]:
    """Every file ``write_gwas_outputs`` writes, keyed by a short name.

    Per phenotype ``OUT.<pheno>.<format>`` for each of ``formats`` (parquet, tsv.gz), or
    ``DIR/<pheno>.<format>`` with ``per_pheno_dir``; then ``OUT.combined.parquet/.tsv.gz`` and
    ``OUT.summary.tsv``.
    """
    unknown = sorted(set(formats) - set(PER_PHENO_FORMATS))
    if unknown or not formats:
        raise InputError(f"unknown output format(s) {', '.join(unknown) or '(none given)'}; choose "
                         f"from {', '.join(PER_PHENO_FORMATS)}", "--formats")
    out = str(out)
    paths = {}
    for name in pheno_names:
        stem = f"{out}.{name}" if per_pheno_dir is None else str(Path(per_pheno_dir) / name)
        if "tsv.gz" in formats:
            paths[f"{name}.tsv"] = Path(f"{stem}.tsv.gz")
        if "parquet" in formats:
            paths[f"{name}.parquet"] = Path(f"{stem}.parquet")
    paths["combined.parquet"] = Path(f"{out}.combined.parquet")
    paths["combined.tsv"] = Path(f"{out}.combined.tsv.gz")
    paths["summary"] = Path(f"{out}.summary.tsv")
    return paths


def _gzip_compress(data: bytes) -> bytes:
    """gzip at level 1 through ISA-L when installed (same format, ~4x faster than zlib), with a
    1 KiB history window: on summary statistics 15% faster and 10% smaller than ISA-L's default
    32 KiB (repeats are within neighbouring lines). Header mtime 0: identical bytes on reruns."""
    try:
        from isal import igzip_lib
    except ImportError:  # pragma: no cover - isal is in requirements, the fallback is for envs
        return gzip.compress(data, compresslevel=1, mtime=0)
    return igzip_lib.compress(data, 1, flag=igzip_lib.COMP_GZIP, hist_bits=10)


def text_columns(table: pl.DataFrame) -> pl.DataFrame:
    """The table as written to text: TEXT_FLOAT32_COLUMNS as float32 (see above)."""
    return table.with_columns([pl.col(c).cast(pl.Float32) for c in TEXT_FLOAT32_COLUMNS
                               if c in table.columns])


def variant_text(variants: pl.DataFrame) -> pl.Series:
    """Each variant's leading columns (CHROM … N) as one tab-joined string, formatted once and
    shared by every phenotype's text file (as polars' CSV writer formats them; NA for null)."""
    return variants.select(pl.concat_str([pl.col(c).cast(pl.Utf8).fill_null("NA") for c in variants.columns],
                                         separator="\t").alias("variant"))["variant"]


def tsv_bytes(table: pl.DataFrame, prefix: pl.Series | None = None) -> bytes:
    """Tab-separated text with a header, NA for null; ``prefix`` (from :func:`variant_text`)
    replaces the table's leading columns it stands for."""
    table = text_columns(table)
    if prefix is None:
        return table.write_csv(separator="\t", null_value="NA").encode()
    rest = table.columns[len(SUMSTATS_COLUMNS[:7]):]
    body = pl.DataFrame([prefix]).hstack(table.select(rest)).write_csv(
        separator="\t", null_value="NA", include_header=False, quote_style="never")
    return ("\t".join(table.columns) + "\n" + body).encode()


def _write_tsv_gz(table: pl.DataFrame, path: Path, prefix: pl.Series | None = None) -> None:
    # Level 1: at level 6 compressing the per-phenotype files takes longer than the association.
    # mtime=0 keeps the bytes identical between runs (determinism).
    path.write_bytes(_gzip_compress(tsv_bytes(table, prefix)))


def _write_parquet(table: pl.DataFrame, path: Path) -> None:
    # zstd level 1: 20% faster to write than polars' default level, files 2% larger.
    table.write_parquet(path, compression="zstd", compression_level=1)


def write_gwas_outputs(result: GwasResult, out: str | Path, per_pheno_dir: str | Path | None = None,
                       threads: int = 2, formats: Sequence[str] = PER_PHENO_FORMATS) -> dict[str, Path]:
    """Write the per-phenotype files (OUT.<pheno>.* or DIR/<pheno>.*, in ``formats``),
    OUT.combined.parquet/.tsv.gz and OUT.summary.tsv, all or none (atomic; ``per_pheno_dir`` is
    built aside and renamed)."""
    final = output_paths(out, result.pheno_names, per_pheno_dir, formats)
    pheno_keys = [key for name in result.pheno_names for key in (f"{name}.tsv", f"{name}.parquet")
                  if key in final]
    with contextlib.ExitStack() as stack:
        folder = None if per_pheno_dir is None else stack.enter_context(atomic_directory(per_pheno_dir))
        paths = output_paths(out, result.pheno_names, folder, formats)
        shared = [k for k in paths if k not in pheno_keys]
        temps = stack.enter_context(atomic_paths([paths[k] for k in shared]))
        tmp = dict(zip(shared, temps))
        if folder is not None:
            tmp |= {k: paths[k] for k in pheno_keys}
        else:
            tmp |= dict(zip(pheno_keys, stack.enter_context(atomic_paths([paths[k] for k in pheno_keys]))))
        prefix = variant_text(result.variants) if "tsv.gz" in formats else None

        def write_one(j: int) -> None:
            name = result.pheno_names[j]
            table = sumstats_table(result, j)
            if f"{name}.parquet" in tmp:
                _write_parquet(table, tmp[f"{name}.parquet"])
            if f"{name}.tsv" in tmp:
                _write_tsv_gz(table, tmp[f"{name}.tsv"], prefix)

        # Formatting and compression release the GIL: threads keep every core busy.
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            list(pool.map(write_one, range(len(result.pheno_names))))
        combined = combined_table(result)
        _write_parquet(combined, tmp["combined.parquet"])
        _write_tsv_gz(combined, tmp["combined.tsv"])
        summary_table(result).write_csv(tmp["summary"], separator="\t", null_value="NA")
    return final


# ---------------------------------------------------------------------------------------------
# scatter / gather: one part per chromosome (or variant range), gathered into the outputs above

PART_METADATA_KEY = "contig.gwas.part"


def write_gwas_part(result: GwasResult, path: str | Path) -> None:
    """One parquet holding a partial scan: the variant columns, ``BETA:<pheno>``, ``SE:<pheno>``,
    ``LOG10P:<pheno>`` per phenotype, and (in the file metadata) phenotypes, people, df, counts."""
    columns = {}
    for j, name in enumerate(result.pheno_names):
        columns[f"BETA:{name}"] = result.beta[:, j]
        columns[f"SE:{name}"] = result.se[:, j]
        columns[f"LOG10P:{name}"] = result.log10p[:, j]
    table = pl.concat([result.variants, pl.DataFrame(columns, schema={c: pl.Float64 for c in columns})],
                      how="horizontal")
    meta = {"pheno_names": result.pheno_names, "n_samples": result.n_samples, "df": result.df,
            "counts": result.counts}
    with atomic_path(path) as tmp:
        table.write_parquet(tmp, metadata={PART_METADATA_KEY: json.dumps(meta)})


# Counts that add up over parts (variants); the others describe the people and are shared.
_ADDITIVE_COUNTS = ("variants_tested", "variants_na", "variants_below_maf")


def read_gwas_parts(paths: Sequence[str | Path]) -> GwasResult:
    """Concatenate parts written by :func:`write_gwas_part` (in the order given) into one result.

    Every part must come from the same phenotypes, people and covariates.
    """
    if not paths:
        raise InputError("no parts to gather", "--parts")
    tables, metas = [], []
    for path in paths:
        if not Path(path).exists():
            raise InputError("file not found", path)
        try:
            meta = json.loads(pl.read_parquet_metadata(path)[PART_METADATA_KEY])
            table = pl.read_parquet(path)
        except Exception as error:  # noqa: BLE001 - any unreadable part is a bad input
            raise InputError(f"not a part written by `contig gwas --part-out` ({error})", path) from None
        meta0 = metas[0] if metas else meta
        if (meta["pheno_names"], meta["n_samples"], meta["df"]) != (
                meta0["pheno_names"], meta0["n_samples"], meta0["df"]):
            raise InputError(f"part disagrees with {paths[0]} on phenotypes, people or covariates",
                             path)
        tables.append(table)
        metas.append(meta)
    table = pl.concat(tables, how="vertical")
    meta0 = metas[0]
    names = meta0["pheno_names"]
    counts = dict(meta0["counts"])
    for key in _ADDITIVE_COUNTS:
        values = [meta["counts"].get(key) for meta in metas]
        if all(v is not None for v in values):
            counts[key] = int(sum(values))
    counts.pop("variants_other_chrom", None)

    def matrix(prefix: str) -> np.ndarray:
        return np.column_stack([table[f"{prefix}:{n}"].to_numpy() for n in names]) if len(table) else \
            np.empty((0, len(names)))

    variants = table.select(SUMSTATS_COLUMNS[:7])
    return GwasResult(variants, list(names), matrix("BETA"), matrix("SE"), matrix("LOG10P"),
                      int(meta0["n_samples"]), int(meta0["df"]), counts)


def read_sumstats(path: str | Path) -> pl.DataFrame:
    """Read summary statistics (parquet, .tsv or .tsv.gz) with at least CHROM GENPOS ID and LOG10P
    (or P); returns them with a float LOG10P column."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    if path.suffix == ".parquet":
        try:
            table = pl.read_parquet(path)
        except Exception as error:
            raise InputError(f"cannot read as parquet ({str(error).splitlines()[0]})", path) from None
    else:
        try:
            table = pl.read_csv(path, separator="\t", null_values=["NA", ""], infer_schema_length=10000)
        except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as error:
            raise InputError(f"cannot parse as a tab-separated table ({str(error).splitlines()[0]})",
                             path) from None
    need = ["CHROM", "GENPOS", "ID"]
    absent = [c for c in need if c not in table.columns]
    if absent or ("LOG10P" not in table.columns and "P" not in table.columns):
        raise InputError(f"summary statistics need columns CHROM GENPOS ID and LOG10P or P; found "
                         f"{', '.join(table.columns)}", path)
    if "LOG10P" not in table.columns:
        p = table["P"].cast(pl.Float64, strict=False)
        table = table.with_columns((-p.log10()).alias("LOG10P"))
    return table.with_columns(pl.col("CHROM").cast(pl.Utf8), pl.col("GENPOS").cast(pl.Int64),
                              pl.col("ID").cast(pl.Utf8), pl.col("LOG10P").cast(pl.Float64))
