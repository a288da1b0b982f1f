"""GWAS step 1, regenie-style: whole-genome ridge regression giving leave-one-chromosome-out
(LOCO) predictions of every phenotype, which ``contig gwas --loco`` subtracts before testing.

A simplified, documented version of regenie's step 1 (Mbatchou et al. 2021):

1. People: as in step 2 (phenotype ∩ covariate ∩ .fam, complete cases). Phenotypes are
   residualized on ``[1, covariates]`` and scaled to unit variance; genotypes are mean-imputed,
   standardized and residualized on the covariates too. Monomorphic variants are skipped.
2. Level 0: the variants of each chromosome are cut into blocks of ``block_size`` consecutive
   variants. In every block, ridge regressions of each phenotype on the block's variants with
   ``R`` shrinkages ``λ = b·(1 − h²)/h²`` (b = variants in the block, h² in ``h2_grid``) are
   fitted by K-fold cross-validation; each person's level-0 predictions come from the fit that
   left their fold out, giving ``n_blocks · R`` features per phenotype.
3. Level 1: per phenotype, a ridge regression on those standardized features with the shrinkage
   chosen by the same K-fold split (smallest out-of-fold squared error over ``h2_grid``,
   ``λ = F·(1 − h²)/h²`` with F features).
4. LOCO: person i's prediction for chromosome c uses the level-1 fit that left i's fold out and
   only the features of blocks on other chromosomes (regenie's LOCO without refitting).

Output (``write_loco``): ``OUT.loco.tsv.gz`` with ``IID`` then one column ``<pheno>:<chrom>`` per
phenotype and chromosome, in the units of the covariate-residualized phenotype; and
``OUT.step1.tsv`` (per phenotype: chosen level-1 h², out-of-fold R² of the whole-genome fit).
Only common variants enter (MAF >= ``min_maf`` among the people used, 1% by default as in
regenie's step 1); monomorphic and rare variants are counted and skipped.

Memory: the level-0 predictions (``p · F · n`` float32, F = n_blocks · R) stay in memory when they
take at most half of ``mem_mb``, else they go to a temporary memory-mapped file, written block
after block. Beyond that a job holds one block (``n · block_size`` doubles, a few copies), one
phenotype's standardized features (``n · F`` float32) and a few ``F × F`` Gram matrices.
"""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_paths
from contig.core.errors import InputError
from contig.genotypes.plinkio import MISSING, Genotypes
from contig.gwas.inputs import (
    LOCO_SEPARATOR,
    MISSING_PHENOTYPE,
    covariate_basis,
    load_association_data,
)

H2_GRID = (0.01, 0.25, 0.5, 0.75, 0.99)


@dataclass(frozen=True)
class Step1Settings:
    """Settings of step 1 (and the defaults of ``contig gwas-step1``)."""

    block_size: int = 500  # consecutive variants per level-0 block
    n_folds: int = 5  # cross-validation folds of both levels
    seed: int = 1  # seed of the fold assignment
    min_maf: float = 0.01  # variants below this minor allele frequency do not enter the ridge
    mem_mb: int = 4000  # level-0 predictions stay in memory up to half of this, else on disk

    def validate(self) -> None:
        """Refuse out-of-range values (InputError naming the option)."""
        if self.block_size < 1:
            raise InputError(f"must be at least 1, got {self.block_size}", "--block-size")
        if self.n_folds < 2:
            raise InputError(f"must be at least 2, got {self.n_folds}", "--folds")
        if self.seed < 0:
            raise InputError(f"must not be negative, got {self.seed}", "--seed")
        if not 0 <= self.min_maf <= 0.5:
            raise InputError(f"must be in [0, 0.5], got {self.min_maf}", "--min-maf")
        if self.mem_mb < 1:
            raise InputError(f"must be at least 1, got {self.mem_mb}", "--mem-mb")


STEP1_DEFAULTS = Step1Settings()


@dataclass
class Step1Result:
    """LOCO predictions ``loco[chrom] (n, p)`` for people ``iid`` and phenotypes ``pheno_names``."""

    iid: np.ndarray
    pheno_names: list[str]
    loco: dict[str, np.ndarray]
    level1_h2: np.ndarray  # (p,)
    cv_r2: np.ndarray  # (p,) out-of-fold R² of the whole-genome prediction
    n_blocks: int
    counts: dict[str, int] = field(default_factory=dict)


def standardized_block(genotypes: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``(n, b)`` standardized, mean-imputed genotypes residualized on the basis ``q (n, k)``;
    ``genotypes`` is int8 ``(b, n)`` of polymorphic variants."""
    g = genotypes.astype(np.float64)
    observed = genotypes != MISSING
    mean = np.where(observed, g, 0).sum(axis=1) / observed.sum(axis=1)
    g = np.where(observed, g - mean[:, None], 0.0).T
    g -= q @ (q.T @ g)
    sd = np.sqrt((g * g).mean(axis=0))
    return g / np.where(sd > 0, sd, 1.0)


def ridge_fold_predictions(x: np.ndarray, y: np.ndarray, folds: np.ndarray, lambdas: Sequence[float]) -> np.ndarray:
    """Out-of-fold ridge predictions ``(len(lambdas), n, p)`` of ``y (n, p)`` from ``x (n, b)``:
    rows of fold f are predicted by the fit on the other folds (no intercept: all centred)."""
    xtx, xty = x.T @ x, x.T @ y
    out = np.empty((len(lambdas), *y.shape))
    for f in np.unique(folds):
        rows = folds == f
        xf = x[rows]
        values, vectors = np.linalg.eigh(xtx - xf.T @ xf)
        rotated = vectors.T @ (xty - xf.T @ y[rows])  # (b, p)
        xv = xf @ vectors
        for r, lam in enumerate(lambdas):
            out[r, rows] = xv @ (rotated / (np.maximum(values, 0) + lam)[:, None])
    return out


def run_step1(bfile: str | Path | Sequence[str | Path] | Genotypes, pheno: str | Path, covar: str | Path,
              block_size: int = STEP1_DEFAULTS.block_size, n_folds: int = STEP1_DEFAULTS.n_folds,
              h2_grid: Sequence[float] = H2_GRID, seed: int = STEP1_DEFAULTS.seed,
              pheno_cols: Sequence[str] | None = None,
              covar_cols: Sequence[str] | None = None,
              missing_phenotype: float | None = MISSING_PHENOTYPE,
              min_maf: float = STEP1_DEFAULTS.min_maf, mem_mb: int = STEP1_DEFAULTS.mem_mb,
              scratch_dir: str | Path | None = None) -> Step1Result:
    """Level-0 and level-1 ridge regressions and LOCO predictions (see the module docstring).

    Level-0 predictions are kept as float32 in memory when they fit in half of ``mem_mb``, else
    in a temporary file under ``scratch_dir`` (default: the system's temporary folder)."""
    Step1Settings(block_size, n_folds, seed, min_maf, mem_mb).validate()
    genotypes = bfile if isinstance(bfile, Genotypes) else Genotypes.open(bfile)
    data = load_association_data(genotypes, pheno, covar, None, pheno_cols, covar_cols,
                                 missing_phenotype)
    n, p = data.phenotypes.shape
    if n < 2 * n_folds:
        raise InputError(f"{n} people are too few for {n_folds}-fold cross-validation", pheno)
    q = covariate_basis(data.covariates, data.covar_names, covar)
    y = data.phenotypes - q @ (q.T @ data.phenotypes)
    scale = np.sqrt((y * y).sum(axis=0) / (n - q.shape[1]))
    if np.any(scale == 0):
        raise InputError("a phenotype is constant among the people used", pheno)
    y = y / scale
    folds = np.random.default_rng(seed).permutation(n) % n_folds
    chrom = genotypes.bim["CHROM"].to_numpy().astype(str)
    chroms = list(dict.fromkeys(chrom))
    max_features = len(h2_grid) * sum(
        len(genotypes.plan_chunks(block_size, np.flatnonzero(chrom == name))) for name in chroms)
    with level0_store((p, max_features, n), mem_mb, scratch_dir) as store:
        feature_chrom, counts = fill_level0(store, genotypes, data.sample_idx, chrom, q, y, folds,
                                            block_size, h2_grid, min_maf)
        if not len(feature_chrom):
            raise InputError(f"no polymorphic variant with MAF >= {min_maf:g} among the people used",
                             genotypes.parts[0].prefix)
        loco = {name: np.empty((n, p)) for name in chroms}
        level1_h2, cv_r2 = np.empty(p), np.empty(p)
        for j in range(p):
            f = standardized_features(store[j, :len(feature_chrom)])
            level1_h2[j], cv_r2[j], by_chrom = level1_loco(f, y[:, j], folds, feature_chrom, chroms,
                                                           h2_grid)
            for c, name in enumerate(chroms):
                loco[name][:, j] = by_chrom[:, c] * scale[j]
    counts["blocks"] = len(feature_chrom) // len(h2_grid)
    return Step1Result(data.iid, data.pheno_names, loco, level1_h2, cv_r2, counts["blocks"],
                       {**data.counts, **counts})


@contextmanager
def level0_store(shape: tuple[int, int, int], mem_mb: int,
                 scratch_dir: str | Path | None) -> Iterator[np.ndarray]:
    """A float32 array ``(p, F, n)`` for the level-0 predictions: in memory when it takes at most
    half of ``mem_mb``, else memory-mapped on a temporary file removed on exit."""
    if np.prod(shape, dtype=np.float64) * 4 <= mem_mb * 2**20 / 2:
        yield np.zeros(shape, dtype=np.float32)
        return
    with tempfile.TemporaryDirectory(prefix="contig-step1-", dir=scratch_dir) as folder:
        store = np.lib.format.open_memmap(Path(folder) / "level0.npy", mode="w+", dtype=np.float32,
                                          shape=shape)
        try:
            yield store
        finally:
            del store


def common_variants(block: np.ndarray, min_maf: float) -> tuple[np.ndarray, int, int]:
    """Which rows of an int8 ``(b, n)`` block are polymorphic with MAF >= ``min_maf`` among the
    observed calls; also how many were monomorphic and how many rare (polymorphic, below)."""
    observed = block != MISSING
    g = np.where(observed, block, 0)
    poly = g.max(axis=1, where=observed, initial=0) != g.min(axis=1, where=observed, initial=2)
    freq = g.sum(axis=1, dtype=np.int64) / np.maximum(2 * observed.sum(axis=1), 1)
    common = poly & (np.minimum(freq, 1 - freq) >= min_maf)
    return common, int((~poly).sum()), int((poly & ~common).sum())


def fill_level0(store: np.ndarray, genotypes: Genotypes, sample_idx: np.ndarray, chrom: np.ndarray,
                q: np.ndarray, y: np.ndarray, folds: np.ndarray, block_size: int,
                h2_grid: Sequence[float], min_maf: float) -> tuple[np.ndarray, dict[str, int]]:
    """Write each block's out-of-fold ridge predictions into ``store (p, F, n)``, block after
    block; return the chromosome of each written feature ``(F,)`` and the variant counts."""
    counts = {"variants": len(chrom), "monomorphic": 0, "rare": 0}
    feature_chrom: list[str] = []
    for name in dict.fromkeys(chrom):
        for _, block in genotypes.iter_chunks(block_size, sample_idx, np.flatnonzero(chrom == name)):
            keep, n_mono, n_rare = common_variants(block, min_maf)
            counts["monomorphic"] += n_mono
            counts["rare"] += n_rare
            if not keep.any():
                continue
            x = standardized_block(block[keep], q)
            lambdas = [x.shape[1] * (1 - h) / h for h in h2_grid]
            start = len(feature_chrom)
            predictions = ridge_fold_predictions(x, y, folds, lambdas)  # (R, n, p)
            store[:, start:start + len(lambdas)] = predictions.transpose(2, 0, 1)
            feature_chrom.extend([name] * len(lambdas))
    return np.array(feature_chrom), counts


def standardized_features(features: np.ndarray) -> np.ndarray:
    """``(n, F)`` float32 copy of one phenotype's level-0 predictions ``(F, n)``, each feature
    centred and scaled to unit variance (moments in float64)."""
    f = np.array(features.T, dtype=np.float32, order="C")
    mean = f.mean(axis=0, dtype=np.float64)
    sd = f.std(axis=0, dtype=np.float64)
    f -= mean.astype(np.float32)
    f /= np.where(sd > 0, sd, 1.0).astype(np.float32)
    return f


def _gram(f: np.ndarray, rows: np.ndarray, y: np.ndarray, chunk: int = 4096
          ) -> tuple[np.ndarray, np.ndarray]:
    """``f[rows].T @ f[rows]`` ``(F, F)`` and ``f[rows].T @ y[rows]`` ``(F,)`` in float64, from the
    float32 ``f (n, F)`` a chunk of rows at a time."""
    idx = np.flatnonzero(rows)
    ftf = np.zeros((f.shape[1], f.shape[1]))
    fty = np.zeros(f.shape[1])
    for start in range(0, len(idx), chunk):
        part = idx[start:start + chunk]
        block = f[part].astype(np.float64)
        ftf += block.T @ block
        fty += block.T @ y[part]
    return ftf, fty


def level1_loco(f: np.ndarray, y: np.ndarray, folds: np.ndarray, feature_chrom: np.ndarray,
                chroms: Sequence[str], h2_grid: Sequence[float]) -> tuple[float, float, np.ndarray]:
    """Level-1 ridge of one phenotype ``y (n,)`` on its standardized features ``f (n, F)``: the
    chosen h², the out-of-fold R², and the LOCO predictions ``(n, len(chroms))``."""
    n_folds = int(folds.max()) + 1
    lambdas = [f.shape[1] * (1 - h) / h for h in h2_grid]
    ftf, fty = _gram(f, np.ones(len(y), dtype=bool), y)
    coefs = np.empty((n_folds, len(lambdas), f.shape[1]))
    for k in range(n_folds):
        gk, gky = _gram(f, folds == k, y)
        values, vectors = np.linalg.eigh(ftf - gk)
        rotated = vectors.T @ (fty - gky)
        for r, lam in enumerate(lambdas):
            coefs[k, r] = vectors @ (rotated / (np.maximum(values, 0) + lam))
    oof = np.empty((len(lambdas), len(y)))
    for k in range(n_folds):
        rows = folds == k
        oof[:, rows] = (f[rows].astype(np.float64) @ coefs[k].T).T
    errors = ((oof - y) ** 2).sum(axis=1)
    best = int(np.argmin(errors))
    membership = (feature_chrom[:, None] == np.asarray(chroms)[None, :]).astype(np.float64)  # (F, C)
    by_chrom = np.empty((len(y), len(chroms)))
    for k in range(n_folds):
        rows = folds == k
        per_chrom = f[rows].astype(np.float64) @ (membership * coefs[k, best][:, None])  # (n_k, C)
        by_chrom[rows] = per_chrom.sum(axis=1, keepdims=True) - per_chrom
    return h2_grid[best], 1 - errors[best] / (y ** 2).sum(), by_chrom


def write_loco(result: Step1Result, out: str | Path) -> dict[str, Path]:
    """Write OUT.loco.tsv.gz (IID + ``<pheno>:<chrom>`` columns) and OUT.step1.tsv, atomically."""
    out = str(out)
    paths = {"loco": Path(out + ".loco.tsv.gz"), "summary": Path(out + ".step1.tsv")}
    columns = {"IID": result.iid}
    for j, pheno in enumerate(result.pheno_names):
        for chrom, values in result.loco.items():
            columns[f"{pheno}{LOCO_SEPARATOR}{chrom}"] = values[:, j]
    text = pl.DataFrame(columns).write_csv(separator="\t").encode()
    with atomic_paths(list(paths.values())) as (loco_tmp, summary_tmp):
        loco_tmp.write_bytes(gzip.compress(text, compresslevel=6, mtime=0))  # mtime 0: same bytes on reruns
        pl.DataFrame({"PHENO": result.pheno_names, "LEVEL1_H2": result.level1_h2,
                      "CV_R2": result.cv_r2, "N_BLOCKS": [result.n_blocks] * len(result.pheno_names)}
                     ).write_csv(summary_tmp, separator="\t")
    return paths
