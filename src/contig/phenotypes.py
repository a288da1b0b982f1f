"""From image embeddings to the phenotype matrix tested by GWAS, and the GWAS covariate file.

Phenotypes (``make_phenotypes``): all embedding dimensions, or the top-k principal components of
the embeddings (PCA on the people kept, embedding columns centred, not scaled), each regressed on
the covariates plus an intercept and, by default, rank-inverse-normal transformed with Blom's
offset: ``z = Φ⁻¹((rank − 3/8) / (n + 1/4))``, ties sharing their average rank.

Covariates (``build_covariates``): the user's covariate sheet (quantitative columns as numbers,
categorical ones one-hot coded with the first level, in sorted order, dropped) joined with the
genetic principal components of a plink2-layout ``.eigenvec`` file (``#FID IID PC1 ...``).

Tables are read with :func:`read_numeric_table`: a header line, ``IID`` first (a leading ``FID``
or ``#FID`` column is ignored), then numeric columns; empty cells and ``NA`` are missing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from contig.errors import InputError
from contig.tables import read_tsv, write_tsv

log = logging.getLogger("contig.phenotypes")

BLOM_OFFSET = 3.0 / 8.0


@dataclass
class NumericTable:
    """A table of numbers indexed by person: ``values`` is ``(n_people, n_columns)``, NaN = missing."""

    path: Path
    iid: np.ndarray  # (n_people,) str
    values: np.ndarray  # (n_people, n_columns) float64
    columns: list[str]


def read_numeric_table(path: str | Path, columns: Sequence[str] | None = None,
                       what: str = "table") -> NumericTable:
    """Read ``IID`` + numeric columns (all, or ``columns``); text in a numeric cell is an InputError."""
    path = Path(path)
    table = read_tsv(path)
    names = list(table.columns)
    if names and names[0] in ("FID", "#FID"):
        names = names[1:]
    if not names or names[0] != "IID":
        raise InputError(f"the first column of a {what} must be IID (after an optional FID); "
                         f"found {', '.join(table.columns[:3])}", path)
    available = names[1:]
    if columns is None:
        columns = available
    unknown = [c for c in columns if c not in available]
    if unknown:
        raise InputError(f"column(s) {', '.join(unknown)} not found; the {what} has "
                         f"{', '.join(available) or 'no data columns'}", path)
    if not columns:
        raise InputError(f"the {what} has no data columns besides IID", path)
    duplicated = table["IID"].is_duplicated()
    if duplicated.any():
        row = int(duplicated.arg_true()[1]) + 2
        raise InputError(f"duplicate IID {table['IID'][row - 2]!r}", path, row, "IID")
    missing_iid = table["IID"].is_null()
    if missing_iid.any():
        raise InputError("empty IID", path, int(missing_iid.arg_true()[0]) + 2, "IID")
    values = np.empty((table.height, len(columns)))
    for j, column in enumerate(columns):
        cast = table[column].cast(pl.Float64, strict=False)
        bad = cast.is_null() & table[column].is_not_null()
        if bad.any():
            row = int(bad.arg_true()[0])
            raise InputError(f"value {table[column][row]!r} is not a number", path, row + 2, column)
        values[:, j] = cast.fill_null(np.nan).to_numpy()
        infinite = np.isinf(values[:, j])
        if infinite.any():
            raise InputError("infinite value", path, int(np.flatnonzero(infinite)[0]) + 2, column)
    return NumericTable(path, table["IID"].to_numpy().astype(str), values, list(columns))


# ---------------------------------------------------------------------------------------------
# covariates for the association model


def one_hot(values: pl.Series) -> tuple[np.ndarray, list[str]]:
    """Indicator columns ``(n, n_levels - 1)`` for a categorical column, first sorted level dropped.

    Column names are ``<column>_<level>``. ``values`` must not contain nulls.
    """
    levels = sorted(values.unique().to_list(), key=str)
    matrix = np.column_stack([(values == level).to_numpy() for level in levels[1:]]) \
        if len(levels) > 1 else np.empty((values.len(), 0))
    return matrix.astype(np.float64), [f"{values.name}_{level}" for level in levels[1:]]


def read_eigenvec(path: str | Path) -> NumericTable:
    """A plink2 ``.eigenvec`` (``#FID IID PC1 ...`` or ``IID PC1 ...``), tab or space separated."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    lines = path.read_text().splitlines()
    if not lines:
        raise InputError("empty file", path)
    header = lines[0].split()
    if header[:1] == ["#FID"] or header[:1] == ["FID"]:
        header, skip = header[1:], 1
    elif header[:1] in (["#IID"], ["IID"]):
        header, skip = ["IID"] + header[1:], 0
    else:
        raise InputError(f"expected a header #FID IID PC1 ... or #IID PC1 ...; found {lines[0][:60]!r}",
                         path, 1)
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if len(fields) != len(header) + skip:
            raise InputError(f"expected {len(header) + skip} fields, found {len(fields)}", path, number)
        rows.append(fields[skip:])
    if not rows:
        raise InputError("no samples", path)
    iid = np.array([r[0] for r in rows], dtype=str)
    values = np.empty((len(rows), len(header) - 1))
    for j, name in enumerate(header[1:]):
        for i, r in enumerate(rows):
            try:
                values[i, j] = float(r[j + 1])
            except ValueError:
                raise InputError(f"value {r[j + 1]!r} is not a number", path, i + 2, name) from None
    return NumericTable(path, iid, values, header[1:])


def build_covariates(covariates: str | Path, quantitative: Sequence[str], categorical: Sequence[str],
                     eigenvec: str | Path | None = None, n_pcs: int | None = None) -> pl.DataFrame:
    """The GWAS covariate table: ``IID`` + quantitative columns, one-hot categoricals, genetic PCs.

    People are those of the covariate sheet who are also in the eigenvec file (others are logged).
    A missing or non-numeric quantitative value, a missing categorical value or a column that is
    constant among the people kept raises InputError naming file, row and column.
    """
    covariates = Path(covariates)
    sheet = read_tsv(covariates, required=["IID", *quantitative, *categorical])
    duplicated = sheet["IID"].is_duplicated()
    if duplicated.any():
        row = int(duplicated.arg_true()[1]) + 2
        raise InputError(f"duplicate IID {sheet['IID'][row - 2]!r}", covariates, row, "IID")
    columns: dict[str, np.ndarray] = {}
    origin: dict[str, tuple[Path, str]] = {}  # output column -> (file, column) it came from
    for name in quantitative:
        cast = sheet[name].cast(pl.Float64, strict=False)
        bad = cast.is_null() | cast.is_nan()
        if bad.any():
            row = int(bad.arg_true()[0])
            value = sheet[name][row]
            message = "missing value" if value is None else f"value {value!r} is not a number"
            raise InputError(message, covariates, row + 2, name)
        columns[name] = cast.to_numpy()
        origin[name] = (covariates, name)
    for name in categorical:
        if sheet[name].is_null().any():
            raise InputError("missing value", covariates, int(sheet[name].is_null().arg_true()[0]) + 2, name)
        matrix, names = one_hot(sheet[name])
        if not names:
            raise InputError("categorical covariate has a single level", covariates, None, name)
        columns.update({n: matrix[:, j] for j, n in enumerate(names)})
        origin.update({n: (covariates, name) for n in names})
    table = pl.DataFrame({"IID": sheet["IID"], **columns})
    if eigenvec is not None:
        pcs = read_eigenvec(eigenvec)
        if n_pcs is not None and n_pcs > len(pcs.columns):
            raise InputError(f"asked for {n_pcs} PCs, the file has {len(pcs.columns)}", eigenvec)
        keep = pcs.columns if n_pcs is None else pcs.columns[:n_pcs]
        clash = [c for c in keep if c in table.columns]
        if clash:
            raise InputError(f"column(s) {', '.join(clash)} are both covariates and PCs", covariates)
        pc_table = pl.DataFrame({"IID": pcs.iid, **{c: pcs.values[:, j] for j, c in enumerate(keep)}})
        origin.update({c: (Path(eigenvec), c) for c in keep})
        joined = table.join(pc_table, on="IID", how="inner", maintain_order="left")
        log.info("covariates: %d people in %s, %d in %s, %d in both (%d without PCs dropped)",
                 table.height, covariates, pc_table.height, eigenvec, joined.height,
                 table.height - joined.height)
        table = joined
    if table.height == 0:
        raise InputError("no person is in both the covariate sheet and the eigenvec file", covariates)
    for name in table.columns[1:]:
        if table[name].n_unique() < 2:
            path, column = origin[name]
            level = "" if name == column else f" (indicator {name})"
            raise InputError(f"covariate is constant{level} among the {table.height} people kept",
                             path, None, column)
    return table


# ---------------------------------------------------------------------------------------------
# phenotypes from embeddings


def rank_inverse_normal(values: np.ndarray, offset: float = BLOM_OFFSET) -> np.ndarray:
    """Rank-inverse-normal transform of each column of ``(n, k)`` values (no NaN): Blom by default."""
    # Imported here: scipy takes ~0.6 s to import, and `contig gwas` imports this module for its
    # table reader only.
    from scipy.special import ndtri
    from scipy.stats import rankdata

    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    ranks = rankdata(values, axis=0, method="average")
    return ndtri((ranks - offset) / (n - 2 * offset + 1))


def residualize(values: np.ndarray, covariates: np.ndarray) -> np.ndarray:
    """Residuals of each column of ``values (n, k)`` regressed on ``[1, covariates (n, c)]``."""
    design = np.column_stack([np.ones(values.shape[0]), covariates])
    q, _ = np.linalg.qr(design)
    return values - q @ (q.T @ values)


@dataclass
class EmbeddingPca:
    """PCA of the embeddings: ``scores (n, k)``, ``loadings (d, k)`` (unit columns), variance shares."""

    scores: np.ndarray
    loadings: np.ndarray
    variance: np.ndarray  # (k,) variance of each PC's scores
    explained_ratio: np.ndarray  # (k,) share of the total variance


def embedding_pca(embeddings: np.ndarray, n_components: int) -> EmbeddingPca:
    """Top ``n_components`` PCs of centred ``embeddings (n, d)`` by SVD; each loading's largest
    absolute entry is made positive so the signs are deterministic."""
    centred = embeddings - embeddings.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = n_components
    loadings = vt[:k].T
    signs = np.sign(loadings[np.abs(loadings).argmax(axis=0), np.arange(k)])
    signs[signs == 0] = 1
    loadings = loadings * signs
    scores = centred @ loadings
    variance = s**2 / max(embeddings.shape[0] - 1, 1)
    return EmbeddingPca(scores, loadings, variance[:k], variance[:k] / variance.sum())


def read_embeddings(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Embeddings parquet: ``IID`` (str) then float columns. Returns (iid, values (n, d), names)."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    try:
        table = pl.read_parquet(path)
    except Exception as error:  # polars raises several types for a non-parquet file
        raise InputError(f"cannot read as parquet ({str(error).splitlines()[0]})", path) from None
    if not table.columns or table.columns[0] != "IID":
        raise InputError("the first column must be IID", path)
    dims = table.columns[1:]
    if not dims:
        raise InputError("no embedding columns", path)
    for name in dims:
        if not table[name].dtype.is_numeric():
            raise InputError(f"embedding column is {table[name].dtype}, not numeric", path, None, name)
    values = table.select(pl.col(dims).cast(pl.Float64)).to_numpy()
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError("missing or infinite embedding value", path, int(row) + 2, dims[col])
    duplicated = table["IID"].is_duplicated()
    if duplicated.any():
        raise InputError(f"duplicate IID {table['IID'][int(duplicated.arg_true()[1])]!r}", path)
    return table["IID"].cast(pl.Utf8).to_numpy().astype(str), values, list(dims)


@dataclass
class PhenotypeResult:
    """The tested phenotypes ``values (n, k)`` with IIDs, plus the PCA (None with all dimensions)."""

    iid: np.ndarray
    values: np.ndarray
    names: list[str]
    pca: EmbeddingPca | None
    dims: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    spectrum: np.ndarray | None = None  # (min(n, d),) variance share of every embedding PC


def make_phenotypes(embeddings: str | Path, covar: str | Path, n_pcs: int | None = 10,
                    covar_cols: Sequence[str] | None = None, rint: bool = True) -> PhenotypeResult:
    """Phenotypes from embeddings: PCs (``n_pcs``) or all dims (``n_pcs=None``), covariate-adjusted
    and (``rint``) rank-inverse-normal transformed. People missing any covariate are dropped."""
    iid, values, dims = read_embeddings(embeddings)
    cov = read_numeric_table(covar, covar_cols, what="covariate file")
    position = {p: i for i, p in enumerate(cov.iid)}
    in_cov = np.array([p in position for p in iid])
    rows = np.array([position[p] for p in iid[in_cov]], dtype=np.int64)
    c = cov.values[rows]
    complete = ~np.isnan(c).any(axis=1)
    counts = {"embeddings": len(iid), "not_in_covariates": int((~in_cov).sum()),
              "missing_covariate": int((~complete).sum())}
    iid, values, c = iid[in_cov][complete], values[in_cov][complete], c[complete]
    counts["kept"] = len(iid)
    if len(iid) < c.shape[1] + 3:
        raise InputError(f"only {len(iid)} people have embeddings and all covariates", covar)
    for j, name in enumerate(cov.columns):
        if np.ptp(c[:, j]) == 0:
            raise InputError(f"covariate is constant among the {len(iid)} people kept", covar, None, name)
    if n_pcs is not None:
        if not 1 <= n_pcs <= min(values.shape):
            raise InputError(f"--n-pcs {n_pcs} must be between 1 and min(people, dims) = "
                             f"{min(values.shape)}", embeddings)
        pca = embedding_pca(values, n_pcs)
        raw, names = pca.scores, [f"PC{i + 1}" for i in range(n_pcs)]
    else:
        pca, raw, names = None, values, dims
    adjusted = residualize(raw, c)
    if rint:
        adjusted = rank_inverse_normal(adjusted)
    return PhenotypeResult(iid, adjusted, names, pca, dims, counts, embedding_spectrum(values))


def embedding_spectrum(embeddings: np.ndarray) -> np.ndarray:
    """Share of the total variance of every principal component of ``embeddings (n, d)``."""
    singular = np.linalg.svd(embeddings - embeddings.mean(axis=0), compute_uv=False)
    variance = singular**2
    return variance / max(variance.sum(), 1e-300)


def write_phenotypes(result: PhenotypeResult, out: str | Path) -> dict[str, Path]:
    """Write OUT.pheno.tsv, OUT.spectrum.png (variance share of the embedding PCs) and, with PCs,
    OUT.pca_loadings.tsv (dim x PC) and OUT.pca_variance.tsv."""
    from contig.plots import embedding_spectrum_plot

    out = str(out)
    paths = {"pheno": Path(out + ".pheno.tsv"), "spectrum": Path(out + ".spectrum.png")}
    if result.spectrum is not None:
        embedding_spectrum_plot(result.spectrum, len(result.names) if result.pca is not None else 0,
                                paths["spectrum"])
    write_tsv(pl.DataFrame({"IID": result.iid, **{n: result.values[:, j] for j, n in enumerate(result.names)}}),
              paths["pheno"])
    if result.pca is not None:
        paths["loadings"] = Path(out + ".pca_loadings.tsv")
        paths["variance"] = Path(out + ".pca_variance.tsv")
        write_tsv(pl.DataFrame({"DIM": result.dims,
                                **{n: result.pca.loadings[:, j] for j, n in enumerate(result.names)}}),
                  paths["loadings"])
        write_tsv(pl.DataFrame({"PC": result.names, "VARIANCE": result.pca.variance,
                                "EXPLAINED_RATIO": result.pca.explained_ratio}), paths["variance"])
    return paths
