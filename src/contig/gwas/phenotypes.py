"""From image embeddings to the phenotype matrix tested by GWAS, and the GWAS covariate files.

Phenotypes (``make_phenotypes``): all embedding dimensions, or the top-k principal components of
the embeddings (PCA on the people kept, embedding columns centred, not scaled), each regressed on
the covariates plus an intercept and, by default, rank-inverse-normal transformed with Blom's
offset: ``z = Φ⁻¹((rank − 3/8) / (n + 1/4))``, ties sharing their average rank.

Eye: the embeddings may carry a text column ``EYE`` (left, right or mean: which eye's image gave
the person's embedding) right after ``IID``. Where the people kept have more than one value, the
eye enters as a covariate: indicators ``EYE_<LEVEL>`` for every level present but the first in
the order left, right, mean (left and right: ``EYE_RIGHT``) adjust the phenotypes and are added
to the per-analysis covariate file the association uses (``write_phenotypes``). With PCs, the
embeddings are first centred within each eye, so that no PC is spent on the difference between
left and right photographs.

Covariates (``build_covariates``): the user's covariate sheet (quantitative columns as numbers,
categorical ones one-hot coded with the first level, in sorted order, dropped) joined with the
genetic principal components of a plink2-layout ``.eigenvec`` file (``#FID IID PC1 ...``).

Tables are read with :func:`contig.core.tables.read_numeric_table`: a header line, ``IID`` first
(a leading ``FID`` or ``#FID`` column is ignored), then numeric columns; empty cells and ``NA``
are missing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_paths
from contig.core.errors import InputError
from contig.core.tables import NumericTable, read_numeric_table, read_tsv, special_code_warnings

log = logging.getLogger("contig.gwas.phenotypes")

BLOM_OFFSET = 3.0 / 8.0
EYE_COLUMN = "EYE"
EYE_LEVELS = ("left", "right", "mean")


@dataclass(frozen=True)
class PhenotypeSettings:
    """Settings of ``make_phenotypes`` (and the defaults of ``contig phenotypes``)."""

    n_pcs: int | None = 10  # top-k embedding PCs tested; None = every embedding dimension
    rint: bool = True  # rank-inverse-normal transform the adjusted phenotypes

    def validate(self) -> None:
        if self.n_pcs is not None and self.n_pcs < 1:
            raise InputError(f"must be at least 1, got {self.n_pcs}", "--n-pcs")


PHENOTYPE_DEFAULTS = PhenotypeSettings()


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
    for warning in special_code_warnings(sheet, [*quantitative, *categorical], covariates,
                                         "covariate sheet"):
        log.warning(warning)
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
    # Imported here: scipy takes ~0.6 s to import, which `contig covariates` and the embedding
    # reader (used by `contig evaluate`) do not need.
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


@dataclass
class Embeddings:
    """An embeddings table: ``values (n, d)`` float64 by person, and the eye each came from."""

    iid: np.ndarray  # (n,) str
    values: np.ndarray  # (n, d)
    dims: list[str]
    eye: np.ndarray | None  # (n,) str in EYE_LEVELS; None without an EYE column


def _read_eye(table: pl.DataFrame, path: Path) -> np.ndarray:
    """The EYE column as ``(n,)`` str, every value one of EYE_LEVELS."""
    eye = table[EYE_COLUMN]
    if eye.dtype != pl.Utf8:
        raise InputError(f"EYE column is {eye.dtype}, not text ({', '.join(EYE_LEVELS)})", path,
                         None, EYE_COLUMN)
    bad = eye.is_null() | ~eye.is_in(list(EYE_LEVELS))
    if bad.any():
        row = int(bad.arg_true()[0])
        raise InputError(f"value {eye[row]!r} is not one of {', '.join(EYE_LEVELS)}", path, row + 2,
                         EYE_COLUMN)
    return eye.to_numpy().astype(str)


def load_embeddings(path: str | Path) -> Embeddings:
    """Embeddings parquet: ``IID`` (str), an optional ``EYE`` (str), then numeric columns."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    try:
        table = pl.read_parquet(path)
    except Exception as error:  # polars raises several types for a non-parquet file
        raise InputError(f"cannot read as parquet ({str(error).splitlines()[0]})", path) from None
    if not table.columns or table.columns[0] != "IID":
        raise InputError("the first column must be IID", path)
    has_eye = table.width > 1 and table.columns[1] == EYE_COLUMN
    dims = table.columns[2:] if has_eye else table.columns[1:]
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
    return Embeddings(table["IID"].cast(pl.Utf8).to_numpy().astype(str), values, list(dims),
                      _read_eye(table, path) if has_eye else None)


def read_embeddings(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(iid (n,), values (n, d), dimension names) of an embeddings parquet (any EYE column aside)."""
    embeddings = load_embeddings(path)
    return embeddings.iid, embeddings.values, embeddings.dims


def eye_indicators(eye: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Indicators ``(n, L − 1)`` of the L eye levels present in ``eye (n,)``, the first present in
    EYE_LEVELS order being the reference; named ``EYE_<LEVEL>`` (``(n, 0)`` for a single level)."""
    present = [level for level in EYE_LEVELS if (eye == level).any()]
    matrix = np.column_stack([(eye == level) for level in present[1:]]).astype(np.float64) \
        if len(present) > 1 else np.empty((len(eye), 0))
    return matrix, [f"{EYE_COLUMN}_{level.upper()}" for level in present[1:]]


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
    covar_path: Path | None = None  # the covariate file the phenotypes were adjusted for
    eye_counts: dict[str, int] = field(default_factory=dict)  # people kept per EYE value
    eye_covariates: dict[str, np.ndarray] = field(default_factory=dict)  # EYE_<LEVEL> -> (n,) 0/1


def _people_with_covariates(embeddings: Embeddings, cov: NumericTable) -> tuple[np.ndarray, np.ndarray, dict]:
    """Rows of ``embeddings`` kept (in the covariate file, no covariate missing), their covariates
    ``(n_kept, c)`` and the counts of who was dropped."""
    position = {p: i for i, p in enumerate(cov.iid)}
    in_cov = np.flatnonzero([p in position for p in embeddings.iid])
    c = cov.values[np.array([position[p] for p in embeddings.iid[in_cov]], dtype=np.int64)]
    complete = ~np.isnan(c).any(axis=1)
    counts = {"embeddings": len(embeddings.iid), "not_in_covariates": len(embeddings.iid) - len(in_cov),
              "missing_covariate": int((~complete).sum()), "kept": int(complete.sum())}
    return in_cov[complete], c[complete], counts


def _check_covariates(c: np.ndarray, cov: NumericTable) -> None:
    """Enough people for ``c (n, k)`` and no covariate constant among them."""
    n = c.shape[0]
    if n < c.shape[1] + 3:
        raise InputError(f"only {n} people have embeddings and all covariates", cov.path)
    for j, name in enumerate(cov.columns):
        if np.ptp(c[:, j]) == 0:
            raise InputError(f"covariate is constant among the {n} people kept", cov.path, None, name)


def make_phenotypes(embeddings: str | Path, covar: str | Path, n_pcs: int | None = PHENOTYPE_DEFAULTS.n_pcs,
                    covar_cols: Sequence[str] | None = None,
                    rint: bool = PHENOTYPE_DEFAULTS.rint) -> PhenotypeResult:
    """Phenotypes from embeddings: PCs (``n_pcs``) or all dims (``n_pcs=None``), adjusted for the
    covariates (and the eye where mixed) and (``rint``) rank-inverse-normal transformed. People
    missing any covariate are dropped."""
    PhenotypeSettings(n_pcs, rint).validate()
    emb = load_embeddings(embeddings)
    cov = read_numeric_table(covar, covar_cols, what="covariate file")
    kept, c, counts = _people_with_covariates(emb, cov)
    _check_covariates(c, cov)
    iid, values = emb.iid[kept], emb.values[kept]
    eye_counts, eye_matrix, eye_names = {}, np.empty((len(kept), 0)), []
    if emb.eye is not None:
        eye = emb.eye[kept]
        eye_counts = {level: int((eye == level).sum()) for level in EYE_LEVELS if (eye == level).any()}
        eye_matrix, eye_names = eye_indicators(eye)
    if n_pcs is not None:
        if n_pcs > min(values.shape):
            raise InputError(f"--n-pcs {n_pcs} must be between 1 and min(people, dims) = "
                             f"{min(values.shape)}", embeddings)
        # centred within eye: a left/right offset must not become a PC of its own
        pca = embedding_pca(residualize(values, eye_matrix) if eye_names else values, n_pcs)
        raw, names = pca.scores, [f"PC{i + 1}" for i in range(n_pcs)]
    else:
        pca, raw, names = None, values, emb.dims
    adjusted = residualize(raw, np.column_stack([c, eye_matrix]))
    if rint:
        adjusted = rank_inverse_normal(adjusted)
    return PhenotypeResult(iid, adjusted, names, pca, emb.dims, counts, embedding_spectrum(values),
                           Path(covar), eye_counts, {n: eye_matrix[:, j] for j, n in enumerate(eye_names)})


def embedding_spectrum(embeddings: np.ndarray) -> np.ndarray:
    """Share of the total variance of every principal component of ``embeddings (n, d)``."""
    singular = np.linalg.svd(embeddings - embeddings.mean(axis=0), compute_uv=False)
    variance = singular**2
    return variance / max(variance.sum(), 1e-300)


# ---------------------------------------------------------------------------------------------
# outputs


def phenotype_output_paths(out: str | Path, with_pca: bool) -> dict[str, Path]:
    """OUT.pheno.tsv, OUT.covar.tsv and, with PCs, OUT.pca_loadings.tsv and OUT.pca_variance.tsv."""
    out = str(out)
    paths = {"pheno": Path(out + ".pheno.tsv"), "covar": Path(out + ".covar.tsv")}
    if with_pca:
        paths["loadings"] = Path(out + ".pca_loadings.tsv")
        paths["variance"] = Path(out + ".pca_variance.tsv")
    return paths


def analysis_covariates(result: PhenotypeResult) -> pl.DataFrame | None:
    """The covariate file of the association: the adjusting covariate file's rows and columns
    (as text) plus the EYE_<LEVEL> indicators (0/1 for the people kept, NA for the others); None
    when the eye is not a covariate (the file is then copied unchanged)."""
    if not result.eye_covariates:
        return None
    sheet = read_tsv(result.covar_path)
    clash = [name for name in result.eye_covariates if name in sheet.columns]
    if clash:
        raise InputError(f"column(s) {', '.join(clash)} already present; the eye indicator(s) "
                         "cannot be added", result.covar_path)
    eye = pl.DataFrame({"IID": result.iid.tolist(),
                        **{name: values.astype(np.int64) for name, values in result.eye_covariates.items()}})
    return sheet.join(eye, on="IID", how="left", maintain_order="left")


def write_phenotypes(result: PhenotypeResult, out: str | Path) -> dict[str, Path]:
    """Write OUT.pheno.tsv, OUT.covar.tsv (:func:`analysis_covariates`) and, with PCs,
    OUT.pca_loadings.tsv (dim x PC) and OUT.pca_variance.tsv, all or none."""
    paths = phenotype_output_paths(out, result.pca is not None)
    covariates = analysis_covariates(result)
    with atomic_paths(list(paths.values())) as temporary:
        tmp = dict(zip(paths, temporary))
        pl.DataFrame({"IID": result.iid, **{n: result.values[:, j] for j, n in enumerate(result.names)}}
                     ).write_csv(tmp["pheno"], separator="\t", null_value="NA")
        if covariates is None:
            tmp["covar"].write_bytes(result.covar_path.read_bytes())
        else:
            covariates.write_csv(tmp["covar"], separator="\t", null_value="NA")
        if result.pca is not None:
            loadings = {n: result.pca.loadings[:, j] for j, n in enumerate(result.names)}
            pl.DataFrame({"DIM": result.dims, **loadings}).write_csv(tmp["loadings"], separator="\t",
                                                                     null_value="NA")
            pl.DataFrame({"PC": result.names, "VARIANCE": result.pca.variance,
                          "EXPLAINED_RATIO": result.pca.explained_ratio}
                         ).write_csv(tmp["variance"], separator="\t", null_value="NA")
    return paths
