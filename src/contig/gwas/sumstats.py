"""Summary statistics of a scan: the per-phenotype tables, the combined table, their writers, the
scatter/gather parts, and the reader that clumping, plots, truth and replication use.

Per phenotype (``SUMSTATS_COLUMNS``): CHROM GENPOS ID ALLELE0 ALLELE1 A1FREQ N BETA SE CHISQ
LOG10P. Combined (one row per variant): the variant columns, then PHENO and LOG10P/P of the
min-p × k combination over the k phenotypes, and F_JOINT/LOG10P_JOINT of the joint test
(:mod:`contig.gwas.association`). The combined parquet carries the scan's phenotypes, people
and df in its metadata (``SCAN_METADATA_KEY``), which ``contig gwas-summary`` reads.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl

from contig.core.atomic import atomic_directory, atomic_path, atomic_paths
from contig.core.compression import gzip_compress
from contig.core.errors import InputError
from contig.gwas.association import SCAN_DEFAULTS, GwasResult
from contig.gwas.ssf import write_ssf
from contig.gwas.stats import wald_chisq

SUMSTATS_COLUMNS = ["CHROM", "GENPOS", "ID", "ALLELE0", "ALLELE1", "A1FREQ", "N", "BETA", "SE",
                    "CHISQ", "LOG10P"]
VARIANT_COLUMNS = SUMSTATS_COLUMNS[:7]
# Variant columns in order when the scan ran on dosages: INFO (MACH r²) as regenie places it.
DOSAGE_VARIANT_COLUMNS = [*VARIANT_COLUMNS[:6], "INFO", "N"]
DEFAULT_P_COLUMN = "LOG10P"
JOINT_P_COLUMN = "LOG10P_JOINT"
PER_PHENO_FORMATS = ("parquet", "tsv.gz")
# Every format --formats accepts: the regenie layout above, GWAS-SSF per phenotype
# (:mod:`contig.gwas.ssf`), and the wide layout (all phenotypes in one parquet, each variant's
# columns once: the part layout below, in ``<stem "all">.wide.parquet``; :mod:`contig.gwas.wide`).
OUTPUT_FORMATS = (*PER_PHENO_FORMATS, "ssf", "wide")
WIDE_STEM = "all"
# Statistics written to text as float32: ~7 significant digits (regenie and plink2 print 6),
# half the text to format and compress; the parquet files keep float64. P (combined table) stays
# float64 in text too: it would underflow float32 below 1e-45.
TEXT_FLOAT32_COLUMNS = ("BETA", "SE", "CHISQ", "LOG10P", "F_JOINT", "LOG10P_JOINT")
SCAN_METADATA_KEY = "contig.gwas.scan"
PART_METADATA_KEY = "contig.gwas.association.part"
log = logging.getLogger("contig.gwas.sumstats")


# ---------------------------------------------------------------------------------------------
# tables


def sumstats_table(result: GwasResult, j: int) -> pl.DataFrame:
    """The summary statistics of phenotype ``j``: SUMSTATS_COLUMNS, NA where untestable."""
    return phenotype_table(result.variants, result.beta[:, j], result.se[:, j], result.log10p[:, j])


def phenotype_table(variants: pl.DataFrame, beta: np.ndarray, se: np.ndarray,
                    log10p: np.ndarray) -> pl.DataFrame:
    """SUMSTATS_COLUMNS of one phenotype from its ``beta, se, log10p (n_variants,)`` (NaN = NA)."""
    return variants.hstack([
        pl.Series("BETA", beta, nan_to_null=True),
        pl.Series("SE", se, nan_to_null=True),
        pl.Series("CHISQ", wald_chisq(beta, se), nan_to_null=True),
        pl.Series("LOG10P", log10p, nan_to_null=True),
    ])


def combined_table(result: GwasResult) -> pl.DataFrame:
    """One row per variant: the variant columns, PHENO (the phenotype with the smallest p),
    LOG10P and P of the Bonferroni combination ``P = min(1, k·min_j p_j)`` (P underflows to 0
    where LOG10P > ~308; LOG10P does not), F_JOINT and LOG10P_JOINT of the joint test."""
    if "combined" not in result.derived:
        result.derived["combined"] = _combined_table(result)
    return result.derived["combined"]


def _combined_table(result: GwasResult) -> pl.DataFrame:
    top, best = largest_finite(result.log10p)
    return combined_from_top(result.variants, result.pheno_names, top, best, result.f_joint,
                             result.log10p_joint)


def largest_finite(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``values (m, k)``: the largest finite value ``(m,)`` (NaN where none is finite)
    and its first column ``(m,)`` (0 where none). A running maximum over the columns, which
    are contiguous in the scan's results (a reduction along rows would stride through them)."""
    m = values.shape[0]
    top = np.full(m, -np.inf)
    best = np.zeros(m, dtype=np.intp)
    larger, below_inf = np.empty(m, dtype=bool), np.empty(m, dtype=bool)
    for j in range(values.shape[1]):
        column = values[:, j]
        np.greater(column, top, out=larger)  # NaN: False; -inf is never larger
        np.less(column, np.inf, out=below_inf)
        larger &= below_inf
        np.copyto(top, column, where=larger)
        np.copyto(best, j, where=larger)
    top[np.isneginf(top)] = np.nan
    return top, best


def combined_from_top(variants: pl.DataFrame, pheno_names: Sequence[str], top: np.ndarray,
                      best: np.ndarray, f_joint: np.ndarray, log10p_joint: np.ndarray) -> pl.DataFrame:
    """The combined table from each variant's largest −log10 p ``top (n_variants,)`` (NaN where no
    phenotype was tested) and the index ``best`` of its phenotype."""
    combined = np.maximum(top - np.log10(len(pheno_names)), 0.0)
    # Built in polars: an object array whose first entry is None fails to convert to strings.
    names = pl.Series("PHENO", list(pheno_names), dtype=pl.Utf8).gather(best)
    names = names.scatter(np.flatnonzero(~np.isfinite(top)), None)
    return variants.with_columns(
        names,
        pl.Series("LOG10P", combined).fill_nan(None),
        pl.Series("P", 10.0 ** -combined).fill_nan(None),
        pl.Series("F_JOINT", f_joint, dtype=pl.Float64).fill_nan(None),
        pl.Series(JOINT_P_COLUMN, log10p_joint, dtype=pl.Float64).fill_nan(None),
    )


def scan_metadata(result: GwasResult) -> dict:
    """What the combined parquet records about the scan (``SCAN_METADATA_KEY``)."""
    return {"pheno_names": result.pheno_names, "n_samples": result.n_samples, "df": result.df,
            "df_joint": result.df_joint}


# ---------------------------------------------------------------------------------------------
# writers


def output_paths(out: str | Path, pheno_names: Sequence[str], per_pheno_dir: str | Path | None = None,
                 formats: Sequence[str] = PER_PHENO_FORMATS) -> dict[str, Path]:
    """Every file ``write_gwas_outputs`` writes, keyed by a short name.

    Per phenotype ``OUT.<pheno>.<format>`` for each of ``formats`` (parquet, tsv.gz, ssf as
    ``.ssf.tsv.gz`` with its ``-meta.yaml``), or ``DIR/<pheno>.<format>`` with ``per_pheno_dir``;
    the wide layout at the same place as ``all.wide.parquet``; then ``OUT.combined.parquet/.tsv.gz``.
    """
    unknown = sorted(set(formats) - set(OUTPUT_FORMATS))
    if unknown or not formats:
        raise InputError(f"unknown output format(s) {', '.join(unknown) or '(none given)'}; choose "
                         f"from {', '.join(OUTPUT_FORMATS)}", "--formats")
    out = str(out)
    paths = {}

    def stem_of(name: str) -> str:
        return f"{out}.{name}" if per_pheno_dir is None else str(Path(per_pheno_dir) / name)

    for name in pheno_names:
        stem = stem_of(name)
        if "tsv.gz" in formats:
            paths[f"{name}.tsv"] = Path(f"{stem}.tsv.gz")
        if "parquet" in formats:
            paths[f"{name}.parquet"] = Path(f"{stem}.parquet")
        if "ssf" in formats:
            paths[f"{name}.ssf"] = Path(f"{stem}.ssf.tsv.gz")
            paths[f"{name}.ssf.meta"] = Path(f"{stem}.ssf.tsv.gz-meta.yaml")
    if "wide" in formats:
        if f"{WIDE_STEM}.wide" in pheno_names:
            raise InputError(f"a phenotype named {WIDE_STEM}.wide clashes with the wide layout's file",
                             "--formats")
        paths["wide"] = Path(f"{stem_of(WIDE_STEM)}.wide.parquet")
    paths["combined.parquet"] = Path(f"{out}.combined.parquet")
    paths["combined.tsv"] = Path(f"{out}.combined.tsv.gz")
    return paths


def text_columns(table: pl.DataFrame) -> pl.DataFrame:
    """The table as written to text: TEXT_FLOAT32_COLUMNS as float32 (see above)."""
    return table.with_columns([pl.col(c).cast(pl.Float32) for c in TEXT_FLOAT32_COLUMNS
                               if c in table.columns])


def variant_text(variants: pl.DataFrame) -> pl.Series:
    """Each variant's leading columns (CHROM … N) as one tab-joined string, formatted once and
    shared by every phenotype's text file (as polars' CSV writer formats them; NA for null)."""
    return variants.select(pl.concat_str([pl.col(c).cast(pl.Utf8).fill_null("NA") for c in variants.columns],
                                         separator="\t").alias("variant"))["variant"]


def variant_columns(table: pl.DataFrame) -> list[str]:
    """The leading variant columns of a results table: VARIANT_COLUMNS, with INFO on dosages."""
    return DOSAGE_VARIANT_COLUMNS if "INFO" in table.columns else VARIANT_COLUMNS


def tsv_bytes(table: pl.DataFrame, prefix: pl.Series | None = None) -> bytes:
    """Tab-separated text with a header, NA for null; ``prefix`` (from :func:`variant_text`)
    replaces the table's leading columns it stands for."""
    table = text_columns(table)
    if prefix is None:
        return table.write_csv(separator="\t", null_value="NA").encode()
    rest = table.columns[len(variant_columns(table)):]
    body = pl.DataFrame([prefix]).hstack(table.select(rest)).write_csv(
        separator="\t", null_value="NA", include_header=False, quote_style="never")
    return ("\t".join(table.columns) + "\n" + body).encode()


def _write_tsv_gz(table: pl.DataFrame, path: Path, prefix: pl.Series | None = None) -> None:
    # Level 1: at level 6 compressing the per-phenotype files takes longer than the association.
    path.write_bytes(gzip_compress(tsv_bytes(table, prefix)))


def _write_parquet(table: pl.DataFrame, path: Path, metadata: dict[str, str] | None = None) -> None:
    # zstd level 1: 20% faster to write than polars' default level, files 2% larger.
    table.write_parquet(path, compression="zstd", compression_level=1, metadata=metadata)


def write_gwas_outputs(result: GwasResult, out: str | Path, per_pheno_dir: str | Path | None = None,
                       threads: int = SCAN_DEFAULTS.threads,
                       formats: Sequence[str] = PER_PHENO_FORMATS,
                       ssf_meta: dict | None = None) -> dict[str, Path]:
    """Write the per-phenotype files (OUT.<pheno>.* or DIR/<pheno>.*, in ``formats``) and
    OUT.combined.parquet/.tsv.gz, all or none (atomic; ``per_pheno_dir`` is built aside and
    renamed). ``ssf_meta``: keyword arguments of :func:`contig.gwas.ssf.write_ssf` beyond the
    table, paths and phenotype."""
    final = output_paths(out, result.pheno_names, per_pheno_dir, formats)
    pheno_keys = [key for key in final if not key.startswith("combined.")]
    with contextlib.ExitStack() as stack:
        folder = None if per_pheno_dir is None else stack.enter_context(atomic_directory(per_pheno_dir))
        paths = output_paths(out, result.pheno_names, folder, formats)
        shared = [k for k in paths if k not in pheno_keys]
        tmp = dict(zip(shared, stack.enter_context(atomic_paths([paths[k] for k in shared]))))
        if folder is not None:
            tmp |= {k: paths[k] for k in pheno_keys}
        else:
            tmp |= dict(zip(pheno_keys, stack.enter_context(atomic_paths([paths[k] for k in pheno_keys]))))
        prefix = variant_text(result.variants) if "tsv.gz" in formats else None
        metadata = {SCAN_METADATA_KEY: json.dumps(scan_metadata(result), sort_keys=True)}

        combined = combined_table(result)

        def write_wide() -> None:
            _write_parquet(part_table(result), tmp["wide"], metadata)

        def write_one(j: int) -> None:
            name = result.pheno_names[j]
            table = sumstats_table(result, j)
            if f"{name}.parquet" in tmp:
                _write_parquet(table, tmp[f"{name}.parquet"])
            if f"{name}.tsv" in tmp:
                _write_tsv_gz(table, tmp[f"{name}.tsv"], prefix)
            if f"{name}.ssf" in tmp:
                dropped = write_ssf(table, tmp[f"{name}.ssf"], tmp[f"{name}.ssf.meta"], pheno=name,
                                    n_samples=result.n_samples, file_name=final[f"{name}.ssf"].name,
                                    compress=gzip_compress, **(ssf_meta or {}))
                log.info("%s: GWAS-SSF file leaves out %d variants (untested, non-nucleotide allele "
                         "or a chromosome outside 1-22, X, Y, MT)", name, dropped)

        # Formatting and compression release the GIL: threads keep every core busy. The largest
        # file first; per-phenotype tables only when a per-phenotype format is asked for.
        jobs = [write_wide] if "wide" in tmp else []
        jobs += [functools.partial(_write_parquet, combined, tmp["combined.parquet"], metadata),
                 functools.partial(_write_tsv_gz, combined, tmp["combined.tsv"])]
        if set(formats) - {"wide"}:
            jobs += [functools.partial(write_one, j) for j in range(len(result.pheno_names))]
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()
    return final


# ---------------------------------------------------------------------------------------------
# scatter / gather: one part per chromosome (or variant range), gathered into the outputs above

# Counts that add up over parts (variants); the others describe the people and are shared.
_ADDITIVE_COUNTS = ("variants_tested", "variants_na", "variants_below_maf", "variants_below_min_mac",
                    "variants_below_min_info")


def write_gwas_part(result: GwasResult, path: str | Path) -> None:
    """One parquet holding a partial scan (:func:`part_table`) and, in the file metadata,
    phenotypes, people, df, counts."""
    table = part_table(result)
    meta = {"pheno_names": result.pheno_names, "n_samples": result.n_samples, "df": result.df,
            "counts": result.counts}
    with atomic_path(path) as tmp:
        table.write_parquet(tmp, metadata={PART_METADATA_KEY: json.dumps(meta)})


def part_table(result: GwasResult) -> pl.DataFrame:
    """The variant columns, ``BETA:<pheno>``, ``SE:<pheno>``, ``LOG10P:<pheno>`` per phenotype,
    F_JOINT and LOG10P_JOINT: one row per variant (the part and the wide layout)."""
    columns = {}
    for j, name in enumerate(result.pheno_names):
        columns[f"BETA:{name}"] = result.beta[:, j]
        columns[f"SE:{name}"] = result.se[:, j]
        columns[f"LOG10P:{name}"] = result.log10p[:, j]
    columns["F_JOINT"] = result.f_joint
    columns[JOINT_P_COLUMN] = result.log10p_joint
    return pl.concat([result.variants, pl.DataFrame(columns, schema={c: pl.Float64 for c in columns})],
                     how="horizontal")


def _read_part(path: str | Path) -> tuple[pl.DataFrame, dict]:
    if not Path(path).exists():
        raise InputError("file not found", path)
    try:
        meta = json.loads(pl.read_parquet_metadata(path)[PART_METADATA_KEY])
        table = pl.read_parquet(path)
    except Exception as error:  # noqa: BLE001 - any unreadable part is a bad input
        raise InputError(f"not a part written by `contig gwas --part-out` ({error})", path) from None
    absent = [c for c in ("F_JOINT", JOINT_P_COLUMN) if c not in table.columns]
    if absent:
        raise InputError(f"part has no {', '.join(absent)} column (written by an older `contig gwas`; "
                         "rerun it)", path)
    return table, meta


def _gathered_counts(metas: Sequence[dict]) -> dict[str, int]:
    counts = dict(metas[0]["counts"])
    for key in _ADDITIVE_COUNTS:
        values = [meta["counts"].get(key) for meta in metas]
        if all(v is not None for v in values):
            counts[key] = int(sum(values))
    counts.pop("variants_other_chrom", None)
    return counts


def check_part_matches(meta: dict, first: dict, first_path: str | Path, path: str | Path) -> None:
    """A scatter part's metadata ``meta`` must name the first part's phenotypes, people and
    covariates (``first``, read from ``first_path``)."""
    if (meta["pheno_names"], meta["n_samples"], meta["df"]) != (
            first["pheno_names"], first["n_samples"], first["df"]):
        raise InputError(f"part disagrees with {first_path} on phenotypes, people or covariates", path)


def read_gwas_parts(paths: Sequence[str | Path]) -> GwasResult:
    """Concatenate parts written by :func:`write_gwas_part` (in the order given) into one result.

    Every part must come from the same phenotypes, people and covariates.
    """
    if not paths:
        raise InputError("no parts to gather", "--parts")
    tables, metas = [], []
    for path in paths:
        table, meta = _read_part(path)
        check_part_matches(meta, metas[0] if metas else meta, paths[0], path)
        tables.append(table)
        metas.append(meta)
    table = pl.concat(tables, how="vertical")
    names = metas[0]["pheno_names"]

    def matrix(prefix: str) -> np.ndarray:
        return np.column_stack([table[f"{prefix}:{n}"].to_numpy() for n in names]) if len(table) else \
            np.empty((0, len(names)))

    return GwasResult(table.select(variant_columns(table)), list(names), matrix("BETA"), matrix("SE"),
                      matrix("LOG10P"), table["F_JOINT"].to_numpy(), table[JOINT_P_COLUMN].to_numpy(),
                      int(metas[0]["n_samples"]), int(metas[0]["df"]), _gathered_counts(metas))


# ---------------------------------------------------------------------------------------------
# readers


def read_sumstats(path: str | Path, p_column: str = DEFAULT_P_COLUMN) -> pl.DataFrame:
    """Read summary statistics (parquet, .tsv or .tsv.gz) with at least CHROM GENPOS ID and the
    −log10 p column ``p_column`` (for LOG10P, a P column may stand in); returns them with
    ``p_column`` as float."""
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
    from_p = p_column == DEFAULT_P_COLUMN and "P" in table.columns
    absent = [c for c in ("CHROM", "GENPOS", "ID") if c not in table.columns]
    if absent or (p_column not in table.columns and not from_p):
        wanted = "LOG10P or P" if p_column == DEFAULT_P_COLUMN else p_column
        raise InputError(f"summary statistics need columns CHROM GENPOS ID and {wanted}; found "
                         f"{', '.join(table.columns)}", path)
    if p_column not in table.columns:
        p = table["P"].cast(pl.Float64, strict=False)
        table = table.with_columns((-p.log10()).alias(p_column))
    return table.with_columns(pl.col("CHROM").cast(pl.Utf8), pl.col("GENPOS").cast(pl.Int64),
                              pl.col("ID").cast(pl.Utf8), pl.col(p_column).cast(pl.Float64))


def read_scan_metadata(path: str | Path) -> dict:
    """The scan's phenotypes, people and df from a combined parquet of ``write_gwas_outputs``."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    try:
        return json.loads(pl.read_parquet_metadata(path)[SCAN_METADATA_KEY])
    except Exception as error:  # noqa: BLE001 - a file without the metadata is a bad input
        raise InputError(f"not an OUT.combined.parquet of `contig gwas` or `gwas-gather` "
                         f"({type(error).__name__}: {error})", path) from None
